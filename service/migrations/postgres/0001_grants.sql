-- One row per grant. `version` repeats the record's version for
-- compare-and-swap; `record` is the grant record as JSON text, kept
-- byte for byte (it holds the refresh token: restrict who can read it).
CREATE TABLE IF NOT EXISTS hoopai_grants (
    grant_id   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    version    BIGINT      NOT NULL CHECK (version >= 0),
    record     TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
