//! Stripe `GET /v1/balance_transactions` for one UTC day: `created[gte]`/`created[lt]`, `limit=100`,
//! `expand[]=data.source`, `starting_after` pagination while `has_more`.

use chrono::NaiveDate;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{
    day_window, decode, is_json, rejected, request_line, send, ApiError, Cursors, RawPage, RetryPolicy,
};

/// Where and how to reach Stripe.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `https://api.stripe.com` unless overridden.
    pub base_url: String,
    pub api_key: SecretString,
}

#[derive(Deserialize)]
struct PageHead {
    data: Vec<Id>,
    has_more: bool,
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

/// Fetches every page of the day.
pub async fn fetch_day(
    client: &reqwest::Client,
    cfg: &StripeConfig,
    policy: &RetryPolicy,
    date: NaiveDate,
) -> Result<Vec<RawPage>, ApiError> {
    let (start, end) = day_window(date);
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    let mut cursors = Cursors::new(policy);
    loop {
        let mut query = vec![
            ("created[gte]".to_string(), start.timestamp().to_string()),
            ("created[lt]".to_string(), end.timestamp().to_string()),
            ("limit".to_string(), "100".to_string()),
            ("expand[]".to_string(), "data.source".to_string()),
        ];
        if let Some(a) = &after {
            query.push(("starting_after".to_string(), a.clone()));
        }
        let url = format!("{}/v1/balance_transactions", cfg.base_url.trim_end_matches('/'));
        let request = request_line("/v1/balance_transactions", &query);
        let answer = send(
            "stripe",
            &request,
            policy,
            || {
                client
                    .get(&url)
                    .query(&query)
                    .bearer_auth(cfg.api_key.expose_secret())
            },
            is_json,
        )
        .await?;
        if !answer.status.is_success() {
            return Err(rejected("stripe", &request, &answer));
        }
        let head: PageHead = decode("stripe", &request, &answer, "a balance_transactions list")?;
        let next = if head.has_more {
            head.data.last().map(|t| t.id.clone())
        } else {
            None
        };
        if let Some(n) = &next {
            cursors.follow("stripe", &request, n)?;
        }
        pages.push(RawPage {
            name: format!("page-{:05}.json", pages.len() + 1),
            request,
            body: answer.body,
            next_cursor: next.clone(),
        });
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(pages)
}
