-- Console (issue 3): agents list conversations by latest live activity, newest first, and
-- conversations with none yet (history imported only) last; optionally per business number.

CREATE INDEX conversations_activity
    ON conversations (last_activity_at DESC NULLS LAST, id DESC);
CREATE INDEX conversations_number_activity
    ON conversations (phone_number_id, last_activity_at DESC NULLS LAST, id DESC);
