//! Items across runs and days (issue 15), the system's side: when a run becomes current, the items it
//! reports are opened or found again, the items its predecessor reported and it no longer finds are closed
//! `not_found_on_rerun`, the open missing items it linked are resolved `matched_later`, items are escalated by
//! age, and the run's day-over-day figures are computed. All in the run's transaction.
//!
//! An item's system state is derived from the current runs alone (which run reports it now, which later run
//! linked it), never from the order runs were recorded in: a rerun of any day gives the items a single pass
//! in date order gives. Operator actions carry over (an operator's resolution stays while the item is
//! reported; a system resolution is undone when the item is reported again).

use chrono::{DateTime, NaiveDate, Utc};
use recon_core::{ItemRules, OpenItems, Processor};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use crate::error::q;
use crate::StoreError;

type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// The actor of recon's own changes in the audit trail.
pub const SYSTEM_ACTOR: &str = "recon";

/// Opens the items a run reports for the first time (an `opened` event each), then brings every item the
/// run, or the run it supersedes, touches to its derived state.
pub(crate) async fn sync(tx: &Tx<'_>, run_id: Uuid, old: Option<Uuid>) -> Result<(), StoreError> {
    // how many items the run opened, how many of its discrepancies name an item, and whether it linked an
    // open item (read in the statement's snapshot: the run's discrepancies and matches are written already)
    let opened = tx
        .query_one(
            "WITH ins AS (
            INSERT INTO items (item_key, processor_name, family, category, severity, processor_record_id, ledger_id,
                               reference, amount_at_stake, currency, details, run_date, first_seen_date,
                               first_run_id, first_run_date)
            SELECT d.item_key, d.processor_name, split_part(d.item_key, '|', 2), d.category, d.severity,
                   d.processor_record_id, d.ledger_id, d.reference, d.amount_at_stake, d.currency, d.details,
                   d.run_date, d.first_seen_date, d.run_id, d.run_date
              FROM discrepancies d
             WHERE d.run_id = $1 AND d.item_key IS NOT NULL
               -- a rerun's items exist already: left out by one anti-join rather than one refused insert
               -- each (45 -> 13 ms for 16k items)
               AND NOT EXISTS (SELECT 1 FROM items x WHERE x.item_key = d.item_key)
            ON CONFLICT (item_key) DO NOTHING
            RETURNING id),
         ev AS (
            INSERT INTO item_events (item_id, actor, action, from_status, to_status, run_id)
            SELECT id, $2, 'opened', NULL, 'open', $1 FROM ins
            RETURNING 1)
         SELECT (SELECT count(*) FROM ev),
                (SELECT count(*) FROM discrepancies WHERE run_id = $1 AND item_key IS NOT NULL),
                EXISTS (SELECT 1 FROM item_matches WHERE run_id = $1)",
            &[&run_id, &SYSTEM_ACTOR],
        )
        .await
        .map_err(q("opening the run's new items"))?;
    let (new, reported, linked): (i64, i64, bool) = (opened.get(0), opened.get(1), opened.get(2));
    // a day's first run that opened an item for each discrepancy it reports and linked none touches no other
    // item: every item the statement below would consider is one this run just opened, which it leaves out
    if old.is_none() && new == reported && !linked {
        return Ok(());
    }
    let runs: Vec<Uuid> = std::iter::once(run_id).chain(old).collect();
    // fate: 'gone' (no current run reports it), 'matched' (a current run of a later date than the one reporting
    // it linked its record), 'found' (reported); the new state follows from the fate and the state before
    tx.execute(
        "WITH aff AS (
            SELECT i.id, i.item_key, i.status, i.resolution, i.resolved_in_run
              FROM items i
             WHERE i.item_key IN (SELECT item_key FROM discrepancies WHERE run_id = ANY($1) AND item_key IS NOT NULL
                                  UNION
                                  SELECT i2.item_key FROM item_matches m JOIN items i2 ON i2.id = m.item_id
                                   WHERE m.run_id = ANY($1))
               -- an item this run just opened is as the run reports it: no other run reports it (one that
               -- did would have opened it) and no run linked it (a match names an existing item)
               AND i.first_run_id <> $2
             FOR UPDATE),
         rep AS (
            SELECT DISTINCT ON (d.item_key) d.item_key, d.id AS did, d.run_id AS rrun, d.run_date AS rdate,
                   d.category, d.severity, d.processor_record_id, d.ledger_id, d.reference, d.amount_at_stake,
                   d.currency, d.details, d.first_seen_date
              FROM discrepancies d JOIN reconciliation_runs r ON r.id = d.run_id AND r.status = 'succeeded'
             WHERE d.item_key IN (SELECT item_key FROM aff)
             ORDER BY d.item_key, d.run_date DESC, d.id DESC),
         mat AS (
            SELECT DISTINCT ON (m.item_id) m.item_id, m.run_id AS mrun, r.run_date AS mdate
              FROM item_matches m JOIN reconciliation_runs r ON r.id = m.run_id AND r.status = 'succeeded'
             WHERE m.item_id IN (SELECT id FROM aff)
             ORDER BY m.item_id, r.run_date, r.id),
         tgt AS (
            SELECT a.id, a.status AS old_status, a.resolution AS old_resolution, a.resolved_in_run AS old_rin,
                   rep.*, mat.mrun, mat.mdate,
                   CASE WHEN rep.did IS NULL THEN 'gone'
                        WHEN mat.mrun IS NOT NULL AND mat.mdate > rep.rdate THEN 'matched'
                        ELSE 'found' END AS fate
              FROM aff a LEFT JOIN rep ON rep.item_key = a.item_key LEFT JOIN mat ON mat.item_id = a.id),
         nxt AS (
            SELECT t.*,
                   CASE WHEN t.fate = 'gone' THEN 'resolved'
                        WHEN t.fate = 'matched' THEN 'resolved'
                        WHEN t.old_resolution IN ('not_found_on_rerun', 'matched_later') THEN 'open'
                        ELSE t.old_status END AS new_status,
                   CASE WHEN t.fate = 'gone' AND t.old_status = 'resolved' THEN t.old_resolution
                        WHEN t.fate = 'gone' THEN 'not_found_on_rerun'
                        WHEN t.fate = 'matched' THEN 'matched_later'
                        WHEN t.old_resolution IN ('not_found_on_rerun', 'matched_later') THEN NULL
                        ELSE t.old_resolution END AS new_resolution,
                   CASE WHEN t.fate = 'matched' THEN t.mrun ELSE $2 END AS by_run
              FROM tgt t),
         chg AS (
            SELECT n.*, (n.new_status IS DISTINCT FROM n.old_status
                         OR n.new_resolution IS DISTINCT FROM n.old_resolution
                         OR (n.fate = 'matched' AND n.old_rin IS DISTINCT FROM n.mrun)) AS changed
              FROM nxt n),
         upd AS (
            UPDATE items i SET
                   status = c.new_status,
                   resolution = c.new_resolution,
                   resolution_note = CASE WHEN NOT c.changed THEN i.resolution_note
                                          WHEN c.new_status <> 'resolved' THEN NULL
                                          WHEN c.fate = 'matched' THEN 'linked by the run of ' || c.mdate
                                          ELSE 'not found by the rerun ' || $2 END,
                   resolved_by = CASE WHEN NOT c.changed THEN i.resolved_by
                                      WHEN c.new_status = 'resolved' THEN $3 END,
                   resolved_at = CASE WHEN NOT c.changed THEN i.resolved_at
                                      WHEN c.new_status = 'resolved' THEN now() END,
                   resolved_in_run = CASE WHEN NOT c.changed THEN i.resolved_in_run
                                          WHEN c.new_status = 'resolved' THEN c.by_run END,
                   category = COALESCE(c.category, i.category),
                   severity = CASE WHEN c.did IS NULL THEN i.severity ELSE c.severity END,
                   processor_record_id = CASE WHEN c.did IS NULL THEN i.processor_record_id ELSE c.processor_record_id END,
                   ledger_id = CASE WHEN c.did IS NULL THEN i.ledger_id ELSE c.ledger_id END,
                   reference = CASE WHEN c.did IS NULL THEN i.reference ELSE c.reference END,
                   amount_at_stake = COALESCE(c.amount_at_stake, i.amount_at_stake),
                   currency = CASE WHEN c.did IS NULL THEN i.currency ELSE c.currency END,
                   details = COALESCE(c.details, i.details),
                   run_date = COALESCE(c.rdate, i.run_date),
                   first_seen_date = COALESCE(c.first_seen_date, i.first_seen_date),
                   version = i.version + CASE WHEN c.changed THEN 1 ELSE 0 END,
                   updated_at = now()
              FROM chg c
             -- an item already as the run reports it is not written again (a day's first run: every item it
             -- just opened; a rerun: every item it reports as before)
             WHERE i.id = c.id
               AND (c.changed
                    OR (c.did IS NOT NULL
                        AND (c.category, c.severity, c.processor_record_id, c.ledger_id, c.reference,
                             c.amount_at_stake, c.currency, c.details, c.rdate, c.first_seen_date)
                            IS DISTINCT FROM
                            (i.category, i.severity, i.processor_record_id, i.ledger_id, i.reference,
                             i.amount_at_stake, i.currency, i.details, i.run_date, i.first_seen_date)))
            RETURNING i.id, c.old_status, i.status, i.resolution, i.resolution_note, c.fate, c.changed, c.by_run)
         INSERT INTO item_events (item_id, actor, action, from_status, to_status, reason, note, run_id)
         SELECT u.id, $3,
                CASE u.fate WHEN 'gone' THEN 'not_found_on_rerun' WHEN 'matched' THEN 'matched_later'
                            ELSE 'found_again' END,
                u.old_status, u.status, u.resolution,
                CASE u.fate WHEN 'found' THEN 'reported again by the run ' || $2 ELSE u.resolution_note END,
                u.by_run
           FROM upd u WHERE u.changed",
        &[&runs, &run_id, &SYSTEM_ACTOR],
    )
    .await
    .map_err(q("bringing the run's items up to date"))?;
    Ok(())
}

