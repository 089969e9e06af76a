-- The `webhookId`s of accepted deliveries, shared by every process on the
-- database, to refuse replays. `webhook_id` is the id's UTF-8 bytes (at
-- most 256); `expires_at` (Unix milliseconds) is when the row may be
-- dropped; `claim` is a random number of the call that wrote it.
CREATE TABLE IF NOT EXISTS hoopai_webhook_ids (
    webhook_id BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(webhook_id) <= 256),
    expires_at BIGINT NOT NULL,
    claim      BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS hoopai_webhook_ids_expires_at ON hoopai_webhook_ids (expires_at);
