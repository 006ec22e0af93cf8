//! The state machine definition against the code: every ARN placeholder is a function crate, every
//! `ErrorEquals` name is one the functions report (and the retryable ones are retried), every Task has a
//! timeout, retries and a catch, and nothing blanket-retries `States.TaskFailed`/`States.ALL`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

use recon_app::objects::ObjectError;
use recon_app::AppError;
use recon_aws::lambda::ERROR_NAMES;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn definition() -> (String, Value) {
    let text = std::fs::read_to_string(root().join("state-machines/reconciliation.asl.json")).unwrap();
    let v = serde_json::from_str(&text).unwrap();
    (text, v)
}

/// Every Task, with whether an enclosing Map catches its failures (a partition's Task lets its error reach
/// the Map, whose Catch records the run as failed: a partition must never "succeed" with a made-up result).
fn tasks<'a>(states: &'a Value, caught_by_map: bool, out: &mut Vec<(&'a str, &'a Value, bool)>) {
    for (name, s) in states.as_object().unwrap() {
        if s["Type"] == "Task" {
            out.push((name, s, caught_by_map));
        }
        if let Some(inner) = s.get("ItemProcessor").or(s.get("Iterator")) {
            let catches = s["Catch"].as_array().is_some_and(|c| !c.is_empty());
            tasks(&inner["States"], catches, out);
        }
    }
}

#[test]
fn placeholders_are_the_function_crates() {
    let (text, v) = definition();
    assert_eq!(v["QueryLanguage"], "JSONPath");
    let mut placeholders = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("${") {
        let end = rest[i..].find('}').unwrap();
        placeholders.insert(rest[i + 2..i + end].to_string());
        rest = &rest[i + end..];
    }
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    for p in &placeholders {
        let name = p
            .strip_suffix("_arn")
            .unwrap_or_else(|| panic!("placeholder {p} is not an ARN"))
            .replace('_', "-");
        assert!(crates.contains(&name), "placeholder {p} has no functions/{name}");
    }
    // every function the state machine runs is referenced (s3-trigger starts it, it is not a state)
    for c in &crates {
        if c != "s3-trigger" {
            assert!(
                placeholders.contains(&format!("{}_arn", c.replace('-', "_"))),
                "functions/{c} is never invoked"
            );
        }
    }
}

