//! Working the exceptions (issue 15), the use cases behind `recon items` (and the review web app to come):
//! list, show, act on chosen items or on every item a filter selects, export to CSV and import an edited
//! CSV. The CLI only parses arguments and prints; a web handler calls the same functions with its
//! authenticated actor.

use std::collections::HashMap;

use chrono::NaiveDate;
use recon_core::Action;
use recon_store::{BatchOutcome, ItemCommand, ItemEvent, ItemFilter, ItemRow, Store};

use crate::report::cell;
use crate::settings::Settings;
use crate::AppError;

/// Who acts: `--actor`, else `RECON_ACTOR`, else the OS user; never empty.
pub fn actor(settings: &Settings, flag: Option<&str>) -> Result<String, AppError> {
    flag.map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .or_else(|| settings.actor.clone().filter(|a| !a.is_empty()))
        .ok_or_else(|| {
            AppError::InvalidInput(
                "who is acting is not known: pass --actor NAME or set RECON_ACTOR (no OS user is set either)"
                    .into(),
            )
        })
}

/// How many items a list shows at most (and a bulk action takes at most).
pub const LIST_LIMIT: i64 = 100_000;

/// Items matching `filter`, ages as of `as_of`.
pub async fn list(db: &Store, filter: &ItemFilter, as_of: NaiveDate) -> Result<Vec<ItemRow>, AppError> {
    db.list_items(filter, as_of, LIST_LIMIT)
        .await
        .map_err(AppError::Store)
}

/// One item with its history.
pub async fn show(db: &Store, id: i64, as_of: NaiveDate) -> Result<(ItemRow, Vec<ItemEvent>), AppError> {
    db.show_item(id, as_of)
        .await
        .map_err(AppError::Store)?
        .ok_or_else(|| AppError::InvalidInput(format!("no item {id}: `recon items` lists them")))
}

/// One action on these items (each at the version given, if any), in one transaction.
pub async fn act(
    db: &Store,
    actor: &str,
    items: &[(i64, Option<i32>)],
    action: &Action,
    dry_run: bool,
) -> Result<BatchOutcome, AppError> {
    let commands: Vec<ItemCommand> = items
        .iter()
        .map(|(id, v)| ItemCommand {
            item_id: *id,
            expected_version: *v,
            action: action.clone(),
        })
        .collect();
    db.act(actor, &commands, dry_run).await.map_err(AppError::Store)
}

/// The columns of an exported item CSV; the last four are what an operator fills in to act on import.
pub const CSV_COLUMNS: [&str; 19] = [
    "item_id",
    "version",
    "processor",
    "category",
    "status",
    "assignee",
    "age_days",
    "first_seen_date",
    "processor_record_id",
    "ledger_id",
    "reference",
    "amount",
    "currency",
    "resolution",
    "details",
    "action",
    "reason",
    "note",
    "to",
];

/// Items as CSV for a spreadsheet: every text cell that a spreadsheet would run as a formula is neutralised,
/// amounts stay numbers; `action`, `reason`, `note` and `to` are left empty for the operator.
pub fn export_csv(items: &[ItemRow]) -> Result<Vec<u8>, AppError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| AppError::failed("writing the items CSV", e);
    w.write_record(CSV_COLUMNS).map_err(err)?;
    for i in items {
        let o = |s: &Option<String>| cell(s.as_deref().unwrap_or("")).into_owned();
        w.write_record([
            i.id.to_string(),
            i.version.to_string(),
            i.processor.clone(),
            i.category.clone(),
            i.status.clone(),
            o(&i.assignee),
            i.age_days.to_string(),
            i.first_seen_date.to_string(),
            o(&i.processor_record_id),
            o(&i.ledger_id),
            o(&i.reference),
            i.amount_at_stake.to_string(),
            o(&i.currency),
            o(&i.resolution),
            cell(&i.details).into_owned(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ])
        .map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| AppError::failed("writing the items CSV", e.into_error()))
}

/// What an import did (or would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Rows with an action.
    pub rows: usize,
    pub outcome: BatchOutcome,
}

/// A spreadsheet may keep the `'` the export put before text a spreadsheet would run: take it off again.
fn uncell(s: &str) -> &str {
    match s.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => s,
    }
}

/// Imports an edited item CSV (the export's columns; `item_id` and `action` are required, `version`,
/// `reason`, `note` and `to` are read when present): every row with an action, in one transaction, all or
/// nothing. A row naming the version it was exported at conflicts when the item changed since, unless the
/// item is already as the row would leave it: re-importing the same file changes nothing. A comment already
/// in the item's history is not added again. `dry_run` says what would change and writes nothing.
pub async fn import_csv(
    db: &Store,
    actor: &str,
    name: &str,
    bytes: &[u8],
    dry_run: bool,
) -> Result<Imported, AppError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut r = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let bad = |line: u64, what: String| AppError::InvalidInput(format!("{name} line {line}: {what}"));
    let headers = r
        .headers()
        .map_err(|e| bad(1, format!("cannot read the header row: {e}")))?
        .clone();
    let col: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h.trim(), i)).collect();
    for need in ["item_id", "action"] {
        if !col.contains_key(need) {
            return Err(bad(
                1,
                format!("no {need} column: export items with `recon items export` and edit that file"),
            ));
        }
    }
    let mut commands = Vec::new();
    let mut skipped = Vec::new();
    for (n, rec) in r.records().enumerate() {
        let line = n as u64 + 2;
        let rec = rec.map_err(|e| bad(line, format!("cannot read the row: {e}")))?;
        let get = |c: &str| {
            col.get(c)
                .and_then(|i| rec.get(*i))
                .map(|v| uncell(v.trim()))
                .filter(|v| !v.is_empty())
        };
        let Some(action) = get("action") else {
            continue;
        };
        let id: i64 = get("item_id")
            .ok_or_else(|| bad(line, "item_id is empty".into()))?
            .parse()
            .map_err(|_| bad(line, format!("item_id {:?} is not an item id", get("item_id"))))?;
        let version = match get("version") {
            Some(v) => Some(
                v.parse::<i32>()
                    .map_err(|_| bad(line, format!("version {v:?} is not a number")))?,
            ),
            None => None,
        };
        let action = Action::parse(action, get("reason"), get("note"), get("to"))
            .map_err(|e| bad(line, format!("item {id}: {e}")))?;
        if let Action::Comment { note } = &action {
            if db.has_comment(id, note).await.map_err(AppError::Store)? {
                skipped.push(id);
                continue;
            }
        }
        commands.push(ItemCommand {
            item_id: id,
            expected_version: version,
            action,
        });
    }
    let rows = commands.len() + skipped.len();
    let mut outcome = db.act(actor, &commands, dry_run).await.map_err(AppError::Store)?;
    if let BatchOutcome::Done(done) = &mut outcome {
        // a comment already there counts as a row that changed nothing
        for id in skipped {
            done.push(recon_store::Acted {
                item_id: id,
                action: "comment".into(),
                from_status: String::new(),
                to_status: String::new(),
                changed: false,
                version: 0,
            });
        }
    }
    Ok(Imported { rows, outcome })
}
