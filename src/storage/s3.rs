//! Amazon S3 and S3-compatible storage (MinIO, Ceph, moto) through `aws-sdk-s3`.
//!
//! SDK types stay in this file. Credentials and region come from the SDK's
//! standard chain (environment, profiles, web identity, instance role); the
//! region falls back to `us-east-1`. Buckets are never created here.
//!
//! Uploads stream: a body shorter than one part goes up in one PutObject,
//! anything longer as a multipart upload with at most
//! `Tuning::upload_concurrency` parts in flight and one being read: peak RSS
//! near (concurrency + 2) × part size + 10 MB, one part more than we hold
//! (106–122 MB measured for 200 MiB at 16 MiB × 4). A failed multipart
//! upload is aborted, so a failed put leaves nothing visible. Create-only writes send
//! `If-None-Match: *` on PutObject and CompleteMultipartUpload.
//!
//! Timeouts: connect 10 s; read 120 s, which counts from sending a request
//! until its response headers, so it includes sending one part (16 MiB needs
//! at least ~140 KiB/s). `GITBAK_S3_TIMEOUT_SECS` replaces both, for tests
//! that stall the server on purpose.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use aws_sdk_s3::Client;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use super::location::{ChecksumWhen, S3Location};
use super::{ByteReader, Key, ObjectMeta, Storage, StorageError, Tuning, WriteMode};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Test-only override of both timeouts, in seconds.
const TIMEOUT_VARIABLE: &str = "GITBAK_S3_TIMEOUT_SECS";
/// S3's limits: parts of 5 MiB to 5 GiB, at most 10,000 of them.
const MIN_PART_SIZE: usize = 5 << 20;
const MAX_PART_SIZE: usize = 5 << 30;
const MAX_PARTS: i32 = 10_000;
/// Parts double in size every this many parts, so 10,000 parts hold 5 TB
/// from a 5 MiB start and more than S3's 5 TiB object limit from 16 MiB.
const PARTS_PER_SIZE_STEP: i32 = 1000;
/// User metadata naming one put, so a retried create-only request that finds
/// "already exists" can tell its own earlier attempt from someone else's object.
const WRITE_ID_METADATA: &str = "gitbak-write-id";
const CREDENTIALS_HINT: &str =
    "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, the instance role) and the bucket policy";

pub struct S3Storage {
    client: Client,
    bucket: String,
    tuning: Tuning,
    /// Request checksums are on: parts carry CRC32s, which the completion lists.
    part_checksums: bool,
    server_side_encryption: Option<ServerSideEncryption>,
    kms_key_id: Option<String>,
}

/// Builds the client for `location` from the SDK's standard chain.
pub async fn open(location: &S3Location, tuning: Tuning) -> Result<Arc<dyn Storage>, StorageError> {
    let timeout = timeout_override()?;
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(timeout.unwrap_or(CONNECT_TIMEOUT))
        .read_timeout(timeout.unwrap_or(READ_TIMEOUT))
        .build();
    // The standard mode backs off exponentially with jitter and retries
    // timeouts, refused connections, 5xx and throttling.
    let retries = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(tuning.retries.saturating_add(1));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(retries);
    if let Some(region) = &location.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &location.profile {
        loader = loader.profile_name(profile);
    }
    if location.anonymous {
        loader = loader.no_credentials();
    }
    let shared = loader.load().await;
    let mut config =
        aws_sdk_s3::config::Builder::from(&shared).force_path_style(location.use_path_style);
    if shared.region().is_none() {
        config = config.region(Region::new("us-east-1"));
    }
    // Only switch these on: `false` would override AWS_USE_FIPS_ENDPOINT and friends.
    if location.dualstack {
        config = config.use_dual_stack(true);
    }
    if location.fips {
        config = config.use_fips(true);
    }
    if location.accelerate {
        config = config.accelerate(true);
    }
    if let Some(endpoint) = &location.endpoint {
        config = config.endpoint_url(endpoint_url(endpoint, location.disable_https));
    }
    let request_checksums = request_checksums(location, tuning);
    config = config.request_checksum_calculation(match request_checksums {
        ChecksumWhen::WhenSupported => RequestChecksumCalculation::WhenSupported,
        ChecksumWhen::WhenRequired => RequestChecksumCalculation::WhenRequired,
    });
    if let Some(validation) = location.response_checksum_validation {
        config = config.response_checksum_validation(match validation {
            ChecksumWhen::WhenSupported => ResponseChecksumValidation::WhenSupported,
            ChecksumWhen::WhenRequired => ResponseChecksumValidation::WhenRequired,
        });
    }
    Ok(Arc::new(S3Storage {
        client: Client::from_conf(config.build()),
        bucket: location.bucket.clone(),
        tuning,
        part_checksums: request_checksums == ChecksumWhen::WhenSupported,
        server_side_encryption: location
            .server_side_encryption
            .as_deref()
            .map(ServerSideEncryption::from),
        kms_key_id: location.kms_key_id.clone(),
    }))
}

