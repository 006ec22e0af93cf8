//! `s3-trigger`: for a file dropped at `inbox/{processor}/{date}/{file}` (EventBridge "Object Created" or a
//! classic S3 notification), starts one state machine execution named from processor, date and ETag, so a
//! duplicate event is a no-op. A bad key is logged and skipped (never retried forever).

use lambda_runtime::LambdaEvent;
pub use recon_aws::handlers::TriggerOutcome;
use recon_aws::lambda::{Env, FnError};

/// The handler: the trigger use case.
pub async fn handler(
    env: &Env,
    event: LambdaEvent<serde_json::Value>,
) -> Result<Vec<TriggerOutcome>, FnError> {
    recon_aws::handlers::s3_trigger(env, event.payload).await
}

#[cfg(test)]
mod tests {
    use recon_aws::handlers::{dropped_objects, parse_inbox_key};

    #[test]
    fn event_files_name_their_objects() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/s3-trigger");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let objects = dropped_objects(&v);
            assert!(!objects.is_empty(), "{}", entry.path().display());
            let name = entry.file_name().to_string_lossy().to_string();
            let ok = objects.iter().all(|o| parse_inbox_key(&o.key).is_ok());
            assert_eq!(ok, !name.contains("bad-key"), "{name}");
            n += 1;
        }
        assert!(n > 0);
    }
}
