//! `match`: reconciles one processor's day from the staged data its manifests list, writes the reports,
//! records the run (idempotent per execution + processor + date) and returns the section 8 summary.
//! Input: `{date, processor, manifests, execution?, trigger?}`; for a sharded run also `partition: {index,
//! count}` (one Distributed Map iteration: returns a receipt) or `partitions: [receipts]` (the merge).

use lambda_runtime::LambdaEvent;
pub use recon_aws::handlers::MatchInput;
use recon_aws::handlers::MatchOutput;
use recon_aws::lambda::{Env, FnError};

/// The handler: the match use case.
pub async fn handler(env: &Env, event: LambdaEvent<MatchInput>) -> Result<MatchOutput, FnError> {
    recon_aws::handlers::match_step(env, event.payload).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_files_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/match");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let parsed: Result<MatchInput, _> = serde_json::from_str(&text);
            assert!(parsed.is_ok(), "{}: {parsed:?}", entry.path().display());
            n += 1;
        }
        assert!(n > 0, "no events in {dir}");
    }
}
