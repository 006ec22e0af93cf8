//! `s3-trigger`: for a file dropped at `inbox/{processor}/{date}/{file}` (EventBridge "Object Created" or a
//! classic S3 notification), starts one state machine execution named from processor, date and ETag, so a
//! duplicate event is a no-op. A bad key is logged and skipped (never retried forever). The step is
//! [`recon_app::steps::trigger`].

use recon_app::notify::Mailer;
use recon_app::objects::ObjectStore;
pub use recon_app::steps::trigger::{S3Drop, TriggerOutcome};
use recon_app::steps::{Ports, StartExecution};
use recon_aws::lambda::FnError;

/// The handler: the trigger step.
pub async fn handler<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    event: S3Drop,
) -> Result<Vec<TriggerOutcome>, FnError> {
    Ok(recon_app::steps::trigger::s3_trigger(ports, event).await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    /// Every event of `events/s3-trigger/` through the handler: a good drop starts one execution (named
    /// from processor, date and ETag) and the same event again starts none; a bad key is skipped; a deletion
    /// and a drop whose object is gone by now are ignored.
    #[tokio::test]
    async fn the_handler_answers_every_event_file() {
        let events = recon_tests::local::events("s3-trigger");
        assert_eq!(events.len(), 5);
        for (name, event) in events {
            let store = recon_tests::local::demo_store();
            let ports = recon_tests::local::ports(store.path(), None);
            let drop: S3Drop = serde_json::from_value(event).unwrap_or_else(|e| panic!("{name}: {e}"));
            let first = handler(&ports, drop.clone()).await.unwrap();
            let again = handler(&ports, drop).await.unwrap();
            let outcomes = |o: &[TriggerOutcome]| o.iter().map(|t| t.outcome.clone()).collect::<Vec<_>>();
            let started = ports.executions.started.lock().unwrap().clone();
            let expected = if name.starts_with("bad-") {
                "skipped"
            } else if name.contains("delete") || name.contains("vanished") {
                "ignored"
            } else {
                assert_eq!(outcomes(&again), ["duplicate"], "{name}");
                assert_eq!(started.len(), 1, "{name}");
                assert_eq!(started[0].1["trigger"], "s3");
                "started"
            };
            assert_eq!(outcomes(&first), [expected], "{name}");
            if expected != "started" {
                assert!(started.is_empty(), "{name}: {started:?}");
            }
        }
    }
}
