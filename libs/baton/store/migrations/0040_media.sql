-- Media (issue 18): the files customers and agents exchange, and the default blob store.

-- The PostgreSQL blob store (baton.blobs.postgres): a blob's bytes in fixed-size chunks, so a
-- Range read touches only the chunks it needs.
CREATE TABLE blobs (
    key          text        PRIMARY KEY,
    size         bigint      NOT NULL,
    content_type text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE blob_chunks (
    key  text    NOT NULL REFERENCES blobs (key) ON DELETE CASCADE,
    seq  integer NOT NULL,
    data bytea   NOT NULL,
    PRIMARY KEY (key, seq)
);

-- One row per media message. Inbound (live or imported) is keyed by its wamid and starts
-- `pending` until the file is downloaded from Meta (`available`) or given up on
-- (`unavailable`, with the reason). Outbound (an agent's file) is keyed by the send's
-- idempotency key and is `available` from the start.
CREATE TABLE media (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone_number_id  text        NOT NULL,
    conversation_id  bigint,
    wamid            text,
    idempotency_key  text UNIQUE,
    direction        text        NOT NULL CHECK (direction IN ('in', 'out')),
    kind             text        NOT NULL,
    media_id         text,
    mime_type        text,
    expected_sha256  text,
    caption          text,
    filename         text,
    voice            boolean     NOT NULL DEFAULT false,
    size             bigint,
    sha256           text,
    blob_key         text,
    status           text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'available', 'unavailable')),
    reason           text,
    attempts         integer     NOT NULL DEFAULT 0,
    transcript       text,
    description      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX media_wamid_key ON media (phone_number_id, wamid);
