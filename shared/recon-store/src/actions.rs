//! Items, the operators' side (issue 15): the queries `recon items` (and later the review web app) list and
//! show, and the actions on items. Every change of an item is an event written in the same transaction as
//! the new state; a change made on a stale version is a conflict, never a silent overwrite; a batch (bulk
//! selection, CSV import) is one transaction, all or nothing, and an action that would change nothing is
//! reported as such and writes nothing (re-importing the same file changes nothing).

use chrono::{DateTime, NaiveDate, Utc};
use recon_core::{Action, ItemStatus, Processor};
use serde::Serialize;
use uuid::Uuid;

use crate::error::q;
use crate::items::{item_row, ItemRow, ITEM_COLUMNS};
use crate::{Store, StoreError};

/// Which items a list (or a bulk action) takes. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    pub status: Option<ItemStatus>,
    /// Only items not resolved (open or acknowledged); ignored when `status` is set.
    pub open_only: bool,
    pub processor: Option<Processor>,
    pub category: Option<String>,
    /// At least this many days since first seen (as of `as_of`).
    pub min_age: Option<u32>,
    pub assignee: Option<String>,
    /// Only these items.
    pub ids: Vec<i64>,
}

/// One event of an item's history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ItemEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub assignee: Option<String>,
    pub run_id: Option<Uuid>,
}

/// One action of a batch: the item, the version the operator saw (`None`: whatever it is now), the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemCommand {
    pub item_id: i64,
    pub expected_version: Option<i32>,
    pub action: Action,
}

/// What an action did, or would do (a dry run).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Acted {
    pub item_id: i64,
    pub action: String,
    pub from_status: String,
    pub to_status: String,
    /// `false`: the item is already as the action would leave it; nothing was written.
    pub changed: bool,
    /// The item's version after the action.
    pub version: i32,
}

/// Why an action was refused. A batch with any refusal writes nothing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub enum Refusal {
    /// No such item.
    NotFound { item_id: i64 },
    /// Someone changed the item since the operator saw it.
    Conflict {
        item_id: i64,
        expected: i32,
        actual: i32,
        last_actor: String,
        last_action: String,
    },
    /// The action does not apply to the item's state.
    Refused { item_id: i64, reason: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotFound { item_id } => write!(f, "item {item_id}: no such item (see `recon items`)"),
            Refusal::Conflict {
                item_id,
                expected,
                actual,
                last_actor,
                last_action,
            } => write!(
                f,
                "item {item_id}: conflict: you saw version {expected}, it is now version {actual} \
                 ({last_actor} did {last_action}); look at it again (`recon items show {item_id}`) and retry"
            ),
            Refusal::Refused { item_id, reason } => write!(f, "item {item_id}: {reason}"),
        }
    }
}

/// The result of a batch: every action done (or, for a dry run, what would be done), or every refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    Done(Vec<Acted>),
    Refused(Vec<Refusal>),
}

fn filter_sql(
    f: &ItemFilter,
    params: &mut Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>,
) -> String {
    let mut w = vec!["TRUE".to_string()];
    let mut add = |cond: &str, v: Box<dyn tokio_postgres::types::ToSql + Sync + Send>| {
        params.push(v);
        w.push(cond.replace('?', &format!("${}", params.len())));
    };
    if let Some(s) = f.status {
        add("i.status = ?", Box::new(s.as_str().to_string()));
    }
    if let Some(p) = f.processor {
        add("i.processor_name = ?", Box::new(p.as_str().to_string()));
    }
    if let Some(c) = &f.category {
        add("(i.category = ? OR i.family = ?)", Box::new(c.clone()));
    }
    if let Some(a) = &f.assignee {
        add("i.assignee = ?", Box::new(a.clone()));
    }
    if !f.ids.is_empty() {
        add("i.id = ANY(?)", Box::new(f.ids.clone()));
    }
    if f.status.is_none() && f.open_only {
        w.push("i.status <> 'resolved'".to_string());
    }
    w.join(" AND ")
}

