//! Wiring only: the ports (and the database pool) once per cold start, then the runtime loop.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    recon_aws::lambda::serve(true, |p, i, _deadline| r#match::handler(p, i)).await
}
