-- Account-level webhooks Baton uses (issue 10): template statuses and categories (per WABA,
-- they name no phone number) and customers' marketing opt-outs (per business number).
CREATE TABLE template_statuses (
    waba_id      text        NOT NULL,
    template_id  text        NOT NULL,
    name         text,
    language     text,
    category     text,
    status       text,                  -- APPROVED, REJECTED, PAUSED, DISABLED …; null: unknown yet
    reason       text,
    status_at    timestamptz,           -- when the status webhook was received (newest wins)
    category_at  timestamptz,
    PRIMARY KEY (waba_id, template_id)
);
CREATE INDEX template_statuses_by_name ON template_statuses (waba_id, name, language);

CREATE TABLE marketing_preferences (
    phone_number_id  text        NOT NULL,
    wa_id            text        NOT NULL,
    opted_out        boolean     NOT NULL,
    detail           text,
    changed_at       timestamptz NOT NULL,  -- Meta's timestamp (newest wins)
    PRIMARY KEY (phone_number_id, wa_id)
);
