-- A customer's new WhatsApp number (a `system` message): their conversation, with its history
-- and state, follows them to the new wa_id. One row per notice, so a redelivery changes nothing.
CREATE TABLE customer_number_changes (
    phone_number_id  text        NOT NULL,
    wamid            text        NOT NULL,
    old_wa_id        text        NOT NULL,
    new_wa_id        text        NOT NULL,
    conversation_id  bigint      REFERENCES conversations (id),
    outcome          text        NOT NULL CHECK (outcome IN ('moved', 'kept_both', 'no_conversation')),
    changed_at       timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (phone_number_id, wamid)
);
