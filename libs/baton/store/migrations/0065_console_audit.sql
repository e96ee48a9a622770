-- MCP / audit (issue 14): who changed a conversation through the console, and how (the JSON
-- API or an MCP client). One row per accepted action, written right after the change itself.

CREATE TABLE console_audit (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at               timestamptz NOT NULL,
    principal        text        NOT NULL,
    principal_kind   text        NOT NULL,
    via              text        NOT NULL CHECK (via IN ('api', 'mcp')),
    action           text        NOT NULL,
    conversation_id  bigint      NOT NULL,
    phone_number_id  text        NOT NULL,
    changed          boolean     NOT NULL,
    mode             text        NOT NULL,
    epoch            bigint      NOT NULL,
    detail           jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX console_audit_conversation ON console_audit (conversation_id, id);
CREATE INDEX console_audit_principal ON console_audit (principal, id);
