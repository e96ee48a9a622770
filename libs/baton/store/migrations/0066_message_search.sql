-- Message search (issue 14): full-text over a business number's history, in the number's
-- language. One expression index per shipped language; a query must use the very same
-- expression (`to_tsvector('<config>'::regconfig, body)`) for the planner to pick it.

CREATE INDEX messages_fts_portuguese
    ON messages USING gin (to_tsvector('portuguese'::regconfig, body));
CREATE INDEX messages_fts_spanish
    ON messages USING gin (to_tsvector('spanish'::regconfig, body));
CREATE INDEX messages_fts_english
    ON messages USING gin (to_tsvector('english'::regconfig, body));