fn timeout_override() -> Result<Option<Duration>, StorageError> {
    let Ok(text) = std::env::var(TIMEOUT_VARIABLE) else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(seconds) if seconds > 0 => Ok(Some(Duration::from_secs(seconds))),
        _ => Err(StorageError::Other {
            key: TIMEOUT_VARIABLE.into(),
            message: format!("{text:?} is not a positive number of seconds"),
        }),
    }
}

/// Gitaly's rule: custom endpoints (older S3-compatible servers) get
/// checksums only where required, unless the URL says otherwise. Object-lock
/// buckets refuse writes without a checksum, so `immutable` always sends them.
fn request_checksums(location: &S3Location, tuning: Tuning) -> ChecksumWhen {
    if tuning.immutable {
        ChecksumWhen::WhenSupported
    } else if let Some(setting) = location.request_checksum_calculation {
        setting
    } else if location.endpoint.is_some() {
        ChecksumWhen::WhenRequired
    } else {
        ChecksumWhen::WhenSupported
    }
}

/// `disable_https` decides the scheme of an endpoint given without one.
fn endpoint_url(endpoint: &str, disable_https: bool) -> String {
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else if disable_https {
        format!("http://{endpoint}")
    } else {
        format!("https://{endpoint}")
    }
}

/// Size of part `number` (from 1): the tuned size, doubled every
/// `PARTS_PER_SIZE_STEP` parts, within S3's bounds.
fn part_size(tuned: usize, number: i32) -> usize {
    let doublings = ((number - 1) / PARTS_PER_SIZE_STEP).clamp(0, 20) as u32;
    tuned
        .clamp(MIN_PART_SIZE, MAX_PART_SIZE)
        .saturating_mul(1 << doublings)
        .min(MAX_PART_SIZE)
}

/// A value unique to one put: process, time and a counter, hashed.
fn new_write_id(key: &Key) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = format!(
        "{}/{nanos}/{}/{key}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    hex::encode(&Sha256::digest(seed.as_bytes())[..16])
}

/// Reads up to `limit` bytes, fewer only at the end of the body.
/// `capacity` is allocated up front; a first part grows as it fills, so a
/// small manifest does not cost a whole part.
async fn read_part(
    body: &mut ByteReader,
    limit: usize,
    capacity: usize,
) -> std::io::Result<Vec<u8>> {
    let mut part = Vec::with_capacity(capacity.min(limit));
    while part.len() < limit {
        if part.len() == part.capacity() {
            part.reserve_exact(part.len().max(64 << 10).min(limit - part.len()));
        }
        let room = (part.capacity() - part.len()).min(limit - part.len());
        if (&mut *body).take(room as u64).read_buf(&mut part).await? == 0 {
            break;
        }
    }
    Ok(part)
}

