//! Everything recon reads from its environment, in one type, read in one place ([`Settings::from_env`]),
//! once per process. The CLI overrides it with its flags; in AWS, Secrets Manager fills the database and
//! API credentials into it ([`Settings::database`], [`Settings::apis`]) before anything is built from it.
//! The README's configuration table lists exactly [`Settings::VARIABLES`] (a test checks).
//!
//! Not here, because they are not recon's: the AWS SDK's own variables (`AWS_REGION`, `AWS_ENDPOINT_URL`,
//! credentials), the Lambda runtime's (`AWS_LAMBDA_*`) and mimalloc's (`MIMALLOC_*`).

use std::path::PathBuf;

use recon_core::{ItemRules, RunConfig, Severity};
use recon_sources::api::{http_client, ledger, paypal, square, stripe, RetryPolicy};
use recon_store::DbConfig;
use secrecy::SecretString;

use crate::fetch::ApiSources;
use crate::pipeline::NotifySettings;
use crate::AppError;

/// How to reach PostgreSQL: `url` when set, else the parts (a Secrets Manager secret fills them in AWS).
#[derive(Clone, Debug, Default)]
pub struct DatabaseSettings {
    pub url: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub name: Option<String>,
    pub user: Option<String>,
    pub password: Option<SecretString>,
    /// `DB_SECRET_ARN`: the RDS-managed secret holding the credentials (AWS).
    pub secret_arn: Option<String>,
}

/// The local server recon uses when nothing else is configured.
pub const LOCAL_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/recon";

impl DatabaseSettings {
    /// The connection settings: `url`, else the parts when a host is known, else [`LOCAL_DATABASE_URL`].
    pub fn config(&self) -> Result<DbConfig, AppError> {
        use secrecy::ExposeSecret;
        if let Some(url) = &self.url {
            return DbConfig::from_url(url).map_err(AppError::Store);
        }
        match &self.host {
            Some(host) => Ok(DbConfig::from_parts(
                host,
                self.port.unwrap_or(5432),
                self.name.as_deref().unwrap_or("recon"),
                self.user.as_deref().unwrap_or("postgres"),
                self.password.as_ref().map(|p| p.expose_secret()),
            )),
            None => DbConfig::from_url(LOCAL_DATABASE_URL).map_err(AppError::Store),
        }
    }
}

/// Processor and ledger API credentials and endpoints.
#[derive(Clone, Debug, Default)]
pub struct ApiSettings {
    pub stripe_api_key: Option<SecretString>,
    pub paypal_client_id: Option<String>,
    pub paypal_client_secret: Option<SecretString>,
    pub square_access_token: Option<SecretString>,
    pub internal_api_base_url: Option<String>,
    pub internal_api_token: Option<SecretString>,
    /// One base URL for every processor API (a stub in tests); the per-processor ones win.
    pub processor_base_url: Option<String>,
    pub stripe_base_url: Option<String>,
    pub paypal_base_url: Option<String>,
    pub square_base_url: Option<String>,
    /// `PROCESSOR_SECRET_ARN`: the secret holding the credentials above (AWS).
    pub secret_arn: Option<String>,
}

impl ApiSettings {
    fn base(&self, own: &Option<String>, default: &str) -> String {
        own.clone()
            .or_else(|| self.processor_base_url.clone())
            .unwrap_or_else(|| default.to_string())
    }

    /// The API clients of every source whose credentials are set.
    pub fn sources(&self) -> ApiSources {
        let http = http_client();
        let policy = RetryPolicy::default();
        ApiSources {
            stripe: self.stripe_api_key.clone().map(|k| stripe::StripeConfig {
                base_url: self.base(&self.stripe_base_url, "https://api.stripe.com"),
                api_key: k,
            }),
            paypal: match (&self.paypal_client_id, &self.paypal_client_secret) {
                (Some(id), Some(secret)) => Some(paypal::PaypalClient::new(
                    http.clone(),
                    paypal::PaypalConfig {
                        base_url: self.base(&self.paypal_base_url, "https://api-m.paypal.com"),
                        client_id: id.clone(),
                        client_secret: secret.clone(),
                    },
                    policy,
                )),
                _ => None,
            },
            square: self.square_access_token.clone().map(|t| square::SquareConfig {
                base_url: self.base(&self.square_base_url, "https://connect.squareup.com"),
                access_token: t,
            }),
            ledger: self
                .internal_api_base_url
                .clone()
                .map(|b| ledger::LedgerApiConfig {
                    base_url: b,
                    token: self.internal_api_token.clone(),
                }),
            http: Some(http),
            policy,
        }
    }
}

