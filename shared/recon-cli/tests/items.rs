//! `recon items` on the demo day against a real PostgreSQL: list (table, JSON, CSV), show with history,
//! every action, refusals with a non-zero exit, bulk selection with its confirmation, export and import.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use recon_tests::TestDb;
use serde_json::Value;

const RECON: &str = env!("CARGO_BIN_EXE_recon");

fn items(db: &TestDb, args: &[&str]) -> Output {
    items_with(db, args, None)
}

fn items_with(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(RECON)
        .args(["items", "--database-url", &db.url, "--as-of", "2025-01-17"])
        .args(args)
        .env("RECON_ACTOR", "ops-cli")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The demo day's Stripe run, grace 0: every category reported, so there are items.
fn demo_items(db: &TestDb, store: &Path) {
    let out = Command::new(RECON)
        .args([
            "run",
            "--store",
            store.to_str().unwrap(),
            "--database-url",
            &db.url,
            "--date",
            "2025-01-15",
            "--processors",
            "stripe",
            "--grace-days",
            "0",
            "--no-notify",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

fn list(db: &TestDb, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["--format", "json"];
    a.extend_from_slice(args);
    let out = ok(&items(db, &a));
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn operators_list_show_and_act_on_items_from_the_cli() {
    let db = TestDb::new().await;
    let store = recon_tests::local::demo_store();
    demo_items(&db, store.path());

    let all = list(&db, &[]);
    assert!(all.len() >= 7, "{all:?}");
    assert!(all.iter().all(|i| i["status"] == "open" && i["age_days"] == 2));
    let table = ok(&items(&db, &[]));
    assert!(
        table.contains("missing_in_ledger") && table.contains(&format!("{} items", all.len())),
        "{table}"
    );
    let missing = list(&db, &["--category", "missing"]);
    assert!(!missing.is_empty());
    assert!(missing.iter().all(|i| i["family"] == "missing"));
    let id = all[0]["id"].as_i64().unwrap().to_string();

    // ack, then show: the fields and the history with who did it
    let acked = ok(&items(&db, &["ack", &id]));
    assert!(
        acked.contains("did acknowledge (open -> acknowledged, version 2)"),
        "{acked}"
    );
    let shown = ok(&items(&db, &["show", &id]));
    assert!(
        shown.contains("acknowledged") && shown.contains("ops-cli") && shown.contains("opened"),
        "{shown}"
    );
    let again = ok(&items(&db, &["ack", &id]));
    assert!(again.contains("changes nothing"), "{again}");

    // refusals: a stale version is a conflict (exit 1, nothing written); a missing note or reason is an error
    let stale = items(&db, &["assign", &id, "--to", "bob", "--expect-version", "1"]);
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale));
    assert!(
        text(&stale).contains("conflict") && text(&stale).contains("ops-cli did acknowledge"),
        "{}",
        text(&stale)
    );
    let no_note = items(&db, &["resolve", &id, "--reason", "written_off"]);
    assert_eq!(no_note.status.code(), Some(2), "{}", text(&no_note));
    assert!(text(&no_note).contains("needs a note"), "{}", text(&no_note));
    let system = items(&db, &["resolve", &id, "--reason", "matched_later"]);
    assert_eq!(system.status.code(), Some(2), "{}", text(&system));
    let unknown = items(&db, &["ack", "999999"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown).contains("item 999999: no such item"),
        "{}",
        text(&unknown)
    );

    // assign, comment, resolve, reopen with an actor of one's own
    ok(&items(
        &db,
        &["assign", &id, "--to", "bob", "--expect-version", "2"],
    ));
    ok(&items(
        &db,
        &["comment", &id, "--note", "ledger team asked", "--actor", "alice"],
    ));
    ok(&items(
        &db,
        &["resolve", &id, "--reason", "written_off", "--note", "under 5 USD"],
    ));
    let resolved = list(&db, &["--status", "resolved"]);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["resolution"], "written_off");
    assert_eq!(resolved[0]["assignee"], "bob");
    ok(&items(&db, &["reopen", &id, "--note", "wrong write-off"]));
    let history: Value = serde_json::from_str(&ok(&items(&db, &["show", &id, "--format", "json"]))).unwrap();
    let actions: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["opened", "acknowledge", "assign", "comment", "resolve", "reopen"]
    );
    assert_eq!(history["history"][3]["actor"], "alice");

    // no actor at all is refused
    let nobody = Command::new(RECON)
        .args(["items", "ack", &id, "--database-url", &db.url])
        .env_remove("RECON_ACTOR")
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    assert_eq!(nobody.status.code(), Some(2), "{}", text(&nobody));
    assert!(text(&nobody).contains("who is acting"), "{}", text(&nobody));
}

#[tokio::test]
async fn bulk_actions_ask_first_and_an_edited_export_imports_once() {
    let db = TestDb::new().await;
    let store = recon_tests::local::demo_store();
    demo_items(&db, store.path());
    let missing = list(&db, &["--category", "missing"]);
    let n = missing.len();

    // a bulk action says how many and asks; anything but yes does nothing
    let no = items_with(
        &db,
        &["ack", "--all-matching", "--category", "missing"],
        Some("n\n"),
    );
    assert_eq!(no.status.code(), Some(1), "{}", text(&no));
    assert!(
        text(&no).contains(&format!("acknowledge {n} items")),
        "{}",
        text(&no)
    );
    assert!(list(&db, &["--status", "acknowledged"]).is_empty());
    // without a filter it is refused
    let unfiltered = items(&db, &["ack", "--all-matching", "--yes"]);
    assert_eq!(unfiltered.status.code(), Some(2), "{}", text(&unfiltered));
    // a dry run changes nothing, --yes does it
    let dry = ok(&items(
        &db,
        &["ack", "--all-matching", "--category", "missing", "--dry-run"],
    ));
    assert!(dry.contains(&format!("dry run: {n} items would change")), "{dry}");
    assert!(list(&db, &["--status", "acknowledged"]).is_empty());
    ok(&items(
        &db,
        &["ack", "--all-matching", "--category", "missing", "--yes"],
    ));
    assert_eq!(list(&db, &["--status", "acknowledged"]).len(), n);

    // export the acknowledged items, resolve them all in the file, import (dry run first), import again
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("items.csv");
    ok(&items(
        &db,
        &[
            "export",
            "--status",
            "acknowledged",
            "--out",
            file.to_str().unwrap(),
        ],
    ));
    let csv = std::fs::read_to_string(&file).unwrap();
    let edited: Vec<String> = csv
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_string()
            } else {
                format!(
                    "{},resolve,booked_in_ledger,\"JE-2025-0117, booked late\",",
                    &l[..l.len() - 4]
                )
            }
        })
        .collect();
    std::fs::write(&file, edited.join("\n") + "\n").unwrap();
    let f = file.to_str().unwrap();
    let dry = ok(&items(&db, &["import", f, "--dry-run"]));
    assert!(dry.contains(&format!("dry run: {n} items would change")), "{dry}");
    assert!(list(&db, &["--status", "resolved"]).is_empty());
    let done = ok(&items(&db, &["import", f]));
    assert!(done.contains(&format!("{n} items changed")), "{done}");
    let resolved = list(&db, &["--status", "resolved"]);
    assert_eq!(resolved.len(), n);
    assert!(resolved.iter().all(|i| i["resolution"] == "booked_in_ledger"
        && i["resolution_note"] == "JE-2025-0117, booked late"
        && i["resolved_by"] == "ops-cli"));
    let again = ok(&items(&db, &["import", f]));
    assert!(again.contains("0 items changed"), "{again}");
    // the CSV list of what is left, and a file that is not an export is refused naming it
    let left = ok(&items(&db, &["--format", "csv"]));
    assert!(left.starts_with("item_id,version,processor,category"), "{left}");
    std::fs::write(dir.path().join("bad.csv"), "id,what\n1,resolve\n").unwrap();
    let bad = items(&db, &["import", dir.path().join("bad.csv").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad).contains("bad.csv line 1: no item_id column"),
        "{}",
        text(&bad)
    );
}
