//! Report files of a run: `summary.json`, `discrepancies.csv` and a self-contained `report.html` with inline
//! SVG charts. Chart geometry uses integer arithmetic only.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use minijinja::{context, Environment};
use recon_core::{Category, Discrepancy, Outcome, RunSummary, Severity};
use recon_store::{ItemDigest, RunRow};
use serde::Serialize;

use crate::AppError;

/// One row of a top-discrepancies table.
#[derive(Debug, Clone, Serialize)]
pub struct TopItem {
    pub processor: String,
    pub category: String,
    pub severity: Option<String>,
    pub processor_id: Option<String>,
    pub ledger_id: Option<String>,
    pub reference: Option<String>,
    pub amount: String,
    pub currency: Option<String>,
    pub details: String,
    /// For sorting: severity rank and minor units.
    #[serde(skip)]
    pub rank: (Option<Severity>, i64),
}

/// Open discrepancies, most severe and largest first.
pub fn top(processor: &str, ds: &[Discrepancy], n: usize) -> Vec<TopItem> {
    let mut items: Vec<&Discrepancy> = ds.iter().filter(|d| d.severity.is_some()).collect();
    items.sort_by_key(|d| std::cmp::Reverse((d.severity, d.amount_at_stake)));
    items
        .into_iter()
        .take(n)
        .map(|d| top_item(processor, d))
        .collect()
}

fn top_item(processor: &str, d: &Discrepancy) -> TopItem {
    TopItem {
        processor: processor.to_string(),
        category: d.category.as_str().to_string(),
        severity: d.severity.map(|s| s.as_str().to_string()),
        processor_id: d.processor_id.as_deref().map(String::from),
        ledger_id: d.ledger_id.as_deref().map(String::from),
        reference: d.reference.as_deref().map(String::from),
        amount: d.stake().map(|m| m.to_string()).unwrap_or_else(|| "0".into()),
        currency: d.currency.map(|c| c.code().to_string()),
        details: d.details.clone(),
        rank: (d.severity, d.amount_at_stake),
    }
}

/// `discrepancies.csv`: one row per discrepancy (pending items included, marked by lifecycle).
pub fn discrepancies_csv(ds: &[Discrepancy]) -> Result<Vec<u8>, AppError> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(ds.len() * 200 + 256));
    let err = |e: csv::Error| AppError::failed("writing discrepancies.csv", e);
    w.write_record([
        "category",
        "severity",
        "lifecycle",
        "processor_id",
        "ledger_id",
        "processor_txn_id",
        "reference",
        "kind",
        "processor_amount",
        "processor_currency",
        "ledger_amount",
        "ledger_currency",
        "amount",
        "currency",
        "occurred_at",
        "processor_source",
        "ledger_source",
        "details",
        "raw_record",
    ])
    .map_err(err)?;
    for d in ds {
        let occurred = d
            .occurred_at
            .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let amount = d.stake().map(|m| m.to_string()).unwrap_or_else(|| "0".into());
        w.write_record([
            d.category.as_str(),
            d.severity.map(|s| s.as_str()).unwrap_or(""),
            d.lifecycle.as_str(),
            &cell(d.processor_id.as_deref().unwrap_or("")),
            &cell(d.ledger_id.as_deref().unwrap_or("")),
            &cell(d.processor_txn_id.as_deref().unwrap_or("")),
            &cell(d.reference.as_deref().unwrap_or("")),
            d.kind.map(|k| k.as_str()).unwrap_or(""),
            &d.processor_amount.map(|m| m.to_string()).unwrap_or_default(),
            &d.processor_amount
                .map(|m| m.currency.code().to_string())
                .unwrap_or_default(),
            &d.ledger_amount.map(|m| m.to_string()).unwrap_or_default(),
            &d.ledger_amount
                .map(|m| m.currency.code().to_string())
                .unwrap_or_default(),
            &amount,
            &d.currency.map(|c| c.code().to_string()).unwrap_or_default(),
            &occurred,
            &cell(d.processor_source.as_deref().unwrap_or("")),
            &cell(d.ledger_source.as_deref().unwrap_or("")),
            &cell(&d.details),
            &cell(d.raw.as_deref().unwrap_or("")),
        ])
        .map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| AppError::failed("writing discrepancies.csv", e))
}

