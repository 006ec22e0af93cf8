//! PayPal: OAuth2 client-credentials token (cached until shortly before expiry), then
//! `GET /v1/reporting/transactions` with `page_size=500` and the page loop. `RESULTSET_TOO_LARGE` splits the
//! window in halves; a day whose `last_refreshed_datetime` is before the window end is `DataNotReady`.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::{day_window, decode, is_json, rejected, request_line, send, ApiError, RawPage, RetryPolicy};

/// Where and how to reach PayPal.
#[derive(Debug)]
pub struct PaypalConfig {
    /// `https://api-m.paypal.com` unless overridden.
    pub base_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

/// A PayPal client holding its cached token.
#[derive(Debug)]
pub struct PaypalClient {
    http: reqwest::Client,
    cfg: PaypalConfig,
    policy: RetryPolicy,
    token: Mutex<Option<(SecretString, Instant)>>,
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct PageHead {
    total_pages: Option<u32>,
    last_refreshed_datetime: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    name: Option<String>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl PaypalClient {
    pub fn new(http: reqwest::Client, cfg: PaypalConfig, policy: RetryPolicy) -> Self {
        PaypalClient {
            http,
            cfg,
            policy,
            token: Mutex::new(None),
        }
    }

    fn base(&self) -> &str {
        self.cfg.base_url.trim_end_matches('/')
    }

    /// The cached token, or a new one.
    async fn token(&self) -> Result<SecretString, ApiError> {
        let mut guard = self.token.lock().await;
        if let Some((t, until)) = guard.as_ref() {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let url = format!("{}/v1/oauth2/token", self.base());
        let request = "POST /v1/oauth2/token";
        let answer = send(
            "paypal",
            request,
            &self.policy,
            || {
                self.http
                    .post(&url)
                    .basic_auth(&self.cfg.client_id, Some(self.cfg.client_secret.expose_secret()))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
            },
            is_json,
        )
        .await?;
        if !answer.status.is_success() {
            return Err(rejected("paypal", request, &answer));
        }
        let t: Token = decode("paypal", request, &answer, "a token response")?;
        let secret = SecretString::from(t.access_token);
        let until = Instant::now() + Duration::from_secs(t.expires_in.saturating_sub(60));
        *guard = Some((secret.clone(), until));
        Ok(secret)
    }

    /// Fetches every page of the day, splitting the window when PayPal says the result set is too large.
    pub async fn fetch_day(&self, date: NaiveDate) -> Result<Vec<RawPage>, ApiError> {
        let (start, end) = day_window(date);
        let mut pages = Vec::new();
        let mut windows = vec![(start, end)];
        while let Some((s, e)) = windows.pop() {
            match self.fetch_window(date, s, e, &mut pages).await? {
                Window::Done => {}
                Window::TooLarge if e - s > chrono::Duration::minutes(1) => {
                    let mid = s + (e - s) / 2;
                    // later half first on the stack, so pages come out in time order
                    windows.push((mid, e));
                    windows.push((s, mid));
                }
                Window::TooLarge => {
                    return Err(ApiError::Rejected {
                        source_name: "paypal".into(),
                        status: 400,
                        request: format!("GET /v1/reporting/transactions {}..{}", rfc3339(s), rfc3339(e)),
                        message: "RESULTSET_TOO_LARGE even for a one-minute window".into(),
                    })
                }
            }
        }
        Ok(pages)
    }

    async fn fetch_window(
        &self,
        date: NaiveDate,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        pages: &mut Vec<RawPage>,
    ) -> Result<Window, ApiError> {
        let url = format!("{}/v1/reporting/transactions", self.base());
        let mut page = 1u32;
        loop {
            let token = self.token().await?;
            let query = [
                ("start_date", rfc3339(start)),
                ("end_date", rfc3339(end - chrono::Duration::seconds(1))),
                ("fields", "all".to_string()),
                ("page_size", "500".to_string()),
                ("page", page.to_string()),
            ];
            let request = request_line("/v1/reporting/transactions", &query);
            let answer = send(
                "paypal",
                &request,
                &self.policy,
                || {
                    self.http
                        .get(&url)
                        .query(&query)
                        .bearer_auth(token.expose_secret())
                },
                is_json,
            )
            .await?;
            if !answer.status.is_success() {
                let name = serde_json::from_slice::<ErrorBody>(&answer.body)
                    .ok()
                    .and_then(|b| b.name);
                if name.as_deref() == Some("RESULTSET_TOO_LARGE") {
                    return Ok(Window::TooLarge);
                }
                return Err(rejected("paypal", &request, &answer));
            }
            let head: PageHead = decode("paypal", &request, &answer, "a transaction search page")?;
            if let Some(refreshed) = head.last_refreshed_datetime.as_deref() {
                let r = DateTime::parse_from_str(refreshed, "%Y-%m-%dT%H:%M:%S%z")
                    .or_else(|_| DateTime::parse_from_rfc3339(refreshed))
                    .map(|t| t.with_timezone(&Utc));
                if let Ok(r) = r {
                    if r < end - chrono::Duration::seconds(1) {
                        return Err(ApiError::DataNotReady {
                            source_name: "paypal".into(),
                            date,
                            detail: format!(
                                "last_refreshed_datetime {refreshed} is before the window end {}",
                                rfc3339(end)
                            ),
                        });
                    }
                }
            }
            let total = head.total_pages.unwrap_or(0);
            let more = page < total;
            pages.push(RawPage {
                name: format!("page-{:05}.json", pages.len() + 1),
                request,
                body: answer.body,
                next_cursor: more.then(|| format!("page={}", page + 1)),
            });
            if !more {
                return Ok(Window::Done);
            }
            if page >= self.policy.max_pages {
                return Err(ApiError::Rejected {
                    source_name: "paypal".into(),
                    status: 200,
                    request: url.clone(),
                    message: format!(
                        "more than {} pages in one window: stopped (the page cap of one fetch)",
                        page
                    ),
                });
            }
            page += 1;
        }
    }
}

enum Window {
    Done,
    TooLarge,
}
