//! Deleting on S3: DeleteObjects with up to 1,000 keys a request, what a
//! refusal means (object lock), and whether the bucket keeps versions.
//!
//! On a versioned bucket (every object-lock bucket is one) a plain delete
//! is not refused even for a retained object: S3 adds a delete marker and
//! keeps the version. A refusal happens when a policy denies the delete
//! or an S3-compatible store enforces retention on the current object; it
//! counts as `Locked` only when HeadObject shows an active retention or a
//! legal hold (those headers need s3:GetObjectRetention and
//! s3:GetObjectLegalHold; without them a refusal stays an error).

use std::collections::HashMap;
use std::time::SystemTime;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sdk_s3::types::{BucketVersioningStatus, Delete, ObjectIdentifier};
use futures::stream::{self, StreamExt};

use super::S3Storage;
use crate::storage::bulk::{delete_each, lock_words, refine_refusal};
use crate::storage::{Key, StorageError, Versioning, DELETE_CONCURRENCY};

/// S3's limit of keys per DeleteObjects request.
pub(super) const DELETE_BATCH: usize = 1000;

impl S3Storage {
    pub(super) async fn delete_batches(&self, keys: &[Key]) -> Vec<Result<(), StorageError>> {
        let mut results = Vec::with_capacity(keys.len());
        for batch in keys.chunks(DELETE_BATCH) {
            results.extend(self.delete_batch(batch).await);
        }
        results
    }

    /// One DeleteObjects request (quiet: only failures come back).
    async fn delete_batch(&self, keys: &[Key]) -> Vec<Result<(), StorageError>> {
        let objects = keys
            .iter()
            .map(|key| ObjectIdentifier::builder().key(key.as_str()).build())
            .collect::<Result<Vec<_>, _>>();
        let delete = objects.and_then(|objects| {
            Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
        });
        let scope = format!("{} keys from {}", keys.len(), keys[0]);
        let delete = match delete {
            Ok(delete) => delete,
            Err(error) => {
                let error = StorageError::Other {
                    key: scope,
                    message: format!("cannot build the S3 delete request: {error}"),
                };
                return keys
                    .iter()
                    .map(|key| Err(error.for_key(key.as_str())))
                    .collect();
            }
        };
        let sent = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await;
        let mut failed: HashMap<String, StorageError> = match sent {
            Ok(output) => output
                .errors()
                .iter()
                .filter_map(|failure| {
                    let key = failure.key()?.to_owned();
                    let code = failure.code().unwrap_or_default();
                    let message = failure.message().unwrap_or_default();
                    per_key_error(&key, code, message).map(|error| (key, error))
                })
                .collect(),
            // S3-compatible servers without DeleteObjects: one key at a time.
            Err(SdkError::ServiceError(service))
                if service.raw().status().as_u16() == 501
                    || service.err().code() == Some("NotImplemented") =>
            {
                tracing::debug!(
                    "DeleteObjects is not implemented here; deleting one key at a time"
                );
                return delete_each(self, keys).await;
            }
            Err(error) => {
                let error = self.error(&scope, error);
                keys.iter()
                    .map(|key| (key.to_string(), error.for_key(key.as_str())))
                    .collect()
            }
        };
        // Owned keys: see `bulk::delete_each`.
        stream::iter(keys.to_vec())
            .map(|key| {
                let failure = failed.remove(key.as_str());
                async move {
                    match failure {
                        None => Ok(()),
                        Some(error) => Err(refine_refusal(error, self.hold(key.as_str())).await),
                    }
                }
            })
            .buffered(DELETE_CONCURRENCY)
            .collect()
            .await
    }

    /// Why the object cannot be deleted, if it shows an active retention
    /// or legal hold; `None` if it shows neither (or is gone).
    pub(super) async fn hold(&self, key: &str) -> Result<Option<String>, StorageError> {
        let head = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => head,
            Err(error) => {
                return match self.error(key, error) {
                    StorageError::NotFound { .. } => Ok(None),
                    other => Err(other),
                }
            }
        };
        Ok(lock_reason(
            head.object_lock_mode().map(|mode| mode.as_str()),
            head.object_lock_retain_until_date(),
            head.object_lock_legal_hold_status()
                .is_some_and(|status| status.as_str() == "ON"),
            SystemTime::now(),
        ))
    }

    /// Buckets where gitbak may not ask (s3:GetBucketVersioning) or
    /// servers without the call are `Unknown`, not an error.
    pub(super) async fn bucket_versioning(&self) -> Result<Versioning, StorageError> {
        let bucket = format!("s3://{}", self.bucket);
        match self
            .client
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(output) => Ok(match output.status() {
                Some(BucketVersioningStatus::Enabled) => Versioning::On,
                Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
                None => Versioning::Off,
                Some(other) => {
                    tracing::debug!(status = other.as_str(), "unknown S3 versioning status");
                    Versioning::Unknown
                }
            }),
            // A 2xx answer the SDK rejects: S3-compatible servers (moto
            // among them) name the root element differently; the status
            // inside is what counts.
            Err(SdkError::ServiceError(service)) if service.raw().status().is_success() => {
                let body = service.raw().body().bytes().unwrap_or_default();
                Ok(versioning_in(&String::from_utf8_lossy(body)))
            }
            Err(error) => match self.error(&bucket, error) {
                StorageError::AccessDenied { message, .. } => {
                    tracing::debug!(%message, "cannot ask whether the bucket is versioned");
                    Ok(Versioning::Unknown)
                }
                other => Err(other),
            },
        }
    }
}

