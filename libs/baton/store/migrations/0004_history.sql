-- History (Coexistence): onboarding and its 24-hour sync deadline, the one-shot sync requests,
-- backlog import progress per chunk, the Business App's contacts.

-- A Coexistence number: seen in a webhook (display number, WABA), onboarded by Baton (the
-- onboarding time and its sync deadline), offboarded. `generation` grows when an offboarded
-- number is onboarded again (Meta then accepts one more sync of each type).
CREATE TABLE coexistence_numbers (
    phone_number_id      text        PRIMARY KEY,
    display_phone_number text,
    waba_id              text,
    generation           integer     NOT NULL DEFAULT 1,
    onboarded_at         timestamptz,
    sync_deadline_at     timestamptz,
    disabled_at          timestamptz,
    disabled_reason      text,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
-- `account_update` names the number by its display number only.
CREATE INDEX coexistence_numbers_display ON coexistence_numbers (display_phone_number);

-- One row per (number, sync type). A request leaves only after its row moved from `pending` to
-- `sending` in a committed transaction, so it leaves at most once per onboarding; `sending`
-- without an outcome after the lease becomes `unclear` (a person decides).
CREATE TABLE history_sync_requests (
    phone_number_id  text        NOT NULL REFERENCES coexistence_numbers ON DELETE CASCADE,
    sync_type        text        NOT NULL CHECK (sync_type IN ('smb_app_state_sync', 'history')),
    status           text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'accepted', 'unclear', 'failed', 'missed')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    sending_since    timestamptz,
    request_id       text,
    error_code       integer,
    last_error       text,
    resolved_by      text,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (phone_number_id, sync_type)
);
CREATE INDEX history_sync_requests_due ON history_sync_requests (next_attempt_at)
    WHERE status IN ('pending', 'sending');

-- One row per imported history change item (a chunk, a declined notice or a recent-media
-- batch), keyed by the change's content hash and the item's index: re-sent chunks find their
-- row completed and change nothing. Counters are bumped in the same statement as the rows.
CREATE TABLE history_chunks (
    phone_number_id  text        NOT NULL,
    chunk_key        text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('chunk', 'declined', 'media')),
    phase            integer,
    chunk_order      integer,
    progress         integer,
    messages_total   integer     NOT NULL DEFAULT 0,
    messages_stored  integer     NOT NULL DEFAULT 0,
    messages_rejected integer    NOT NULL DEFAULT 0,
    started_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    PRIMARY KEY (phone_number_id, chunk_key)
);

-- The Business App's address book (smb_app_state_sync). A removal keeps a tombstone so that an
-- older `add` delivered late does not bring the contact back.
CREATE TABLE contacts (
    phone_number_id  text        NOT NULL,
    wa_id            text        NOT NULL,
    full_name        text,
    first_name       text,
    removed          boolean     NOT NULL DEFAULT false,
    changed_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (phone_number_id, wa_id)
);