/// Records that a run linked the records of open missing items (their reporting discrepancies' ids).
pub(crate) async fn matched_later(
    tx: &Tx<'_>,
    run_id: Uuid,
    discrepancies: &[i64],
) -> Result<(), StoreError> {
    if discrepancies.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO item_matches (item_id, run_id)
         SELECT DISTINCT i.id, $2::uuid FROM discrepancies d JOIN items i ON i.item_key = d.item_key
          WHERE d.id = ANY($1)
         ON CONFLICT DO NOTHING",
        &[&discrepancies, &run_id],
    )
    .await
    .map_err(q("recording the open items this run linked"))?;
    Ok(())
}

/// Raises the escalation of the processor's open items by their age as of `date` (never lowers it), with an
/// `escalated` event each. Returns how many were raised.
pub(crate) async fn escalate(
    tx: &Tx<'_>,
    processor: Processor,
    date: NaiveDate,
    run_id: Uuid,
    rules: &ItemRules,
) -> Result<u64, StoreError> {
    let (high, critical) = (
        i32::try_from(rules.high_after_days).unwrap_or(i32::MAX),
        i32::try_from(rules.critical_after_days).unwrap_or(i32::MAX),
    );
    let n = tx
        .execute(
            "WITH esc AS (
                SELECT id, status, ($2::date - first_seen_date) AS age,
                       CASE WHEN $2::date - first_seen_date >= $4 THEN 'CRITICAL'
                            WHEN $2::date - first_seen_date >= $3 THEN 'HIGH' END AS lvl,
                       -- the severity shown before: the discrepancy's, raised by an earlier escalation
                       GREATEST(array_position(ARRAY['LOW','MEDIUM','HIGH','CRITICAL'], severity),
                                array_position(ARRAY['LOW','MEDIUM','HIGH','CRITICAL'], escalation), 0) AS shown
                  FROM items WHERE processor_name = $1 AND status <> 'resolved'),
             up AS (
                UPDATE items i SET escalation = e.lvl, updated_at = now()
                  FROM esc e
                 WHERE i.id = e.id AND e.lvl IS NOT NULL
                   AND (i.escalation IS NULL OR (i.escalation <> 'CRITICAL' AND e.lvl = 'CRITICAL'))
                RETURNING i.id, i.status, e.lvl, e.age, e.shown)
             -- an escalation is an event (and counts, and emails) only when it raises what the item shows
             INSERT INTO item_events (item_id, actor, action, from_status, to_status, note, run_id)
             SELECT id, $6, 'escalated', status, status,
                    'open ' || age || ' days on ' || $2::date || ': at least ' || lvl, $5
               FROM up WHERE array_position(ARRAY['LOW','MEDIUM','HIGH','CRITICAL'], lvl) > shown",
            &[
                &processor.as_str(),
                &date,
                &high,
                &critical,
                &run_id,
                &SYSTEM_ACTOR,
            ],
        )
        .await
        .map_err(q("escalating items by age"))?;
    Ok(n)
}

