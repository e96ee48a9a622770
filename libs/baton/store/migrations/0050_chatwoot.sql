-- Chatwoot bridge (issue 13). `scope` names one Chatwoot inbox ("<account_id>:<inbox_id>"), so
-- pointing a number at another inbox starts a fresh mirror instead of writing into stale ids.

-- Baton ids → Chatwoot ids for contacts ("contact", key wa_id) and posted messages ("message",
-- key a Baton message key): a post is recorded here once it succeeded, and never repeated.
CREATE TABLE chatwoot_links (
    scope       text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('contact', 'message')),
    baton_key   text        NOT NULL,
    chatwoot_id bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, kind, baton_key)
);

-- One Chatwoot conversation per Baton conversation, and what the bridge knows of its remote side.
CREATE TABLE chatwoot_conversations (
    conversation_id          bigint      PRIMARY KEY REFERENCES conversations (id),
    scope                    text        NOT NULL,
    chatwoot_conversation_id bigint      NOT NULL,
    -- The newest Chatwoot `updated_at` a callback was applied at: older callbacks (out of
    -- order deliveries) change nothing.
    remote_updated_at        double precision NOT NULL DEFAULT 0,
    -- The status / assignee the bridge last set or saw, so an unchanged one is not set again.
    remote_status            text,
    remote_assignee_id       bigint,
    created_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scope, chatwoot_conversation_id)
);

-- Changes the bridge made in Chatwoot whose callback has not come back yet: that callback is
-- the bridge's own echo and must not be applied to Baton again (no loops).
CREATE TABLE chatwoot_echoes (
    id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope                    text        NOT NULL,
    chatwoot_conversation_id bigint      NOT NULL,
    change                   text        NOT NULL,  -- "status:open", "assignee:7", "assignee:"
    expires_at               timestamptz NOT NULL
);
CREATE INDEX chatwoot_echoes_lookup ON chatwoot_echoes (scope, chatwoot_conversation_id, change);
