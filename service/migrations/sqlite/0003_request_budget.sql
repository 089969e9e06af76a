-- The request budget every process on the file draws from
-- (`EngineSettings::shared_budget`). A row is tokens granted to a claim on
-- `budget_key`, counted until `expires_at` (Unix milliseconds); `others`
-- is 1 for tokens of requests the app counts. A holder row says which
-- process claimed on the key recently (until `forget_at`).
CREATE TABLE IF NOT EXISTS hoopai_budget_grants (
    budget_key TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    others     INTEGER NOT NULL,
    tokens     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS hoopai_budget_grants_key ON hoopai_budget_grants (budget_key, expires_at);
CREATE INDEX IF NOT EXISTS hoopai_budget_grants_expires_at ON hoopai_budget_grants (expires_at);
CREATE TABLE IF NOT EXISTS hoopai_budget_holders (
    budget_key TEXT    NOT NULL,
    holder     TEXT    NOT NULL,
    forget_at  INTEGER NOT NULL,
    PRIMARY KEY (budget_key, holder)
);
CREATE INDEX IF NOT EXISTS hoopai_budget_holders_forget_at ON hoopai_budget_holders (forget_at);
