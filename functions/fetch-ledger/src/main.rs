//! Wiring only: the ports once per cold start, then the fetch step for this source per event.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    recon_aws::lambda::serve_fetch(fetch_ledger::SOURCE).await
}