/// Makes provider text fit one log line and drops the query string of
/// every URL in it: presigned URLs carry signatures there.
fn clean(text: &str) -> String {
    text.split_whitespace()
        .map(|word| match (word.find("://"), word.find('?')) {
            (Some(scheme), Some(query)) if query > scheme => &word[..query],
            _ => word,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An error and its sources on one line, without the SDK's Debug dump.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some layers repeat their source's text in their own.
        if !text.ends_with(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Maps an SDK error to what the rest of gitbak acts on; the key names
/// the object (or the listed prefix).
fn storage_error<E>(bucket: &str, key: &str, error: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let key = key.to_owned();
    let SdkError::ServiceError(service) = &error else {
        let message = clean(&format!("S3 request failed: {}", error_chain(&error)));
        return match error {
            // Loading credentials fails before any request is sent.
            _ if message.contains("no credentials") || message.contains("credential provider") => {
                StorageError::AccessDenied {
                    key,
                    message: format!("{message}; {CREDENTIALS_HINT}"),
                }
            }
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => StorageError::Transient { key, message },
            _ => StorageError::Other { key, message },
        };
    };
    let status = service.raw().status().as_u16();
    let code = service.err().code().unwrap_or("");
    let detail = clean(service.err().message().unwrap_or(""));
    match (status, code) {
        (_, "NoSuchBucket") => StorageError::Other {
            key,
            message: format!("S3 bucket {bucket:?} does not exist; gitbak never creates buckets"),
        },
        (404, _) | (_, "NoSuchKey") => StorageError::NotFound { key },
        (412, _) => StorageError::AlreadyExists { key },
        (401 | 403, _) => StorageError::AccessDenied {
            key,
            message: format!("S3 refused the request ({code} {detail}); {CREDENTIALS_HINT}"),
        },
        (429 | 500..=599, _) | (_, "SlowDown" | "RequestTimeout" | "InternalError") => {
            StorageError::Transient {
                key,
                message: format!("S3 {code} (HTTP {status}): {detail}"),
            }
        }
        _ => StorageError::Other {
            key,
            message: format!("S3 {code} (HTTP {status}): {detail}"),
        },
    }
}

impl S3Storage {
    fn error<E>(&self, key: &str, error: SdkError<E, HttpResponse>) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        storage_error(&self.bucket, key, error)
    }

    fn written(key: &Key, size: u64) -> ObjectMeta {
        // The clock here, not the server's: asking would cost a request per put.
        ObjectMeta {
            key: key.clone(),
            size,
            modified: SystemTime::now(),
        }
    }

    async fn put_single(
        &self,
        key: &Key,
        bytes: Vec<u8>,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        let size = bytes.len() as u64;
        let write_id = new_write_id(key);
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .body(ByteStream::from(bytes))
            .metadata(WRITE_ID_METADATA, &write_id)
            .set_server_side_encryption(self.server_side_encryption.clone())
            .set_ssekms_key_id(self.kms_key_id.clone());
        if mode == WriteMode::CreateOnly {
            request = request.if_none_match("*");
        }
        match request.send().await {
            Ok(_) => Ok(Self::written(key, size)),
            Err(error) => match self.error(key.as_str(), error) {
                StorageError::AlreadyExists { .. }
                    if self.is_own_write(key, size, &write_id).await =>
                {
                    Ok(Self::written(key, size))
                }
                other => Err(other),
            },
        }
    }

    /// Whether the object at `key` is this put's own: a request whose earlier
    /// attempt reached S3 but whose response was lost is retried by the SDK,
    /// and then finds the object ("already exists") or, for a completion,
    /// no longer finds the upload.
    async fn is_own_write(&self, key: &Key, size: u64, write_id: &str) -> bool {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await;
        let ours = head.is_ok_and(|head| {
            let found_id = head
                .metadata()
                .and_then(|metadata| metadata.get(WRITE_ID_METADATA));
            found_id.map(String::as_str) == Some(write_id)
                && head.content_length() == Some(size as i64)
        });
        if ours {
            tracing::debug!(%key, "a retried request found this put's own object");
        }
        ours
    }

    async fn put_multipart(
        &self,
        key: &Key,
        first_part: Vec<u8>,
        body: ByteReader,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        let write_id = new_write_id(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .metadata(WRITE_ID_METADATA, &write_id)
            .set_server_side_encryption(self.server_side_encryption.clone())
            .set_ssekms_key_id(self.kms_key_id.clone())
            .set_checksum_algorithm(self.part_checksums.then_some(ChecksumAlgorithm::Crc32))
            .send()
            .await
            .map_err(|error| self.error(key.as_str(), error))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let result = match self.upload_parts(key, &upload_id, first_part, body).await {
            Ok((parts, size)) => {
                self.complete(key, &upload_id, parts, size, &write_id, mode)
                    .await
            }
            Err(error) => Err(error),
        };
        if result.is_err() {
            self.abort(key, &upload_id).await;
        }
        result
    }

    /// Uploads the body as parts, at most `upload_concurrency` at once, and
    /// returns them in order with the total size. Dropping the in-flight set
    /// on an early return cancels the other parts.
    async fn upload_parts(
        &self,
        key: &Key,
        upload_id: &str,
        first_part: Vec<u8>,
        mut body: ByteReader,
    ) -> Result<(Vec<CompletedPart>, u64), StorageError> {
        let concurrency = self.tuning.upload_concurrency.max(1);
        let mut in_flight = JoinSet::new();
        let mut completed = Vec::new();
        let (mut part, mut number, mut size) = (first_part, 1, 0u64);
        loop {
            size += part.len() as u64;
            while in_flight.len() >= concurrency {
                completed.push(Self::joined(key, in_flight.join_next().await)?);
            }
            in_flight.spawn(self.upload_part(key, upload_id, number, part));
            if number == MAX_PARTS {
                let mut probe = [0u8; 1];
                if body.read(&mut probe).await.map_err(StorageError::Source)? > 0 {
                    return Err(StorageError::Other {
                        key: key.to_string(),
                        message: format!(
                            "object exceeds S3's limit of {MAX_PARTS} parts; raise the part size"
                        ),
                    });
                }
                break;
            }
            number += 1;
            let limit = part_size(self.tuning.part_size, number);
            part = read_part(&mut body, limit, limit)
                .await
                .map_err(StorageError::Source)?;
            if part.is_empty() {
                break;
            }
        }
        while let Some(joined) = in_flight.join_next().await {
            completed.push(Self::joined(key, Some(joined))?);
        }
        completed.sort_by_key(|part| part.part_number());
        Ok((completed, size))
    }

    fn joined(
        key: &Key,
        joined: Option<Result<Result<CompletedPart, StorageError>, tokio::task::JoinError>>,
    ) -> Result<CompletedPart, StorageError> {
        match joined {
            Some(Ok(part)) => part,
            Some(Err(error)) => Err(StorageError::Other {
                key: key.to_string(),
                message: error.to_string(),
            }),
            None => Err(StorageError::Other {
                key: key.to_string(),
                message: "no part upload to wait for".into(),
            }),
        }
    }

    /// One part's upload as a task of its own; the SDK retries it.
    fn upload_part(
        &self,
        key: &Key,
        upload_id: &str,
        number: i32,
        bytes: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<CompletedPart, StorageError>> + Send + 'static
    {
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .part_number(number)
            .set_checksum_algorithm(self.part_checksums.then_some(ChecksumAlgorithm::Crc32))
            .body(ByteStream::from(bytes));
        let (key, bucket) = (key.to_string(), self.bucket.clone());
        async move {
            match request.send().await {
                Ok(output) => Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(output.e_tag().map(str::to_owned))
                    .set_checksum_crc32(output.checksum_crc32().map(str::to_owned))
                    .build()),
                Err(error) => Err(storage_error(&bucket, &key, error)),
            }
        }
    }

    async fn complete(
        &self,
        key: &Key,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        size: u64,
        write_id: &str,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        let mut request = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        if mode == WriteMode::CreateOnly {
            request = request.if_none_match("*");
        }
        match request.send().await {
            Ok(_) => Ok(Self::written(key, size)),
            Err(error) => match self.error(key.as_str(), error) {
                StorageError::AlreadyExists { .. } | StorageError::NotFound { .. }
                    if self.is_own_write(key, size, write_id).await =>
                {
                    Ok(Self::written(key, size))
                }
                StorageError::NotFound { key } => Err(StorageError::Other {
                    key,
                    message: "S3 no longer knows this multipart upload".into(),
                }),
                other => Err(other),
            },
        }
    }

    /// Best effort: a failed abort leaves parts that are billed but never
    /// visible; a bucket lifecycle rule removes them.
    async fn abort(&self, key: &Key, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(error) = aborted {
            tracing::warn!(%key, error = %self.error(key.as_str(), error), "could not abort the multipart upload");
        }
    }
}

impl fmt::Display for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn put(
        &self,
        key: &Key,
        mut body: ByteReader,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        let first_size = part_size(self.tuning.part_size, 1);
        let first_part = read_part(&mut body, first_size, 0)
            .await
            .map_err(StorageError::Source)?;
        if first_part.len() < first_size {
            self.put_single(key, first_part, mode).await
        } else {
            self.put_multipart(key, first_part, body, mode).await
        }
    }

    async fn get(&self, key: &Key) -> Result<ByteReader, StorageError> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|error| self.error(key.as_str(), error))?;
        Ok(Box::pin(output.body.into_async_read()))
    }

    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(head) => Ok(Some(ObjectMeta {
                key: key.clone(),
                size: head.content_length().unwrap_or(0).max(0) as u64,
                modified: head
                    .last_modified()
                    .and_then(|time| SystemTime::try_from(*time).ok())
                    .unwrap_or(SystemTime::UNIX_EPOCH),
            })),
            Err(error) => match self.error(key.as_str(), error) {
                StorageError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let page_size = i32::try_from(self.tuning.list_page_size)
            .unwrap_or(1000)
            .clamp(1, 1000);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(page_size)
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| self.error(prefix, error))?;
            for object in page.contents() {
                let name = object.key().unwrap_or_default();
                // Console "folder" markers (`dir/`) and the like are not gitbak's.
                let Ok(key) = Key::new(name) else {
                    tracing::debug!(
                        key = name,
                        "skipping an object whose name is not a gitbak key"
                    );
                    continue;
                };
                found.push(ObjectMeta {
                    key,
                    size: object.size().unwrap_or(0).max(0) as u64,
                    modified: object
                        .last_modified()
                        .and_then(|time| SystemTime::try_from(*time).ok())
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        Ok(found)
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => match self.error(key.as_str(), error) {
                StorageError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn checksums_follow_gitaly_and_immutable() {
        let custom = S3Location {
            endpoint: Some("http://minio:9000".into()),
            ..S3Location::default()
        };
        let asked = S3Location {
            request_checksum_calculation: Some(ChecksumWhen::WhenSupported),
            ..custom.clone()
        };
        let plain = Tuning::default();
        let immutable = Tuning {
            immutable: true,
            ..plain
        };
        for (location, tuning, want) in [
            (&S3Location::default(), plain, ChecksumWhen::WhenSupported),
            (&custom, plain, ChecksumWhen::WhenRequired),
            (&asked, plain, ChecksumWhen::WhenSupported),
            (&custom, immutable, ChecksumWhen::WhenSupported),
        ] {
            assert_eq!(
                request_checksums(location, tuning),
                want,
                "{location:?} {tuning:?}"
            );
        }
    }

    #[test]
    fn endpoints_without_a_scheme() {
        assert_eq!(endpoint_url("minio:9000", false), "https://minio:9000");
        assert_eq!(endpoint_url("minio:9000", true), "http://minio:9000");
        assert_eq!(
            endpoint_url("http://minio:9000", false),
            "http://minio:9000"
        );
    }

    #[test]
    fn parts_grow_within_s3_limits() {
        let mib = 1 << 20;
        assert_eq!(part_size(mib, 1), 5 * mib, "raised to S3's minimum");
        assert_eq!(part_size(16 * mib, 1000), 16 * mib);
        assert_eq!(part_size(16 * mib, 1001), 32 * mib);
        assert_eq!(part_size(16 * mib, MAX_PARTS), MAX_PART_SIZE);
        let capacity = |first| {
            (1..=MAX_PARTS)
                .map(|number| part_size(first, number) as u64)
                .sum::<u64>()
        };
        assert!(
            capacity(5 * mib) > 5_000_000_000_000,
            "{}",
            capacity(5 * mib)
        );
        assert!(
            capacity(16 * mib) > 5 << 40,
            "S3's 5 TiB object limit: {}",
            capacity(16 * mib)
        );
    }

    #[test]
    fn provider_text_is_one_line_without_query_strings() {
        assert_eq!(
            clean("denied for https://b.s3.amazonaws.com/k?X-Amz-Signature=abc\n  at   line"),
            "denied for https://b.s3.amazonaws.com/k at line"
        );
    }

    #[tokio::test]
    async fn parts_are_full_until_the_end() {
        let mut body: ByteReader = Box::pin(std::io::Cursor::new(vec![7u8; 300_000]));
        assert_eq!(
            read_part(&mut body, 200_000, 0).await.unwrap().len(),
            200_000
        );
        let last = read_part(&mut body, 200_000, 200_000).await.unwrap();
        assert_eq!((last.len(), last.capacity()), (100_000, 200_000));
        assert!(read_part(&mut body, 200_000, 200_000)
            .await
            .unwrap()
            .is_empty());
    }
}
