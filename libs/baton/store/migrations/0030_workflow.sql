-- Agent workflow (issue 12): presence, the fair queue, resolutions, handoff summaries.
-- Notes live in `messages` (author 'note', no wamid): history shows them in place, and the
-- outbox never sees them (it only sends what a send request names).

-- One row per agent who ever set a presence. Stale heartbeats turn `status` offline (a sweep);
-- `last_assigned_at` makes auto-assignment round-robin among equally loaded agents.
CREATE TABLE agent_presence (
    agent_id          text        PRIMARY KEY,
    status            text        NOT NULL CHECK (status IN ('online', 'away', 'offline')),
    heartbeat_at      timestamptz NOT NULL,
    changed_at        timestamptz NOT NULL,
    last_assigned_at  timestamptz
);

-- The fair queue: longest wait first.
CREATE INDEX conversations_waiting ON conversations (waiting_since, id)
    WHERE waiting_since IS NOT NULL;
-- Agents' loads and the auto-assignment queue.
CREATE INDEX conversations_held ON conversations (assignee) WHERE assignee IS NOT NULL;
CREATE INDEX conversations_unassigned ON conversations (phone_number_id, waiting_since, id)
    WHERE mode = 'human' AND assignee IS NULL;

-- One row per ended human service (resolve), keyed by the epoch it ended: a retried resolve
-- records it once.
CREATE TABLE conversation_resolutions (
    conversation_id         bigint      NOT NULL REFERENCES conversations (id),
    epoch                   bigint      NOT NULL,
    phone_number_id         text        NOT NULL,
    agent_id                text,
    outcome                 text,
    started_at              timestamptz NOT NULL,
    first_response_at       timestamptz,
    first_response_seconds  integer,
    handling_seconds        integer     NOT NULL,
    resolved_at             timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, epoch)
);
CREATE INDEX conversation_resolutions_time ON conversation_resolutions (resolved_at);

-- One structured summary per handoff (the epoch the conversation left the bot with).
CREATE TABLE handoff_summaries (
    conversation_id  bigint      NOT NULL REFERENCES conversations (id),
    epoch            bigint      NOT NULL,
    summary          jsonb       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, epoch)
);
