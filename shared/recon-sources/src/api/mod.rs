//! Processor API clients: fetch one UTC day as the raw pages the APIs return (staged unchanged by the fetch
//! step, then parsed by the same parsers as dropped files).
//!
//! Every client: bounded retries with exponential backoff and jitter that honour `Retry-After` (and Stripe's
//! `Stripe-Should-Retry`), a per-request timeout, a clear non-retryable error on 401/403, and a retryable error
//! once the retries are spent. Base URLs are overridable so tests point them at a local stub. Secrets are
//! [`secrecy::SecretString`]s: never logged, never in errors.

pub mod ledger;
pub mod paypal;
pub mod square;
pub mod stripe;

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::{RequestBuilder, StatusCode};
use thiserror::Error;
use tracing::warn;

/// Why a fetch failed. [`ApiError::is_retryable`] tells Step Functions whether to try again later.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApiError {
    /// 401/403: the credentials are wrong or lack a permission. Never retried.
    #[error(
        "{source_name}: authentication failed ({status}) on {request}: {message}; check the API credentials"
    )]
    Auth {
        source_name: String,
        status: u16,
        request: String,
        message: String,
    },
    /// 429/5xx/timeouts/truncated bodies that outlived the retries.
    #[error("{source_name}: {request} still failing after {attempts} attempts: {detail}; retry later")]
    Retryable {
        source_name: String,
        request: String,
        attempts: u32,
        detail: String,
    },
    /// The processor has not finished the day yet (PayPal `last_refreshed_datetime` before the window end).
    #[error("{source_name}: data for {date} not ready yet: {detail}; retry later")]
    DataNotReady {
        source_name: String,
        date: NaiveDate,
        detail: String,
    },
    /// Any other 4xx, or an answer that is not what the API documents.
    #[error("{source_name}: {request} failed ({status}): {message}")]
    Rejected {
        source_name: String,
        status: u16,
        request: String,
        message: String,
    },
}

impl ApiError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::Retryable { .. } | ApiError::DataNotReady { .. })
    }
}

/// One raw page as received, with the request that produced it (no credentials in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPage {
    pub name: String,
    pub request: String,
    pub body: Vec<u8>,
    /// The cursor that led to the next page, if any (for the manifest).
    pub next_cursor: Option<String>,
}

/// Retry policy shared by the clients.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Fast retries for tests.
    pub fn quick() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(10))
            .min(self.max_delay);
        // jitter: up to a quarter more, from the clock's nanoseconds (no RNG needed for this)
        let nanos = u64::from(Utc::now().timestamp_subsec_nanos());
        let jitter = exp / 4 * u32::try_from(nanos % 100).unwrap_or(0) / 100;
        match retry_after {
            Some(r) => r.max(exp).min(self.max_delay.max(r)),
            None => exp + jitter,
        }
    }
}

/// A response that got through: status, headers, body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .to_string();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = DateTime::parse_from_rfc2822(&v).ok()?;
    (when.with_timezone(&Utc) - Utc::now()).to_std().ok()
}

fn message_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(300).collect()
}

/// Sends a request with retries. `build` makes a fresh request each attempt; `valid` says whether a 2xx body
/// is complete (a truncated body is retried like a 5xx).
pub(crate) async fn send(
    source_name: &str,
    request: &str,
    policy: &RetryPolicy,
    build: impl Fn() -> RequestBuilder,
    valid: impl Fn(&[u8]) -> bool,
) -> Result<Answer, ApiError> {
    let mut last = String::new();
    for attempt in 0..policy.max_attempts {
        // Ok(answer) ends the loop; Err((why, retry_after)) tries again
        let outcome: Result<Answer, (String, Option<Duration>)> =
            match build().timeout(policy.timeout).send().await {
                Err(e) => Err((format!("{}", e.without_url()), None)),
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Err(e) => Err((format!("reading the body: {}", e.without_url()), None)),
                        Ok(b) => {
                            let body = b.to_vec();
                            if status.is_success() {
                                if valid(&body) {
                                    Ok(Answer {
                                        status,
                                        headers,
                                        body,
                                    })
                                } else {
                                    Err((
                                        format!("truncated or malformed body ({} bytes)", body.len()),
                                        None,
                                    ))
                                }
                            } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                                return Err(ApiError::Auth {
                                    source_name: source_name.into(),
                                    status: status.as_u16(),
                                    request: request.into(),
                                    message: message_of(&body),
                                });
                            } else {
                                let should = headers.get("stripe-should-retry").and_then(|v| v.to_str().ok());
                                let retry = match should {
                                    Some("true") => true,
                                    Some("false") => false,
                                    _ => {
                                        status == StatusCode::TOO_MANY_REQUESTS
                                            || status == StatusCode::CONFLICT
                                            || status.is_server_error()
                                    }
                                };
                                if retry {
                                    Err((
                                        format!("HTTP {}: {}", status.as_u16(), message_of(&body)),
                                        retry_after(&headers),
                                    ))
                                } else {
                                    Ok(Answer {
                                        status,
                                        headers,
                                        body,
                                    })
                                }
                            }
                        }
                    }
                }
            };
        match outcome {
            Ok(a) => return Ok(a),
            Err((why, wait)) => {
                last = why;
                if attempt + 1 < policy.max_attempts {
                    let d = policy.backoff(attempt, wait);
                    warn!(source = source_name, request, attempt = attempt + 1, wait_ms = d.as_millis() as u64,
                          error = %last, "retrying");
                    tokio::time::sleep(d).await;
                }
            }
        }
    }
    Err(ApiError::Retryable {
        source_name: source_name.into(),
        request: request.into(),
        attempts: policy.max_attempts,
        detail: last,
    })
}

/// Non-2xx answers that were not retried become `Rejected`.
pub(crate) fn rejected(source_name: &str, request: &str, a: &Answer) -> ApiError {
    ApiError::Rejected {
        source_name: source_name.into(),
        status: a.status.as_u16(),
        request: request.into(),
        message: message_of(&a.body),
    }
}

/// The UTC window of a day: `[date 00:00, date+1 00:00)`.
pub fn day_window(date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default();
    (start, start + chrono::Duration::days(1))
}

/// A client with sane defaults (one per cold start).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("recon/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

pub(crate) fn is_json(b: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok()
}
