//! # recon-aws
//!
//! The AWS edge of recon. All clients come from one `aws_config` load ([`Aws::from_env`]); the endpoint is
//! taken from `AWS_ENDPOINT_URL`, so the same code reaches moto server in tests.
//!
//! - [`S3Store`]: the [`ObjectStore`] port on a versioned S3 bucket (same keys as the local directory store).
//! - [`SesMailer`]: the [`Mailer`] port on SES v2 (the multipart HTML + text message sent raw).
//! - [`secrets`]: database credentials as RDS stores them and processor API keys, read once per cold start.
//! - [`start_execution`]: Step Functions `StartExecution`, idempotent by execution name.

pub mod handlers;
pub mod lambda;
pub mod secrets;

use std::io::Read;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use recon_app::notify::{Email, Mailer};
use recon_app::objects::{ObjectError, ObjectStore};
pub use recon_app::AppError;

/// The SDK clients, built once per cold start.
#[derive(Clone, Debug)]
pub struct Aws {
    pub s3: aws_sdk_s3::Client,
    pub ses: aws_sdk_sesv2::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub sfn: aws_sdk_sfn::Client,
}

impl Aws {
    /// Loads the shared configuration (region, credentials, `AWS_ENDPOINT_URL`) once. `SES_REGION`, when set,
    /// overrides the region of the SES client only.
    pub async fn from_env() -> Aws {
        let conf = aws_config::load_from_env().await;
        let s3_conf = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build();
        let mut ses_conf = aws_sdk_sesv2::config::Builder::from(&conf);
        if let Ok(region) = std::env::var("SES_REGION") {
            if !region.trim().is_empty() {
                ses_conf = ses_conf.region(aws_sdk_sesv2::config::Region::new(region));
            }
        }
        Aws {
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            ses: aws_sdk_sesv2::Client::from_conf(ses_conf.build()),
            secrets: aws_sdk_secretsmanager::Client::new(&conf),
            sfn: aws_sdk_sfn::Client::new(&conf),
        }
    }
}

/// Is an SDK error worth retrying (throttling, timeouts, 5xx, connection problems)?
pub(crate) fn retryable<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> bool
where
    E: std::fmt::Debug,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::SdkError;
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(s) => {
            let dbg = format!("{:?} {:?}", s.raw(), s.err());
            dbg.contains("status: StatusCode(5")
                || dbg.contains("SlowDown")
                || dbg.contains("Throttl")
                || dbg.contains("TooManyRequests")
                || dbg.contains("RequestLimitExceeded")
        }
        _ => false,
    }
}

fn obj_err<E: std::error::Error + 'static, R: std::fmt::Debug>(
    op: &'static str,
    key: &str,
    e: aws_sdk_s3::error::SdkError<E, R>,
) -> ObjectError {
    let retry = retryable(&e);
    let reason = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
    ObjectError {
        op,
        key: key.to_string(),
        reason,
        retryable: retry,
    }
}

/// The object store on S3.
#[derive(Clone, Debug)]
pub struct S3Store {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    /// How long report links in emails stay valid (default 7 days, the SigV4 maximum).
    pub link_ttl: Duration,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Store {
            client,
            bucket: bucket.into(),
            link_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl ObjectStore for S3Store {
    async fn get(&self, key: &str) -> Result<Vec<u8>, ObjectError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| obj_err("get", key, e))?;
        let body = out.body.collect().await.map_err(|e| ObjectError {
            op: "get",
            key: key.to_string(),
            reason: e.to_string(),
            retryable: true,
        })?;
        Ok(body.into_bytes().to_vec())
    }

