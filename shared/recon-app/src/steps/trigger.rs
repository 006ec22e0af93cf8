//! The trigger step (`s3-trigger`): a file dropped at `inbox/{processor}/{date}/{file}` (an EventBridge
//! "Object Created" event or a classic S3 notification) starts one execution named from processor, date
//! and ETag, so a duplicate event is a no-op. A bad key is logged and skipped (never retried forever).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3Event;
use chrono::NaiveDate;
use recon_core::Processor;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{info, warn};

use super::{execution_name, Ports, StartExecution, Started};
use crate::keys;
use crate::notify::Mailer;
use crate::objects::ObjectStore;
use crate::AppError;
use crate::Trigger;

/// The object of an EventBridge S3 event (`detail`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectDetail {
    #[serde(default)]
    pub bucket: BucketName,
    #[serde(default)]
    pub object: ObjectKey,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BucketName {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectKey {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub etag: String,
    #[serde(default)]
    pub sequencer: String,
}

/// What the trigger receives: an EventBridge event or a classic S3 notification.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum S3Drop {
    EventBridge(Box<EventBridgeEvent<ObjectDetail>>),
    Notification(S3Event),
}

/// An object an event names: bucket, key, ETag, and whether the event says it was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub bucket: String,
    pub key: String,
    pub etag: String,
    /// An `ObjectRemoved:*` notification or an "Object Deleted" event: it starts nothing.
    pub removed: bool,
    /// When the event happened (S3's own time, so that a redelivered event names the same execution).
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    pub sequencer: String,
}

/// A classic notification's key, URL-decoded (spaces arrive as `+`).
fn decode_key(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    match urlencoding::decode(&spaced) {
        Ok(k) => k.into_owned(),
        Err(_) => spaced,
    }
}

