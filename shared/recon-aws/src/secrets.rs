//! Secrets Manager: database credentials (the JSON RDS manages: `username`, `password`, `host`, `port`,
//! `dbname`) and processor API keys, read once per cold start and held as secrets.

use recon_app::AppError;
use recon_store::DbConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Deserialize)]
struct DbSecret {
    username: String,
    password: SecretString,
    host: Option<String>,
    port: Option<u16>,
    dbname: Option<String>,
}

/// A Secrets Manager error: throttling, timeouts, 5xx and connection problems are `Retryable`; anything else
/// (not found, access denied) names the secret and stops.
fn secret_error<E: std::fmt::Debug, R: std::fmt::Debug>(
    arn: &str,
    e: &aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> AppError {
    let what = match e {
        aws_sdk_secretsmanager::error::SdkError::ServiceError(s) => format!("{:?}", s.err()),
        other => format!("{other:?}"),
    };
    // only the error's kind, never a dump of the request or response
    let short: String = what.chars().take(160).collect();
    if crate::retryable(e) {
        AppError::Transient(format!(
            "reading secret {arn}: throttled or unavailable ({short}); retry later"
        ))
    } else {
        AppError::InvalidInput(format!("cannot read secret {arn}: {short}"))
    }
}

async fn secret_string(client: &aws_sdk_secretsmanager::Client, arn: &str) -> Result<SecretString, AppError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| secret_error(arn, &e))?;
    out.secret_string()
        .map(|s| SecretString::from(s.to_string()))
        .ok_or_else(|| AppError::InvalidInput(format!("secret {arn} has no SecretString")))
}

/// Database settings from a Secrets Manager secret (RDS-managed JSON). `DB_HOST`/`DB_PORT`/`DB_NAME` fill
/// in what the secret lacks (RDS-managed master secrets hold only username and password).
pub async fn database(client: &aws_sdk_secretsmanager::Client, arn: &str) -> Result<DbConfig, AppError> {
    let raw = secret_string(client, arn).await?;
    let s: DbSecret = serde_json::from_str(raw.expose_secret()).map_err(|_| {
        AppError::InvalidInput(format!(
            "secret {arn} is not the JSON {{username, password, host, port, dbname}}"
        ))
    })?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let host = s
        .host
        .or_else(|| env("DB_HOST"))
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = s
        .port
        .or_else(|| env("DB_PORT").and_then(|p| p.parse().ok()))
        .unwrap_or(5432);
    let dbname = s
        .dbname
        .or_else(|| env("DB_NAME"))
        .unwrap_or_else(|| "recon".into());
    Ok(DbConfig::from_parts(
        &host,
        port,
        &dbname,
        &s.username,
        Some(s.password.expose_secret()),
    ))
}

/// Processor credentials from one secret: `{"stripe_api_key": …, "paypal_client_id": …,
/// "paypal_client_secret": …, "square_access_token": …, "internal_api_token": …}` (all optional).
#[derive(Deserialize, Default)]
pub struct ProcessorSecrets {
    pub stripe_api_key: Option<SecretString>,
    pub paypal_client_id: Option<String>,
    pub paypal_client_secret: Option<SecretString>,
    pub square_access_token: Option<SecretString>,
    pub internal_api_token: Option<SecretString>,
}

impl std::fmt::Debug for ProcessorSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorSecrets")
            .field(
                "stripe_api_key",
                &self.stripe_api_key.as_ref().map(|_| "<redacted>"),
            )
            .field("paypal_client_id", &self.paypal_client_id)
            .field(
                "paypal_client_secret",
                &self.paypal_client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "square_access_token",
                &self.square_access_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Reads the processor credentials secret.
pub async fn processors(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<ProcessorSecrets, AppError> {
    let raw = secret_string(client, arn).await?;
    serde_json::from_str(raw.expose_secret())
        .map_err(|_| AppError::InvalidInput(format!("secret {arn} is not the processor credentials JSON")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_timeouts_are_retryable() {
        let e: aws_sdk_secretsmanager::error::SdkError<(), ()> =
            aws_sdk_secretsmanager::error::SdkError::timeout_error("read timed out");
        let err = secret_error("arn:aws:secretsmanager:us-east-1:1:secret:db", &e);
        assert_eq!(err.error_name(), "Retryable", "{err}");
        assert!(err
            .to_string()
            .contains("arn:aws:secretsmanager:us-east-1:1:secret:db"));
    }
}