/// A text cell as a spreadsheet must not run it: text starting with `=`, `+`, `-`, `@`, tab or carriage
/// return is prefixed with `'` (OWASP's advice for CSV injection). Amounts are written as plain numbers
/// elsewhere and never pass through here.
pub fn cell(s: &str) -> std::borrow::Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => std::borrow::Cow::Owned(format!("'{s}")),
        _ => std::borrow::Cow::Borrowed(s),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart as inline SVG; bar widths are proportional to the values (integer maths).
pub fn bar_chart(rows: &[(String, u64, &str)]) -> String {
    let width: u64 = 300;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let h = rows.len() * 22 + 4;
    let mut s = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="520" height="{h}" role="img">"#);
    for (i, (label, v, color)) in rows.iter().enumerate() {
        let y = i * 22 + 2;
        let w = if *v == 0 { 0 } else { (v * width / max).max(2) };
        let _ = write!(
            s,
            r##"<text x="0" y="{ty}" font-size="12" fill="#323f4b">{l}</text><rect x="170" y="{y}" width="{w}" height="16" rx="2" fill="{color}"/><text x="{tx}" y="{ty}" font-size="12" fill="#323f4b">{v}</text>"##,
            ty = y + 12,
            l = esc(label),
            tx = 176 + w,
        );
    }
    s.push_str("</svg>");
    s
}

/// A vertical bar chart of the last runs' discrepancy counts, failed runs in red.
pub fn trend_chart(runs: &[RunRow]) -> String {
    if runs.is_empty() {
        return "<p>no earlier runs</p>".into();
    }
    let max = runs
        .iter()
        .map(|r| r.discrepancy_count.max(0) as u64)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut s = r#"<svg xmlns="http://www.w3.org/2000/svg" width="520" height="170" role="img">"#.to_string();
    for (i, r) in runs.iter().enumerate() {
        let v = r.discrepancy_count.max(0) as u64;
        let h = if v == 0 { 1 } else { (v * 120 / max).max(2) };
        let x = i * 36 + 4;
        let color = if r.status == recon_store::RunState::Failed {
            "#ba2525"
        } else {
            "#2680c2"
        };
        let _ = write!(
            s,
            r##"<rect x="{x}" y="{y}" width="26" height="{h}" fill="{color}"><title>{d}: {v} ({st})</title></rect><text x="{x}" y="150" font-size="9" fill="#616e7c">{md}</text><text x="{x}" y="{ly}" font-size="9" fill="#323f4b">{v}</text>"##,
            y = 135 - h,
            d = r.run_date,
            st = esc(r.status.as_str()),
            md = r.run_date.format("%m-%d"),
            ly = 132 - h,
        );
    }
    s.push_str("</svg>");
    s
}

const CATEGORY_COLORS: [&str; 7] = [
    "#ba2525", "#de911d", "#8719e0", "#2680c2", "#0f609b", "#e12d39", "#616e7c",
];

/// The closing line of the items sections: "N open items, X USD, Y EUR, oldest Z days".
pub fn open_items_line(run: &RunSummary) -> String {
    let n = run.open_items.count;
    let mut parts = vec![format!("{n} open item{}", if n == 1 { "" } else { "s" })];
    parts.extend(run.open_items.amount.iter().map(|(c, a)| format!("{a} {c}")));
    if let Some(d) = run.oldest_open_age_days {
        parts.push(format!("oldest {d} day{}", if d == 1 { "" } else { "s" }));
    }
    parts.join(", ")
}

