//! `notify`: sends the operations email (SES v2, HTML + text) when a run reaches `NOTIFY_MIN_SEVERITY` or a
//! processor failed; returns the message id or `skipped`. Input: `{date, runs, failures}`.

use lambda_runtime::LambdaEvent;
pub use recon_aws::handlers::{NotifyInput, NotifyOutput};
use recon_aws::lambda::{Env, FnError};

/// The handler: the notify use case.
pub async fn handler(env: &Env, event: LambdaEvent<NotifyInput>) -> Result<NotifyOutput, FnError> {
    recon_aws::handlers::notify(env, event.payload).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_files_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/notify");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let parsed: Result<NotifyInput, _> = serde_json::from_str(&text);
            assert!(parsed.is_ok(), "{}: {parsed:?}", entry.path().display());
            n += 1;
        }
        assert!(n > 0, "no events in {dir}");
    }
}
