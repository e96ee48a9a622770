-- Operations (issue 17): every dead-lettered message an operator sent back, by whom and why it
-- had failed, so a replay is never anonymous and never forgotten.

CREATE TABLE dlq_replays (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT now(),
    operator         text        NOT NULL,
    queue            text        NOT NULL,
    message_id       text        NOT NULL,
    message_type     text        NOT NULL,
    failure          text        NOT NULL
);
CREATE INDEX dlq_replays_queue ON dlq_replays (queue, at);
