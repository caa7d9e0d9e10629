//! What a refused delete means on Azure, and what is known about versions.
//!
//! `azure_storage_blob` 1.1 has no blob batch call (and a hand-built
//! multipart batch would need every sub-request signed), so `delete_many`
//! is the trait's default: `DELETE_CONCURRENCY` single deletes in flight.
//! A delete Azure refuses (409 `BlobImmutableDueTo…`, or 403) counts as
//! `Locked` when the blob shows a legal hold or an unexpired immutability
//! policy, or its container has a (time-based) immutability policy or a
//! legal hold.

use std::time::SystemTime;

use azure_core::time::OffsetDateTime;
use azure_storage_blob::models::{
    BlobClientGetPropertiesResultHeaders, BlobContainerClientGetPropertiesResultHeaders,
    ImmutabilityPolicyMode,
};

use super::AzureStorage;
use crate::storage::bulk::lock_words;
use crate::storage::{Key, StorageError, Versioning};

impl AzureStorage {
    /// Why the blob cannot be deleted, if it or its container shows an
    /// immutability policy or legal hold; `None` if neither (or it is gone).
    pub(super) async fn hold(&self, key: &Key) -> Result<Option<String>, StorageError> {
        let read_error = |error| self.errors.map(key.as_str(), error);
        let blob = match self
            .container
            .blob_client(key.as_str())
            .get_properties(None)
            .await
        {
            Ok(blob) => blob,
            Err(error) => {
                return match read_error(error) {
                    StorageError::NotFound { .. } => Ok(None),
                    other => Err(other),
                }
            }
        };
        let blob_lock = blob_lock_reason(
            blob.immutability_policy_mode().map_err(read_error)?,
            blob.immutability_policy_expires_on().map_err(read_error)?,
            blob.legal_hold().map_err(read_error)?.unwrap_or(false),
            SystemTime::now(),
        );
        if blob_lock.is_some() {
            return Ok(blob_lock);
        }
        let container = self
            .container
            .get_properties(None)
            .await
            .map_err(read_error)?;
        Ok(container_lock_reason(
            container
                .has_immutability_policy()
                .map_err(read_error)?
                .unwrap_or(false),
            container
                .has_legal_hold()
                .map_err(read_error)?
                .unwrap_or(false),
        ))
    }

    /// Whether blob versioning is on is an account setting the data plane
    /// does not show; a container with version-level immutability has it
    /// on for sure. Everything else is `Unknown`.
    pub(super) async fn container_versioning(&self) -> Result<Versioning, StorageError> {
        let read_error = |error| self.errors.map(&self.display, error);
        let container = match self.container.get_properties(None).await {
            Ok(container) => container,
            Err(error) => {
                return match read_error(error) {
                    StorageError::AccessDenied { message, .. } => {
                        tracing::debug!(%message, "cannot read the container's properties");
                        Ok(Versioning::Unknown)
                    }
                    other => Err(other),
                }
            }
        };
        Ok(
            match container
                .is_immutable_storage_with_versioning_enabled()
                .map_err(read_error)?
            {
                Some(true) => Versioning::On,
                _ => Versioning::Unknown,
            },
        )
    }
}

fn blob_lock_reason(
    mode: Option<ImmutabilityPolicyMode>,
    expires: Option<OffsetDateTime>,
    legal_hold: bool,
    now: SystemTime,
) -> Option<String> {
    let policy = expires
        .filter(|until| SystemTime::from(*until) > now)
        .map(|until| {
            let mode = match mode {
                Some(ImmutabilityPolicyMode::Locked) => "locked ",
                Some(ImmutabilityPolicyMode::Unlocked | ImmutabilityPolicyMode::Mutable) => {
                    "unlocked "
                }
                None => "",
            };
            format!(
                "{mode}immutability policy until {}",
                azure_core::time::to_rfc3339(&until)
            )
        });
    lock_words(policy, legal_hold)
}

fn container_lock_reason(immutability_policy: bool, legal_hold: bool) -> Option<String> {
    let policy = immutability_policy.then(|| "immutability policy".to_owned());
    lock_words(policy, legal_hold).map(|words| format!("container {words}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // allowed in tests (style.md)
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn holds_and_unexpired_policies_lock() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |seconds| OffsetDateTime::from_unix_timestamp(seconds).unwrap();
        assert_eq!(blob_lock_reason(None, None, false, now), None);
        assert_eq!(
            blob_lock_reason(
                Some(ImmutabilityPolicyMode::Locked),
                Some(at(1_799_999_999)),
                false,
                now
            ),
            None
        );
        assert_eq!(
            blob_lock_reason(
                Some(ImmutabilityPolicyMode::Unlocked),
                Some(at(1_800_000_060)),
                false,
                now
            )
            .as_deref(),
            Some("unlocked immutability policy until 2027-01-15T08:01:00Z")
        );
        assert_eq!(
            blob_lock_reason(None, None, true, now).as_deref(),
            Some("legal hold")
        );
        assert_eq!(container_lock_reason(false, false), None);
        assert_eq!(
            container_lock_reason(true, false).as_deref(),
            Some("container immutability policy")
        );
        assert_eq!(
            container_lock_reason(true, true).as_deref(),
            Some("container immutability policy and legal hold")
        );
    }
}
