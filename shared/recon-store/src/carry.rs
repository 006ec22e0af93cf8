//! Carry-forward (spec section 7): the pending items a run takes from earlier runs, what becomes of them
//! when the run is recorded, and the resolutions a rerun of an older day inherits from later runs.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use recon_core::{Carried, CarriedRecord, CarryOutcome, Processor};
use serde_json::Value;

use crate::error::q;
use crate::write::NewRun;
use crate::{Store, StoreError};

/// A carried item with the date it was first seen.
#[derive(Debug, Clone)]
pub struct CarriedItem {
    pub carried: Carried,
    pub first_seen: NaiveDate,
}

impl Store {
    /// Pending items of earlier current runs of `processor`, plus those the current run of `date` or of a later
    /// date had taken (a rerun takes them again; a day run for the first time after a later day takes what it
    /// would have taken in date order: what a run takes depends on earlier days only), plus the open `missing_*` items of earlier current runs first seen within
    /// `grace_days + lookback_days` of `date` and not linked by a current run before `date` (one candidate per
    /// item: its latest report). Ordered by id, so the matcher sees them in a stable order.
    pub async fn load_carried(
        &self,
        processor: Processor,
        date: NaiveDate,
        grace_days: u32,
        lookback_days: u32,
    ) -> Result<Vec<CarriedItem>, StoreError> {
        let c = self.client().await?;
        let window = i32::try_from(grace_days.saturating_add(lookback_days)).unwrap_or(i32::MAX);
        let rows = c
            .query(
                "SELECT d.id, d.first_seen_date, d.carry, COALESCE(d.processor_source, d.ledger_source, ''), false
                 FROM discrepancies d JOIN reconciliation_runs r ON r.id = d.run_id
                 WHERE r.processor_name = $1 AND r.status = 'succeeded' AND r.run_date < $2 AND d.carry IS NOT NULL
                   AND (d.lifecycle = 'pending'
                        OR d.resolved_in_run IN (SELECT id FROM reconciliation_runs
                                                 WHERE run_date >= $2 AND processor_name = $1 AND status <> 'superseded'))
                 UNION ALL
                 SELECT * FROM (
                   SELECT DISTINCT ON (d.item_key) d.id, d.first_seen_date, d.carry,
                          COALESCE(d.processor_source, d.ledger_source, ''), true
                   FROM discrepancies d JOIN reconciliation_runs r ON r.id = d.run_id
                   WHERE d.processor_name = $1 AND d.lifecycle = 'open' AND d.carry IS NOT NULL
                     -- first seen on or before its run's date, so before this date: the index range ends
                     -- there (a day's own earlier runs, reruns of it, hold thousands of open rows)
                     AND d.first_seen_date >= $2::date - $3::int AND d.first_seen_date < $2
                     AND d.run_date < $2 AND d.item_key IS NOT NULL
                     AND d.category IN ('missing_in_ledger', 'missing_in_processor')
                     AND r.status = 'succeeded' AND r.run_date < $2
                     AND NOT EXISTS (SELECT 1 FROM items i
                                       JOIN item_matches m ON m.item_id = i.id
                                       JOIN reconciliation_runs mr ON mr.id = m.run_id
                                      WHERE i.item_key = d.item_key AND mr.status = 'succeeded' AND mr.run_date < $2)
                   ORDER BY d.item_key, r.run_date DESC, d.id DESC) open_missing
                 ORDER BY 1",
                &[&processor.as_str(), &date, &window],
            )
            .await
            .map_err(q("loading pending items to carry forward"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.get(0);
            let first_seen: NaiveDate = r.get(1);
            let carry: Value = r.get(2);
            let record: CarriedRecord = serde_json::from_value(carry).map_err(|e| StoreError::Data {
                what: "reading a carried item",
                detail: format!("discrepancy {id} holds a record recon cannot read"),
                source: Some(e),
            })?;
            let age = (date - first_seen).num_days().max(0);
            out.push(CarriedItem {
                carried: Carried {
                    id,
                    age_days: u32::try_from(age).unwrap_or(u32::MAX),
                    source: r.get(3),
                    record,
                    reported: r.get(4),
                },
                first_seen,
            });
        }
        Ok(out)
    }
}

/// A pending item is one item whatever run re-derives it: its identity is the processor, the side and the
/// record's id. When a rerun of an older day finds pending an item that a current run of a *later* day already
/// matched, escalated or carried on, the new copy takes that resolution at once (the earliest such later
/// run's), so later days' figures never depend on whether an earlier day was rerun.
pub(crate) async fn inherit_later_resolutions(
    tx: &deadpool_postgres::Transaction<'_>,
    run: &NewRun<'_>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE discrepancies n
            SET lifecycle = 'resolved', resolution = o.resolution, resolved_by = 'recon', resolved_at = now(),
                resolution_note = o.resolution_note, resolved_in_run = o.resolved_in_run
           FROM (SELECT DISTINCT ON (nd.id) nd.id AS nid, od.resolution, od.resolution_note, od.resolved_in_run
                   FROM discrepancies nd
                   JOIN discrepancies od
                     ON od.id <> nd.id AND od.processor_name = nd.processor_name AND od.carry IS NOT NULL
                    AND od.lifecycle = 'resolved' AND od.resolved_by = 'recon' AND od.resolution <> 'superseded'
                    AND ((nd.processor_record_id IS NOT NULL AND od.processor_record_id = nd.processor_record_id
                          AND od.ledger_id IS NULL)
                      OR (nd.processor_record_id IS NULL AND od.ledger_id = nd.ledger_id
                          AND od.processor_record_id IS NULL))
                   JOIN reconciliation_runs lr
                     ON lr.id = od.resolved_in_run AND lr.status <> 'superseded' AND lr.run_date > nd.run_date
                  WHERE nd.run_id = $1 AND nd.lifecycle = 'pending'
                  ORDER BY nd.id, lr.run_date) o
          WHERE n.id = o.nid",
        &[&run.run_id],
    )
    .await
    .map_err(q("carrying later days' resolutions over to a rerun's pending items"))?;
    Ok(())
}

pub(crate) async fn resolve_carried(
    tx: &deadpool_postgres::Transaction<'_>,
    run: &NewRun<'_>,
    carried: &[(i64, CarryOutcome)],
) -> Result<(), StoreError> {
    if carried.is_empty() {
        return Ok(());
    }
    let mut by: BTreeMap<&str, (Vec<i64>, String)> = BTreeMap::new();
    let mut later = Vec::new();
    for (id, o) in carried {
        let (res, note) = match o {
            // items reported earlier: the discrepancy stays as its run reported it; the item is resolved
            // matched_later while this run is current
            CarryOutcome::MatchedLater => {
                later.push(*id);
                continue;
            }
            CarryOutcome::StillOpen => continue,
            CarryOutcome::Matched => ("timing_difference", format!("matched in the run of {}", run.date)),
            CarryOutcome::Escalated => (
                "escalated",
                format!(
                    "grace period over: reported as missing in the run of {}",
                    run.date
                ),
            ),
            CarryOutcome::StillPending => (
                "carried_forward",
                format!("still pending in the run of {}", run.date),
            ),
            CarryOutcome::Duplicate => (
                "duplicate",
                format!("the record arrived again in the run of {}", run.date),
            ),
        };
        by.entry(res).or_insert_with(|| (Vec::new(), note)).0.push(*id);
    }
    for (res, (ids, note)) in by {
        tx.execute(
            "UPDATE discrepancies SET lifecycle = 'resolved', resolution = $2, resolved_by = 'recon',
                    resolved_at = now(), resolution_note = $3, resolved_in_run = $4
             WHERE id = ANY($1)",
            &[&ids, &res, &note, &run.run_id],
        )
        .await
        .map_err(q("resolving carried items"))?;
    }
    crate::items::matched_later(tx, run.run_id, &later).await?;
    Ok(())
}
