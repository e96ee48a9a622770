-- Conversations, messages (both directions, live and imported), delivery statuses, raw changes.

CREATE TABLE conversations (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone_number_id  text        NOT NULL,
    wa_id            text        NOT NULL,
    customer_name    text,
    mode             text        NOT NULL DEFAULT 'bot' CHECK (mode IN ('bot', 'human', 'paused')),
    epoch            bigint      NOT NULL DEFAULT 0,
    version          bigint      NOT NULL DEFAULT 0,
    -- The handoff core's state beyond mode/epoch (timers, debounce buffer, flags), as JSON.
    state            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- Live traffic only: imported history never moves it.
    last_activity_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (phone_number_id, wa_id)
);

CREATE TABLE messages (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id  bigint      NOT NULL REFERENCES conversations (id),
    phone_number_id  text        NOT NULL,
    wamid            text,
    direction        text        NOT NULL CHECK (direction IN ('in', 'out')),
    author           text        NOT NULL,
    type             text        NOT NULL,
    body             text        NOT NULL DEFAULT '',
    payload          jsonb,
    sent_at          timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    imported         boolean     NOT NULL DEFAULT false,
    status           text,
    status_rank      smallint    NOT NULL DEFAULT 0,
    status_at        timestamptz,
    error_code       integer,
    error_reason     text,
    idempotency_key  text UNIQUE,
    epoch            bigint,
    agent_id         text
);
CREATE UNIQUE INDEX messages_wamid_key ON messages (phone_number_id, wamid);
CREATE INDEX messages_conversation_time ON messages (conversation_id, sent_at, id);

-- Every status webhook, once per (wamid, status): a status may arrive before the outbox has
-- recorded the wamid of its send, so it is kept and applied when the message appears.
CREATE TABLE message_statuses (
    phone_number_id  text        NOT NULL,
    wamid            text        NOT NULL,
    status           text        NOT NULL,
    status_rank      smallint    NOT NULL,
    at               timestamptz NOT NULL,
    error_code       integer,
    error_title      text,
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (phone_number_id, wamid, status)
);

-- Webhook changes kept verbatim (history chunks, contact syncs) before any processing.
CREATE TABLE raw_changes (
    dedupe_key       text        PRIMARY KEY,
    field            text        NOT NULL,
    phone_number_id  text,
    value            jsonb       NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now()
);
