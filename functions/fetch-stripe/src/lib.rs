//! `fetch-stripe`: stages the day's stripe data (a file dropped in `inbox/stripe/{date}/`, else the API) under
//! `raw/stripe/{date}/{fetch_id}/` and returns the manifest (keys, counts, sha256). Input: `{date, source?}`.
//! The handler is the fetch step ([`recon_app::steps::fetch::fetch`]) for [`SOURCE`].

pub use recon_app::keys::Source;

/// The source this function stages.
pub const SOURCE: Source = Source::Stripe;

#[cfg(test)]
mod tests {
    /// Every event of `events/fetch-stripe/` through the handler ([`recon_tests::local::fetch_events`]).
    #[tokio::test]
    async fn the_handler_stages_every_event_file() {
        recon_tests::local::fetch_events(super::SOURCE).await;
    }
}