/// An item as lists show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ItemRow {
    pub id: i64,
    pub processor: String,
    pub family: String,
    pub category: String,
    /// The discrepancy's severity, raised by the item's escalation.
    pub severity: Option<String>,
    pub status: String,
    pub assignee: Option<String>,
    pub processor_record_id: Option<String>,
    pub ledger_id: Option<String>,
    pub reference: Option<String>,
    pub amount_at_stake: Decimal,
    pub currency: Option<String>,
    pub details: String,
    pub first_seen_date: NaiveDate,
    pub run_date: NaiveDate,
    pub run_id: Uuid,
    /// Days since first seen, as of the date the list was made for.
    pub age_days: i64,
    pub resolution: Option<String>,
    pub resolution_note: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub version: i32,
}

pub(crate) const ITEM_COLUMNS: &str = "i.id, i.processor_name, i.family, i.category,
    CASE WHEN i.escalation = 'CRITICAL' OR i.severity = 'CRITICAL' THEN 'CRITICAL'
         WHEN i.escalation = 'HIGH' OR i.severity = 'HIGH' THEN 'HIGH' ELSE i.severity END,
    i.status, i.assignee, i.processor_record_id, i.ledger_id, i.reference, i.amount_at_stake, i.currency,
    i.details, i.first_seen_date, i.run_date,
    (SELECT d.run_id FROM discrepancies d JOIN reconciliation_runs r ON r.id = d.run_id
      WHERE d.item_key = i.item_key AND d.run_date = i.run_date
      ORDER BY r.status = 'succeeded' DESC, d.id DESC LIMIT 1),
    i.resolution, i.resolution_note, i.resolved_by,
    i.resolved_at, i.version";