impl Store {
    /// Items matching `filter`, as of `as_of` (ages), open ones oldest first then the rest newest first;
    /// at most `limit`.
    pub async fn list_items(
        &self,
        filter: &ItemFilter,
        as_of: NaiveDate,
        limit: i64,
    ) -> Result<Vec<ItemRow>, StoreError> {
        let c = self.client().await?;
        let mut params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = Vec::new();
        let mut cond = filter_sql(filter, &mut params);
        params.push(Box::new(as_of));
        let as_of_n = params.len();
        if let Some(m) = filter.min_age {
            params.push(Box::new(i32::try_from(m).unwrap_or(i32::MAX)));
            cond.push_str(&format!(
                " AND ${as_of_n}::date - i.first_seen_date >= ${}",
                params.len()
            ));
        }
        params.push(Box::new(limit));
        // one order an index gives when the selection is of open or of resolved items only (a year of
        // history is millions of resolved items); both together, open ones first
        let order = match filter.status {
            Some(ItemStatus::Resolved) => "i.resolved_at DESC, i.id DESC",
            Some(_) => "i.first_seen_date, i.id",
            None if filter.open_only => "i.first_seen_date, i.id",
            None => {
                "(i.status = 'resolved'), CASE WHEN i.status = 'resolved' THEN NULL ELSE i.first_seen_date END,
                 i.resolved_at DESC NULLS LAST, i.id"
            }
        };
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM items i WHERE {cond} AND ${as_of_n}::date IS NOT NULL
             ORDER BY {order}
             LIMIT ${}",
            params.len()
        );
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let rows = c.query(&sql, &refs).await.map_err(q("listing items"))?;
        Ok(rows.iter().map(|r| item_row(r, as_of)).collect())
    }

    /// One item and its whole history, oldest event first.
    pub async fn show_item(
        &self,
        id: i64,
        as_of: NaiveDate,
    ) -> Result<Option<(ItemRow, Vec<ItemEvent>)>, StoreError> {
        let c = self.client().await?;
        let Some(row) = c
            .query_opt(
                &format!("SELECT {ITEM_COLUMNS} FROM items i WHERE i.id = $1"),
                &[&id],
            )
            .await
            .map_err(q("reading an item"))?
        else {
            return Ok(None);
        };
        let events = c
            .query(
                "SELECT id, at, actor, action, from_status, to_status, reason, note, assignee, run_id
                   FROM item_events WHERE item_id = $1 ORDER BY id",
                &[&id],
            )
            .await
            .map_err(q("reading an item's history"))?
            .iter()
            .map(|r| ItemEvent {
                id: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                from_status: r.get(4),
                to_status: r.get(5),
                reason: r.get(6),
                note: r.get(7),
                assignee: r.get(8),
                run_id: r.get(9),
            })
            .collect();
        Ok(Some((item_row(&row, as_of), events)))
    }

    /// Applies a batch of actions by `actor` in one transaction: all of them, or none when any is refused
    /// (every refusal is returned). `dry_run`: checks and reports, writes nothing.
    pub async fn act(
        &self,
        actor: &str,
        commands: &[ItemCommand],
        dry_run: bool,
    ) -> Result<BatchOutcome, StoreError> {
        let actor = actor.trim();
        if actor.is_empty() {
            return Err(StoreError::Config(
                "an action needs an actor: pass --actor or set RECON_ACTOR".into(),
            ));
        }
        let mut obj = self.client().await?;
        let tx = obj
            .transaction()
            .await
            .map_err(q("starting the actions' transaction"))?;
        let mut ids: Vec<i64> = commands.iter().map(|c| c.item_id).collect();
        ids.sort_unstable();
        ids.dedup();
        // locked in id order: two batches over the same items never deadlock
        let rows = tx
            .query(
                "SELECT id, status, assignee, resolution, version FROM items WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                &[&ids],
            )
            .await
            .map_err(q("locking the items acted on"))?;
        let mut state: std::collections::HashMap<i64, Current> = rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0),
                    Current {
                        status: r.get(1),
                        assignee: r.get(2),
                        resolution: r.get(3),
                        version: r.get(4),
                        seen: r.get(4),
                    },
                )
            })
            .collect();
        let mut done = Vec::new();
        let mut refused = Vec::new();
        for cmd in commands {
            let Some(cur) = state.get_mut(&cmd.item_id) else {
                refused.push(Refusal::NotFound { item_id: cmd.item_id });
                continue;
            };
            let next = transition(cur, &cmd.action);
            if let Ok(None) = next {
                // already as the action would leave it: nothing to write, whatever version was seen
                done.push(Acted {
                    item_id: cmd.item_id,
                    action: cmd.action.name().to_string(),
                    from_status: cur.status.clone(),
                    to_status: cur.status.clone(),
                    changed: false,
                    version: cur.version,
                });
                continue;
            }
            if let Some(expected) = cmd.expected_version {
                // the version the operator saw must be the one before this batch touched it: a stale view is a
                // conflict, told before whether the action would apply to what the item has become
                if expected != cur.seen {
                    let last = tx
                        .query_opt(
                            "SELECT actor, action FROM item_events WHERE item_id = $1 ORDER BY id DESC LIMIT 1",
                            &[&cmd.item_id],
                        )
                        .await
                        .map_err(q("reading an item's last event"))?;
                    refused.push(Refusal::Conflict {
                        item_id: cmd.item_id,
                        expected,
                        actual: cur.seen,
                        last_actor: last.as_ref().map(|r| r.get(0)).unwrap_or_default(),
                        last_action: last.as_ref().map(|r| r.get(1)).unwrap_or_default(),
                    });
                    continue;
                }
            }
            let next = match next {
                Ok(Some(n)) => n,
                Ok(None) => continue,
                Err(reason) => {
                    refused.push(Refusal::Refused {
                        item_id: cmd.item_id,
                        reason,
                    });
                    continue;
                }
            };
            let (reason, note, assignee) = match &cmd.action {
                Action::Resolve { reason, note } => (Some(reason.as_str()), note.as_deref(), None),
                Action::Comment { note } => (None, Some(note.as_str()), None),
                Action::Reopen { note } => (None, note.as_deref(), None),
                Action::Assign { to } => (None, None, Some(to.as_str())),
                Action::Acknowledge => (None, None, None),
            };
            let from = cur.status.clone();
            if !dry_run {
                let resolved = next.status == "resolved";
                tx.execute(
                    "UPDATE items SET status = $2, assignee = $3, resolution = $4,
                            resolution_note = CASE WHEN $5 THEN $6 WHEN $4::text IS NULL THEN NULL ELSE resolution_note END,
                            resolved_by = CASE WHEN $5 THEN $7 WHEN $4::text IS NULL THEN NULL ELSE resolved_by END,
                            resolved_at = CASE WHEN $5 THEN now() WHEN $4::text IS NULL THEN NULL ELSE resolved_at END,
                            resolved_in_run = CASE WHEN $4::text IS NULL THEN NULL ELSE resolved_in_run END,
                            version = version + 1, updated_at = now()
                      WHERE id = $1",
                    &[
                        &cmd.item_id,
                        &next.status,
                        &next.assignee,
                        &next.resolution,
                        &(resolved && matches!(cmd.action, Action::Resolve { .. })),
                        &note,
                        &actor,
                    ],
                )
                .await
                .map_err(q("changing an item"))?;
                tx.execute(
                    "INSERT INTO item_events (item_id, actor, action, from_status, to_status, reason, note, assignee)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &cmd.item_id,
                        &actor,
                        &cmd.action.name(),
                        &from,
                        &next.status,
                        &reason,
                        &note,
                        &assignee,
                    ],
                )
                .await
                .map_err(q("recording an item's event"))?;
            }
            cur.status = next.status.clone();
            cur.assignee = next.assignee.clone();
            cur.resolution = next.resolution.clone();
            cur.version += 1;
            done.push(Acted {
                item_id: cmd.item_id,
                action: cmd.action.name().to_string(),
                from_status: from,
                to_status: next.status,
                changed: true,
                version: cur.version,
            });
        }
        if !refused.is_empty() {
            return Ok(BatchOutcome::Refused(refused));
        }
        if dry_run {
            tx.rollback().await.map_err(q("ending a dry run"))?;
        } else {
            tx.commit().await.map_err(q("committing the actions"))?;
        }
        Ok(BatchOutcome::Done(done))
    }

    /// Whether an identical comment is already in an item's history (a re-imported comment changes nothing).
    pub async fn has_comment(&self, item_id: i64, note: &str) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM item_events WHERE item_id = $1 AND action = 'comment' AND note = $2)",
                &[&item_id, &note],
            )
            .await
            .map_err(q("reading an item's comments"))?;
        Ok(row.get(0))
    }
}

