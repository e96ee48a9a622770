-- Bot knowledge (issue 15): per-number knowledge bases edited through the console, and the
-- retrieval index of past answers: each business answer (agent, owner, bot) with the customer's
-- words that came right before it in the same conversation, live or imported.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE TABLE number_knowledge (
    phone_number_id  text        PRIMARY KEY,
    document         jsonb       NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       text        NOT NULL
);

CREATE TABLE knowledge_pairs (
    -- The answer's message row: a pair is indexed once, whoever indexes it.
    answer_id        bigint      PRIMARY KEY,
    phone_number_id  text        NOT NULL,
    conversation_id  bigint      NOT NULL,
    question         text        NOT NULL,
    answer           text        NOT NULL,
    answer_author    text        NOT NULL,
    answered_at      timestamptz NOT NULL,
    imported         boolean     NOT NULL,
    -- In the number's language configuration at indexing time (portuguese, spanish, english).
    tsv              tsvector    NOT NULL
);
-- Every retrieval is within one number: the number is part of both indexes (btree_gin), so
-- one number's matches are found without visiting another's.
CREATE INDEX knowledge_pairs_tsv ON knowledge_pairs USING gin (phone_number_id, tsv);
CREATE INDEX knowledge_pairs_trgm ON knowledge_pairs USING gin (phone_number_id, question gin_trgm_ops);

-- Messages older than this id are all indexed (or were never answers); newer ones are scanned
-- again on each pass, since ids commit out of order.
CREATE TABLE knowledge_index_state (
    id               smallint    PRIMARY KEY CHECK (id = 1),
    low_watermark    bigint      NOT NULL DEFAULT 0
);
INSERT INTO knowledge_index_state (id) VALUES (1);