/// The open items' aging chart: open count by age bucket (each bar's title gives the amount per currency).
pub fn aging_chart(d: &ItemDigest) -> String {
    let rows: Vec<(String, u64, &str)> = recon_core::AGE_BUCKETS
        .iter()
        .map(|(b, _, _)| {
            let n: i64 = d.aging.iter().filter(|a| a.0 == *b).map(|a| a.2).sum();
            let amounts: Vec<String> = d
                .aging
                .iter()
                // items with no amount (an invalid record's) count, but add no "0" to the amounts
                .filter(|a| a.0 == *b && !a.1.is_empty())
                .map(|a| format!("{} {}", a.3, a.1))
                .collect();
            let label = match amounts.is_empty() {
                true => format!("{b} days"),
                false => format!("{b} days: {}", amounts.join(", ")),
            };
            (label, u64::try_from(n).unwrap_or(0), "#de911d")
        })
        .collect();
    bar_chart(&rows)
}

/// Open items after each of the last runs (from their summaries), oldest first.
pub fn open_trend_chart(runs: &[RunRow], current: &RunSummary, date: &str) -> String {
    let mut points: Vec<(String, u64)> = runs
        .iter()
        .filter(|r| r.run_id.to_string() != current.run_id)
        .map(|r| {
            let n = r
                .summary
                .as_ref()
                .and_then(|s| s.get("open_items")?.get("count")?.as_u64())
                .unwrap_or(0);
            (r.run_date.format("%m-%d").to_string(), n)
        })
        .collect();
    points.push((
        date.get(5..).unwrap_or(date).to_string(),
        current.open_items.count,
    ));
    let keep = points.len().saturating_sub(30);
    let points = &points[keep..];
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="170" role="img">"#,
        points.len() * 30 + 8
    );
    for (i, (d, v)) in points.iter().enumerate() {
        let h = if *v == 0 { 1 } else { (v * 120 / max).max(2) };
        let x = i * 30 + 4;
        let _ = write!(
            s,
            r##"<rect x="{x}" y="{y}" width="22" height="{h}" fill="#de911d"><title>{d}: {v} open</title></rect><text x="{x}" y="150" font-size="8" fill="#616e7c">{d}</text><text x="{x}" y="{ly}" font-size="9" fill="#323f4b">{v}</text>"##,
            y = 135 - h,
            d = esc(d),
            ly = 132 - h,
        );
    }
    s.push_str("</svg>");
    s
}

/// Renders `report.html`; `items` is the run's item digest (none for a failed run or a run kept as history).
pub fn render_html(
    date: &str,
    run: &RunSummary,
    outcome: Option<&Outcome>,
    trend: &[RunRow],
    manifests: &[String],
    items: Option<&ItemDigest>,
) -> Result<String, AppError> {
    let mut env = Environment::new();
    // the `.html` name turns auto-escaping on: every data value shown is escaped
    env.add_template("report.html", include_str!("../templates/report.html"))
        .map_err(|e| AppError::failed("report template", e))?;
    let counts = &run.discrepancy_counts;
    let mut cat_rows: Vec<(String, u64, &str)> = Category::ALL
        .iter()
        .zip(CATEGORY_COLORS)
        .map(|(c, col)| (c.as_str().to_string(), counts.get(*c), col))
        .collect();
    cat_rows.push(("pending".into(), counts.pending, "#9aa5b1"));
    let mut sev: BTreeMap<Severity, u64> = BTreeMap::new();
    let mut by_cur: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(o) = outcome {
        for d in &o.discrepancies {
            if let Some(s) = d.severity {
                *sev.entry(s).or_default() += 1;
            }
            if let (Some(c), Some(_)) = (d.currency, d.severity) {
                *by_cur.entry(c.code().to_string()).or_default() += 1;
            }
        }
    }
    let sev_rows: Vec<(String, u64, &str)> = [
        (Severity::Critical, "#ba2525"),
        (Severity::High, "#de911d"),
        (Severity::Medium, "#2680c2"),
        (Severity::Low, "#3ebd93"),
    ]
    .iter()
    .map(|(s, c)| (s.as_str().to_string(), sev.get(s).copied().unwrap_or(0), *c))
    .collect();
    let cur_rows: Vec<(String, u64, &str)> = by_cur
        .into_iter()
        .map(|(c, n)| (format!("{c} (items)"), n, "#0f609b"))
        .collect();
    #[derive(Serialize)]
    struct Total {
        currency: String,
        amount: String,
    }
    let totals: Vec<Total> = run
        .total_discrepancy_amount
        .iter()
        .map(|(c, a)| Total {
            currency: c.clone(),
            amount: a.clone(),
        })
        .collect();
    let top = outcome
        .map(|o| top(run.processor.as_str(), &o.discrepancies, 50))
        .unwrap_or_default();
    let tmpl = env
        .get_template("report.html")
        .map_err(|e| AppError::failed("report template", e))?;
    tmpl.render(context! {
        date => date,
        run => run,
        generated_at => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        discrepancy_total => counts.total() - counts.pending,
        category_chart => bar_chart(&cat_rows),
        severity_chart => bar_chart(&sev_rows),
        currency_chart => bar_chart(&cur_rows),
        trend_chart => trend_chart(&trend[trend.len().saturating_sub(13)..]),
        trend_len => trend.len().min(13),
        items => items,
        open_items_line => open_items_line(run),
        aging_chart => items.map(aging_chart),
        open_trend_chart => items.map(|_| open_trend_chart(trend, run, date)),
        totals => totals,
        excluded => run.excluded_counts,
        out_of_window => out_of_window_line(date, run),
        top => top,
        manifests => manifests,
    })
    .map_err(|e| AppError::failed("rendering report.html", e))
}

