-- The request budget every process on the database draws from
-- (`EngineSettings::shared_budget`). A row is tokens granted to a claim on
-- `budget_key`, counted until `expires_at` (Unix milliseconds, the
-- server's clock); `others` is true for tokens of requests the app counts.
-- A holder row says which process claimed on the key recently.
CREATE TABLE IF NOT EXISTS hoopai_budget_grants (
    budget_key TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL,
    others     BOOLEAN NOT NULL,
    tokens     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS hoopai_budget_grants_key ON hoopai_budget_grants (budget_key, expires_at);
CREATE INDEX IF NOT EXISTS hoopai_budget_grants_expires_at ON hoopai_budget_grants (expires_at);
CREATE TABLE IF NOT EXISTS hoopai_budget_holders (
    budget_key TEXT   NOT NULL,
    holder     TEXT   NOT NULL,
    forget_at  BIGINT NOT NULL,
    PRIMARY KEY (budget_key, holder)
);
CREATE INDEX IF NOT EXISTS hoopai_budget_holders_forget_at ON hoopai_budget_holders (forget_at);

-- One claim, atomically: serialized per key by an advisory lock held to
-- the end of the call's transaction; each statement of the function sees
-- what the claims before it committed. The rules are those of the core's
-- `BudgetClaim`. Up to 64 expired rows of any key are pruned per call.
CREATE OR REPLACE FUNCTION hoopai_claim_budget(
    p_key TEXT, p_holder TEXT, p_sends INTEGER, p_others INTEGER,
    p_max INTEGER, p_others_max INTEGER, p_window_ms BIGINT, p_holders_windows INTEGER,
    OUT sends INTEGER, OUT others INTEGER, OUT holders INTEGER, OUT next_free_ms BIGINT)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    now_ms BIGINT;
    used BIGINT;
    used_others BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('hoopai_budget:' || p_key, 0));
    now_ms := (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT;
    DELETE FROM hoopai_budget_grants WHERE budget_key = p_key AND expires_at <= now_ms;
    DELETE FROM hoopai_budget_grants WHERE ctid IN (
        SELECT ctid FROM hoopai_budget_grants WHERE expires_at <= now_ms LIMIT 64);
    SELECT COALESCE(SUM(g.tokens), 0), COALESCE(SUM(g.tokens) FILTER (WHERE g.others), 0)
        INTO used, used_others
        FROM hoopai_budget_grants g WHERE g.budget_key = p_key;
    sends := GREATEST(0, LEAST(p_sends::BIGINT, p_max - used));
    others := GREATEST(0, LEAST(p_others::BIGINT, p_others_max - used_others, p_max - used - sends));
    IF sends > 0 THEN
        INSERT INTO hoopai_budget_grants VALUES (p_key, now_ms + p_window_ms, FALSE, sends);
    END IF;
    IF others > 0 THEN
        INSERT INTO hoopai_budget_grants VALUES (p_key, now_ms + p_window_ms, TRUE, others);
    END IF;
    INSERT INTO hoopai_budget_holders VALUES (p_key, p_holder, now_ms + p_window_ms * p_holders_windows)
        ON CONFLICT (budget_key, holder) DO UPDATE SET forget_at = EXCLUDED.forget_at;
    DELETE FROM hoopai_budget_holders WHERE budget_key = p_key AND forget_at <= now_ms;
    DELETE FROM hoopai_budget_holders WHERE ctid IN (
        SELECT ctid FROM hoopai_budget_holders WHERE forget_at <= now_ms LIMIT 64);
    SELECT COUNT(*) INTO holders FROM hoopai_budget_holders h WHERE h.budget_key = p_key;
    SELECT COALESCE(MIN(g.expires_at) - now_ms, 0) INTO next_free_ms
        FROM hoopai_budget_grants g WHERE g.budget_key = p_key;
END $$;
