//! The [`ObjectStore`] port on a versioned S3 bucket: the same keys as the local directory store; raw data
//! is never overwritten (conditional puts and copies).

use std::io::Read;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use recon_app::keys::is_raw;
use recon_app::objects::{ObjectError, ObjectStore};

/// Is an SDK error worth retrying (throttling, timeouts, 5xx, connection problems)? Any AWS service's.
pub fn retryable<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("");
            s.raw().status().is_server_error()
                || s.raw().status().as_u16() == 429
                || [
                    "SlowDown",
                    "Throttl",
                    "TooManyRequests",
                    "RequestLimitExceeded",
                    "RequestTimeout",
                ]
                .iter()
                .any(|c| code.contains(c))
        }
        _ => false,
    }
}

/// What an AWS error says, briefly: the service's HTTP status, error code and message, or the kind of failure
/// (no answer in time, not reached, an unreadable answer). Never the SDK's debug dump of the request and
/// response (about 1 KB, with request ids and headers). Any AWS service's.
pub fn brief<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> String {
    let text = match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = s.err().code().unwrap_or("no error code");
            match s.err().message().filter(|m| !m.is_empty()) {
                Some(m) => format!("HTTP {status} {code}: {m}"),
                None => format!("HTTP {status} {code}"),
            }
        }
        SdkError::TimeoutError(_) => "no answer in time".to_string(),
        SdkError::DispatchFailure(d) => {
            let why = if d.is_timeout() {
                "timed out"
            } else if d.is_io() {
                "connection failed"
            } else {
                "request not sent"
            };
            format!("not reached ({why})")
        }
        SdkError::ResponseError(_) => "an answer that could not be read".to_string(),
        SdkError::ConstructionFailure(_) => "the request could not be built".to_string(),
        _ => "an unknown SDK error".to_string(),
    };
    text.chars().take(300).collect()
}

fn obj_err<E: ProvideErrorMetadata>(
    op: &'static str,
    key: &str,
    e: SdkError<E, HttpResponse>,
) -> ObjectError {
    ObjectError {
        op,
        key: key.to_string(),
        reason: brief(&e),
        retryable: retryable(&e),
    }
}

/// The object store on S3.
#[derive(Clone, Debug)]
pub struct S3Store {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    /// How long report links in emails stay valid (default 7 days, the SigV4 maximum).
    pub link_ttl: Duration,
    /// An object larger than this is copied in parts of this size (a multipart upload of `UploadPartCopy`
    /// parts): S3 refuses a single `CopyObject` above 5 GiB, the default.
    pub copy_part_bytes: u64,
}

/// The largest object one `CopyObject` copies, and the largest part of a multipart copy.
pub const COPY_LIMIT: u64 = 5 << 30;

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Store {
            client,
            bucket: bucket.into(),
            link_ttl: Duration::from_secs(7 * 24 * 3600),
            copy_part_bytes: COPY_LIMIT,
        }
    }
}

impl S3Store {
    /// Copies `from` (of `size` bytes, version `etag`) to `to` in parts of [`Self::copy_part_bytes`]: every
    /// part copied from that version of the source (a source replaced meanwhile fails the copy), the upload
    /// completed only when `to` does not exist where it is raw data, and aborted on any failure (no parts
    /// left behind).
    async fn copy_in_parts(
        &self,
        from: &str,
        source: &str,
        to: &str,
        size: u64,
        etag: &str,
    ) -> Result<(), ObjectError> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(to)
            .send()
            .await
            .map_err(|e| obj_err("copy", to, e))?;
        let Some(id) = upload.upload_id().map(str::to_string) else {
            return Err(ObjectError {
                op: "copy",
                key: to.to_string(),
                reason: "S3 started a multipart upload without an upload id".into(),
                retryable: true,
            });
        };
        let copied = async {
            let part = self.copy_part_bytes.clamp(5 << 20, COPY_LIMIT);
            let mut parts = Vec::new();
            let mut at = 0u64;
            while at < size {
                let end = at.saturating_add(part).min(size);
                let number = i32::try_from(parts.len() + 1).unwrap_or(i32::MAX);
                let out = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.bucket)
                    .key(to)
                    .upload_id(&id)
                    .part_number(number)
                    .copy_source(source)
                    .copy_source_if_match(etag)
                    .copy_source_range(format!("bytes={at}-{}", end - 1))
                    .send()
                    .await
                    .map_err(|e| obj_err("copy", from, e))?;
                let tag = out.copy_part_result().and_then(|r| r.e_tag()).unwrap_or_default();
                parts.push(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(number)
                        .e_tag(tag)
                        .build(),
                );
                at = end;
            }
            let done = aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build();
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(to)
                .upload_id(&id)
                .multipart_upload(done)
                // raw data is never overwritten: the upload completes only where the key does not exist
                .set_if_none_match(is_raw(to).then(|| "*".to_string()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| obj_err("copy", to, e))
        }
        .await;
        if copied.is_err() {
            // best effort: an upload left open is also removed by the bucket's lifecycle rule
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(to)
                .upload_id(&id)
                .send()
                .await;
        }
        copied
    }

    async fn get_object(
        &self,
        key: &str,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, ObjectError> {
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| obj_err("get", key, e))
    }
}

