//! The [`StartExecution`] port on Step Functions: `StartExecution`, idempotent by execution name.

use recon_app::steps::{StartExecution, Started};
use recon_app::AppError;

/// Starts executions of one state machine.
#[derive(Clone, Debug)]
pub struct SfnExecutions {
    pub client: aws_sdk_sfn::Client,
    /// `None` when the function was not given one (`STATE_MACHINE_ARN`): starting is then an error.
    pub state_machine_arn: Option<String>,
}

impl StartExecution for SfnExecutions {
    async fn start(&self, name: &str, input: &serde_json::Value) -> Result<Started, AppError> {
        let arn = self
            .state_machine_arn
            .as_deref()
            .ok_or_else(|| AppError::InvalidInput("STATE_MACHINE_ARN is not set".into()))?;
        start_execution(&self.client, arn, name, input).await
    }
}

/// Starts a state machine execution named `name` (unique per state machine for 90 days, which makes a
/// duplicate trigger a no-op).
pub async fn start_execution(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    name: &str,
    input: &serde_json::Value,
) -> Result<Started, AppError> {
    // StartExecution with the name of a running execution and the same input succeeds and returns that
    // execution (it never starts a second one); look first so the caller can tell a duplicate apart
    let execution_arn = format!(
        "{}:{name}",
        state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    );
    if sfn
        .describe_execution()
        .execution_arn(&execution_arn)
        .send()
        .await
        .is_ok()
    {
        return Ok(Started::AlreadyExists);
    }
    match sfn
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(input.to_string())
        .send()
        .await
    {
        Ok(out) => Ok(Started::New {
            execution_arn: out.execution_arn().to_string(),
        }),
        Err(e) => {
            if let Some(service) = e.as_service_error() {
                if service.is_execution_already_exists() {
                    return Ok(Started::AlreadyExists);
                }
            }
            // the error's kind only (never a dump of the request): throttling, timeouts and 5xx are retried
            let kind = crate::s3::brief(&e);
            Err(if crate::s3::retryable(&e) {
                AppError::Transient(format!(
                    "starting execution {name}: Step Functions throttled or unavailable ({kind})"
                ))
            } else {
                AppError::InvalidInput(format!(
                    "Step Functions refused to start execution {name} of {state_machine_arn}: {kind}; check \
                     STATE_MACHINE_ARN and the function's permissions"
                ))
            })
        }
    }
}
