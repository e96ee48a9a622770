-- Desk (issue 11): agents' accounts with argon2 password hashes, their browser sessions,
-- failed sign-ins (throttled per agent and per address), and what each agent has read.

CREATE TABLE agent_accounts (
    agent_id      text        PRIMARY KEY,
    display_name  text,
    password_hash text        NOT NULL,           -- argon2id, encoded with its parameters
    numbers       text[],                         -- NULL → every business number
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Only the session token's SHA-256 is kept: a leaked table grants nobody a session.
CREATE TABLE agent_sessions (
    token_hash   bytea       PRIMARY KEY,
    agent_id     text        NOT NULL REFERENCES agent_accounts (agent_id) ON DELETE CASCADE,
    csrf_token   text        NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    address      text
);
CREATE INDEX agent_sessions_agent ON agent_sessions (agent_id);
CREATE INDEX agent_sessions_expiry ON agent_sessions (expires_at);

-- One row per failed sign-in and key (`agent:<id>`, `address:<ip>`), pruned as it ages out.
CREATE TABLE sign_in_failures (
    key       text        NOT NULL,
    failed_at timestamptz NOT NULL
);
CREATE INDEX sign_in_failures_key ON sign_in_failures (key, failed_at);

CREATE TABLE desk_reads (
    agent_id        text   NOT NULL,
    conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    read_through    bigint NOT NULL,                 -- the newest messages.id the agent saw
    PRIMARY KEY (agent_id, conversation_id)
);
