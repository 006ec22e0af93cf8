//! moto server for the AWS tests (started by `make test`): its endpoint, SDK clients on it, a fresh versioned
//! bucket (shared by `aws.rs` and `s3_copy.rs`).

#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use recon_aws::Aws;

pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("AWS_ENDPOINT_URL is not set: run the tests through `make test`, which starts moto server")
    })
}

pub async fn aws() -> Aws {
    endpoint();
    Aws::load(None).await
}

pub async fn bucket(aws: &Aws) -> String {
    let name = format!("recon-test-{}", uuid::Uuid::new_v4().simple());
    aws.s3.create_bucket().bucket(&name).send().await.unwrap();
    aws.s3
        .put_bucket_versioning()
        .bucket(&name)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    name
}
