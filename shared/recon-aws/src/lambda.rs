//! What every Lambda shares: the configuration built once per cold start, and errors reported to Step
//! Functions under stable names (`errorType`), listed in the README and matched by the state machine.

use lambda_runtime::Diagnostic;
use recon_app::fetch::ApiSources;
use recon_app::AppError;
use recon_core::{RunConfig, Severity};
use recon_store::{DbConfig, Store};
use secrecy::ExposeSecret;

use crate::{Aws, S3Store, SesMailer};

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
        tracing::error!(error_type = e.0.error_name(), error = %e.0, "failed");
        Diagnostic {
            error_type: e.0.error_name().to_string(),
            error_message: e.0.to_string(),
        }
    }
}

/// Configuration and clients, built once per cold start.
pub struct Env {
    pub aws: Aws,
    pub objects: S3Store,
    pub db: Option<Store>,
    pub apis: ApiSources,
    pub mailer: SesMailer,
    pub config: RunConfig,
    pub sender: String,
    pub operations: Vec<String>,
    pub min_severity: Severity,
    pub state_machine_arn: Option<String>,
}

fn var(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

impl Env {
    /// Reads the environment (the seed's variables) and, when `DB_SECRET_ARN` / `PROCESSOR_SECRET_ARN` are set,
    /// the secrets. `with_db` is false for functions that never touch PostgreSQL (fetch, s3-trigger).
    pub async fn load(with_db: bool) -> Result<Env, FnError> {
        let aws = Aws::from_env().await;
        let bucket = var("AWS_S3_BUCKET_NAME")
            .ok_or_else(|| AppError::InvalidInput("AWS_S3_BUCKET_NAME is not set".into()))?;
        let db = if with_db {
            let cfg = match var("DB_SECRET_ARN") {
                Some(arn) => crate::secrets::database(&aws.secrets, &arn).await?,
                None => DbConfig::from_env().map_err(AppError::Store)?,
            };
            Some(Store::new(&cfg).map_err(AppError::Store)?)
        } else {
            None
        };
        let mut apis = ApiSources::from_env();
        if let Some(arn) = var("PROCESSOR_SECRET_ARN") {
            let s = crate::secrets::processors(&aws.secrets, &arn).await?;
            let base = |k: &str, d: &str| {
                var(k)
                    .or_else(|| var("PROCESSOR_API_BASE_URL"))
                    .unwrap_or_else(|| d.into())
            };
            let http = apis.http.clone().unwrap_or_else(recon_sources::api::http_client);
            if let Some(k) = s.stripe_api_key {
                apis.stripe = Some(recon_sources::api::stripe::StripeConfig {
                    base_url: base("STRIPE_API_BASE_URL", "https://api.stripe.com"),
                    api_key: k,
                });
            }
            if let (Some(id), Some(secret)) = (s.paypal_client_id, s.paypal_client_secret) {
                apis.paypal = Some(recon_sources::api::paypal::PaypalClient::new(
                    http,
                    recon_sources::api::paypal::PaypalConfig {
                        base_url: base("PAYPAL_API_BASE_URL", "https://api-m.paypal.com"),
                        client_id: id,
                        client_secret: secret,
                    },
                    apis.policy,
                ));
            }
            if let Some(t) = s.square_access_token {
                apis.square = Some(recon_sources::api::square::SquareConfig {
                    base_url: base("SQUARE_API_BASE_URL", "https://connect.squareup.com"),
                    access_token: t,
                });
            }
            if let (Some(l), Some(t)) = (apis.ledger.as_mut(), s.internal_api_token) {
                l.token = Some(secrecy::SecretString::from(t.expose_secret().to_string()));
            }
        }
        let min_severity = var("NOTIFY_MIN_SEVERITY")
            .unwrap_or_else(|| "HIGH".into())
            .parse()
            .map_err(|e: String| AppError::InvalidInput(format!("NOTIFY_MIN_SEVERITY: {e}")))?;
        let grace_days = var("GRACE_DAYS").and_then(|g| g.parse().ok()).unwrap_or(1);
        Ok(Env {
            objects: S3Store::new(aws.s3.clone(), bucket),
            mailer: SesMailer {
                client: aws.ses.clone(),
                configuration_set: var("SES_CONFIGURATION_SET"),
            },
            aws,
            db,
            apis,
            config: RunConfig {
                grace_days,
                ..RunConfig::default()
            },
            sender: var("SENDER_EMAIL").unwrap_or_else(|| "recon@example.com".into()),
            operations: var("OPERATIONS_EMAIL")
                .unwrap_or_else(|| "operations@example.com".into())
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
            min_severity,
            state_machine_arn: var("STATE_MACHINE_ARN"),
        })
    }

    /// The database, for functions that loaded it.
    pub fn db(&self) -> Result<&Store, FnError> {
        self.db.as_ref().ok_or_else(|| {
            FnError(AppError::Internal(
                "this function was built without a database".into(),
            ))
        })
    }
}

/// Tracing for a function: JSON lines when Lambda asks for them (`AWS_LAMBDA_LOG_FORMAT=JSON`).
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}