/// The versioning status in a GetBucketVersioning answer's XML, read
/// without caring how the root element is named.
fn versioning_in(answer: &str) -> Versioning {
    if !answer.contains("Versioning") {
        tracing::debug!(answer, "unreadable S3 versioning answer");
        Versioning::Unknown
    } else if answer.contains("<Status>Enabled</Status>") {
        Versioning::On
    } else if answer.contains("<Status>Suspended</Status>") {
        Versioning::Suspended
    } else if answer.contains("<Status>") {
        Versioning::Unknown
    } else {
        Versioning::Off
    }
}

/// One key's failure inside a DeleteObjects answer; a missing key is no
/// failure.
fn per_key_error(key: &str, code: &str, message: &str) -> Option<StorageError> {
    let key = key.to_owned();
    let message = format!("S3 {code}: {message}");
    match code {
        "NoSuchKey" => None,
        "AccessDenied" => Some(StorageError::AccessDenied { key, message }),
        "SlowDown" | "InternalError" | "ServiceUnavailable" => {
            Some(StorageError::Transient { key, message })
        }
        _ => Some(StorageError::Other { key, message }),
    }
}

/// The lock an object's head shows, as words for the report.
fn lock_reason(
    mode: Option<&str>,
    retain_until: Option<&DateTime>,
    legal_hold: bool,
    now: SystemTime,
) -> Option<String> {
    let retained =
        retain_until.filter(|until| SystemTime::try_from(**until).is_ok_and(|until| until > now));
    let retention = retained.map(|until| {
        let until = until
            .fmt(DateTimeFormat::DateTime)
            .unwrap_or_else(|_| until.to_string());
        format!("{} retention until {until}", mode.unwrap_or("object-lock"))
    });
    lock_words(retention, legal_hold)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // allowed in tests (style.md)
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_an_active_retention_or_a_legal_hold_locks() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let later = DateTime::from_secs(1_800_000_060);
        let earlier = DateTime::from_secs(1_799_999_940);
        assert_eq!(
            lock_reason(Some("GOVERNANCE"), Some(&later), false, now).as_deref(),
            Some("GOVERNANCE retention until 2027-01-15T08:01:00Z")
        );
        assert_eq!(
            lock_reason(Some("COMPLIANCE"), Some(&earlier), false, now),
            None
        );
        assert_eq!(
            lock_reason(Some("COMPLIANCE"), Some(&earlier), true, now).as_deref(),
            Some("legal hold")
        );
        assert_eq!(
            lock_reason(Some("COMPLIANCE"), Some(&later), true, now).as_deref(),
            Some("COMPLIANCE retention until 2027-01-15T08:01:00Z and legal hold")
        );
        assert_eq!(lock_reason(None, None, false, now), None);
    }

    #[test]
    fn versioning_answers_whatever_their_root() {
        let xmlns = r#"xmlns="http://s3.amazonaws.com/doc/2006-03-01/""#;
        for (answer, want) in [
            (format!("<GetBucketVersioningResponse {xmlns}/>"), Versioning::Off),
            (
                format!("<GetBucketVersioningResponse {xmlns}><Status>Enabled</Status></GetBucketVersioningResponse>"),
                Versioning::On,
            ),
            (
                "<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>".into(),
                Versioning::Suspended,
            ),
            ("<html>proxy error</html>".into(), Versioning::Unknown),
        ] {
            assert_eq!(versioning_in(&answer), want, "{answer}");
        }
    }

    #[test]
    fn missing_keys_in_a_batch_are_no_failure() {
        assert!(per_key_error("k", "NoSuchKey", "").is_none());
        assert!(matches!(
            per_key_error("k", "AccessDenied", "denied"),
            Some(StorageError::AccessDenied { .. })
        ));
        assert!(matches!(
            per_key_error("k", "InternalError", ""),
            Some(StorageError::Transient { .. })
        ));
    }
}