impl ObjectStore for S3Store {
    async fn get(&self, key: &str) -> Result<Vec<u8>, ObjectError> {
        let out = self.get_object(key).await?;
        let body = out.body.collect().await.map_err(|e| ObjectError {
            op: "get",
            key: key.to_string(),
            reason: e.to_string(),
            retryable: true,
        })?;
        Ok(body.into_bytes().to_vec())
    }

    /// Streams the object: the parser reads the S3 body as it arrives (a blocking reader bridged onto the
    /// runtime), so a 300 MB settlement file is never held in memory whole.
    async fn open(&self, key: &str) -> Result<(Box<dyn Read + Send>, Option<u64>), ObjectError> {
        let out = self.get_object(key).await?;
        let len = out.content_length().and_then(|l| u64::try_from(l).ok());
        let reader = tokio_util::io::SyncIoBridge::new(out.body.into_async_read());
        Ok((Box::new(reader), len))
    }

    /// A ranged GET: only the range's bytes travel.
    async fn open_range(
        &self,
        key: &str,
        from: u64,
        to: u64,
    ) -> Result<(Box<dyn Read + Send>, u64), ObjectError> {
        if to <= from {
            // an empty range: nothing to fetch, but the size is still wanted
            let head = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| obj_err("head", key, e))?;
            let size = head
                .content_length()
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or(0);
            return Ok((Box::new(std::io::empty()), size));
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={from}-{}", to - 1))
            .send()
            .await
            .map_err(|e| obj_err("get", key, e))?;
        // `Content-Range: bytes a-b/size`
        let size = out
            .content_range()
            .and_then(|r| r.rsplit('/').next())
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| ObjectError {
                op: "get",
                key: key.to_string(),
                reason: format!("a ranged read of bytes {from}..{to} came back without the object's size"),
                retryable: false,
            })?;
        let reader = tokio_util::io::SyncIoBridge::new(out.body.into_async_read());
        Ok((Box::new(reader), size))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), ObjectError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            // raw data is never overwritten: a conditional put fails when the key exists
            .set_if_none_match(is_raw(key).then(|| "*".to_string()))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| obj_err("put", key, e))
    }

    async fn put_new(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<bool, ObjectError> {
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .if_none_match("*")
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            // 412 Precondition Failed (or 409 while another conditional write of the key is in flight)
            Err(e) if matches!(e.raw_response().map(|r| r.status().as_u16()), Some(412 | 409)) => Ok(false),
            Err(e) => Err(obj_err("put", key, e)),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, ObjectError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(obj_err("head", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| obj_err("list", prefix, e))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        }
        keys.sort();
        Ok(keys)
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), ObjectError> {
        if is_raw(to)
            && self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(to)
                .send()
                .await
                .is_ok()
        {
            // the conditional copy below refuses it too where S3 enforces If-None-Match on copies
            return Err(ObjectError {
                op: "copy",
                key: to.to_string(),
                reason: "already exists: raw data is never overwritten".into(),
                retryable: false,
            });
        }
        let source = format!(
            "{}/{}",
            self.bucket,
            from.split('/').map(urlencode).collect::<Vec<_>>().join("/")
        );
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(from)
            .send()
            .await
            .map_err(|e| obj_err("copy", from, e))?;
        let size = head
            .content_length()
            .and_then(|l| u64::try_from(l).ok())
            .unwrap_or(0);
        if size > self.copy_part_bytes {
            let etag = head.e_tag().unwrap_or_default().to_string();
            return self.copy_in_parts(from, &source, to, size, &etag).await;
        }
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(source)
            // raw data is never overwritten: a conditional copy fails when the key exists
            .set_if_none_match(is_raw(to).then(|| "*".to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| obj_err("copy", from, e))
    }

    async fn link(&self, key: &str) -> Result<String, ObjectError> {
        let cfg = PresigningConfig::expires_in(self.link_ttl).map_err(|e| ObjectError {
            op: "link",
            key: key.to_string(),
            reason: e.to_string(),
            retryable: false,
        })?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(cfg)
            .await
            .map_err(|e| obj_err("link", key, e))?;
        Ok(req.uri().to_string())
    }

    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }
}

fn urlencode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
