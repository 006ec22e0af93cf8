//! `fetch-square`: stages the day's square data (a file dropped in `inbox/square/{date}/`, else the API) under
//! `raw/square/{date}/{fetch_id}/` and returns the manifest (keys, counts, sha256). Input: `{date, source?}`.
//! The handler is the fetch step ([`recon_app::steps::fetch::fetch`]) for [`SOURCE`].

pub use recon_app::keys::Source;

/// The source this function stages.
pub const SOURCE: Source = Source::Square;

#[cfg(test)]
mod tests {
    /// Every event of `events/fetch-square/` through the handler ([`recon_tests::local::fetch_events`]).
    #[tokio::test]
    async fn the_handler_stages_every_event_file() {
        recon_tests::local::fetch_events(super::SOURCE).await;
    }
}
