-- Transactional outbox of the handoff shell (issue 3): broker messages a saved decision owes,
-- written in the same transaction as the state. The saving process publishes and deletes
-- them; rows whose holder let go (claimed_until passed) are republished by a relay sweep.

CREATE TABLE pending_effects (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id  bigint      NOT NULL REFERENCES conversations (id),
    exchange         text        NOT NULL,
    routing_key      text        NOT NULL,
    message_type     text        NOT NULL,
    message_id       text        NOT NULL,
    body             bytea       NOT NULL,
    claimed_until    timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_effects_claimed ON pending_effects (claimed_until, id);
