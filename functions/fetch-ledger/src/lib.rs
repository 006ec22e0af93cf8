//! `fetch-ledger`: stages the day's ledger data (a file dropped in `inbox/ledger/{date}/`, else the API) under
//! `raw/ledger/{date}/{fetch_id}/` and returns the manifest (keys, counts, sha256). Input: `{date, source?}`.

use lambda_runtime::LambdaEvent;
use recon_aws::handlers::fetch;
pub use recon_aws::handlers::FetchInput;
use recon_aws::lambda::{Env, FnError};

/// The source this function stages.
pub const SOURCE: &str = "ledger";

/// The handler: the fetch use case for `ledger`.
pub async fn handler(env: &Env, event: LambdaEvent<FetchInput>) -> Result<serde_json::Value, FnError> {
    let manifest = fetch(env, SOURCE, event.payload).await?;
    serde_json::to_value(manifest).map_err(|e| FnError(recon_aws::AppError::Internal(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_files_parse() {
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/fetch-ledger"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let parsed: Result<FetchInput, _> = serde_json::from_str(&text);
            assert!(parsed.is_ok(), "{}: {parsed:?}", entry.path().display());
        }
    }
}