/// recon's configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `ENVIRONMENT`: a label (dev, prod) logged at start.
    pub environment: Option<String>,
    /// `AWS_S3_BUCKET_NAME`: the bucket of raw data, manifests and reports (AWS).
    pub bucket: Option<String>,
    pub database: DatabaseSettings,
    pub apis: ApiSettings,
    /// `STRIPE_REFERENCE_METADATA_KEYS`: Stripe metadata keys tried as references after `order_id`.
    pub stripe_reference_metadata_keys: Vec<String>,
    /// `GRACE_DAYS` (the CLI's `--grace-days` wins).
    pub grace_days: u32,
    /// `SETTLE_SECONDS`: how long the trigger lets drops of one processor and date gather into one execution
    /// (0: an execution per dropped file).
    pub settle_seconds: u32,
    /// `NOTIFY_MIN_SEVERITY`, `SENDER_EMAIL`, `OPERATIONS_EMAIL`.
    pub notify: NotifySettings,
    /// `SES_REGION`: the SES client's region when it differs from the functions' (AWS).
    pub ses_region: Option<String>,
    /// `SES_CONFIGURATION_SET` (AWS).
    pub ses_configuration_set: Option<String>,
    /// `STATE_MACHINE_ARN`: the state machine `s3-trigger` and `recon start` start.
    pub state_machine_arn: Option<String>,
    /// `RECON_OUTBOX`: the directory `.eml` files are written to locally.
    pub outbox: PathBuf,
    /// `RECON_LOG`: the CLI's log filter.
    pub log_filter: String,
    /// `LOOKBACK_DAYS`, `ESCALATE_HIGH_DAYS`, `ESCALATE_CRITICAL_DAYS`: items' lookback and escalation by age.
    pub items: ItemRules,
    /// Who acts on items from the CLI: `RECON_ACTOR`, else the OS user (`USER`, then `LOGNAME`).
    pub actor: Option<String>,
}

