//! # recon-aws
//!
//! The AWS adapters of recon's ports, and nothing else (the steps themselves are in `recon_app::steps`).
//! All clients come from one `aws_config` load ([`Aws::load`]); the endpoint is taken from
//! `AWS_ENDPOINT_URL`, so the same code reaches moto server in tests.
//!
//! - [`s3`]: the object store on a versioned S3 bucket (same keys as the local directory store).
//! - [`ses`]: the mailer on SES v2 (the multipart HTML + text message sent raw).
//! - [`sfn`]: starting Step Functions executions, idempotent by execution name.
//! - [`secrets`]: database credentials as RDS stores them and processor API keys, read once per cold start.
//! - [`lambda`]: the ports a function builds once per cold start, and its errors as Step Functions sees them.

pub mod lambda;
pub mod s3;
pub mod secrets;
pub mod ses;
pub mod sfn;

pub use recon_app::AppError;
pub use s3::S3Store;
pub use ses::SesMailer;
pub use sfn::{start_execution, SfnExecutions};

/// The SDK clients, built once per cold start.
#[derive(Clone, Debug)]
pub struct Aws {
    pub s3: aws_sdk_s3::Client,
    pub ses: aws_sdk_sesv2::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub sfn: aws_sdk_sfn::Client,
}

impl Aws {
    /// Loads the SDK's shared configuration (region, credentials, `AWS_ENDPOINT_URL`) once; `ses_region`
    /// (the `SES_REGION` setting), when given, is the region of the SES client only.
    /// The longest an email send waits for SES's answer.
    pub const SES_ATTEMPT_TIMEOUT_SECS: u64 = 15;

    pub async fn load(ses_region: Option<&str>) -> Aws {
        let conf = aws_config::load_from_env().await;
        let s3_conf = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build();
        // one attempt per send: the SDK retrying after a lost answer would send the email again; Step
        // Functions retries the notify task instead, behind its idempotency record
        // a send with no answer within SES_ATTEMPT_TIMEOUT is "sent, perhaps" (AppError::Uncertain), never left
        // to hang until the function's own timeout
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .operation_attempt_timeout(std::time::Duration::from_secs(Self::SES_ATTEMPT_TIMEOUT_SECS))
            .build();
        let mut ses_conf = aws_sdk_sesv2::config::Builder::from(&conf)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(region) = ses_region {
            ses_conf = ses_conf.region(aws_sdk_sesv2::config::Region::new(region.to_string()));
        }
        Aws {
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            ses: aws_sdk_sesv2::Client::from_conf(ses_conf.build()),
            secrets: aws_sdk_secretsmanager::Client::new(&conf),
            sfn: aws_sdk_sfn::Client::new(&conf),
        }
    }
}
