-- Bot knowledge (issue 15): each pair's lexemes keyed by its number ("<number>:<lexeme>"), in
-- their own GIN index. The (phone_number_id, tsv) index of 0060 intersects every search with
-- the posting list of the whole number: at 100k pairs that alone took ~11 ms, even when the
-- words matched nothing. A keyed lexeme's posting list holds one number's pairs only, so the
-- bounded candidate search (0061) reads just its words' lists, and can never match another
-- number's pair.
ALTER TABLE knowledge_pairs ADD COLUMN keys tsvector;
UPDATE knowledge_pairs
   SET keys = array_to_tsvector(ARRAY(
       SELECT phone_number_id || ':' || w FROM unnest(tsvector_to_array(tsv)) AS w));
ALTER TABLE knowledge_pairs ALTER COLUMN keys SET NOT NULL;
CREATE INDEX knowledge_pairs_keys ON knowledge_pairs USING gin (keys);
