//! Plain-text tables for the terminal.

use recon_core::{DaySummary, RunStatus};
use recon_store::{DiscrepancyRow, ItemEvent, ItemRow, RunRow};

fn render(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let width = w.get(i).copied().unwrap_or(0);
            if right.get(i).copied().unwrap_or(false) {
                s.push_str(&format!("{c:>width$}  "));
            } else {
                s.push_str(&format!("{c:<width$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push_str(&line(w.iter().map(|n| "-".repeat(*n)).collect()));
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn totals(m: &std::collections::BTreeMap<String, String>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(c, v)| format!("{v} {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The day summary of `recon run`.
pub fn day(d: &DaySummary) -> String {
    let header = [
        "processor",
        "status",
        "severity",
        "records",
        "ledger",
        "matched",
        "clean",
        "miss_ledger",
        "miss_proc",
        "amount",
        "currency",
        "status_mm",
        "duplicate",
        "invalid",
        "pending",
        "at stake",
    ];
    let rows: Vec<Vec<String>> = d
        .runs
        .iter()
        .map(|r| {
            let c = &r.discrepancy_counts;
            vec![
                r.processor.as_str().to_string(),
                if r.status == RunStatus::Failed {
                    "FAILED".into()
                } else {
                    "succeeded".into()
                },
                r.severity.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                r.processor_count.to_string(),
                r.ledger_count.to_string(),
                r.matched_count.to_string(),
                r.clean_count.to_string(),
                c.missing_in_ledger.to_string(),
                c.missing_in_processor.to_string(),
                c.amount_mismatch.to_string(),
                c.currency_mismatch.to_string(),
                c.status_mismatch.to_string(),
                c.duplicate.to_string(),
                c.invalid_record.to_string(),
                c.pending.to_string(),
                totals(&r.total_discrepancy_amount),
            ]
        })
        .collect();
    let mut right = vec![false, false, false];
    right.extend([true; 12]);
    right.push(false);
    let mut out = format!("Reconciliation {}\n\n", d.date);
    out.push_str(&render(&header, &rows, &right));
    for r in &d.runs {
        if let Some(e) = &r.error {
            out.push_str(&format!("\n{} FAILED: {e}\n", r.processor.as_str()));
        }
        if !r.excluded_counts.is_empty() {
            let ex: Vec<String> = r
                .excluded_counts
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            out.push_str(&format!(
                "{} counted, not matched one-to-one: {}\n",
                r.processor.as_str(),
                ex.join(", ")
            ));
        }
    }
    out.push('\n');
    for r in d.runs.iter().filter(|r| r.status != RunStatus::Failed) {
        // day over day: what is new, what is still open, what was resolved, and every open item
        out.push_str(&format!(
            "{:<7} {} new, {} still open, {} resolved since the last run{}; {}\n",
            r.processor.as_str(),
            r.new_count,
            r.still_open_count,
            r.resolved_since_last_count,
            match r.escalated_count {
                0 => String::new(),
                n => format!(", {n} escalated by age"),
            },
            recon_app::report::open_items_line(r)
        ));
    }
    for r in &d.runs {
        if let Some(line) = recon_app::report::out_of_window_line(&d.date, r) {
            out.push_str(&format!("{}: {line}\n", r.processor.as_str()));
        }
        for w in &r.warnings {
            out.push_str(&format!("{} WARNING: {w}\n", r.processor.as_str()));
        }
    }
    if d.unattributed_invalid_records > 0 {
        out.push_str(&format!(
            "\n{} ledger rows have an unknown or unreadable processor column and belong to no run (listed in each \
             run's warnings, kept in unattributed_ledger_rows, shown by `recon show`)\n",
            d.unattributed_invalid_records
        ));
    }
    out
}

/// `recon runs`.
pub fn runs(rs: &[RunRow]) -> String {
    let header = [
        "run_id",
        "date",
        "processor",
        "status",
        "severity",
        "trigger",
        "records",
        "matched",
        "missing",
        "discrepancies",
        "at stake",
    ];
    let rows: Vec<Vec<String>> = rs
        .iter()
        .map(|r| {
            let t: std::collections::BTreeMap<String, String> =
                serde_json::from_value(r.total_discrepancy_amount.clone()).unwrap_or_default();
            vec![
                r.run_id.to_string(),
                r.run_date.to_string(),
                r.processor.clone(),
                r.status.as_str().to_string(),
                r.severity.clone().unwrap_or_else(|| "-".into()),
                r.trigger.clone(),
                r.processor_count.to_string(),
                r.matched_count.to_string(),
                r.missing_transaction_count.to_string(),
                r.discrepancy_count.to_string(),
                totals(&t),
            ]
        })
        .collect();
    render(
        &header,
        &rows,
        &[
            false, false, false, false, false, false, true, true, true, true, false,
        ],
    )
}

/// `recon show`.
pub fn show(r: &RunRow, ds: &[DiscrepancyRow]) -> String {
    let mut out = runs(std::slice::from_ref(r));
    if let Some(e) = &r.error {
        out.push_str(&format!("\nerror: {e}\n"));
    }
    out.push_str(&format!("\nreports: {}\n\n", r.report_keys));
    let header = [
        "id",
        "category",
        "severity",
        "lifecycle",
        "processor id",
        "ledger id",
        "reference",
        "amount",
        "cur",
        "details",
    ];
    let rows: Vec<Vec<String>> = ds
        .iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                d.category.clone(),
                d.severity.clone().unwrap_or_else(|| "-".into()),
                d.lifecycle.clone(),
                d.processor_record_id.clone().unwrap_or_default(),
                d.ledger_id.clone().unwrap_or_default(),
                d.reference.clone().unwrap_or_default(),
                d.amount_at_stake.to_string(),
                d.currency.clone().unwrap_or_default(),
                d.details.clone(),
            ]
        })
        .collect();
    out.push_str(&render(
        &header,
        &rows,
        &[true, false, false, false, false, false, false, true, false, false],
    ));
    out
}

/// A data value for the terminal: control characters (escape sequences included) shown as `?`.
fn t(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn ot(s: &Option<String>) -> String {
    s.as_deref().map(t).unwrap_or_else(|| "-".into())
}

/// `recon items`: one line per item.
pub fn items(items: &[ItemRow]) -> String {
    let header = [
        "id",
        "processor",
        "category",
        "severity",
        "status",
        "age",
        "assignee",
        "processor id",
        "ledger id",
        "amount",
        "cur",
        "resolution",
    ];
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                i.id.to_string(),
                i.processor.clone(),
                i.category.clone(),
                ot(&i.severity),
                i.status.clone(),
                format!("{}d", i.age_days),
                ot(&i.assignee),
                ot(&i.processor_record_id),
                ot(&i.ledger_id),
                i.amount_at_stake.to_string(),
                ot(&i.currency),
                ot(&i.resolution),
            ]
        })
        .collect();
    let mut out = render(
        &header,
        &rows,
        &[
            true, false, false, false, false, true, false, false, false, true, false, false,
        ],
    );
    out.push_str(&format!("{} items\n", items.len()));
    out
}

/// `recon items show`: the item and its history.
pub fn item(i: &ItemRow, events: &[ItemEvent]) -> String {
    let mut out = String::new();
    let mut kv = |k: &str, v: String| out.push_str(&format!("{k:<18}{v}\n"));
    kv("item", i.id.to_string());
    kv("version", i.version.to_string());
    kv("processor", i.processor.clone());
    kv("category", i.category.clone());
    kv("severity", ot(&i.severity));
    kv("status", i.status.clone());
    kv("assignee", ot(&i.assignee));
    kv(
        "first seen",
        format!(
            "{} ({} day{} ago)",
            i.first_seen_date,
            i.age_days,
            if i.age_days == 1 { "" } else { "s" }
        ),
    );
    kv("last seen", format!("{} (run {})", i.run_date, i.run_id));
    kv("processor id", ot(&i.processor_record_id));
    kv("ledger id", ot(&i.ledger_id));
    kv("reference", ot(&i.reference));
    kv(
        "amount at stake",
        format!("{} {}", i.amount_at_stake, ot(&i.currency)),
    );
    kv("details", t(&i.details));
    if i.status == "resolved" {
        kv(
            "resolution",
            format!(
                "{} by {} at {}{}",
                ot(&i.resolution),
                ot(&i.resolved_by),
                i.resolved_at
                    .map(|a| a.to_rfc3339())
                    .unwrap_or_else(|| "-".into()),
                i.resolution_note
                    .as_deref()
                    .map(|n| format!(": {}", t(n)))
                    .unwrap_or_default()
            ),
        );
    }
    out.push_str("\nhistory:\n");
    let header = ["at", "actor", "action", "status", "reason", "assignee", "note"];
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                t(&e.actor),
                e.action.clone(),
                format!(
                    "{} -> {}",
                    e.from_status.as_deref().unwrap_or("(new)"),
                    e.to_status
                ),
                ot(&e.reason),
                ot(&e.assignee),
                ot(&e.note),
            ]
        })
        .collect();
    out.push_str(&render(&header, &rows, &[false; 7]));
    out
}
