//! Wiring only: the ports (the database reads the top items of each run) once per cold start, then the
//! runtime loop.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    recon_aws::lambda::serve(true, |p, i, _deadline| notify::handler(p, i)).await
}
