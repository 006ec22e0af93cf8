//! Square: every location (`GET /v2/locations`), then `GET /v2/payments` per location (it defaults to the
//! main location only) and `GET /v2/refunds` (all locations), with `begin_time`/`end_time` and `cursor`,
//! and the `Square-Version` header.

use chrono::{NaiveDate, SecondsFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{
    day_window, decode, is_json, rejected, request_line, send, ApiError, Cursors, RawPage, RetryPolicy,
};

/// The API version recon's parsers follow.
pub const SQUARE_VERSION: &str = "2025-08-20";

/// Where and how to reach Square.
#[derive(Debug, Clone)]
pub struct SquareConfig {
    /// `https://connect.squareup.com` unless overridden.
    pub base_url: String,
    pub access_token: SecretString,
}

#[derive(Deserialize)]
struct Locations {
    #[serde(default)]
    locations: Vec<Location>,
}

#[derive(Deserialize)]
struct Location {
    id: String,
}

#[derive(Deserialize)]
struct Cursor {
    cursor: Option<String>,
}

/// Fetches every payments page of every location and every refunds page of the day.
pub async fn fetch_day(
    client: &reqwest::Client,
    cfg: &SquareConfig,
    policy: &RetryPolicy,
    date: NaiveDate,
) -> Result<Vec<RawPage>, ApiError> {
    let base = cfg.base_url.trim_end_matches('/');
    let get = |path: String, query: Vec<(String, String)>| {
        let url = format!("{base}{path}");
        move || {
            client
                .get(&url)
                .query(&query)
                .bearer_auth(cfg.access_token.expose_secret())
                .header("Square-Version", SQUARE_VERSION)
        }
    };
    let request = "GET /v2/locations".to_string();
    let answer = send(
        "square",
        &request,
        policy,
        get("/v2/locations".into(), Vec::new()),
        is_json,
    )
    .await?;
    if !answer.status.is_success() {
        return Err(rejected("square", &request, &answer));
    }
    let locations: Locations = decode("square", &request, &answer, "a locations list")?;
    let (start, end) = day_window(date);
    let window = vec![
        (
            "begin_time".to_string(),
            start.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
        (
            "end_time".to_string(),
            end.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
        ("sort_order".to_string(), "ASC".to_string()),
    ];
    let mut pages = Vec::new();
    // (path, page-name stem, query) of every list to walk
    type List = (String, String, Vec<(String, String)>);
    let mut lists: Vec<List> = locations
        .locations
        .iter()
        .map(|l| {
            let mut q = window.clone();
            q.push(("location_id".into(), l.id.clone()));
            q.push(("limit".into(), "100".into()));
            ("/v2/payments".to_string(), format!("payments-{}", l.id), q)
        })
        .collect();
    let mut rq = window.clone();
    rq.push(("limit".into(), "100".into()));
    lists.push(("/v2/refunds".to_string(), "refunds".to_string(), rq));
    for (path, stem, query) in lists {
        let mut cursor: Option<String> = None;
        let mut cursors = Cursors::new(policy);
        let mut n = 1;
        loop {
            let mut q = query.clone();
            if let Some(c) = &cursor {
                q.push(("cursor".into(), c.clone()));
            }
            let request = request_line(&path, &q);
            let answer = send("square", &request, policy, get(path.clone(), q), is_json).await?;
            if !answer.status.is_success() {
                return Err(rejected("square", &request, &answer));
            }
            let next = serde_json::from_slice::<Cursor>(&answer.body)
                .ok()
                .and_then(|c| c.cursor)
                .filter(|c| !c.is_empty());
            if let Some(c) = &next {
                cursors.follow("square", &request, c)?;
            }
            pages.push(RawPage {
                name: format!("{stem}-page-{n:05}.json"),
                request,
                body: answer.body,
                next_cursor: next.clone(),
            });
            match next {
                Some(c) => {
                    cursor = Some(c);
                    n += 1;
                }
                None => break,
            }
        }
    }
    Ok(pages)
}