pub(crate) fn item_row(r: &tokio_postgres::Row, as_of: NaiveDate) -> ItemRow {
    let first_seen: NaiveDate = r.get(13);
    ItemRow {
        id: r.get(0),
        processor: r.get(1),
        family: r.get(2),
        category: r.get(3),
        severity: r.get(4),
        status: r.get(5),
        assignee: r.get(6),
        processor_record_id: r.get(7),
        ledger_id: r.get(8),
        reference: r.get(9),
        amount_at_stake: r.get(10),
        currency: r.get(11),
        details: r.get(12),
        first_seen_date: first_seen,
        run_date: r.get(14),
        // the run reporting it: found for every item (its discrepancies are never deleted)
        run_id: r.get::<_, Option<Uuid>>(15).unwrap_or_default(),
        age_days: (as_of - first_seen).num_days(),
        resolution: r.get(16),
        resolution_note: r.get(17),
        resolved_by: r.get(18),
        resolved_at: r.get(19),
        version: r.get(20),
    }
}

/// What a run's email and report say of its processor's items: new today, still open (oldest first),
/// resolved since the last run (each list at most [`DIGEST_LISTED`]), open amount by age bucket.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ItemDigest {
    pub new: Vec<ItemRow>,
    pub still_open: Vec<ItemRow>,
    pub resolved: Vec<ItemRow>,
    /// `(bucket, currency, count, amount)` of open items, in bucket order.
    pub aging: Vec<(String, String, i64, Decimal)>,
}

/// How many items each list of a digest shows (the figures count them all).
pub const DIGEST_LISTED: i64 = 10;