#[test]
fn error_names_agree_with_the_functions() {
    let (_, v) = definition();
    let mut all = Vec::new();
    tasks(&v["States"], false, &mut all);
    assert!(all.len() >= 7, "{} tasks", all.len());
    let known: BTreeSet<&str> = ERROR_NAMES.iter().copied().collect();
    let mut retried = BTreeSet::new();
    for (name, t, caught_by_map) in &all {
        assert_eq!(t["Resource"], "arn:aws:states:::lambda:invoke", "{name}");
        assert!(
            t["TimeoutSeconds"].as_u64().is_some(),
            "{name} has no TimeoutSeconds"
        );
        assert!(t["Parameters"].is_object(), "{name} has no Parameters");
        assert!(
            *caught_by_map || t["Catch"].as_array().is_some_and(|c| !c.is_empty()),
            "{name} has no Catch, nor a Map around it that catches"
        );
        for r in t["Retry"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no Retry"))
        {
            for e in r["ErrorEquals"].as_array().unwrap() {
                let e = e.as_str().unwrap();
                assert!(
                    e != "States.TaskFailed" && e != "States.ALL",
                    "{name} blanket-retries {e}"
                );
                if !e.starts_with("Lambda.") {
                    assert!(known.contains(e), "{name} retries {e}, which no function reports");
                    assert!(
                        r.get("MaxDelaySeconds").is_some() && r["JitterStrategy"] == "FULL",
                        "{name}: {e} without cap/jitter"
                    );
                }
                retried.insert(e.to_string());
            }
        }
    }
    for e in [
        "Retryable",
        "DataNotReady",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    ] {
        assert!(retried.contains(e), "{e} is never retried");
    }
    // and the names the code produces are the documented ones
    let samples = [
        AppError::InvalidInput("x".into()),
        AppError::Internal("x".into()),
        AppError::Object(ObjectError {
            op: "get",
            key: "k".into(),
            reason: "r".into(),
            retryable: true,
        }),
        AppError::Object(ObjectError {
            op: "get",
            key: "k".into(),
            reason: "r".into(),
            retryable: false,
        }),
        AppError::Unreadable(recon_sources::SourceError::new("k", "r")),
        AppError::NoInput {
            source_name: recon_app::keys::Source::Stripe,
            date: chrono::NaiveDate::MIN,
            hint: String::new(),
        },
        AppError::Api(recon_sources::api::ApiError::DataNotReady {
            source_name: "paypal".into(),
            date: chrono::NaiveDate::MIN,
            detail: String::new(),
        }),
        AppError::Api(recon_sources::api::ApiError::Auth {
            source_name: "s".into(),
            status: 401,
            request: String::new(),
            message: String::new(),
        }),
        AppError::Api(recon_sources::api::ApiError::Retryable {
            source_name: "s".into(),
            request: String::new(),
            attempts: 1,
            detail: String::new(),
        }),
        AppError::Store(recon_store::StoreError::Unavailable {
            what: "x",
            source: "y".into(),
        }),
        AppError::Store(recon_store::StoreError::Config("x".into())),
    ];
    for s in samples {
        assert!(
            known.contains(s.error_name()),
            "{} is not in ERROR_NAMES",
            s.error_name()
        );
    }
}

/// The sharded path (spec section 12): per processor, a Distributed Map over the partition indexes runs the
/// match function in partition mode, then one merge call records the run; the fields it sends are the
/// match function's input fields.
#[test]
fn sharded_match_is_a_distributed_map_feeding_one_merge() {
    let (_, v) = definition();
    let per_processor = &v["States"]["MatchProcessors"];
    assert_eq!(
        per_processor["ItemProcessor"]["ProcessorConfig"]["Mode"],
        "DISTRIBUTED"
    );
    let inner = &per_processor["ItemProcessor"]["States"];
    assert_eq!(per_processor["ItemProcessor"]["StartAt"], "Sharded?");
    let shards = &inner["MatchPartitions"];
    assert_eq!(shards["Type"], "Map");
    assert_eq!(shards["ItemProcessor"]["ProcessorConfig"]["Mode"], "DISTRIBUTED");
    assert_eq!(
        shards["ItemSelector"]["partition"]["index.$"],
        "$$.Map.Item.Value"
    );
    assert_eq!(shards["Next"], "MergePartitions");
    assert_eq!(inner["MergePartitions"]["Next"], "Alert?");
    assert_eq!(
        inner["MergePartitions"]["Parameters"]["Payload"]["partitions.$"],
        "$.receipts"
    );
    // every field sent to the match function is one MatchInput reads
    let fields = [
        "date",
        "processor",
        "manifests",
        "error",
        "execution",
        "trigger",
        "partition",
        "partitions",
        "split",
    ];
    // the split step: ranges -> a Distributed Map of scans -> one plan -> a Distributed Map of scatters ->
    // the partitions, each told to read only its own files
    assert_eq!(inner["Split?"]["Choices"][0]["Next"], "SplitRanges");
    assert_eq!(inner["Split?"]["Default"], "PartitionIndexes");
    for (state, next) in [
        ("SplitRanges", "ScanRanges"),
        ("ScanRanges", "PlanSplit"),
        ("PlanSplit", "ScatterRanges"),
        ("ScatterRanges", "SplitPartitionIndexes"),
        ("SplitPartitionIndexes", "MatchPartitions"),
    ] {
        assert_eq!(inner[state]["Next"], next, "{state}");
    }
    for map in ["ScanRanges", "ScatterRanges"] {
        assert_eq!(
            inner[map]["ItemProcessor"]["ProcessorConfig"]["Mode"],
            "DISTRIBUTED"
        );
        assert_eq!(
            inner[map]["ItemSelector"]["split"]["range.$"],
            "$$.Map.Item.Value"
        );
    }
    assert_eq!(inner["SplitPartitionIndexes"]["Parameters"]["split"], true);
    assert_eq!(inner["PartitionIndexes"]["Parameters"]["split"], false);
    assert_eq!(shards["ItemSelector"]["partition"]["split.$"], "$.shards.split");
    for payload in [
        &inner["Match"]["Parameters"]["Payload"],
        &inner["MergePartitions"]["Parameters"]["Payload"],
        &shards["ItemSelector"],
        &inner["SplitRanges"]["Parameters"]["Payload"],
        &inner["PlanSplit"]["Parameters"]["Payload"],
        &inner["ScanRanges"]["ItemSelector"],
        &inner["ScatterRanges"]["ItemSelector"],
    ] {
        for k in payload.as_object().unwrap().keys() {
            let k = k.trim_end_matches(".$");
            assert!(fields.contains(&k), "{k} is not a match input field");
        }
    }
    let sample = serde_json::json!({
        "date": "2025-06-02", "processor": "stripe", "manifests": [], "execution": "e", "trigger": "manual",
        "partition": {"index": 3, "count": 8}
    });
    let parsed: recon_app::steps::r#match::MatchInput = serde_json::from_value(sample).unwrap();
    assert_eq!(parsed.partition.map(|p| (p.index, p.count)), Some((3, 8)));
    // each split step's input as the states build it is one the match function reads
    for split in [
        serde_json::json!({"step": "ranges", "range_bytes": 300}),
        serde_json::json!({"step": "plan", "partitions": 3, "scanned": []}),
    ] {
        let sample = serde_json::json!({
            "date": "2025-06-02", "processor": "stripe", "manifests": [], "execution": "e", "trigger": "manual",
            "split": split, "partition": {"index": 0, "count": 3, "split": true}
        });
        let parsed: recon_app::steps::r#match::MatchInput = serde_json::from_value(sample).unwrap();
        assert!(parsed.split.is_some() && parsed.partition.is_some_and(|p| p.split));
    }
}

/// Every environment variable the Terraform gives the functions is one `Settings` reads: a misspelled or
/// stale name would be silently ignored in AWS.
#[test]
fn the_terraform_environment_is_read_by_settings() {
    let tf = std::fs::read_to_string(root().join("terraform/modules/recon/main.tf")).unwrap();
    let mut names = BTreeSet::new();
    for block in ["common_env = {", "db_env = {"] {
        let body = tf
            .split(block)
            .nth(1)
            .unwrap_or_else(|| panic!("no {block} in main.tf"));
        let body = body.split('}').next().unwrap();
        for line in body.lines() {
            if let Some((k, _)) = line.split_once('=') {
                let k = k.trim();
                if !k.is_empty() && !k.starts_with('#') {
                    names.insert(k.to_string());
                }
            }
        }
    }
    // and the single variables merged in per function: `{ NAME = ... }`
    for piece in tf.split("{ ").skip(1) {
        let k = piece.split_whitespace().next().unwrap_or("");
        if !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_') && piece.contains(" = ") {
            names.insert(k.to_string());
        }
    }
    assert!(
        names.contains("STATE_MACHINE_ARN") && names.contains("DB_SECRET_ARN"),
        "{names:?}"
    );
    for n in &names {
        assert!(
            recon_app::settings::Settings::VARIABLES.contains(&n.as_str()),
            "terraform sets {n}, which recon does not read"
        );
    }
}

