//! Many keys at once: deletes and small reads with a bounded number of
//! requests in flight, and the rule that turns a refused delete into
//! `Locked`. Generic over `Storage`; providers with batch calls override
//! `delete_many` and still use `refine_refusal`.

use std::future::Future;

use futures::stream::{self, BoxStream, StreamExt};

use super::{Key, Storage, StorageError, StorageExt};

/// Single deletes in flight for providers without a batch call: each is a
/// small request, so this bounds connections, not memory.
pub const DELETE_CONCURRENCY: usize = 16;

/// The default `delete_many`: `DELETE_CONCURRENCY` single deletes at a
/// time, results in key order.
pub(crate) async fn delete_each<S: Storage + ?Sized>(
    storage: &S,
    keys: &[Key],
) -> Vec<Result<(), StorageError>> {
    // Owned keys: a closure over borrowed ones trips the compiler's
    // higher-ranked `Send` check inside `async_trait` futures.
    stream::iter(keys.to_vec())
        .map(|key| async move { storage.delete(&key).await })
        .buffered(DELETE_CONCURRENCY)
        .collect()
        .await
}

pub(crate) fn get_many_bytes<'a, S, I>(
    storage: &'a S,
    keys: I,
    concurrency: usize,
) -> BoxStream<'a, (Key, Result<Vec<u8>, StorageError>)>
where
    S: Storage + ?Sized,
    I: IntoIterator<Item = Key> + Send + 'a,
    I::IntoIter: Send + 'a,
{
    stream::iter(keys)
        .map(move |key| async move {
            let bytes = storage.get_bytes(&key).await;
            (key, bytes)
        })
        .buffer_unordered(concurrency.max(1))
        .boxed()
}

/// A delete the store refused counts as `Locked` only when `hold` (the
/// provider asking the object) names a retention period or legal hold;
/// otherwise, or if asking fails, the refusal stands as it was.
pub(crate) async fn refine_refusal<F>(error: StorageError, hold: F) -> StorageError
where
    F: Future<Output = Result<Option<String>, StorageError>>,
{
    if !error.may_be_lock() {
        return error;
    }
    let key = match &error {
        StorageError::AccessDenied { key, .. } | StorageError::Other { key, .. } => key.clone(),
        _ => return error,
    };
    match hold.await {
        Ok(Some(reason)) => StorageError::Locked { key, reason },
        Ok(None) => error,
        Err(lookup) => {
            tracing::debug!(%key, error = %lookup, "cannot tell whether a refused delete is locked");
            error
        }
    }
}

/// What keeps an object, in words: its retention period (if any) and a
/// legal hold.
pub(crate) fn lock_words(retention: Option<String>, legal_hold: bool) -> Option<String> {
    let hold = legal_hold.then(|| "legal hold".to_owned());
    match (retention, hold) {
        (Some(retention), Some(hold)) => Some(format!("{retention} and {hold}")),
        (retention, hold) => retention.or(hold),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // allowed in tests (style.md)
mod tests {
    use super::*;
    use crate::storage::{MemoryStorage, WriteMode};

    fn denied(key: &str) -> StorageError {
        StorageError::AccessDenied {
            key: key.into(),
            message: "refused".into(),
        }
    }

    #[tokio::test]
    async fn only_a_refusal_with_a_hold_is_locked() {
        let held = refine_refusal(denied("k"), async { Ok(Some("legal hold".into())) }).await;
        assert!(
            matches!(&held, StorageError::Locked { key, reason } if key == "k" && reason == "legal hold"),
            "{held:?}"
        );
        let free = refine_refusal(denied("k"), async { Ok(None) }).await;
        assert!(matches!(free, StorageError::AccessDenied { .. }));
        let unknown = refine_refusal(denied("k"), async {
            Err(StorageError::Transient {
                key: "k".into(),
                message: "timeout".into(),
            })
        })
        .await;
        assert!(matches!(unknown, StorageError::AccessDenied { .. }));
        let transient = StorageError::Transient {
            key: "k".into(),
            message: "503".into(),
        };
        let asked = refine_refusal(transient, async {
            panic!("a transient error is no refusal")
        });
        assert!(matches!(asked.await, StorageError::Transient { .. }));
    }

    #[tokio::test]
    async fn many_reads_pair_each_key_with_its_bytes() {
        let storage = MemoryStorage::default();
        let keys: Vec<Key> = (0..50)
            .map(|i| Key::new(format!("m/{i}")).unwrap())
            .collect();
        for key in &keys {
            storage
                .put_bytes(key, key.as_str().as_bytes().to_vec(), WriteMode::CreateOnly)
                .await
                .unwrap();
        }
        let missing = Key::new("m/missing").unwrap();
        let wanted = keys.iter().cloned().chain([missing.clone()]);
        let mut read: Vec<_> = storage.get_many_bytes(wanted, 8).collect().await;
        assert_eq!(read.len(), 51);
        read.retain(|(key, result)| match result {
            Ok(bytes) => {
                assert_eq!(bytes, key.as_str().as_bytes());
                false
            }
            Err(error) => key == &missing && error.is_not_found(),
        });
        assert_eq!(read.len(), 1, "only the missing key fails");
    }
}
