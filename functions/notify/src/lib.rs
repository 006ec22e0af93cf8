//! `notify`: sends the operations email (SES v2, HTML + text) when a run reaches `NOTIFY_MIN_SEVERITY` or a
//! processor failed; returns the message id or `skipped`. Input: `{date, runs, failures}`. The step is
//! [`recon_app::steps::notify`].

use recon_app::notify::Mailer;
use recon_app::objects::ObjectStore;
pub use recon_app::steps::notify::{NotifyInput, NotifyOutput};
use recon_app::steps::{Ports, StartExecution};
use recon_aws::lambda::FnError;

/// The handler: the notify step.
pub async fn handler<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    input: NotifyInput,
) -> Result<NotifyOutput, FnError> {
    Ok(recon_app::steps::notify::notify(ports, input).await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    /// Every event of `events/notify/` through the handler with the outbox mailer: below the threshold
    /// nothing is sent; a CRITICAL run and a failed processor give one email naming both; so does a run of a
    /// name that is no processor; a report email that could not be sent is reported beside the runs.
    #[tokio::test]
    async fn the_handler_answers_every_event_file() {
        let events = recon_tests::local::events("notify");
        assert_eq!(events.len(), 4);
        for (name, event) in events {
            let store = recon_tests::local::demo_store();
            let ports = recon_tests::local::ports(store.path(), None);
            let input: NotifyInput = serde_json::from_value(event).unwrap();
            let out = handler(&ports, input)
                .await
                .unwrap_or_else(|e| panic!("{name}: {}", e.0));
            let sent: Vec<_> = std::fs::read_dir(&ports.mailer.dir)
                .into_iter()
                .flatten()
                .flatten()
                .collect();
            match name.as_str() {
                "below-threshold.json" => assert!(out.skipped && sent.is_empty(), "{out:?}"),
                "high-and-failed.json" => {
                    assert!(!out.skipped && sent.len() == 1, "{out:?}");
                    let eml = std::fs::read_to_string(sent[0].path()).unwrap();
                    assert!(
                        eml.contains("square") && eml.contains("authentication failed"),
                        "{eml}"
                    );
                }
                // a name that is no processor (the execution asked for venmo): still one email, naming it
                "unknown-processor.json" => {
                    assert!(!out.skipped && sent.len() == 1, "{out:?}");
                    let eml = std::fs::read_to_string(sent[0].path()).unwrap();
                    assert!(
                        eml.contains("venmo: NOT RECONCILED") && eml.contains("stripe"),
                        "{eml}"
                    );
                }
                // Notify failed (SES refused the report) and NotifyFailure reports it with the day's runs: the
                // runs keep their own status and figures, the report email is NOT SENT (never "FAILED for stripe")
                "report-not-sent.json" => {
                    assert!(!out.skipped && sent.len() == 1, "{out:?}");
                    let eml = std::fs::read_to_string(sent[0].path()).unwrap();
                    assert!(eml.contains("the report email: NOT SENT"), "{eml}");
                    assert!(
                        eml.contains("MessageRejected") && eml.contains("stripe: succeeded (CRITICAL)"),
                        "{eml}"
                    );
                    assert!(!eml.contains("FAILED for stripe"), "{eml}");
                }
                other => panic!("{other}: no expectation"),
            }
        }
    }

    /// A retried notify of one execution (Step Functions retrying after a lost answer) sends nothing twice:
    /// the idempotency record written before sending says it went out.
    #[tokio::test]
    async fn a_retried_notify_sends_one_email() {
        let (_, event) = recon_tests::local::events("notify")
            .into_iter()
            .find(|(n, _)| n == "high-and-failed.json")
            .unwrap();
        let store = recon_tests::local::demo_store();
        let ports = recon_tests::local::ports(store.path(), None);
        let mut input: NotifyInput = serde_json::from_value(event).unwrap();
        input.execution = Some("arn:aws:states:us-east-1:1:execution:recon:e1".into());
        let first = handler(&ports, input.clone()).await.unwrap();
        let again = handler(&ports, input.clone()).await.unwrap();
        assert!(
            !first.skipped && again.skipped && again.already_sent,
            "{first:?} {again:?}"
        );
        let sent = std::fs::read_dir(&ports.mailer.dir).unwrap().count();
        assert_eq!(sent, 1);
        // another execution of the same day sends its own email
        input.execution = Some("arn:aws:states:us-east-1:1:execution:recon:e2".into());
        assert!(!handler(&ports, input).await.unwrap().skipped);
        assert_eq!(std::fs::read_dir(&ports.mailer.dir).unwrap().count(), 2);
    }
}