/// The top-level keys of the input a state receives, found by walking back to the `Pass` state that last
/// built the whole state (through Choices and Waits, and through Tasks and Maps that add their `ResultPath`);
/// through a Catch, the catching state's input and the error; with several predecessors, the keys all of them
/// give.
fn input_keys(states: &Value, name: &str) -> BTreeSet<String> {
    let mut sets: Vec<BTreeSet<String>> = Vec::new();
    for (n, s) in states.as_object().unwrap() {
        let next = s["Next"] == name
            || s["Default"] == name
            || s["Choices"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["Next"] == name));
        if next {
            sets.push(output_keys(states, n));
        }
        // reached by a Catch: the catching state's input with the error at the Catch's ResultPath
        for c in s["Catch"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["Next"] == name)
        {
            let mut keys = input_keys(states, n);
            if let Some(p) = c["ResultPath"].as_str().and_then(|p| p.strip_prefix("$.")) {
                keys.insert(p.to_string());
            }
            sets.push(keys);
        }
    }
    assert!(!sets.is_empty(), "{name} has a predecessor");
    let mut keys = sets.remove(0);
    for other in &sets {
        keys.retain(|k| other.contains(k));
    }
    keys
}

fn output_keys(states: &Value, name: &str) -> BTreeSet<String> {
    let s = &states[name];
    let field = |k: &String| k.trim_end_matches(".$").to_string();
    match s["Type"].as_str().unwrap() {
        "Pass" if s["OutputPath"] == "$.resolved" => {
            // States.JsonMerge($.defaults, $): the defaults' keys (the input may add more)
            states["Defaults"]["Result"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        }
        "Pass" if s["Parameters"].is_object() => {
            s["Parameters"].as_object().unwrap().keys().map(field).collect()
        }
        "Choice" | "Wait" => input_keys(states, name),
        _ => {
            let mut keys = input_keys(states, name);
            if let Some(p) = s["ResultPath"].as_str().and_then(|p| p.strip_prefix("$.")) {
                keys.insert(p.to_string());
            }
            keys
        }
    }
}

/// Every Catch target works from every state that can reach it: what `NotifyFailure` reads (`$.date`,
/// `$.processors`, `$.failure`) is in the state of each Task that catches into it. A path that is missing
/// fails the Catch itself with `States.Runtime`, which nothing catches: no email at all.
#[test]
fn every_catch_target_finds_what_it_reads() {
    let (_, v) = definition();
    let states = &v["States"];
    let mut checked = 0;
    for (name, s) in states.as_object().unwrap() {
        for c in s["Catch"].as_array().into_iter().flatten() {
            let target = c["Next"].as_str().unwrap();
            // a Task reads its payload's paths, a Map its item selector's
            let reads = states[target]["Parameters"]["Payload"].as_object();
            let Some(payload) = reads.or(states[target]["ItemSelector"].as_object()) else {
                continue;
            };
            let mut available = input_keys(states, name);
            if let Some(p) = c["ResultPath"].as_str().and_then(|p| p.strip_prefix("$.")) {
                available.insert(p.to_string());
            }
            // `$$.` paths read the execution's context, always there
            for path in payload
                .values()
                .filter_map(Value::as_str)
                .filter(|p| !p.starts_with("$$."))
            {
                let first = path.trim_start_matches("$.").split(['.', '[']).next().unwrap();
                assert!(
                    available.contains(first),
                    "{target} reads {path}, which the state of {name} lacks ({available:?})"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 6, "{checked}");
}

/// A partition iteration that fails hands its cause to the merge as data (`index`, `count`, `error`: a
/// failed receipt), so the run is recorded failed with it; an iteration without a Catch gave the merge a
/// `null` receipt and the cause was lost to a decoding error.
#[test]
fn a_failed_partition_hands_its_cause_to_the_merge() {
    let (_, v) = definition();
    let iteration =
        &v["States"]["MatchProcessors"]["ItemProcessor"]["States"]["MatchPartitions"]["ItemProcessor"];
    let task = &iteration["States"]["MatchPartition"];
    let target = task["Catch"][0]["Next"].as_str().unwrap();
    let failed = &iteration["States"][target]["Parameters"];
    let receipt: recon_app::steps::partition::Receipt = serde_json::from_value(serde_json::json!({
        "index": 1, "count": 2, "error": "SourceUnavailable: ..."
    }))
    .unwrap();
    assert!(matches!(receipt, recon_app::steps::partition::Receipt::Failed(_)));
    for field in ["index.$", "count.$", "error.$"] {
        assert!(failed[field].is_string(), "{failed}");
    }
    assert!(failed["error.$"].as_str().unwrap().contains("$.failure.Cause"));
}

/// A ledger that cannot be fetched leaves no processor to reconcile: each processor's run of the day is
/// recorded failed with the cause (the match function called with the error, as `RecordFailure` does), and the
/// failure email still goes out whether or not the recording worked.
#[test]
fn a_failed_ledger_fetch_records_each_processors_run_as_failed() {
    let (_, v) = definition();
    let states = &v["States"];
    assert_eq!(states["FetchLedger"]["Catch"][0]["Next"], "RecordLedgerFailure");
    let record = &states["RecordLedgerFailure"];
    assert_eq!(record["Type"], "Map");
    assert_eq!(record["ItemsPath"], "$.processors");
    assert_eq!(record["Next"], "NotifyFailure");
    assert_eq!(record["Catch"][0]["Next"], "NotifyFailure");
    assert_eq!(
        record["ResultPath"], "$.recorded",
        "NotifyFailure still reads $.failure"
    );
    let inner = &record["ItemProcessor"]["States"];
    let task = &inner[record["ItemProcessor"]["StartAt"].as_str().unwrap()];
    assert_eq!(task["Parameters"]["FunctionName"], "${match_arn}");
    let payload = &task["Parameters"]["Payload"];
    assert!(
        payload["error.$"].as_str().unwrap().contains("$.failure.Cause"),
        "{payload}"
    );
    assert_eq!(record["ItemSelector"]["execution.$"], "$$.Execution.Id");
    let fallback = task["Catch"][0]["Next"].as_str().unwrap();
    assert_eq!(inner[fallback]["Type"], "Pass");
}

/// A processor's match that fails (the whole match, a partition, the merge) is recorded as a failed run with
/// its cause: each one's Catch goes to `RecordFailure`, which calls the match function with the error.
#[test]
fn a_failed_match_is_recorded_as_a_failed_run() {
    let (_, v) = definition();
    let states = &v["States"]["MatchProcessors"]["ItemProcessor"]["States"];
    for name in ["Match", "MatchPartitions", "MergePartitions"] {
        let targets: Vec<&str> = states[name]["Catch"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["Next"].as_str().unwrap())
            .collect();
        assert_eq!(targets, ["RecordFailure"], "{name}");
    }
    let record = &states["RecordFailure"];
    assert_eq!(record["Parameters"]["FunctionName"], "${match_arn}");
    let payload = &record["Parameters"]["Payload"];
    assert!(
        payload["error.$"].as_str().unwrap().contains("$.failure.Cause"),
        "{payload}"
    );
    assert_eq!(
        payload["execution.$"], "$.execution",
        "the same idempotency key as the failed match"
    );
    assert_eq!(record["Catch"][0]["Next"], "MatchFailed");
}

/// The statements of one `aws_iam_policy_document` of the recon module, as text.
fn policy(name: &str) -> String {
    let tf = std::fs::read_to_string(root().join("terraform/modules/recon/main.tf")).unwrap();
    let start = tf
        .find(&format!("data \"aws_iam_policy_document\" \"{name}\""))
        .unwrap_or_else(|| panic!("no policy document {name}"));
    let rest = &tf[start + 1..];
    let end = ["\ndata \"", "\nmodule \"", "\nresource \""]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .unwrap_or(rest.len());
    rest[..end].to_string()
}

/// What each function does in S3 is allowed by its own policy (moto does not enforce IAM, so only this
/// catches it): notify writes and reads its idempotency records under `notifications/` (without them AWS would
/// refuse the record and no email would go out); the trigger checks that a dropped object still exists
/// (`HeadObject` needs `s3:GetObject` on `inbox/`).
#[test]
fn each_functions_policy_allows_what_it_does_in_s3() {
    let notify = policy("notify");
    assert!(
        notify.contains("/notifications/*") && notify.contains("s3:PutObject"),
        "notify: {notify}"
    );
    let trigger = policy("trigger");
    assert!(
        trigger.contains("/inbox/*") && trigger.contains("s3:GetObject"),
        "trigger: {trigger}"
    );
    let matcher = policy("match");
    for prefix in ["/raw/*", "/reports/*", "/work/*"] {
        assert!(matcher.contains(prefix), "match: {prefix}");
    }
}

/// The report email failing after the runs were recorded (SES refused it): the failure email carries the runs
/// with their own figures and says the report was not sent; before, it said "FAILED" for every processor.
#[test]
fn a_failed_report_email_is_reported_with_the_days_runs() {
    let (_, v) = definition();
    let states = &v["States"];
    let target = states["Notify"]["Catch"][0]["Next"].as_str().unwrap();
    let payload = &states[target]["Parameters"]["Payload"];
    assert_eq!(states[target]["Parameters"]["FunctionName"], "${notify_arn}");
    assert_eq!(payload["runs.$"], "$.runs", "{payload}");
    assert_eq!(payload["pipeline_error.$"], "$.failure", "{payload}");
    assert_eq!(states[target]["Next"], "Failed");
}

/// A run alerts when it failed, when it is HIGH or CRITICAL, and when items escalated by age in it (issue 15:
/// the email goes out for an escalation even when the run alone would not alert); a summary without
/// `escalated_count` (an older match function) does not break the choice.
#[test]
fn a_run_with_escalated_items_alerts() {
    let (_, v) = definition();
    let inner = &v["States"]["MatchProcessors"]["ItemProcessor"]["States"];
    let choice = &inner["Alert?"];
    assert_eq!(choice["Type"], "Choice");
    let rules = choice["Choices"][0]["Or"].as_array().unwrap();
    let escalation = rules
        .iter()
        .find_map(|r| r["And"].as_array())
        .expect("an And rule on escalated_count");
    assert_eq!(escalation[0]["Variable"], "$.result.summary.escalated_count");
    assert_eq!(escalation[0]["IsPresent"], true);
    assert_eq!(escalation[1]["Variable"], "$.result.summary.escalated_count");
    assert_eq!(escalation[1]["NumericGreaterThan"], 0);
    assert_eq!(choice["Choices"][0]["Next"], "Alert");
}
