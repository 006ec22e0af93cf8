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

/// Which field of a database secret is missing or of the wrong type, named without its value (serde's own
/// messages quote the value, which may be the password).
fn db_secret_fault(text: &str) -> String {
    let Ok(serde_json::Value::Object(v)) = serde_json::from_str::<serde_json::Value>(text) else {
        return "it is not a JSON object".into();
    };
    for (field, want) in [("username", "a string"), ("password", "a string")] {
        match v.get(field) {
            None => return format!("the field `{field}` is missing"),
            Some(x) if !x.is_string() => return format!("the field `{field}` is not {want}"),
            Some(_) => {}
        }
    }
    for (field, ok) in [
        ("host", v.get("host").is_none_or(|x| x.is_string() || x.is_null())),
        (
            "dbname",
            v.get("dbname").is_none_or(|x| x.is_string() || x.is_null()),
        ),
        ("port", v.get("port").is_none_or(|x| x.is_u64() || x.is_null())),
    ] {
        if !ok {
            return format!(
                "the field `{field}` is not a {}",
                if field == "port" { "port number" } else { "string" }
            );
        }
    }
    "its fields do not fit".into()
}

/// A Secrets Manager error: throttling, timeouts, 5xx and connection problems are `Retryable`; anything else
/// (not found, access denied) names the secret and stops.
fn secret_error<E: aws_sdk_secretsmanager::error::ProvideErrorMetadata>(
    arn: &str,
    e: &aws_sdk_secretsmanager::error::SdkError<E, aws_sdk_secretsmanager::config::http::HttpResponse>,
) -> AppError {
    // only the error's kind, never a dump of the request or response
    let short = crate::s3::brief(e);
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
            "secret {arn} is not the JSON {{username, password, host, port, dbname}}: {}",
            db_secret_fault(raw.expose_secret())
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
#[serde(deny_unknown_fields)]
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
    let s: ProcessorSecrets = serde_json::from_str(raw.expose_secret()).map_err(|e| {
        // an unknown (misspelled) key is named; any other fault is not quoted (it may hold a credential)
        let why = match e.to_string() {
            m if m.starts_with("unknown field") => m.split(" at line").next().unwrap_or("").to_string(),
            _ => "its fields are not the expected strings".to_string(),
        };
        AppError::InvalidInput(format!(
            "secret {arn} is not the processor credentials JSON: {why}"
        ))
    })?;
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
    fn a_faulty_database_secret_names_the_field_never_the_value() {
        assert_eq!(
            db_secret_fault(r#"{"username":"u"}"#),
            "the field `password` is missing"
        );
        let why = db_secret_fault(r#"{"username":"u","password":12345678}"#);
        assert_eq!(why, "the field `password` is not a string");
        let why = db_secret_fault(r#"{"username":"u","password":"p","port":"x5432"}"#);
        assert!(why.contains("`port`") && !why.contains("x5432"), "{why}");
    }

    #[test]
    fn a_misspelled_processor_secret_key_is_refused() {
        let r: Result<ProcessorSecrets, _> = serde_json::from_str(r#"{"stripe_apikey":"sk_live_x"}"#);
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.starts_with("unknown field `stripe_apikey`") && !e.contains("sk_live_x"),
            "{e}"
        );
    }

    #[test]
    fn throttling_and_timeouts_are_retryable() {
        use aws_sdk_secretsmanager::config::http::HttpResponse;
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        let e: aws_sdk_secretsmanager::error::SdkError<GetSecretValueError, HttpResponse> =
            aws_sdk_secretsmanager::error::SdkError::timeout_error("read timed out");
        let err = secret_error("arn:aws:secretsmanager:us-east-1:1:secret:db", &e);
        assert_eq!(err.error_name(), "Retryable", "{err}");
        assert!(err
            .to_string()
            .contains("arn:aws:secretsmanager:us-east-1:1:secret:db"));
    }
}