/// The objects an event names.
pub fn dropped_objects(event: &S3Drop) -> Vec<Dropped> {
    match event {
        S3Drop::EventBridge(e) => vec![Dropped {
            bucket: e.detail.bucket.name.clone(),
            key: e.detail.object.key.clone(),
            etag: e.detail.object.etag.clone(),
            removed: e.detail_type != "Object Created",
            at: e.time,
            sequencer: e.detail.object.sequencer.clone(),
        }],
        S3Drop::Notification(n) => n
            .records
            .iter()
            .map(|r| Dropped {
                bucket: r.s3.bucket.name.clone().unwrap_or_default(),
                key: decode_key(r.s3.object.key.as_deref().unwrap_or("")),
                etag: r.s3.object.e_tag.clone().unwrap_or_default(),
                removed: !r.event_name.as_deref().unwrap_or("").starts_with("ObjectCreated"),
                at: Some(r.event_time),
                sequencer: r.s3.object.sequencer.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// The processor and date of a drop that starts a run: a key [`keys::parse_inbox`] accepts, of a processor
/// (a ledger drop starts nothing: every run stages the ledger's inbox).
pub fn drop_of(key: &str) -> Result<(Processor, NaiveDate), String> {
    let k = keys::parse_inbox(key)?;
    match k.source.processor() {
        Some(p) => Ok((p, k.date)),
        None => Err(format!(
            "{key:?} is a ledger drop: it starts no run (each processor's run stages the ledger's inbox)"
        )),
    }
}

/// The execution a drop starts, and how long it waits before fetching. With a settle window of `settle`
/// seconds, drops of one processor and date whose events fall in the same window name the same execution
/// (the later ones are duplicates), and it waits the window out: every drop of the window is in the inbox when
/// it fetches. Without one, a drop names its own execution from its ETag, or its key and sequencer when the
/// event has no ETag (never a false duplicate).
fn execution_of(d: &Dropped, p: Processor, date: NaiveDate, settle: u32) -> (String, u32) {
    let day = date.to_string();
    match (settle, d.at) {
        (1.., Some(at)) => {
            let window = format!("w{}", at.timestamp().div_euclid(i64::from(settle)));
            (
                execution_name(&[Trigger::S3.as_str(), p.as_str(), &day, &window]),
                settle,
            )
        }
        _ => {
            let etag = d.etag.trim_matches('"');
            let tag = if etag.is_empty() {
                use sha2::Digest;
                let h = hex::encode(sha2::Sha256::digest(format!("{}\n{}", d.key, d.sequencer)));
                h.get(..32).unwrap_or(&h).to_string()
            } else {
                etag.to_string()
            };
            (execution_name(&[Trigger::S3.as_str(), p.as_str(), &day, &tag]), 0)
        }
    }
}

/// What the trigger did with one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerOutcome {
    pub key: String,
    /// `started`, `duplicate`, `skipped` (not a drop that starts a run) or `ignored` (a deletion, or an
    /// object that no longer exists).
    pub outcome: String,
    pub execution: Option<String>,
    pub reason: Option<String>,
}

/// Starts one execution per dropped file; a duplicate event is a no-op; a bad key is logged and skipped; a
/// deletion, or an event for an object that is gone by now, is logged and ignored.
pub async fn s3_trigger<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    event: S3Drop,
) -> Result<Vec<TriggerOutcome>, AppError> {
    let mut out = Vec::new();
    for d in dropped_objects(&event) {
        let (p, date) = match drop_of(&d.key) {
            Ok(x) => x,
            Err(reason) => {
                warn!(key = %d.key, %reason, "not a settlement drop; skipped");
                out.push(TriggerOutcome {
                    key: d.key,
                    outcome: "skipped".into(),
                    execution: None,
                    reason: Some(reason),
                });
                continue;
            }
        };
        let gone = match d.removed {
            true => Some("a deletion starts no run"),
            false if !ports.objects.exists(&d.key).await.map_err(AppError::Object)? => {
                Some("the object no longer exists: nothing to reconcile")
            }
            false => None,
        };
        if let Some(reason) = gone {
            info!(key = %d.key, %reason, "ignored");
            out.push(TriggerOutcome {
                key: d.key,
                outcome: "ignored".into(),
                execution: None,
                reason: Some(reason.into()),
            });
            continue;
        }
        let (name, settle) = execution_of(&d, p, date, ports.settings.settle_seconds);
        let input = json!({"date": date, "processors": [p], "source": {"bucket": d.bucket, "key": d.key},
                           "trigger": Trigger::S3, "settle_seconds": settle});
        let outcome = match ports.executions.start(&name, &input).await? {
            Started::New { execution_arn } => {
                info!(key = %d.key, execution = %execution_arn, "execution started");
                TriggerOutcome {
                    key: d.key,
                    outcome: "started".into(),
                    execution: Some(execution_arn),
                    reason: None,
                }
            }
            Started::AlreadyExists => {
                info!(key = %d.key, name = %name, "duplicate event: execution exists");
                TriggerOutcome {
                    key: d.key,
                    outcome: "duplicate".into(),
                    execution: Some(name),
                    reason: None,
                }
            }
        };
        out.push(outcome);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drop_is_a_processor_file_under_its_day() {
        for bad in [
            "inbox/STRIPE/2025-01-15/a.csv",
            "inbox/+stripe/2025-01-15/a.csv",
            "inbox/stripe/2025-3-1/a.csv",
        ] {
            assert!(drop_of(bad).is_err(), "{bad}");
        }
        assert!(drop_of("inbox/stripe/2025-01-15/report.csv").is_ok());
        assert!(drop_of("inbox/venmo/2025-01-15/x.csv").is_err());
        assert!(drop_of("inbox/stripe/15-01-2025/x.csv").is_err());
        assert!(drop_of("raw/stripe/2025-01-15/x.csv").is_err());
        assert!(drop_of("inbox/stripe/2025-01-15/").is_err());
        assert!(drop_of("inbox/ledger/2025-01-15/l.csv").is_err_and(|e| e.contains("ledger drop")));
    }

    #[test]
    fn classic_keys_are_url_decoded() {
        let ev = json!({"Records":[{"eventTime":"2025-01-15T06:12:44.000Z","userIdentity":{},
            "requestParameters":{},"s3":{"bucket":{"name":"b"},
            "object":{"key":"inbox/paypal/2025-01-15/STL+2025%2B1.CSV","eTag":"abc"}}}]});
        let ev: Result<S3Drop, _> = serde_json::from_value(ev);
        let keys: Vec<String> = ev.iter().flat_map(dropped_objects).map(|d| d.key).collect();
        assert_eq!(keys, ["inbox/paypal/2025-01-15/STL 2025+1.CSV"]);
    }

    fn dropped(key: &str, etag: &str, sequencer: &str, at: &str) -> Dropped {
        Dropped {
            bucket: "b".into(),
            key: key.into(),
            etag: etag.into(),
            removed: false,
            at: chrono::DateTime::parse_from_rfc3339(at).ok().map(|t| t.to_utc()),
            sequencer: sequencer.into(),
        }
    }

    #[test]
    fn drops_within_the_settle_window_name_one_execution_that_waits_it_out() {
        let day = NaiveDate::from_ymd_opt(2025, 1, 15).unwrap_or_default();
        let a = dropped(
            "inbox/stripe/2025-01-15/p1.json",
            "e1",
            "s1",
            "2025-01-16T06:10:05Z",
        );
        let b = dropped(
            "inbox/stripe/2025-01-15/p2.json",
            "e2",
            "s2",
            "2025-01-16T06:12:59Z",
        );
        let c = dropped(
            "inbox/stripe/2025-01-15/p3.json",
            "e3",
            "s3",
            "2025-01-16T06:15:01Z",
        );
        let (na, wait) = execution_of(&a, Processor::Stripe, day, 300);
        assert_eq!(wait, 300);
        assert_eq!(
            execution_of(&b, Processor::Stripe, day, 300).0,
            na,
            "same window: one execution"
        );
        assert_ne!(
            execution_of(&c, Processor::Stripe, day, 300).0,
            na,
            "the next window: its own"
        );
        assert_ne!(
            execution_of(&a, Processor::Paypal, day, 300).0,
            na,
            "another processor: its own"
        );
    }

    #[test]
    fn without_a_window_or_an_etag_each_drop_names_its_own_execution() {
        let day = NaiveDate::from_ymd_opt(2025, 1, 15).unwrap_or_default();
        let a = dropped(
            "inbox/stripe/2025-01-15/p1.json",
            "",
            "s1",
            "2025-01-16T06:10:05Z",
        );
        let b = dropped(
            "inbox/stripe/2025-01-15/p2.json",
            "",
            "s2",
            "2025-01-16T06:10:05Z",
        );
        let (na, wait) = execution_of(&a, Processor::Stripe, day, 0);
        assert_eq!(wait, 0);
        assert_ne!(
            execution_of(&b, Processor::Stripe, day, 0).0,
            na,
            "no ETag: never a false duplicate"
        );
        assert_eq!(
            execution_of(&a, Processor::Stripe, day, 0).0,
            na,
            "the same event again: a duplicate"
        );
    }
}
