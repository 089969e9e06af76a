//! The request budget every process on a store draws from
//! ([`GrantStore::claim_budget`](super::GrantStore::claim_budget)): the
//! rules of the core's [`BudgetClaim`], kept in memory and in SQLite (the
//! Postgres store runs them in the database, `hoopai_claim_budget`).

use std::collections::HashMap;
use std::time::SystemTime;
#[cfg(feature = "sqlite")]
use std::time::{Duration, UNIX_EPOCH};

use hoopai_oauth::{BudgetClaim, ClaimOutcome, HOLDERS_WINDOWS};
#[cfg(feature = "sqlite")]
use rusqlite::{Connection, TransactionBehavior, params};

/// Expired rows of other keys pruned per claim (SQLite).
#[cfg(feature = "sqlite")]
const PRUNE_ROWS: u32 = 64;

/// Tokens granted for a claim, given `used` tokens (of which `used_others`
/// for counted requests) already counted in the window.
fn grant(claim: &BudgetClaim, used: u64, used_others: u64) -> (u32, u32) {
    let room = u64::from(claim.max).saturating_sub(used);
    let sends = u64::from(claim.sends).min(room);
    let others = u64::from(claim.others)
        .min(u64::from(claim.others_max).saturating_sub(used_others))
        .min(room - sends);
    (
        u32::try_from(sends).unwrap_or(u32::MAX),
        u32::try_from(others).unwrap_or(u32::MAX),
    )
}

/// Granted tokens counted until `expires`.
#[derive(Debug)]
struct Counted {
    expires: SystemTime,
    others: bool,
    tokens: u32,
}

/// The budget of a [`MemoryStore`](super::MemoryStore): every engine on the
/// same store value draws from it.
#[derive(Debug, Default)]
pub(crate) struct MemoryBudget {
    counted: HashMap<String, Vec<Counted>>,
    holders: HashMap<String, HashMap<String, SystemTime>>,
}

impl MemoryBudget {
    pub(crate) fn claim(&mut self, claim: &BudgetClaim, now: SystemTime) -> ClaimOutcome {
        let counted = self.counted.entry(claim.key.clone()).or_default();
        counted.retain(|c| c.expires > now);
        let used: u64 = counted.iter().map(|c| u64::from(c.tokens)).sum();
        let used_others: u64 = counted
            .iter()
            .filter(|c| c.others)
            .map(|c| u64::from(c.tokens))
            .sum();
        let (sends, others) = grant(claim, used, used_others);
        for (tokens, others) in [(sends, false), (others, true)] {
            if tokens > 0 {
                counted.push(Counted {
                    expires: now + claim.window,
                    others,
                    tokens,
                });
            }
        }
        let next_free_in = counted
            .iter()
            .map(|c| c.expires)
            .min()
            .and_then(|t| t.duration_since(now).ok())
            .unwrap_or_default();
        let seen = self.holders.entry(claim.key.clone()).or_default();
        seen.insert(claim.holder.clone(), now + claim.window * HOLDERS_WINDOWS);
        seen.retain(|_, forget| *forget > now);
        ClaimOutcome::Granted {
            sends,
            others,
            holders: u32::try_from(seen.len()).unwrap_or(u32::MAX),
            next_free_in,
        }
    }
}

#[cfg(feature = "sqlite")]
fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(feature = "sqlite")]
fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(feature = "sqlite")]
/// One claim in one `IMMEDIATE` transaction on a SQLite connection (the
/// file's lock serializes the processes on it; they share the machine's
/// clock).
pub(crate) fn claim_sqlite(
    conn: &mut Connection,
    claim: &BudgetClaim,
    now: SystemTime,
) -> rusqlite::Result<ClaimOutcome> {
    let now_ms = unix_ms(now);
    let window = ms(claim.window);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "DELETE FROM hoopai_budget_grants WHERE budget_key = ?1 AND expires_at <= ?2",
        params![claim.key, now_ms],
    )?;
    tx.execute(
        "DELETE FROM hoopai_budget_grants WHERE rowid IN (
             SELECT rowid FROM hoopai_budget_grants WHERE expires_at <= ?1 LIMIT ?2)",
        params![now_ms, PRUNE_ROWS],
    )?;
    let (used, used_others): (i64, i64) = tx.query_row(
        "SELECT COALESCE(SUM(tokens), 0), COALESCE(SUM(CASE WHEN others = 1 THEN tokens END), 0)
         FROM hoopai_budget_grants WHERE budget_key = ?1",
        [&claim.key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (sends, others) = grant(
        claim,
        u64::try_from(used).unwrap_or(0),
        u64::try_from(used_others).unwrap_or(0),
    );
    for (tokens, is_others) in [(sends, 0), (others, 1)] {
        if tokens > 0 {
            tx.execute(
                "INSERT INTO hoopai_budget_grants (budget_key, expires_at, others, tokens)
                 VALUES (?1, ?2, ?3, ?4)",
                params![claim.key, now_ms.saturating_add(window), is_others, tokens],
            )?;
        }
    }
    tx.execute(
        "INSERT INTO hoopai_budget_holders (budget_key, holder, forget_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (budget_key, holder) DO UPDATE SET forget_at = excluded.forget_at",
        params![
            claim.key,
            claim.holder,
            now_ms.saturating_add(window.saturating_mul(i64::from(HOLDERS_WINDOWS)))
        ],
    )?;
    tx.execute(
        "DELETE FROM hoopai_budget_holders WHERE rowid IN (
             SELECT rowid FROM hoopai_budget_holders WHERE forget_at <= ?1 LIMIT ?2)",
        params![now_ms, PRUNE_ROWS],
    )?;
    tx.execute(
        "DELETE FROM hoopai_budget_holders WHERE budget_key = ?1 AND forget_at <= ?2",
        params![claim.key, now_ms],
    )?;
    let holders: i64 = tx.query_row(
        "SELECT COUNT(*) FROM hoopai_budget_holders WHERE budget_key = ?1",
        [&claim.key],
        |r| r.get(0),
    )?;
    let next_free: Option<i64> = tx.query_row(
        "SELECT MIN(expires_at) FROM hoopai_budget_grants WHERE budget_key = ?1",
        [&claim.key],
        |r| r.get(0),
    )?;
    tx.commit()?;
    Ok(ClaimOutcome::Granted {
        sends,
        others,
        holders: u32::try_from(holders).unwrap_or(u32::MAX),
        next_free_in: Duration::from_millis(
            next_free
                .map_or(0, |t| t.saturating_sub(now_ms))
                .try_into()
                .unwrap_or(0),
        ),
    })
}
