-- Outbox: the attempts behind each outbound send (the crash window is visible), the business
-- numbers the outbox has per-number queues for, and the live outbox replicas (for spreading
-- numbers over them; correctness never depends on this table).

ALTER TABLE messages
    ADD COLUMN send_attempts      integer     NOT NULL DEFAULT 0,
    -- True from just before a Graph API call until its outcome is recorded: a row left open by a
    -- crashed replica means Meta may or may not have the message.
    ADD COLUMN attempt_open       boolean     NOT NULL DEFAULT false,
    ADD COLUMN attempt_started_at timestamptz;

CREATE TABLE outbox_numbers (
    phone_number_id text        PRIMARY KEY,
    discovered_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox_replicas (
    replica_id   text        PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
