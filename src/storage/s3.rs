//! Amazon S3 and S3-compatible storage (MinIO, Ceph, moto) through `aws-sdk-s3`.
//!
//! SDK types stay in this module (`s3/upload.rs`: uploads; `s3/errors.rs`: error mapping). Credentials and region come from the SDK's
//! standard chain (environment, profiles, web identity, instance role); the
//! region falls back to `us-east-1`. Buckets are never created here.
//!
//! Uploads stream: a body shorter than one part goes up in one PutObject,
//! anything longer as a multipart upload with at most
//! `Tuning::upload_concurrency` parts in flight and one being read, each
//! part's memory reserved from the process-wide budget
//! (`Tuning::upload_memory`, see `storage::budget`). A failed multipart
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

mod delete;
mod errors;
mod listing;
mod upload;

use futures::stream::BoxStream;

use super::bulk::refine_refusal;
use super::listing::objects_only;
use super::location::{ChecksumWhen, S3Location};
use super::{
    ByteReader, DirEntry, Key, ObjectMeta, Storage, StorageError, Tuning, Versioning, WriteMode,
};
use errors::storage_error;
use upload::read_part;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Test-only override of both timeouts, in seconds.
const TIMEOUT_VARIABLE: &str = "GITBAK_S3_TIMEOUT_SECS";
pub struct S3Storage {
    client: Client,
    bucket: String,
    tuning: Tuning,
    /// Request checksums are on: parts carry CRC32s, which the completion lists.
    part_checksums: bool,
    /// Requests go over TLS, so parts need no payload signature (as the AWS
    /// CLI and Go SDK decide).
    over_tls: bool,
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
    let request_checksums = request_checksums(location, &tuning);
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
        over_tls: over_tls(location),
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
fn request_checksums(location: &S3Location, tuning: &Tuning) -> ChecksumWhen {
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

/// Whether requests go over TLS: AWS itself, or an `https` endpoint.
fn over_tls(location: &S3Location) -> bool {
    match &location.endpoint {
        Some(endpoint) => endpoint_url(endpoint, location.disable_https).starts_with("https://"),
        None => !location.disable_https,
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

impl S3Storage {
    fn error<E>(&self, key: &str, error: SdkError<E, HttpResponse>) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        storage_error(&self.bucket, key, error)
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
        let first_size = self.part_size(1);
        // Held until the body is sent: a short body by PutObject below, the
        // first part of a long one by its part task.
        let mut reservation = self.tuning.upload_memory.reserve(first_size).await;
        let first_part = read_part(&mut body, first_size, 0)
            .await
            .map_err(StorageError::Source)?;
        if first_part.len() < first_size {
            reservation.shrink_to(first_part.capacity());
            self.put_single(key, first_part, mode).await
        } else {
            self.put_multipart(key, (first_part, reservation), body, mode)
                .await
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

    fn list_stream<'a>(&'a self, prefix: &str) -> BoxStream<'a, Result<ObjectMeta, StorageError>> {
        objects_only(self.entries(prefix, false))
    }

    fn list_dir_stream<'a>(
        &'a self,
        prefix: &str,
    ) -> BoxStream<'a, Result<DirEntry, StorageError>> {
        self.entries(prefix, true)
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
                other => Err(refine_refusal(other, self.hold(key.as_str())).await),
            },
        }
    }

    /// DeleteObjects, 1,000 keys a request.
    async fn delete_many(&self, keys: &[Key]) -> Vec<Result<(), StorageError>> {
        self.delete_batches(keys).await
    }

    async fn versioning(&self) -> Result<Versioning, StorageError> {
        self.bucket_versioning().await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_unsigned_only_over_tls() {
        let at = |endpoint: Option<&str>, disable_https| S3Location {
            endpoint: endpoint.map(str::to_owned),
            disable_https,
            ..S3Location::default()
        };
        assert!(over_tls(&at(None, false)));
        assert!(!over_tls(&at(None, true)));
        assert!(over_tls(&at(Some("https://minio:9000"), false)));
        assert!(over_tls(&at(Some("minio:9000"), false)));
        assert!(!over_tls(&at(Some("minio:9000"), true)));
        assert!(!over_tls(&at(Some("http://127.0.0.1:9000"), false)));
    }

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
            ..plain.clone()
        };
        for (location, tuning, want) in [
            (&S3Location::default(), &plain, ChecksumWhen::WhenSupported),
            (&custom, &plain, ChecksumWhen::WhenRequired),
            (&asked, &plain, ChecksumWhen::WhenSupported),
            (&custom, &immutable, ChecksumWhen::WhenSupported),
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
}
