//! Wiring only: configuration and clients once per cold start, then the runtime loop.

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    recon_aws::lambda::init_tracing();
    let env = recon_aws::lambda::Env::load(false)
        .await
        .map_err(|e| Error::from(format!("{:?}", e.0)))?;
    let env = &env;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<fetch_ledger::FetchInput>| async move {
        fetch_ledger::handler(env, event).await
    }))
    .await
}