impl Settings {
    /// Every variable [`Settings::from_env`] reads.
    pub const VARIABLES: &'static [&'static str] = &[
        "ENVIRONMENT",
        "AWS_S3_BUCKET_NAME",
        "DATABASE_URL",
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "DB_USER",
        "DB_PASSWORD",
        "DB_SECRET_ARN",
        "STRIPE_API_KEY",
        "PAYPAL_CLIENT_ID",
        "PAYPAL_CLIENT_SECRET",
        "SQUARE_ACCESS_TOKEN",
        "PROCESSOR_API_BASE_URL",
        "STRIPE_API_BASE_URL",
        "PAYPAL_API_BASE_URL",
        "SQUARE_API_BASE_URL",
        "INTERNAL_API_BASE_URL",
        "INTERNAL_API_TOKEN",
        "PROCESSOR_SECRET_ARN",
        "STRIPE_REFERENCE_METADATA_KEYS",
        "GRACE_DAYS",
        "SETTLE_SECONDS",
        "NOTIFY_MIN_SEVERITY",
        "SENDER_EMAIL",
        "OPERATIONS_EMAIL",
        "SES_REGION",
        "SES_CONFIGURATION_SET",
        "STATE_MACHINE_ARN",
        "RECON_OUTBOX",
        "RECON_LOG",
        "LOOKBACK_DAYS",
        "ESCALATE_HIGH_DAYS",
        "ESCALATE_CRITICAL_DAYS",
        "RECON_ACTOR",
        "USER",
        "LOGNAME",
    ];

    /// The process environment. A value that is set but wrong (a grace period that is not a number of days,
    /// an unknown severity, a port that is not a port) is an error naming the variable, never a default.
    pub fn from_env() -> Result<Settings, AppError> {
        Settings::from_vars(|k| std::env::var(k).ok())
    }

    /// From any source of variables (tests); blank values count as unset.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Settings, AppError> {
        let var = |k: &str| {
            debug_assert!(
                Settings::VARIABLES.contains(&k),
                "{k} is not in Settings::VARIABLES"
            );
            get(k).filter(|v| !v.trim().is_empty())
        };
        let secret = |k: &str| var(k).map(SecretString::from);
        let bad = |k: &str, v: &str, what: &str| {
            AppError::InvalidInput(format!("{k}={v:?} is not {what}; fix the variable or unset it"))
        };
        let port = match var("DB_PORT") {
            Some(p) => Some(
                p.trim()
                    .parse::<u16>()
                    .map_err(|_| bad("DB_PORT", &p, "a port number"))?,
            ),
            None => None,
        };
        let grace_days = match var("GRACE_DAYS") {
            Some(g) => g
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|d| *d <= 366)
                .ok_or_else(|| bad("GRACE_DAYS", &g, "a number of days from 0 to 366"))?,
            None => 1,
        };
        let settle_seconds = match var("SETTLE_SECONDS") {
            Some(g) => g
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|d| *d <= 3600)
                .ok_or_else(|| bad("SETTLE_SECONDS", &g, "a number of seconds from 0 to 3600"))?,
            None => 300,
        };
        let days = |k: &str, default: u32| -> Result<u32, AppError> {
            match var(k) {
                Some(g) => g
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|d| *d <= 3660)
                    .ok_or_else(|| bad(k, &g, "a number of days from 0 to 3660")),
                None => Ok(default),
            }
        };
        let defaults = ItemRules::default();
        let items = ItemRules {
            lookback_days: days("LOOKBACK_DAYS", defaults.lookback_days)?,
            high_after_days: days("ESCALATE_HIGH_DAYS", defaults.high_after_days)?,
            critical_after_days: days("ESCALATE_CRITICAL_DAYS", defaults.critical_after_days)?,
        };
        if items.critical_after_days < items.high_after_days {
            return Err(AppError::InvalidInput(format!(
                "ESCALATE_CRITICAL_DAYS={} is below ESCALATE_HIGH_DAYS={}: an item must be HIGH before it is \
                 CRITICAL; fix either variable",
                items.critical_after_days, items.high_after_days
            )));
        }
        let min_severity: Severity = match var("NOTIFY_MIN_SEVERITY") {
            Some(s) => s
                .parse()
                .map_err(|_| bad("NOTIFY_MIN_SEVERITY", &s, "LOW, MEDIUM, HIGH or CRITICAL"))?,
            None => Severity::High,
        };
        let list = |s: String| -> Vec<String> {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        };
        Ok(Settings {
            environment: var("ENVIRONMENT"),
            bucket: var("AWS_S3_BUCKET_NAME"),
            database: DatabaseSettings {
                url: var("DATABASE_URL"),
                host: var("DB_HOST"),
                port,
                name: var("DB_NAME"),
                user: var("DB_USER"),
                password: secret("DB_PASSWORD"),
                secret_arn: var("DB_SECRET_ARN"),
            },
            apis: ApiSettings {
                stripe_api_key: secret("STRIPE_API_KEY"),
                paypal_client_id: var("PAYPAL_CLIENT_ID"),
                paypal_client_secret: secret("PAYPAL_CLIENT_SECRET"),
                square_access_token: secret("SQUARE_ACCESS_TOKEN"),
                internal_api_base_url: var("INTERNAL_API_BASE_URL"),
                internal_api_token: secret("INTERNAL_API_TOKEN"),
                processor_base_url: var("PROCESSOR_API_BASE_URL"),
                stripe_base_url: var("STRIPE_API_BASE_URL"),
                paypal_base_url: var("PAYPAL_API_BASE_URL"),
                square_base_url: var("SQUARE_API_BASE_URL"),
                secret_arn: var("PROCESSOR_SECRET_ARN"),
            },
            stripe_reference_metadata_keys: var("STRIPE_REFERENCE_METADATA_KEYS")
                .map(list)
                .unwrap_or_default(),
            grace_days,
            settle_seconds,
            notify: NotifySettings {
                min_severity,
                from: var("SENDER_EMAIL").unwrap_or_else(|| "recon@example.com".into()),
                to: list(var("OPERATIONS_EMAIL").unwrap_or_else(|| "operations@example.com".into())),
            },
            ses_region: var("SES_REGION"),
            ses_configuration_set: var("SES_CONFIGURATION_SET"),
            state_machine_arn: var("STATE_MACHINE_ARN"),
            outbox: var("RECON_OUTBOX")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("./.recon/outbox")),
            log_filter: var("RECON_LOG").unwrap_or_else(|| "info".into()),
            items,
            actor: var("RECON_ACTOR")
                .or_else(|| var("USER"))
                .or_else(|| var("LOGNAME"))
                .map(|a| a.trim().to_string()),
        })
    }

    /// The matching configuration of a run.
    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            grace_days: self.grace_days,
            items: self.items,
            ..RunConfig::default()
        }
    }

    /// Makes the process-wide parts take effect (the Stripe parser's reference metadata keys). Call once,
    /// at start, before anything is parsed.
    pub fn install(&self) {
        recon_sources::stripe::set_reference_metadata_keys(&self.stripe_reference_metadata_keys);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, AppError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn nothing_set_gives_the_local_defaults() {
        let s = from(&[]).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(s.grace_days, 1);
        assert_eq!(s.notify.min_severity, Severity::High);
        assert_eq!(s.notify.to, ["operations@example.com"]);
        let url = format!("{:?}", s.database.config().map(|c| c.pg.get_hosts().len()));
        assert_eq!(url, "Ok(1)");
        assert!(s.apis.sources().stripe.is_none());
    }

    #[test]
    fn a_wrong_value_names_its_variable() {
        for (k, v) in [
            ("GRACE_DAYS", "two"),
            ("GRACE_DAYS", "400"),
            ("DB_PORT", "x"),
            ("NOTIFY_MIN_SEVERITY", "LOUD"),
        ] {
            let e = from(&[(k, v)]).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(k) && e.contains(v), "{k}={v}: {e}");
        }
    }

    #[test]
    fn the_per_processor_base_url_wins_over_the_shared_one() {
        let s = from(&[
            ("STRIPE_API_KEY", "sk_test_x"),
            ("SQUARE_ACCESS_TOKEN", "sq"),
            ("PROCESSOR_API_BASE_URL", "http://stub"),
            ("STRIPE_API_BASE_URL", "http://stripe-stub"),
        ])
        .unwrap_or_else(|e| unreachable!("{e}"));
        let apis = s.apis.sources();
        assert_eq!(
            apis.stripe.map(|c| c.base_url).as_deref(),
            Some("http://stripe-stub")
        );
        assert_eq!(apis.square.map(|c| c.base_url).as_deref(), Some("http://stub"));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = from(&[("STRIPE_API_KEY", "sk_live_secret"), ("DB_PASSWORD", "hunter2")])
            .unwrap_or_else(|e| unreachable!("{e}"));
        let dbg = format!("{s:?}");
        assert!(
            !dbg.contains("sk_live_secret") && !dbg.contains("hunter2"),
            "{dbg}"
        );
    }
}

#[cfg(test)]
mod readme {
    use super::Settings;

    /// The variables named in the first column of the README's configuration table.
    fn documented() -> Vec<String> {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("\n## Configuration\n")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap_or("");
        section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .filter_map(|l| l.split('|').nth(1))
            .flat_map(|cell| {
                cell.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn the_readme_lists_exactly_the_variables_settings_reads() {
        let mut documented = documented();
        documented.sort();
        let mut read: Vec<String> = Settings::VARIABLES.iter().map(|v| v.to_string()).collect();
        read.sort();
        assert_eq!(documented, read, "README ## Configuration vs Settings::VARIABLES");
    }
}
