//! `match`: reconciles one processor's day from the staged data its manifests list, writes the reports,
//! records the run (idempotent per execution + processor + date) and returns the section 8 summary.
//! Input: `{date, processor, manifests, execution?, trigger?}`; for a sharded run also `partition: {index,
//! count}` (one Distributed Map iteration: returns a receipt) or `partitions: [receipts]` (the merge).
//! The step is [`recon_app::steps::r#match`].

use recon_app::notify::Mailer;
use recon_app::objects::ObjectStore;
pub use recon_app::steps::r#match::{MatchInput, MatchOutput};
use recon_app::steps::{Ports, StartExecution};
use recon_aws::lambda::FnError;

/// The handler: the match step.
pub async fn handler<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    input: MatchInput,
) -> Result<MatchOutput, FnError> {
    Ok(recon_app::steps::r#match::match_step(ports, input).await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use recon_core::RunStatus;

    /// Every event of `events/match/` through the handler on a local store holding the objects its
    /// manifests list (copied from their inbox origin), against a database of its own.
    #[tokio::test]
    async fn the_handler_answers_every_event_file() {
        let events = recon_tests::local::events("match");
        assert_eq!(events.len(), 3);
        for (name, event) in events {
            let db = recon_tests::TestDb::new().await;
            let store = recon_tests::local::demo_store();
            let input: MatchInput = serde_json::from_value(event).unwrap();
            for o in input.manifests.iter().flatten().flat_map(|m| &m.objects) {
                let to = store.path().join(&o.key);
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(store.path().join(&o.origin), to).unwrap();
            }
            let ports = recon_tests::local::ports(store.path(), Some(db.store()));
            let out = handler(&ports, input)
                .await
                .unwrap_or_else(|e| panic!("{name}: {}", e.0));
            match (name.as_str(), out) {
                ("demo-stripe.json", MatchOutput::Run(run)) => {
                    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
                    assert_eq!((run.matched_count, run.clean_count), (13, 10));
                    let usd = run.total_discrepancy_amount.get("USD").map(String::as_str);
                    assert_eq!(usd, Some("4478.00"));
                }
                ("missing-ledger.json", MatchOutput::Run(run)) => {
                    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
                    assert!(run.error.as_deref().unwrap_or("").contains("no ledger manifest"));
                }
                ("demo-stripe-partition-0-of-2.json", MatchOutput::Partition(p)) => {
                    assert_eq!((p.index, p.count), (0, 2));
                    assert!(store.path().join(&p.key).is_file(), "{}", p.key);
                }
                (other, out) => panic!("{other}: unexpected {out:?}"),
            }
        }
    }

    /// S3 answering 503 while match reads `raw/`: the invocation fails `Retryable` (Step Functions retries it)
    /// and nothing is recorded; a failed run is never made of a storage hiccup.
    #[tokio::test]
    async fn a_failing_read_is_retried_not_recorded() {
        let db = recon_tests::TestDb::new().await;
        let store = recon_tests::local::demo_store();
        let (_, event) = recon_tests::local::events("match")
            .into_iter()
            .find(|(n, _)| n == "demo-stripe.json")
            .unwrap();
        let input: MatchInput = serde_json::from_value(event).unwrap();
        let local = recon_tests::local::ports(store.path(), None);
        let ports = recon_app::steps::Ports::new(
            recon_tests::local::Flaky {
                inner: local.objects.clone(),
                prefix: "raw/".into(),
            },
            local.mailer.clone(),
            recon_app::steps::MemoryExecutions::default(),
            Some(db.store()),
            local.settings.clone(),
        );
        let err = handler(&ports, input).await.err().map(|e| e.0.error_name());
        assert_eq!(err, Some("Retryable"));
        let runs = db.store().list_runs(None, None, 10).await.unwrap();
        assert!(runs.is_empty(), "{runs:?}");
    }
}