/// The day-over-day figures of a run that just became current, and its digest.
pub(crate) async fn day_over_day<C: tokio_postgres::GenericClient + Sync>(
    tx: &C,
    processor: Processor,
    date: NaiveDate,
    run_id: Uuid,
) -> Result<(Figures, ItemDigest), StoreError> {
    let p = processor.as_str();
    let since: Option<DateTime<Utc>> = tx
        .query_one(
            // when the previous run was recorded: its transaction's now(), which is also the resolved_at of
            // what it resolved (finished_at is the run's own clock, taken before its transaction began)
            "SELECT max(created_at) FROM reconciliation_runs
              WHERE processor_name = $1 AND id <> $2 AND status IN ('succeeded', 'superseded')",
            &[&p, &run_id],
        )
        .await
        .map_err(q("finding the processor's previous run"))?
        .get(0);
    let since = since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let open = tx
        .query(
            "SELECT i.currency, count(*), sum(i.amount_at_stake),
                    -- new: first reported by a run of this date, and reported by the date's current run (an
                    -- open item's reporting run is the current run of its run_date)
                    count(*) FILTER (WHERE i.run_date = $2 AND i.first_run_date = $2),
                    max($2::date - i.first_seen_date)
               FROM items i WHERE i.processor_name = $1 AND i.status <> 'resolved'
              GROUP BY i.currency ORDER BY i.currency",
            &[&p, &date],
        )
        .await
        .map_err(q("counting open items"))?;
    let mut f = Figures::default();
    for r in &open {
        let (cur, n, amount, new, oldest): (Option<String>, i64, Option<Decimal>, i64, Option<i32>) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let n = u64::try_from(n).unwrap_or(0);
        f.open.count += n;
        f.new += u64::try_from(new).unwrap_or(0);
        if let (Some(c), Some(a)) = (cur, amount) {
            if !a.is_zero() {
                let a = exact(a, &c).to_string();
                f.open.amount.insert(c, a);
            }
        }
        f.oldest = f.oldest.max(oldest.map(|o| i64::from(o).max(0)));
    }
    f.still_open = f.open.count.saturating_sub(f.new);
    let resolved: i64 = tx
        .query_one(
            "SELECT count(*) FROM items
              WHERE processor_name = $1 AND status = 'resolved' AND (resolved_at > $2 OR resolved_in_run = $3)",
            &[&p, &since, &run_id],
        )
        .await
        .map_err(q("counting items resolved since the last run"))?
        .get(0);
    f.resolved_since = u64::try_from(resolved).unwrap_or(0);
    async fn list<C: tokio_postgres::GenericClient + Sync>(
        tx: &C,
        sql: String,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        date: NaiveDate,
    ) -> Result<Vec<ItemRow>, StoreError> {
        tx.query(&sql, params)
            .await
            .map(|rows| rows.iter().map(|r| item_row(r, date)).collect::<Vec<_>>())
            .map_err(q("listing the run's items"))
    }
    let new = list(
        tx,
        format!(
            "SELECT {ITEM_COLUMNS} FROM items i WHERE i.processor_name = $1 AND i.status <> 'resolved'
               AND i.run_date = $2 AND i.first_run_date = $2
             ORDER BY i.amount_at_stake DESC, i.id LIMIT $3"
        ),
        &[&p, &date, &DIGEST_LISTED],
        date,
    )
    .await?;
    let still_open = list(
        tx,
        format!(
            "SELECT {ITEM_COLUMNS} FROM items i WHERE i.processor_name = $1 AND i.status <> 'resolved'
               AND NOT (i.run_date = $2 AND i.first_run_date = $2)
             ORDER BY i.first_seen_date, i.id LIMIT $3"
        ),
        &[&p, &date, &DIGEST_LISTED],
        date,
    )
    .await?;
    let resolved = list(
        tx,
        format!(
            "SELECT {ITEM_COLUMNS} FROM items i WHERE i.processor_name = $1 AND i.status = 'resolved'
               AND (i.resolved_at > $3 OR i.resolved_in_run = $2)
             ORDER BY i.resolved_at DESC, i.id LIMIT $4"
        ),
        &[&p, &run_id, &since, &DIGEST_LISTED],
        date,
    )
    .await?;
    // open amount by age bucket and currency (buckets: recon_core::item::AGE_BUCKETS)
    let mut aging: Vec<(String, String, i64, Decimal)> = Vec::new();
    let by_age = tx
        .query(
            "SELECT GREATEST($2::date - first_seen_date, 0), COALESCE(currency, ''), count(*), sum(amount_at_stake)
               FROM items WHERE processor_name = $1 AND status <> 'resolved'
              GROUP BY 1, 2 ORDER BY 1, 2",
            &[&p, &date],
        )
        .await
        .map_err(q("aging open items"))?;
    for r in &by_age {
        let (age, cur, n, amount): (i32, String, i64, Decimal) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let bucket = recon_core::age_bucket(i64::from(age));
        match aging.iter_mut().find(|a| a.0 == bucket && a.1 == cur) {
            Some(a) => {
                a.2 += n;
                a.3 += amount;
            }
            None => aging.push((bucket.to_string(), cur, n, amount)),
        }
    }
    for a in &mut aging {
        a.3 = exact(a.3, &a.1);
    }
    aging.sort_by_key(|a| {
        (
            recon_core::AGE_BUCKETS.iter().position(|b| b.0 == a.0),
            a.1.clone(),
        )
    });
    Ok((
        f,
        ItemDigest {
            new,
            still_open,
            resolved,
            aging,
        },
    ))
}

/// The day-over-day figures of a run (summary keys of issue 15).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    pub new: u64,
    pub still_open: u64,
    pub resolved_since: u64,
    pub open: OpenItems,
    pub oldest: Option<i64>,
}

/// An amount with its currency's exponent of decimals (`1200` JPY, `10.50` USD), as summaries show money.
pub(crate) fn exact(a: Decimal, currency: &str) -> Decimal {
    let mut a = a;
    if let Ok(c) = recon_core::Currency::parse(currency) {
        a.rescale(u32::from(c.exponent()));
    }
    a
}

impl crate::Store {
    /// The item digest of a recorded run (as its email shows it): new, still open, resolved since the
    /// processor's previous run, aging; as of the run's date.
    pub async fn item_digest(
        &self,
        processor: Processor,
        date: NaiveDate,
        run_id: Uuid,
    ) -> Result<ItemDigest, StoreError> {
        let c = self.client().await?;
        let client: &tokio_postgres::Client = &c;
        Ok(day_over_day(client, processor, date, run_id).await?.1)
    }
}
