//! Wiring only: configuration, clients and the database pool once per cold start, then the runtime loop.

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    recon_aws::lambda::init_tracing();
    let env = recon_aws::lambda::Env::load(true)
        .await
        .map_err(|e| Error::from(format!("{:?}", e.0)))?;
    let env = &env;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<r#match::MatchInput>| async move { r#match::handler(env, event).await },
    ))
    .await
}
