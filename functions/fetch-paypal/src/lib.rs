//! `fetch-paypal`: stages the day's paypal data (a file dropped in `inbox/paypal/{date}/`, else the API) under
//! `raw/paypal/{date}/{fetch_id}/` and returns the manifest (keys, counts, sha256). Input: `{date, source?}`.
//! The step is [`recon_app::steps::fetch`].

use recon_app::fetch::Manifest;
use recon_app::notify::Mailer;
use recon_app::objects::ObjectStore;
pub use recon_app::steps::fetch::FetchInput;
use recon_app::steps::{Ports, StartExecution};
use recon_aws::lambda::FnError;

/// The source this function stages.
pub const SOURCE: &str = "paypal";

/// The handler: the fetch step for `paypal`.
pub async fn handler<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    input: FetchInput,
) -> Result<Manifest, FnError> {
    Ok(recon_app::steps::fetch::fetch(ports, SOURCE, input).await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    /// Every event of `events/fetch-paypal/` through the handler, on the demo inbox in a local store.
    #[tokio::test]
    async fn the_handler_stages_every_event_file() {
        for (name, event) in recon_tests::local::events("fetch-paypal") {
            let store = recon_tests::local::demo_store();
            let ports = recon_tests::local::ports(store.path(), None);
            let input: FetchInput = serde_json::from_value(event).unwrap();
            let day = input.date.map(|d| d.to_string()).unwrap_or_default();
            let out = handler(&ports, input).await;
            // a key outside the source's inbox is refused; a day with nothing dropped and no API configured
            // is a missing source
            let nothing = !store.path().join(format!("inbox/{SOURCE}/{day}")).is_dir();
            if name.starts_with("bad-") || nothing {
                let want = if nothing {
                    "SourceUnavailable"
                } else {
                    "InvalidInput"
                };
                assert_eq!(out.err().map(|e| e.0.error_name()), Some(want), "{name}");
                continue;
            }
            let m = out.unwrap_or_else(|e| panic!("{name}: {}", e.0));
            assert_eq!(m.source_name, SOURCE, "{name}");
            assert!(
                store.path().join(&m.manifest_key).is_file(),
                "{name}: {}",
                m.manifest_key
            );
        }
    }
}
