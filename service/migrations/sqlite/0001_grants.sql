-- One row per grant. `version` repeats the record's version for
-- compare-and-swap; `record` is the grant record as JSON (it holds the
-- refresh token: protect the file).
CREATE TABLE IF NOT EXISTS hoopai_grants (
    grant_id   TEXT    NOT NULL PRIMARY KEY,
    version    INTEGER NOT NULL,
    record     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL DEFAULT (unixepoch())
);
