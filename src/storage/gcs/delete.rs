//! What a refused delete means on GCS, and whether the bucket keeps
//! versions.
//!
//! GCS has no batch call in the JSON client gitbak uses (the batch
//! endpoint takes multipart/mixed bodies the crate does not build), so
//! `delete_many` is the trait's default: `DELETE_CONCURRENCY` single
//! deletes in flight. A delete GCS refuses counts as `Locked` when the
//! object shows a temporary or event-based hold or a retention expiration
//! still ahead (the bucket's retention policy).

use std::time::SystemTime;

use gcloud_storage::http::buckets::get::GetBucketRequest;
use gcloud_storage::http::objects::Object;

use super::requests::with_retries;
use super::GcsStorage;
use crate::storage::{Key, StorageError, Versioning};

impl GcsStorage {
    /// Why the object cannot be deleted, if it shows a hold or an
    /// unexpired retention; `None` if neither (or it is gone).
    pub(super) async fn hold(&self, key: &Key) -> Result<Option<String>, StorageError> {
        Ok(self
            .stat(key)
            .await?
            .and_then(|object| lock_reason(&object, SystemTime::now())))
    }

    /// Asking needs `storage.buckets.get`, which narrow roles lack: then
    /// the answer is `Unknown`, not an error.
    pub(super) async fn bucket_versioning(&self) -> Result<Versioning, StorageError> {
        let request = GetBucketRequest {
            bucket: self.bucket.clone(),
            ..Default::default()
        };
        let key = self.bucket_key();
        match with_retries(&key, self.tuning.retries, self.timeouts.response, || {
            self.client.get_bucket(&request)
        })
        .await
        {
            Ok(bucket) => Ok(match bucket.versioning {
                Some(versioning) if versioning.enabled => Versioning::On,
                _ => Versioning::Off,
            }),
            Err(failed) => match failed.failure.into_storage_error(&key) {
                StorageError::AccessDenied { message, .. } => {
                    tracing::debug!(%message, "cannot ask whether the bucket is versioned");
                    Ok(Versioning::Unknown)
                }
                other => Err(other),
            },
        }
    }
}

fn lock_reason(object: &Object, now: SystemTime) -> Option<String> {
    let mut reasons = Vec::new();
    if object.temporary_hold == Some(true) {
        reasons.push("temporary hold".to_owned());
    }
    if object.event_based_hold == Some(true) {
        reasons.push("event-based hold".to_owned());
    }
    if let Some(until) = object
        .retention_expiration_time
        .filter(|until| SystemTime::from(*until) > now)
    {
        let until = until
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| until.to_string());
        reasons.push(format!("retention policy until {until}"));
    }
    (!reasons.is_empty()).then(|| reasons.join(" and "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // allowed in tests (style.md)
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn holds_and_unexpired_retention_lock() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |seconds| time::OffsetDateTime::from_unix_timestamp(seconds).unwrap();
        let object = |temporary, event, until| Object {
            temporary_hold: temporary,
            event_based_hold: event,
            retention_expiration_time: until,
            ..Default::default()
        };
        assert_eq!(lock_reason(&object(None, None, None), now), None);
        assert_eq!(
            lock_reason(
                &object(Some(false), Some(false), Some(at(1_799_999_999))),
                now
            ),
            None
        );
        assert_eq!(
            lock_reason(&object(Some(true), None, None), now).as_deref(),
            Some("temporary hold")
        );
        assert_eq!(
            lock_reason(&object(None, Some(true), Some(at(1_800_000_060))), now).as_deref(),
            Some("event-based hold and retention policy until 2027-01-15T08:01:00Z")
        );
    }
}
