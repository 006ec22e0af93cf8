//! AWS faults the state machine must see under the right error name: S3 answering 503 (then success, and
//! for good), SES throttling (then success, and for good). A local HTTP stub stands in for the service.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use recon_app::notify::{Email, Mailer};
use recon_app::objects::ObjectStore;
use recon_aws::{S3Store, SesMailer};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn creds() -> aws_sdk_s3::config::Credentials {
    aws_sdk_s3::config::Credentials::new("test", "test", None, None, "tests")
}

fn s3(server: &MockServer) -> S3Store {
    let cfg = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(creds())
        .endpoint_url(server.uri())
        .force_path_style(true)
        .build();
    S3Store::new(aws_sdk_s3::Client::from_conf(cfg), "recon-bucket")
}

fn ses(server: &MockServer) -> SesMailer {
    let cfg = aws_sdk_sesv2::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_sesv2::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .endpoint_url(server.uri())
        .build();
    SesMailer {
        client: aws_sdk_sesv2::Client::from_conf(cfg),
        configuration_set: None,
    }
}

#[tokio::test]
async fn s3_503_is_retried_by_the_sdk_then_named_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/recon-bucket/reports/2025-01-15/stripe/r/summary.json"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<Error><Code>SlowDown</Code></Error>"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex("^/recon-bucket/reports/.*"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let store = s3(&server);
    store
        .put(
            "reports/2025-01-15/stripe/r/summary.json",
            b"{}".to_vec(),
            "application/json",
        )
        .await
        .expect("a 503 then a 200 is a success");

    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(
            ResponseTemplate::new(503).set_body_string("<Error><Code>ServiceUnavailable</Code></Error>"),
        )
        .mount(&server)
        .await;
    let err = s3(&server)
        .put(
            "raw/stripe/2025-01-15/f/page-00001.json",
            b"{}".to_vec(),
            "application/json",
        )
        .await
        .expect_err("503 for good");
    let err = recon_app::AppError::Object(err);
    assert_eq!(err.error_name(), "Retryable", "{err}");
}

fn email() -> Email {
    Email {
        from: "recon@example.com".into(),
        to: vec!["operations@example.com".into()],
        subject: "[recon] 2025-01-15: CRITICAL discrepancies".into(),
        html: "<p>x</p>".into(),
        text: "x".into(),
    }
}

/// No SDK debug dump in an error (it ran to about 1 KB, with request ids and every field as `Some(..)`): an S3
/// or SES refusal says the HTTP status, the service's code and its message.
#[tokio::test]
async fn aws_refusals_say_status_code_and_message_briefly() {
    let dump_free =
        |text: &str| !text.contains("Some(") && !text.contains(" { ") && !text.contains("ErrorMetadata");
    let server = MockServer::start().await;
    let denied = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied\
                  </Message><RequestId>4442587FB7D0A2F9</RequestId><HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NP\
                  cfTWAtRPfTaOFg==</HostId></Error>";
    Mock::given(method("PUT"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("content-type", "application/xml")
                .set_body_string(denied),
        )
        .mount(&server)
        .await;
    let err = s3(&server)
        .put(
            "work/2025-01-15/stripe/p/0-of-2.json",
            b"{}".to_vec(),
            "application/json",
        )
        .await
        .expect_err("refused");
    let text = recon_app::AppError::Object(err).to_string();
    assert!(text.contains("HTTP 403 AccessDenied: Access Denied"), "{text}");
    assert!(text.contains("work/2025-01-15/stripe/p/0-of-2.json"), "{text}");
    assert!(dump_free(&text) && text.len() < 300, "{text}");

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/email/outbound-emails"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("x-amzn-ErrorType", "MessageRejected")
                .set_body_string(r#"{"message":"Email address is not verified."}"#),
        )
        .mount(&server)
        .await;
    let err = ses(&server).send(&email()).await.expect_err("rejected");
    let text = err.to_string();
    assert_eq!(err.error_name(), "InvalidInput", "{text}");
    assert!(
        text.contains("HTTP 400 MessageRejected: Email address is not verified."),
        "{text}"
    );
    assert!(dump_free(&text), "{text}");
}

#[tokio::test]
async fn ses_throttling_is_retried_then_named_retryable() {
    let throttled = || {
        ResponseTemplate::new(429)
            .insert_header("x-amzn-ErrorType", "TooManyRequestsException")
            .set_body_string(r#"{"message":"Maximum sending rate exceeded."}"#)
    };
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/email/outbound-emails"))
        .respond_with(throttled())
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/email/outbound-emails"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"MessageId":"m-1"}"#))
        .with_priority(2)
        .mount(&server)
        .await;
    assert_eq!(ses(&server).send(&email()).await.unwrap(), "m-1");

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/email/outbound-emails"))
        .respond_with(throttled())
        .mount(&server)
        .await;
    let err = ses(&server).send(&email()).await.expect_err("throttled for good");
    assert_eq!(err.error_name(), "Retryable", "{err}");
    assert!(err.to_string().len() < 600, "a short message, no SDK dump: {err}");
}

#[tokio::test]
async fn secrets_manager_throttling_is_named_retryable_and_names_the_secret() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("x-amzn-ErrorType", "ThrottlingException")
                .set_body_string(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
        )
        .mount(&server)
        .await;
    let cfg = aws_sdk_secretsmanager::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .endpoint_url(server.uri())
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(cfg);
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:recon-dev/db";
    let mut db = recon_app::settings::DatabaseSettings::default();
    let err = recon_aws::secrets::database(&client, arn, &mut db)
        .await
        .expect_err("throttled");
    assert_eq!(err.error_name(), "Retryable", "{err}");
    assert!(err.to_string().contains(arn), "{err}");
}

/// Step Functions throttling StartExecution: `Retryable` (the trigger is retried), a short message, not
/// "SourceUnavailable: object store …".
#[tokio::test]
async fn step_functions_throttling_is_named_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("x-amzn-ErrorType", "ThrottlingException")
                .set_body_string(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
        )
        .mount(&server)
        .await;
    let cfg = aws_sdk_sfn::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_sfn::config::Region::new("us-east-1"))
        .credentials_provider(creds())
        .endpoint_url(server.uri())
        .retry_config(aws_sdk_sfn::config::retry::RetryConfig::disabled())
        .build();
    let executions = recon_aws::SfnExecutions {
        client: aws_sdk_sfn::Client::from_conf(cfg),
        state_machine_arn: Some("arn:aws:states:us-east-1:123456789012:stateMachine:recon".into()),
    };
    use recon_app::steps::StartExecution;
    let err = executions
        .start("s3-stripe-2025-01-15-w1", &serde_json::json!({}))
        .await
        .expect_err("throttled");
    assert_eq!(err.error_name(), "Retryable", "{err}");
    assert!(!err.to_string().contains("object store"), "{err}");
    assert!(err.to_string().len() < 600, "a short message, no SDK dump: {err}");
}