/// An item's state inside a batch.
struct Current {
    status: String,
    assignee: Option<String>,
    resolution: Option<String>,
    version: i32,
    /// The version before the batch.
    seen: i32,
}

struct Next {
    status: String,
    assignee: Option<String>,
    resolution: Option<String>,
}

/// The state an action leaves an item in: `Ok(None)` when it is already so (nothing to do), `Err` when the
/// action does not apply.
fn transition(cur: &Current, action: &Action) -> Result<Option<Next>, String> {
    let keep = |status: &str| Next {
        status: status.to_string(),
        assignee: cur.assignee.clone(),
        resolution: cur.resolution.clone(),
    };
    let resolved = cur.status == "resolved";
    match action {
        Action::Acknowledge if resolved => Err(format!(
            "is resolved ({}): reopen it first",
            cur.resolution.as_deref().unwrap_or("?")
        )),
        Action::Acknowledge if cur.status == "acknowledged" => Ok(None),
        Action::Acknowledge => Ok(Some(keep("acknowledged"))),
        Action::Assign { .. } if resolved => Err("is resolved: reopen it first to assign it".into()),
        Action::Assign { to } if cur.assignee.as_deref() == Some(to.as_str()) => Ok(None),
        Action::Assign { to } => Ok(Some(Next {
            assignee: Some(to.clone()),
            ..keep(&cur.status)
        })),
        Action::Comment { .. } => Ok(Some(keep(&cur.status))),
        Action::Resolve { reason, .. } if resolved && cur.resolution.as_deref() == Some(reason.as_str()) => {
            Ok(None)
        }
        Action::Resolve { .. } if resolved => Err(format!(
            "is resolved already ({}): reopen it first to resolve it otherwise",
            cur.resolution.as_deref().unwrap_or("?")
        )),
        Action::Resolve { reason, .. } => Ok(Some(Next {
            resolution: Some(reason.as_str().to_string()),
            ..keep("resolved")
        })),
        Action::Reopen { .. } if !resolved => Ok(None),
        Action::Reopen { .. } => Ok(Some(Next {
            resolution: None,
            ..keep("open")
        })),
    }
}
