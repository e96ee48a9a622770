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

-- One row per distinct (question, answer) of a number: a business repeats its answers, and the
-- same words answered the same way are one example, counted in `uses`. Five copies of one pair
-- would teach the model nothing the first did not, and would make retrieval scan them all.
CREATE TABLE knowledge_pairs (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone_number_id  text        NOT NULL,
    conversation_id  bigint      NOT NULL,  -- where it was first seen
    question         text        NOT NULL,
    answer           text        NOT NULL,
    answer_author    text        NOT NULL,
    answered_at      timestamptz NOT NULL,  -- the latest time it was given
    imported         boolean     NOT NULL,
    uses             integer     NOT NULL DEFAULT 1,
    -- In the number's language configuration at indexing time (portuguese, spanish, english).
    tsv              tsvector    NOT NULL
);
CREATE UNIQUE INDEX knowledge_pairs_distinct
    ON knowledge_pairs (phone_number_id, md5(question), md5(answer));
-- Every retrieval is within one number: the number is part of the index (btree_gin), so one
-- number's matches are found without visiting another's. Trigram similarity (pg_trgm) only
-- re-ranks what the text search found, so it needs no index.
CREATE INDEX knowledge_pairs_tsv ON knowledge_pairs USING gin (phone_number_id, tsv);

-- Every message row a pass has looked at as a possible answer: each is counted once, even when
-- its pair already existed or it had no question before it.
CREATE TABLE knowledge_answers_seen (
    answer_id        bigint      PRIMARY KEY
);

-- Passes scan message ids above `high` for new answers, and look again at (low, high] for rows
-- that committed late with a lower id. `low` trails `high` by at least a minute: it becomes the
-- `mark` that was set a minute ago.
CREATE TABLE knowledge_index_state (
    id               smallint    PRIMARY KEY CHECK (id = 1),
    low              bigint      NOT NULL DEFAULT 0,
    high             bigint      NOT NULL DEFAULT 0,
    mark             bigint      NOT NULL DEFAULT 0,
    mark_at          timestamptz NOT NULL DEFAULT now()
);
INSERT INTO knowledge_index_state (id) VALUES (1);
