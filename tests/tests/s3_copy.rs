//! The S3 store's copy of a file above the single-copy limit, on moto. A test binary of its own: once moto has
//! held a multipart object it cannot dump its state (`/moto-api/data.json`, which the SES tests and
//! `scripts/sfn-e2e.sh` read), so this test resets moto when it is done, and cargo runs test binaries one after
//! another: no other test runs meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use recon_app::objects::ObjectStore;
use recon_aws::S3Store;

#[path = "common/moto.rs"]
mod moto;
use moto::{aws, bucket, endpoint};

/// Given a dropped file larger than one copy may be (5 GiB in S3; 5 MiB here), when it is staged, then it is
/// copied in parts (its ETag says so), byte for byte, no upload is left open, and a second copy onto the raw key
/// is refused.
#[tokio::test]
async fn a_file_above_the_copy_limit_is_staged_in_parts_byte_for_byte() {
    let aws = aws().await;
    let name = bucket(&aws).await;
    let mut s3 = S3Store::new(aws.s3.clone(), &name);
    s3.copy_part_bytes = 5 << 20;
    let body: Vec<u8> = (0..12u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let from = "inbox/stripe/2025-06-02/activity.csv";
    s3.put(from, body.clone(), "text/csv").await.unwrap();
    let to = "raw/stripe/2025-06-02/0190c0de/activity.csv";
    s3.copy(from, to).await.unwrap();
    assert!(
        s3.get(to).await.unwrap() == body,
        "the copy differs from the file"
    );
    let head = aws.s3.head_object().bucket(&name).key(to).send().await.unwrap();
    assert!(
        head.e_tag().unwrap_or("").trim_matches('"').ends_with("-3"),
        "{:?}",
        head.e_tag()
    );
    let again = s3.copy(from, to).await.unwrap_err();
    assert!(again.reason.contains("already exists"), "{again}");
    let open = aws
        .s3
        .list_multipart_uploads()
        .bucket(&name)
        .send()
        .await
        .unwrap();
    assert!(open.uploads().is_empty(), "{:?}", open.uploads());
    // a small file is still one CopyObject
    s3.put("inbox/stripe/2025-06-02/small.csv", b"a,b\n".to_vec(), "text/csv")
        .await
        .unwrap();
    s3.copy(
        "inbox/stripe/2025-06-02/small.csv",
        "raw/stripe/2025-06-02/0190c0de/small.csv",
    )
    .await
    .unwrap();
    assert_eq!(
        s3.get("raw/stripe/2025-06-02/0190c0de/small.csv").await.unwrap(),
        b"a,b\n"
    );
    // moto cannot dump its state (`/moto-api/data.json`, which the SES tests and scripts/sfn-e2e.sh read) once
    // it has held a multipart object, even after the bucket is deleted: its state is reset (this binary runs
    // alone: cargo runs test binaries one after another, and every other test makes its own resources)
    let endpoint = endpoint();
    let reset = reqwest::Client::new()
        .post(format!("{endpoint}/moto-api/reset"))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success(), "{}", reset.status());
    let data = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .unwrap();
    assert!(
        data.status().is_success(),
        "moto's state after the reset: {}",
        data.status()
    );
}
