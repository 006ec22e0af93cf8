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

    /// Puts the objects an input's manifests list at their `raw/` keys, copied from their inbox origin.
    fn stage_listed(root: &std::path::Path, input: &MatchInput) {
        use recon_app::steps::r#match::ManifestInput;
        let inline = input.manifests.iter().flatten().filter_map(|m| match m {
            ManifestInput::Inline(m) => Some(m),
            ManifestInput::Ref(_) => None,
        });
        for o in inline.flat_map(|m| &m.objects) {
            let to = root.join(&o.key);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(root.join(&o.origin), to).unwrap();
        }
    }

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
            stage_listed(store.path(), &input);
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

    /// The demo day's match input on a local store holding its objects, and a database of its own.
    async fn demo() -> (recon_tests::TestDb, tempfile::TempDir, MatchInput) {
        let db = recon_tests::TestDb::new().await;
        let store = recon_tests::local::demo_store();
        let (_, event) = recon_tests::local::events("match")
            .into_iter()
            .find(|(n, _)| n == "demo-stripe.json")
            .unwrap();
        let input: MatchInput = serde_json::from_value(event).unwrap();
        stage_listed(store.path(), &input);
        (db, store, input)
    }

    fn failed(out: MatchOutput) -> String {
        match out {
            MatchOutput::Run(r) if r.status == RunStatus::Failed => r.error.unwrap_or_default(),
            other => panic!("expected a failed run, got {other:?}"),
        }
    }

    /// A match input that does not describe its run is refused (a failed run naming why), never reconciled:
    /// an object listed twice (its records would count twice), a manifest of another day.
    #[tokio::test]
    async fn an_inconsistent_input_is_refused() {
        let (db, store, input) = demo().await;
        let ports = recon_tests::local::ports(store.path(), Some(db.store()));
        let mut twice = input.clone();
        use recon_app::steps::r#match::ManifestInput;
        for m in twice.manifests.iter_mut().flatten() {
            if let ManifestInput::Inline(m) = m {
                if m.objects.len() > 1 {
                    let first = m.objects[0].clone();
                    m.objects.push(first);
                    break;
                }
            }
        }
        let why = failed(handler(&ports, twice).await.unwrap());
        assert!(why.contains("is listed twice"), "{why}");
        let mut other_day = input;
        other_day.date = chrono::NaiveDate::from_ymd_opt(2025, 1, 20).unwrap();
        other_day.execution = Some("other-day".into());
        let why = failed(handler(&ports, other_day).await.unwrap());
        assert!(why.contains("is for 2025-01-15, not 2025-01-20"), "{why}");
    }

    /// Partition outcomes prove whose they are: two partitions' stored outcomes swapped are refused at the merge.
    #[tokio::test]
    async fn a_swapped_partition_outcome_is_refused_at_the_merge() {
        let (db, store, input) = demo().await;
        let ports = recon_tests::local::ports(store.path(), Some(db.store()));
        let mut receipts = Vec::new();
        for index in 0..2 {
            let mut i = input.clone();
            i.partition = Some(recon_app::steps::partition::PartitionTask {
                index,
                count: 2,
                split: false,
            });
            match handler(&ports, i).await.unwrap() {
                MatchOutput::Partition(p) => receipts.push(p),
                other => panic!("{other:?}"),
            }
        }
        let (a, b) = (
            store.path().join(&receipts[0].key),
            store.path().join(&receipts[1].key),
        );
        let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        std::fs::write(&a, tb).unwrap();
        std::fs::write(&b, ta).unwrap();
        let mut merge = input;
        use recon_app::steps::partition::Receipt;
        merge.partitions = Some(receipts.into_iter().map(|r| Some(Receipt::Done(r))).collect());
        let err = handler(&ports, merge).await.unwrap_err().0;
        assert_eq!(err.error_name(), "InvalidInput");
        assert!(err.to_string().contains("holds partition 1 of 2"), "{err}");
    }
}
