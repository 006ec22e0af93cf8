//! Secrets Manager: database credentials (the JSON RDS manages: `username`, `password`, `host`, `port`,
//! `dbname`) and processor API keys, read once per cold start and held as secrets.

use recon_app::settings::{ApiSettings, DatabaseSettings};
use recon_app::AppError;
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
    if crate::s3::retryable(e) {
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

/// Fills the database settings from a Secrets Manager secret (RDS-managed JSON): user and password always;
/// host, port and database name when the secret has them (RDS-managed master secrets hold only username
/// and password, so `DB_HOST`/`DB_PORT`/`DB_NAME` fill in the rest). The secret replaces `DATABASE_URL`.
pub async fn database(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
    db: &mut DatabaseSettings,
) -> Result<(), AppError> {
    let raw = secret_string(client, arn).await?;
    let s: DbSecret = serde_json::from_str(raw.expose_secret()).map_err(|_| {
        AppError::InvalidInput(format!(
            "secret {arn} is not the JSON {{username, password, host, port, dbname}}"
        ))
    })?;
    db.url = None;
    db.host = s.host.or(db.host.take()).or_else(|| Some("127.0.0.1".into()));
    db.port = s.port.or(db.port);
    db.name = s.dbname.or(db.name.take());
    db.user = Some(s.username);
    db.password = Some(s.password);
    Ok(())
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

/// Reads the processor credentials secret into the API settings (a credential the secret holds replaces
/// the environment's).
pub async fn processors(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
    apis: &mut ApiSettings,
) -> Result<(), AppError> {
    let raw = secret_string(client, arn).await?;
    let s: ProcessorSecrets = serde_json::from_str(raw.expose_secret())
        .map_err(|_| AppError::InvalidInput(format!("secret {arn} is not the processor credentials JSON")))?;
    apis.stripe_api_key = s.stripe_api_key.or(apis.stripe_api_key.take());
    apis.paypal_client_id = s.paypal_client_id.or(apis.paypal_client_id.take());
    apis.paypal_client_secret = s.paypal_client_secret.or(apis.paypal_client_secret.take());
    apis.square_access_token = s.square_access_token.or(apis.square_access_token.take());
    apis.internal_api_token = s.internal_api_token.or(apis.internal_api_token.take());
    Ok(())
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
