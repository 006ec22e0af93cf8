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
        }],
        S3Drop::Notification(n) => n
            .records
            .iter()
            .map(|r| Dropped {
                bucket: r.s3.bucket.name.clone().unwrap_or_default(),
                key: decode_key(r.s3.object.key.as_deref().unwrap_or("")),
                etag: r.s3.object.e_tag.clone().unwrap_or_default(),
                removed: !r.event_name.as_deref().unwrap_or("").starts_with("ObjectCreated"),
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
        let etag = d.etag.trim_matches('"').to_string();
        let name = execution_name(&[Trigger::S3.as_str(), p.as_str(), &date.to_string(), &etag]);
        let input = json!({"date": date, "processors": [p], "source": {"bucket": d.bucket, "key": d.key}, "trigger": Trigger::S3});
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
}
