-- Handoff state (issue 3): the core's ConversationState lives in conversations.state (JSON);
-- the columns below mirror what agents list and filter by, kept in sync on every save.

ALTER TABLE conversations
    ADD COLUMN assignee        text,
    ADD COLUMN paused_until    timestamptz,
    ADD COLUMN waiting_since   timestamptz,
    ADD COLUMN handoff_reason  text,
    ADD COLUMN handoff_summary text;

CREATE INDEX conversations_mode_activity ON conversations (mode, last_activity_at DESC, id DESC);

-- Set in the transaction that saved the state change a live message caused: a redelivered
-- message that is stored but not routed (a crash in between) still reaches the state machine.
ALTER TABLE messages ADD COLUMN routed_at timestamptz;

-- One row per armed timer of a conversation, derived from its state on every save. A sweeper
-- leases due rows (FOR UPDATE SKIP LOCKED), so several routers never fire one timer twice.
CREATE TABLE conversation_timers (
    conversation_id  bigint      NOT NULL REFERENCES conversations (id),
    kind             text        NOT NULL,
    due_at           timestamptz NOT NULL,
    leased_until     timestamptz,
    PRIMARY KEY (conversation_id, kind)
);
CREATE INDEX conversation_timers_due ON conversation_timers (due_at);
