//! The API clients against a local HTTP stub (wiremock) serving pages shaped like the real APIs:
//! pagination, 429 with Retry-After, 5xx, bad credentials, truncated bodies, PayPal's RESULTSET_TOO_LARGE and
//! late data, Square's locations.
//!
//! One file, over 400 lines: every client against the same stub, scenario by scenario.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::NaiveDate;
use recon_sources::api::ledger::LedgerApiConfig;
use recon_sources::api::paypal::{PaypalClient, PaypalConfig};
use recon_sources::api::square::SquareConfig;
use recon_sources::api::stripe::StripeConfig;
use recon_sources::api::{http_client, ApiError, RetryPolicy};
use recon_sources::parse_object;
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, 15).unwrap()
}

fn txn(id: &str, amount: i64, src: &str) -> String {
    format!(
        r#"{{"id":"{id}","object":"balance_transaction","amount":{amount},"available_on":1737072000,"created":1736935200,"currency":"usd","description":null,"exchange_rate":null,"fee":0,"fee_details":[],"net":{amount},"reporting_category":"charge","source":"{src}","status":"available","type":"charge"}}"#
    )
}

fn stripe_page(items: &[String], more: bool) -> String {
    format!(
        r#"{{"object":"list","url":"/v1/balance_transactions","has_more":{more},"data":[{}]}}"#,
        items.join(",")
    )
}

fn stripe_cfg(server: &MockServer) -> StripeConfig {
    StripeConfig {
        base_url: server.uri(),
        api_key: "sk_test_123".to_string().into(),
    }
}

