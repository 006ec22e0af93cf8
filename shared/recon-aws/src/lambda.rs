//! What every Lambda shares: the ports built once per cold start from [`Settings`] (secrets filled in), and
//! errors reported to Step Functions under stable names (`errorType`), listed in the README and matched by
//! the state machine.

use lambda_runtime::Diagnostic;
use recon_app::settings::Settings;
use recon_app::steps::Ports;
use recon_app::AppError;
use recon_store::Store;

use crate::{Aws, S3Store, SesMailer, SfnExecutions};

/// Every stable error name a function can report. The state machine's `ErrorEquals` lists only these (and
/// the `Lambda.*`/`States.*` names); a test checks the two agree.
pub const ERROR_NAMES: &[&str] = &[
    "Retryable",
    "DataNotReady",
    "AuthenticationFailed",
    "SourceUnavailable",
    "InvalidInput",
    "DatabaseError",
    "InternalError",
];

/// A use-case error as a Lambda reports it.
#[derive(Debug)]
pub struct FnError(pub AppError);

impl From<AppError> for FnError {
    fn from(e: AppError) -> Self {
        FnError(e)
    }
}

impl From<FnError> for Diagnostic {
    fn from(e: FnError) -> Diagnostic {
        let message = e.0.chain();
        tracing::error!(error_type = e.0.error_name(), error = %message, "failed");
        Diagnostic {
            error_type: e.0.error_name().to_string(),
            error_message: message,
        }
    }
}

/// The ports of a function in AWS.
pub type AwsPorts = Ports<S3Store, SesMailer, SfnExecutions>;

/// Builds a function's ports once per cold start: the settings from the environment, the secrets
/// (`DB_SECRET_ARN`, `PROCESSOR_SECRET_ARN`) filled into them, the SDK clients and, when `with_db`, the
/// database pool (migrated on first use). `with_db` is false for functions that never touch PostgreSQL
/// (fetch, s3-trigger).
pub async fn ports(with_db: bool) -> Result<AwsPorts, FnError> {
    let mut settings = Settings::from_env()?;
    settings.install();
    let aws = Aws::load(settings.ses_region.as_deref()).await;
    let bucket = settings
        .bucket
        .clone()
        .ok_or_else(|| AppError::InvalidInput("AWS_S3_BUCKET_NAME is not set".into()))?;
    if let Some(arn) = settings.database.secret_arn.clone() {
        if with_db {
            crate::secrets::database(&aws.secrets, &arn, &mut settings.database).await?;
        }
    }
    if let Some(arn) = settings.apis.secret_arn.clone() {
        crate::secrets::processors(&aws.secrets, &arn, &mut settings.apis).await?;
    }
    let db = if with_db {
        Some(Store::new(&settings.database.config()?).map_err(AppError::Store)?)
    } else {
        None
    };
    tracing::info!(
        environment = settings.environment.as_deref().unwrap_or("-"),
        "ports ready"
    );
    Ok(Ports::new(
        S3Store::new(aws.s3.clone(), bucket),
        SesMailer {
            client: aws.ses.clone(),
            configuration_set: settings.ses_configuration_set.clone(),
        },
        SfnExecutions {
            client: aws.sfn.clone(),
            state_machine_arn: settings.state_machine_arn.clone(),
        },
        db,
        settings,
    ))
}

/// A function's `main`: tracing, the ports once per cold start (`with_db`: whether it uses PostgreSQL), then
/// the runtime loop calling `handler` with each event's payload.
pub async fn serve<I, O, F, Fut>(with_db: bool, handler: F) -> Result<(), lambda_runtime::Error>
where
    I: serde::de::DeserializeOwned + Send + 'static,
    O: serde::Serialize + Send + 'static,
    F: Fn(&'static AwsPorts, I, Option<std::time::Instant>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<O, FnError>> + Send + 'static,
{
    recon_app::alloc::batch_settings();
    init_tracing();
    let (purge_delay_ms, large_os_pages) = recon_app::alloc::in_effect();
    tracing::info!(purge_delay_ms, large_os_pages, "allocator settings in effect");
    let ports = ports(with_db)
        .await
        .map_err(|e| lambda_runtime::Error::from(format!("{:?}", e.0)))?;
    // one per process, alive until the runtime stops it
    let ports: &'static AwsPorts = Box::leak(Box::new(ports));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let deadline = deadline_of(&event.context);
            let call = decode::<I>(event.payload).map(|input| handler(ports, input, deadline));
            async move { call?.await }
        },
    ))
    .await
}

/// An event as the function's input type: a payload that is not one is `InvalidInput` naming what is wrong
/// (not the runtime's own deserializer error type).
pub fn decode<I: serde::de::DeserializeOwned>(payload: serde_json::Value) -> Result<I, FnError> {
    serde_json::from_value(payload).map_err(|e| {
        FnError(AppError::InvalidInput(format!(
            "the event is not this function's input ({e}); see the README's event shapes and events/"
        )))
    })
}

/// The invocation's deadline (the context's, milliseconds since the epoch) as an instant of this process's
/// clock; `None` when the runtime gives none.
pub fn deadline_of(context: &lambda_runtime::Context) -> Option<std::time::Instant> {
    if context.deadline == 0 {
        return None;
    }
    let at = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(context.deadline))?;
    let left = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Some(std::time::Instant::now() + left)
}

/// The `main` of a fetch function: [`serve`] with the fetch step for `source` (no database).
pub async fn serve_fetch(source: recon_app::keys::Source) -> Result<(), lambda_runtime::Error> {
    serve(false, move |ports, input, deadline| async move {
        Ok(recon_app::steps::fetch::fetch(ports, source, input, deadline).await?)
    })
    .await
}

/// Tracing for a function: JSON lines when Lambda asks for them (`AWS_LAMBDA_LOG_FORMAT=JSON`).
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_event_is_invalid_input_naming_the_field() {
        let bad = serde_json::json!({"date": "2025-01-15", "processor": "venmo", "manifests": []});
        let err = decode::<recon_app::steps::r#match::MatchInput>(bad)
            .err()
            .map(|e| e.0);
        let err = err.unwrap_or_else(|| unreachable!("venmo is no processor"));
        assert_eq!(err.error_name(), "InvalidInput");
        assert!(err.to_string().contains("venmo"), "{err}");
    }
}
