//! Wiring only: the ports once per cold start, then the runtime loop.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    recon_aws::lambda::serve(false, |p, i, _deadline| s3_trigger::handler(p, i)).await
}
