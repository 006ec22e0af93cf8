//! The internal ledger API (`INTERNAL_API_BASE_URL`). Contract (documented in the README):
//!
//! `GET {base}/ledger/entries?date=YYYY-MM-DD[&cursor=C]` with `Authorization: Bearer <token>` when a token is
//! configured, answering `200` with `application/x-ndjson`: one ledger entry per line with the export's field
//! names (`ledger_id, processor, processor_txn_id, order_id, type, amount, currency, status, booked_at`,
//! amounts as decimal strings). The next page's cursor is in the `X-Next-Cursor` response header (absent on
//! the last page). Every page is staged as received and parsed as ledger JSON Lines.

use chrono::NaiveDate;
use secrecy::{ExposeSecret, SecretString};

use super::{rejected, request_line, send, ApiError, Cursors, RawPage, RetryPolicy};

/// Where and how to reach the ledger API.
#[derive(Debug, Clone)]
pub struct LedgerApiConfig {
    pub base_url: String,
    pub token: Option<SecretString>,
}

fn complete_lines(b: &[u8]) -> bool {
    // every non-empty line must be a whole JSON object: a cut connection leaves half an object behind
    b.split(|&c| c == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .all(super::is_json)
}

/// Fetches every page of the day's ledger entries.
pub async fn fetch_day(
    client: &reqwest::Client,
    cfg: &LedgerApiConfig,
    policy: &RetryPolicy,
    date: NaiveDate,
) -> Result<Vec<RawPage>, ApiError> {
    let url = format!("{}/ledger/entries", cfg.base_url.trim_end_matches('/'));
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    let mut cursors = Cursors::new(policy);
    loop {
        let mut q = vec![("date".to_string(), date.to_string())];
        if let Some(c) = &cursor {
            q.push(("cursor".into(), c.clone()));
        }
        let request = request_line("/ledger/entries", &q);
        let answer = send(
            "ledger",
            &request,
            policy,
            || {
                let r = client.get(&url).query(&q);
                match &cfg.token {
                    Some(t) => r.bearer_auth(t.expose_secret()),
                    None => r,
                }
            },
            complete_lines,
        )
        .await?;
        if !answer.status.is_success() {
            return Err(rejected("ledger", &request, &answer));
        }
        let next = answer
            .headers
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .filter(|c| !c.is_empty());
        if let Some(c) = &next {
            cursors.follow("ledger", &request, c)?;
        }
        pages.push(RawPage {
            name: format!("entries-{:05}.jsonl", pages.len() + 1),
            request,
            body: answer.body,
            next_cursor: next.clone(),
        });
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(pages)
}