/// The sentence saying how many records were dated outside the run's day, or `None` when none were.
pub fn out_of_window_line(date: &str, run: &RunSummary) -> Option<String> {
    (run.out_of_window_count > 0).then(|| {
        format!(
            "{} records dated outside {date} (from {} to {}) were reconciled into this day: check that the \
             file dropped for this day covers only this day",
            run.out_of_window_count,
            run.out_of_window_earliest.as_deref().unwrap_or("?"),
            run.out_of_window_latest.as_deref().unwrap_or("?"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aging_chart_counts_items_without_an_amount_but_lists_only_real_amounts() {
        let d = ItemDigest {
            aging: vec![
                ("0-1".into(), String::new(), 2, rust_decimal::Decimal::ZERO),
                (
                    "0-1".into(),
                    "USD".into(),
                    6,
                    rust_decimal::Decimal::new(195_600, 2),
                ),
                (
                    "over 30".into(),
                    "EUR".into(),
                    1,
                    rust_decimal::Decimal::new(900, 2),
                ),
            ],
            ..ItemDigest::default()
        };
        let html = aging_chart(&d);
        assert!(html.contains("0-1 days: 1956.00 USD"), "{html}");
        assert!(!html.contains(": 0 ,") && !html.contains("0 , "), "{html}");
        assert!(
            html.contains(">8<") || html.contains(">8 <") || html.contains("8</"),
            "{html}"
        );
        assert!(html.contains("over 30 days: 9.00 EUR"), "{html}");
    }

    fn hostile_outcome() -> (RunSummary, Outcome) {
        use recon_core::{
            reconcile, Currency, Keys, Kind, Location, Money, Processor, ProcessorRecord, ProcessorStatus,
            RecordFields, RunConfig, RunInput,
        };
        let usd = Currency::parse("USD").unwrap_or_else(|e| unreachable!("{e}"));
        let rec = ProcessorRecord::try_from(RecordFields {
            id: "<script>alert(1)</script>".into(),
            keys: Keys::from_parts(&["=cmd|' /C calc'!A0"]),
            reference: Some("<img src=x onerror=alert(2)>".into()),
            other_references: Keys::default(),
            kind: Kind::Charge,
            amount: Money::new(-12_345, usd),
            fee: None,
            net: None,
            status: ProcessorStatus::Succeeded,
            occurred_at: None,
            location: Location { object: 0, line: 1 },
        })
        .unwrap_or_else(|e| unreachable!("{e}"));
        let objects = vec!["inbox/stripe/<b>.json".to_string()];
        let config = RunConfig {
            grace_days: 0,
            ..RunConfig::default()
        };
        let o = reconcile(RunInput {
            processor: Processor::Stripe,
            objects: &objects,
            records: &[rec],
            ledger: &[],
            invalid: &[],
            carried: &[],
            config: &config,
        })
        .unwrap_or_else(|e| unreachable!("{e}"));
        (RunSummary::succeeded("r1".into(), &o), o)
    }

    #[test]
    fn hostile_ids_are_escaped_in_the_report_and_the_email() {
        let (summary, o) = hostile_outcome();
        // an item whose assignee and details are hostile (operators type assignees, notes and comments)
        let item = recon_store::ItemRow {
            id: 1,
            processor: "stripe".into(),
            family: "missing".into(),
            category: "missing_in_ledger".into(),
            severity: Some("HIGH".into()),
            status: "acknowledged".into(),
            assignee: Some("<script>alert(5)</script>".into()),
            processor_record_id: Some("<img src=x onerror=alert(6)>".into()),
            ledger_id: None,
            reference: None,
            amount_at_stake: rust_decimal::Decimal::new(12345, 2),
            currency: Some("USD".into()),
            details: "<script>alert(7)</script>".into(),
            first_seen_date: chrono::NaiveDate::from_ymd_opt(2025, 1, 10).unwrap_or_default(),
            run_date: chrono::NaiveDate::from_ymd_opt(2025, 1, 10).unwrap_or_default(),
            run_id: uuid::Uuid::nil(),
            age_days: 5,
            resolution: Some("<b>x</b>".into()),
            resolution_note: None,
            resolved_by: Some("<script>alert(8)</script>".into()),
            resolved_at: None,
            version: 3,
        };
        let digest = ItemDigest {
            new: vec![item.clone()],
            still_open: vec![item.clone()],
            resolved: vec![item],
            aging: vec![("4-7".into(), "<USD>".into(), 1, rust_decimal::Decimal::ONE)],
        };
        let html = render_html("2025-01-15", &summary, Some(&o), &[], &[], Some(&digest))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(!html.contains("<script>alert"), "raw script in report.html");
        assert!(!html.contains("<img src=x"), "raw img in report.html");
        assert!(html.contains("&lt;script&gt;alert(1)"));
        assert!(
            html.contains("&lt;script&gt;alert(5)"),
            "the assignee is shown, escaped"
        );
        assert!(!html.contains("<USD>"), "aging labels are escaped");
        assert!(html.contains("Content-Security-Policy"));
        let notice = crate::notify::RunNotice {
            summary,
            link: None,
            top: top("stripe", &o.discrepancies, 10),
            items: Some(digest),
        };
        let problem = crate::notify::Problem {
            name: "<img src=x onerror=alert(2)>".into(),
            status: crate::notify::Problem::NOT_RECONCILED,
            reason: "<script>alert(3)</script>".into(),
        };
        let email = crate::notify::compose(
            "2025-01-15",
            &[notice],
            &[problem],
            "a@example.com",
            &["b@example.com".into()],
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(!email.html.contains("<script>alert") && !email.html.contains("<img src=x"));
        assert!(
            email.html.contains("&lt;script&gt;alert(3)"),
            "the problem is shown, escaped"
        );
        assert!(email.html.contains("&lt;script&gt;"));
        assert!(
            email.html.contains("&lt;script&gt;alert(5)"),
            "the assignee is shown, escaped"
        );
        let csv =
            String::from_utf8(discrepancies_csv(&o.discrepancies).unwrap_or_default()).unwrap_or_default();
        assert!(csv.contains(",-123.45,"), "amounts stay numbers: {csv}");
        assert!(!csv.contains(",=cmd"), "{csv}");
    }

    #[test]
    fn spreadsheet_formulas_are_neutralised_and_amounts_stay_numbers() {
        for (raw, want) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("ch_1", "ch_1"),
        ] {
            assert_eq!(cell(raw), want);
        }
    }

    #[test]
    fn bars_are_proportional_and_escaped() {
        let svg = bar_chart(&[
            ("a<b".into(), 10, "#000"),
            ("c".into(), 5, "#111"),
            ("z".into(), 0, "#222"),
        ]);
        assert!(svg.contains(r#"width="300""#));
        assert!(svg.contains(r#"width="150""#));
        assert!(svg.contains("a&lt;b"));
    }
}
