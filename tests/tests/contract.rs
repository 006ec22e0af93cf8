//! The ports' contracts, run by every adapter: the object store on a local directory and on S3 (moto), the
//! mailer as an `.eml` outbox and on SES v2 (moto). A step written against a port behaves the same on
//! either; what one adapter does and the other does not is a failure here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;

use recon_app::notify::{Email, Mailer, OutboxMailer};
use recon_app::objects::{LocalStore, ObjectStore};
use recon_aws::{Aws, S3Store, SesMailer};

async fn aws() -> Aws {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run the tests through `make test`, which starts moto server"
    );
    Aws::load(None).await
}

/// What every [`ObjectStore`] does.
async fn object_store_contract<S: ObjectStore>(s: &S) {
    let (a, c) = ("inbox/stripe/2025-01-15/a b.csv", "inbox/stripe/2025-01-15/c.csv");
    s.put(a, b"x,y\n1,2\n".to_vec(), "text/csv").await.unwrap();
    s.put(c, b"z".to_vec(), "text/csv").await.unwrap();
    s.put("inbox/stripe/2025-01-16/d.csv", b"d".to_vec(), "text/csv")
        .await
        .unwrap();
    // list: the keys under the prefix only, sorted
    assert_eq!(s.list("inbox/stripe/2025-01-15/").await.unwrap(), [a, c]);
    assert!(s.list("inbox/paypal/").await.unwrap().is_empty());
    // a put replaces an object outside raw/
    s.put(c, b"zz".to_vec(), "text/csv").await.unwrap();
    assert_eq!(s.get(c).await.unwrap(), b"zz");
    // copy: unchanged bytes; open streams them with their size
    let raw = "raw/stripe/2025-01-15/f/a b.csv";
    s.copy(a, raw).await.unwrap();
    assert_eq!(s.get(raw).await.unwrap(), b"x,y\n1,2\n");
    let (mut reader, len) = s.open(raw).await.unwrap();
    let mut body = Vec::new();
    tokio::task::spawn_blocking(move || reader.read_to_end(&mut body).map(|_| body))
        .await
        .unwrap()
        .map(|b| assert_eq!(b, b"x,y\n1,2\n"))
        .unwrap();
    assert_eq!(len, Some(8));
    assert!(s.is_regular(raw).await.unwrap());
    assert!(s.exists(raw).await.unwrap());
    // a create-only write: the first wins, the second writes nothing
    let mark = "notifications/2025-01-15/e1-report.json";
    assert!(s
        .put_new(mark, b"first".to_vec(), "application/json")
        .await
        .unwrap());
    assert!(!s
        .put_new(mark, b"second".to_vec(), "application/json")
        .await
        .unwrap());
    assert_eq!(s.get(mark).await.unwrap(), b"first");
    assert!(!s.exists("inbox/stripe/2025-01-15/gone.csv").await.unwrap());
    // raw data is never overwritten, by a put or a copy, and the refusal is not worth retrying
    let put = s.put(raw, b"other".to_vec(), "text/csv").await.unwrap_err();
    assert!(!put.retryable, "{put}");
    let copy = s.copy(c, raw).await.unwrap_err();
    assert!(!copy.retryable, "{copy}");
    assert_eq!(s.get(raw).await.unwrap(), b"x,y\n1,2\n");
    // a missing object: an error naming the key, not worth retrying
    let missing = s.get("inbox/stripe/2025-01-15/nope.csv").await.unwrap_err();
    assert!(
        missing.to_string().contains("nope.csv") && !missing.retryable,
        "{missing}"
    );
    assert!(!s.link(raw).await.unwrap().is_empty());
    assert!(!s.describe().is_empty());
}

/// What every [`Mailer`] does: a message id for a sent email; an address that is not one is refused
/// before anything is sent, naming the setting to fix.
async fn mailer_contract<M: Mailer>(m: &M, tag: &str) {
    let email = Email {
        from: "recon@example.com".into(),
        to: vec!["ops@example.com".into()],
        subject: format!("[recon] contract {tag}"),
        html: "<p>stripe <b>CRITICAL</b></p>".into(),
        text: "stripe CRITICAL".into(),
    };
    assert!(!m.send(&email).await.unwrap().is_empty());
    let bad = Email {
        to: vec!["not an address".into()],
        ..email
    };
    let e = m.send(&bad).await.unwrap_err();
    assert_eq!(e.error_name(), "InvalidInput", "{e}");
    assert!(e.to_string().contains("OPERATIONS_EMAIL"), "{e}");
}

#[tokio::test]
async fn the_local_store_keeps_the_object_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    object_store_contract(&LocalStore::new(dir.path())).await;
}

#[tokio::test]
async fn the_s3_store_keeps_the_object_store_contract() {
    let aws = aws().await;
    let bucket = format!("recon-contract-{}", uuid::Uuid::new_v4().simple());
    aws.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    object_store_contract(&S3Store::new(aws.s3.clone(), bucket)).await;
}

#[tokio::test]
async fn the_outbox_keeps_the_mailer_contract() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxMailer {
        dir: dir.path().join("outbox"),
    };
    mailer_contract(&outbox, "outbox").await;
    assert_eq!(std::fs::read_dir(&outbox.dir).unwrap().count(), 1);
}

#[tokio::test]
async fn ses_keeps_the_mailer_contract() {
    let aws = aws().await;
    aws.ses
        .create_email_identity()
        .email_identity("recon@example.com")
        .send()
        .await
        .unwrap();
    let ses = SesMailer {
        client: aws.ses.clone(),
        configuration_set: None,
    };
    mailer_contract(&ses, &uuid::Uuid::new_v4().simple().to_string()).await;
}