    /// Streams the object: the parser reads the S3 body as it arrives (a blocking reader bridged onto the
    /// runtime), so a 300 MB settlement file is never held in memory whole.
    async fn open(&self, key: &str) -> Result<(Box<dyn Read + Send>, Option<u64>), ObjectError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| obj_err("get", key, e))?;
        let len = out.content_length().and_then(|l| u64::try_from(l).ok());
        let reader = tokio_util::io::SyncIoBridge::new(out.body.into_async_read());
        Ok((Box::new(reader), len))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), ObjectError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            // raw data is never overwritten: a conditional put fails when the key exists
            .set_if_none_match(key.starts_with("raw/").then(|| "*".to_string()))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| obj_err("put", key, e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| obj_err("list", prefix, e))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        }
        keys.sort();
        Ok(keys)
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), ObjectError> {
        if to.starts_with("raw/")
            && self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(to)
                .send()
                .await
                .is_ok()
        {
            // the conditional copy below refuses it too where S3 enforces If-None-Match on copies
            return Err(ObjectError {
                op: "copy",
                key: to.to_string(),
                reason: "already exists: raw data is never overwritten".into(),
                retryable: false,
            });
        }
        let source = format!(
            "{}/{}",
            self.bucket,
            from.split('/').map(urlencode).collect::<Vec<_>>().join("/")
        );
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(source)
            // raw data is never overwritten: a conditional copy fails when the key exists
            .set_if_none_match(to.starts_with("raw/").then(|| "*".to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| obj_err("copy", from, e))
    }

    async fn link(&self, key: &str) -> Result<String, ObjectError> {
        let cfg = PresigningConfig::expires_in(self.link_ttl).map_err(|e| ObjectError {
            op: "link",
            key: key.to_string(),
            reason: e.to_string(),
            retryable: false,
        })?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(cfg)
            .await
            .map_err(|e| obj_err("link", key, e))?;
        Ok(req.uri().to_string())
    }

    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }
}

fn urlencode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The mailer on SES v2: the RFC 5322 multipart message (HTML and plain-text parts) sent raw.
#[derive(Clone, Debug)]
pub struct SesMailer {
    pub client: aws_sdk_sesv2::Client,
    pub configuration_set: Option<String>,
}

impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<String, AppError> {
        let raw = email.to_rfc5322()?;
        let out = self
            .client
            .send_email()
            .from_email_address(&email.from)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(email.to.clone()))
                    .build(),
            )
            .content(
                EmailContent::builder()
                    .raw(
                        RawMessage::builder()
                            .data(aws_sdk_sesv2::primitives::Blob::new(raw))
                            .build()
                            .map_err(|e| AppError::Internal(format!("SES raw message: {e}")))?,
                    )
                    .build(),
            )
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|e| {
                // throttling (TooManyRequests), timeouts and 5xx are retried by Step Functions; the error's
                // kind only, never a dump of the request
                let kind = match &e {
                    aws_sdk_sesv2::error::SdkError::ServiceError(s) => format!("{:?}", s.err()),
                    other => format!("{other:?}"),
                };
                let kind: String = kind.chars().take(200).collect();
                if retryable(&e) {
                    AppError::Transient(format!(
                        "sending the email {:?}: throttled or unavailable ({kind})",
                        email.subject
                    ))
                } else {
                    AppError::Object(ObjectError {
                        op: "send email",
                        key: email.subject.clone(),
                        reason: kind,
                        retryable: false,
                    })
                }
            })?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}

/// The result of [`start_execution`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    New {
        execution_arn: String,
    },
    /// An execution of that name exists already (a duplicate event): nothing started.
    AlreadyExists,
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
            Err(AppError::Object(ObjectError {
                op: "start execution",
                key: name.to_string(),
                reason: aws_sdk_sfn::error::DisplayErrorContext(&e).to_string(),
                retryable: matches!(
                    e,
                    aws_sdk_sfn::error::SdkError::TimeoutError(_)
                        | aws_sdk_sfn::error::SdkError::DispatchFailure(_)
                ),
            }))
        }
    }
}

/// An execution name from parts: Step Functions allows 80 characters of `[A-Za-z0-9-_]`.
pub fn execution_name(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let joined = parts.join("-");
    let clean: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.len() <= 80 {
        return clean;
    }
    let digest = hex::encode(Sha256::digest(joined.as_bytes()));
    format!("{}-{}", &clean[..55], &digest[..24])
}