#[tokio::test]
async fn stripe_pages_with_starting_after_survive_429_500_and_a_truncated_body() {
    let server = MockServer::start().await;
    let page1 = stripe_page(&[txn("txn_2", 200, "ch_2"), txn("txn_1", 100, "ch_1")], true);
    let page2 = stripe_page(&[txn("txn_0", 50, "ch_0")], false);
    // first request: 429 (Retry-After: 1), then a 500, then a truncated body, then the page
    Mock::given(method("GET"))
        .and(path("/v1/balance_transactions"))
        .and(query_param_is_missing("starting_after"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_string(r#"{"error":{"type":"rate_limit"}}"#),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/balance_transactions"))
        .and(query_param_is_missing("starting_after"))
        .respond_with(ResponseTemplate::new(500).set_body_string(r#"{"error":{"type":"api_error"}}"#))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/balance_transactions"))
        .and(query_param_is_missing("starting_after"))
        .respond_with(ResponseTemplate::new(200).set_body_string(&page1[..page1.len() / 2]))
        .up_to_n_times(1)
        .with_priority(3)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/balance_transactions"))
        .and(query_param_is_missing("starting_after"))
        .and(query_param("limit", "100"))
        .and(query_param("expand[]", "data.source"))
        .and(query_param("created[gte]", "1736899200"))
        .and(query_param("created[lt]", "1736985600"))
        .and(header("authorization", "Bearer sk_test_123"))
        .respond_with(ResponseTemplate::new(200).set_body_string(&page1))
        .with_priority(4)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/balance_transactions"))
        .and(query_param("starting_after", "txn_1"))
        .respond_with(ResponseTemplate::new(200).set_body_string(&page2))
        .mount(&server)
        .await;

    let pages = recon_sources::api::stripe::fetch_day(
        &http_client(),
        &stripe_cfg(&server),
        &RetryPolicy::quick(),
        day(),
    )
    .await
    .unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].body, page1.as_bytes(), "staged exactly as received");
    assert_eq!(pages[0].next_cursor.as_deref(), Some("txn_1"));
    let (_, parsed) = parse_object("raw/stripe/2025-01-15/x/page-00001.json", 0, &pages[0].body).unwrap();
    assert_eq!(parsed.records.len(), 2);
    assert!(
        !pages[0].request.contains("sk_test"),
        "no secret in the request description"
    );
}

#[tokio::test]
async fn stripe_bad_key_fails_at_once_with_a_clear_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).and(path("/v1/balance_transactions"))
        .respond_with(ResponseTemplate::new(401).set_body_string(r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_***123"}}"#))
        .expect(1).mount(&server).await;
    let err = recon_sources::api::stripe::fetch_day(
        &http_client(),
        &stripe_cfg(&server),
        &RetryPolicy::quick(),
        day(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ApiError::Auth { status: 401, .. }), "{err:?}");
    assert!(!err.is_retryable());
    let msg = err.to_string();
    assert!(
        msg.contains("check the API credentials") && !msg.contains("sk_test_123"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_error_body_echoing_the_key_never_carries_it_further() {
    let server = MockServer::start().await;
    // a 400 (not retried) whose body echoes the configured key verbatim
    Mock::given(method("GET")).and(path("/v1/balance_transactions"))
        .respond_with(ResponseTemplate::new(400).set_body_string(r#"{"error":{"type":"invalid_request_error","code":"parameter_unknown","message":"Received unknown parameter with key sk_test_123 (request by sk_test_123)"}}"#))
        .mount(&server).await;
    let err = recon_sources::api::stripe::fetch_day(
        &http_client(),
        &stripe_cfg(&server),
        &RetryPolicy::quick(),
        day(),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains("sk_test_123"), "{msg}");
    assert!(
        msg.contains("type=invalid_request_error") && msg.contains("code=parameter_unknown"),
        "{msg}"
    );
    assert!(msg.contains("400"), "{msg}");
}

#[tokio::test]
async fn stripe_5xx_forever_is_a_named_retryable_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/balance_transactions"))
        .respond_with(ResponseTemplate::new(503))
        .expect(4)
        .mount(&server)
        .await;
    let err = recon_sources::api::stripe::fetch_day(
        &http_client(),
        &stripe_cfg(&server),
        &RetryPolicy::quick(),
        day(),
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("4 attempts"));
}

fn paypal_page(ids: &[&str], page: u32, total: u32, refreshed: &str) -> String {
    let items: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"transaction_info":{{"transaction_id":"{id}","transaction_event_code":"T0006","transaction_initiation_date":"2025-01-15T10:00:00+0000","transaction_amount":{{"currency_code":"USD","value":"10.00"}},"transaction_status":"S"}}}}"#))
        .collect();
    format!(
        r#"{{"transaction_details":[{}],"account_number":"XZX","start_date":"2025-01-15T00:00:00+0000","end_date":"2025-01-15T23:59:59+0000","last_refreshed_datetime":"{refreshed}","page":{page},"total_items":3,"total_pages":{total},"links":[]}}"#,
        items.join(",")
    )
}

async fn paypal_token(server: &MockServer) {
    Mock::given(method("POST")).and(path("/v1/oauth2/token")).and(header("authorization", "Basic Y2xpZW50OnNlY3JldA=="))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"scope":"x","access_token":"A21AA-token","token_type":"Bearer","app_id":"APP-1","expires_in":32400,"nonce":"n"}"#))
        .expect(1).mount(server).await;
}

fn paypal(server: &MockServer) -> PaypalClient {
    PaypalClient::new(
        http_client(),
        PaypalConfig {
            base_url: server.uri(),
            client_id: "client".into(),
            client_secret: "secret".to_string().into(),
        },
        RetryPolicy::quick(),
    )
}

#[tokio::test]
async fn paypal_token_once_pages_and_a_too_large_window_split_in_halves() {
    let server = MockServer::start().await;
    paypal_token(&server).await;
    // the whole day is too large
    Mock::given(method("GET")).and(path("/v1/reporting/transactions")).and(query_param("start_date", "2025-01-15T00:00:00Z"))
        .and(query_param("end_date", "2025-01-15T23:59:59Z"))
        .respond_with(ResponseTemplate::new(400).set_body_string(r#"{"name":"RESULTSET_TOO_LARGE","message":"Result set size is greater than the maximum limit.","debug_id":"x"}"#))
        .mount(&server).await;
    // first half: two pages
    Mock::given(method("GET"))
        .and(path("/v1/reporting/transactions"))
        .and(query_param("start_date", "2025-01-15T00:00:00Z"))
        .and(query_param("page", "1"))
        .and(query_param("page_size", "500"))
        .and(header("authorization", "Bearer A21AA-token"))
        .respond_with(ResponseTemplate::new(200).set_body_string(paypal_page(
            &["1AAAAAAAAAAAAAAAA"],
            1,
            2,
            "2025-01-16T03:00:00+0000",
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/reporting/transactions"))
        .and(query_param("start_date", "2025-01-15T00:00:00Z"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_string(paypal_page(
            &["2BBBBBBBBBBBBBBBB"],
            2,
            2,
            "2025-01-16T03:00:00+0000",
        )))
        .mount(&server)
        .await;
    // second half
    Mock::given(method("GET"))
        .and(path("/v1/reporting/transactions"))
        .and(query_param("start_date", "2025-01-15T12:00:00Z"))
        .respond_with(ResponseTemplate::new(200).set_body_string(paypal_page(
            &["3CCCCCCCCCCCCCCCC"],
            1,
            1,
            "2025-01-16T03:00:00+0000",
        )))
        .mount(&server)
        .await;
    let pages = paypal(&server).fetch_day(day()).await.unwrap();
    assert_eq!(pages.len(), 3);
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|p| {
            parse_object("k", 0, &p.body)
                .unwrap()
                .1
                .records
                .into_iter()
                .map(|r| r.id().to_string())
        })
        .collect();
    assert_eq!(
        ids,
        [
            "1AAAAAAAAAAAAAAAA/T0006",
            "2BBBBBBBBBBBBBBBB/T0006",
            "3CCCCCCCCCCCCCCCC/T0006"
        ]
    );
}

#[tokio::test]
async fn paypal_day_not_refreshed_yet_is_data_not_ready() {
    let server = MockServer::start().await;
    paypal_token(&server).await;
    Mock::given(method("GET"))
        .and(path("/v1/reporting/transactions"))
        .respond_with(ResponseTemplate::new(200).set_body_string(paypal_page(
            &["1AAAAAAAAAAAAAAAA"],
            1,
            1,
            "2025-01-15T20:59:59+0000",
        )))
        .mount(&server)
        .await;
    let err = paypal(&server).fetch_day(day()).await.unwrap_err();
    assert!(matches!(err, ApiError::DataNotReady { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn paypal_bad_credentials_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/oauth2/token"))
        .respond_with(ResponseTemplate::new(401).set_body_string(
            r#"{"error":"invalid_client","error_description":"Client Authentication failed"}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let err = paypal(&server).fetch_day(day()).await.unwrap_err();
    assert!(matches!(err, ApiError::Auth { .. }));
    assert!(!err.to_string().contains("secret"));
}

#[tokio::test]
async fn square_every_location_and_refunds_with_cursors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/locations"))
        .and(header("square-version", "2025-08-20"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"locations":[{"id":"L1","name":"Main"},{"id":"L2","name":"Second"}]}"#),
        )
        .mount(&server)
        .await;
    let pay = |id: &str| {
        format!(
            r#"{{"id":"{id}","created_at":"2025-01-15T10:00:00.000Z","total_money":{{"amount":555,"currency":"USD"}},"status":"COMPLETED","location_id":"L1"}}"#
        )
    };
    Mock::given(method("GET"))
        .and(path("/v2/payments"))
        .and(query_param("location_id", "L1"))
        .and(query_param_is_missing("cursor"))
        .and(query_param("begin_time", "2025-01-15T00:00:00Z"))
        .and(query_param("end_time", "2025-01-16T00:00:00Z"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(format!(r#"{{"payments":[{}],"cursor":"c2"}}"#, pay("p1"))),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/payments"))
        .and(query_param("location_id", "L1"))
        .and(query_param("cursor", "c2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(format!(r#"{{"payments":[{}]}}"#, pay("p2"))),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/payments"))
        .and(query_param("location_id", "L2"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    Mock::given(method("GET")).and(path("/v2/refunds"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"refunds":[{"id":"p1_r","status":"COMPLETED","amount_money":{"amount":100,"currency":"USD"},"payment_id":"p1","created_at":"2025-01-15T12:00:00.000Z"}]}"#))
        .mount(&server).await;
    let cfg = SquareConfig {
        base_url: server.uri(),
        access_token: "EAAA-token".to_string().into(),
    };
    let pages = recon_sources::api::square::fetch_day(&http_client(), &cfg, &RetryPolicy::quick(), day())
        .await
        .unwrap();
    let names: Vec<&str> = pages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "payments-L1-page-00001.json",
            "payments-L1-page-00002.json",
            "payments-L2-page-00001.json",
            "refunds-page-00001.json"
        ]
    );
    let amounts: Vec<i64> = pages
        .iter()
        .flat_map(|p| {
            parse_object("k", 0, &p.body)
                .unwrap()
                .1
                .records
                .into_iter()
                .map(|r| r.amount().minor)
        })
        .collect();
    assert_eq!(amounts, [555, 555, -100]);
}

#[tokio::test]
async fn ledger_api_pages_by_cursor_header() {
    let server = MockServer::start().await;
    let row = |id: &str| {
        format!(
            r#"{{"ledger_id":"{id}","processor":"stripe","processor_txn_id":"ch_{id}","order_id":"o","type":"charge","amount":"1.00","currency":"USD","status":"captured","booked_at":"2025-01-15T10:00:00Z"}}"#
        )
    };
    Mock::given(method("GET"))
        .and(path("/ledger/entries"))
        .and(query_param("date", "2025-01-15"))
        .and(query_param_is_missing("cursor"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Next-Cursor", "n2")
                .set_body_string(format!("{}\n{}\n", row("L1"), row("L2"))),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/ledger/entries"))
        .and(query_param("cursor", "n2"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("{}\n", row("L3"))))
        .mount(&server)
        .await;
    let cfg = LedgerApiConfig {
        base_url: server.uri(),
        token: None,
    };
    let pages = recon_sources::api::ledger::fetch_day(&http_client(), &cfg, &RetryPolicy::quick(), day())
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    let rows: usize = pages
        .iter()
        .map(|p| parse_object("k", 0, &p.body).unwrap().1.ledger.len())
        .sum();
    assert_eq!(rows, 3);
}

/// The Stripe day from `server`, or `None` when it has not finished within a minute (a fetch that loops or
/// sleeps for good; far above what any of these tests needs).
async fn stripe_day_within_a_minute(
    server: &MockServer,
) -> Option<Result<Vec<recon_sources::api::RawPage>, ApiError>> {
    let (client, cfg, policy) = (http_client(), stripe_cfg(server), RetryPolicy::quick());
    let fetch = recon_sources::api::stripe::fetch_day(&client, &cfg, &policy, day());
    tokio::time::timeout(std::time::Duration::from_secs(60), fetch)
        .await
        .ok()
}

/// An API that keeps giving the same cursor: the fetch stops with an error naming it (before, it paged until
/// the stub stopped, staging every page again).
#[tokio::test]
async fn a_repeated_cursor_stops_the_fetch_naming_it() {
    let server = MockServer::start().await;
    let page = stripe_page(&[txn("txn_9", 100, "ch_9")], true);
    Mock::given(method("GET"))
        .and(path("/v1/balance_transactions"))
        .respond_with(ResponseTemplate::new(200).set_body_string(page))
        .mount(&server)
        .await;
    let err = stripe_day_within_a_minute(&server)
        .await
        .expect("the fetch stopped by itself")
        .unwrap_err();
    assert!(matches!(err, ApiError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("cursor \"txn_9\" again"), "{err}");
}

/// `Retry-After: 3600`: the fetch does not sleep an hour; it fails `Retryable` at once, naming the wait, so
/// that Step Functions retries later.
#[tokio::test]
async fn a_long_retry_after_is_not_slept_but_handed_back_as_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/balance_transactions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "3600")
                .set_body_string(r#"{"error":{"type":"rate_limit"}}"#),
        )
        .mount(&server)
        .await;
    let err = stripe_day_within_a_minute(&server)
        .await
        .expect("the fetch did not sleep for the hour")
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("wait 3600s"), "{err}");
}

/// `Retry-After: 20` is within what a fetch waits (30 s), but the invocation has 15 s left: the fetch does not
/// sleep past its deadline (the Lambda would be killed mid-fetch); it fails `Retryable` at once, naming the
/// wait and the time left.
#[tokio::test]
async fn a_wait_past_the_invocations_deadline_is_handed_back_as_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/balance_transactions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "20")
                .set_body_string(r#"{"error":{"type":"rate_limit"}}"#),
        )
        .mount(&server)
        .await;
    let (client, cfg) = (http_client(), stripe_cfg(&server));
    let policy = RetryPolicy {
        max_wait: std::time::Duration::from_secs(30),
        ..RetryPolicy::quick()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let fetch = recon_sources::api::within_deadline(
        Some(deadline),
        recon_sources::api::stripe::fetch_day(&client, &cfg, &policy, day()),
    );
    let err = tokio::time::timeout(std::time::Duration::from_secs(10), fetch)
        .await
        .expect("the fetch did not sleep past the deadline")
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("wait 20s") && text.contains("before its deadline"),
        "{text}"
    );
}
