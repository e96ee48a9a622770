-- Conversation events as agents' SSE streams see them, numbered once for every console replica:
-- a client that reconnects to another replica with Last-Event-ID resumes where it was.
-- `id` is assigned under an advisory transaction lock (max + 1), so ids have no gaps and become
-- visible in order: a reader that saw id N has seen every id below N.
CREATE TABLE console_events (
    id               bigint      PRIMARY KEY,
    message_id       text        NOT NULL UNIQUE,  -- the broker message id: logged once
    type             text        NOT NULL,
    phone_number_id  text,
    conversation_id  bigint,
    data             text        NOT NULL,  -- the event's JSON, one line
    logged_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_events_logged_at ON console_events (logged_at);
