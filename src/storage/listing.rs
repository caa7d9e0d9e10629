//! Listing building blocks shared by the providers: one-level entries, a
//! page-by-page stream over any provider's continuation token, and the
//! generic one-level view of a full listing.
//!
//! Knows no SDK: providers hand in a closure that fetches one page.

use std::collections::HashSet;
use std::future::Future;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::{ObjectMeta, StorageError};

/// One entry of a one-level listing (`Storage::list_dir_stream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirEntry {
    /// An object directly under the prefix.
    Object(ObjectMeta),
    /// A sub-prefix ending in `/`, relative to the storage root like keys:
    /// more keys continue below it.
    Prefix(String),
}

/// A one-level listing, collected (`StorageExt::list_dir`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirListing {
    pub objects: Vec<ObjectMeta>,
    pub prefixes: Vec<String>,
}

/// One page of a provider's listing and the token for the next, if any.
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Streams the items of `fetch(None)`, `fetch(Some(token))`, … until a
/// page has no next token (an empty token counts as none). One page is in
/// memory at a time; the first error is yielded and ends the stream.
pub(crate) fn pages<'a, T, F, Fut>(fetch: F) -> BoxStream<'a, Result<T, StorageError>>
where
    T: Send + 'a,
    F: FnMut(Option<String>) -> Fut + Send + 'a,
    Fut: Future<Output = Result<Page<T>, StorageError>> + Send + 'a,
{
    enum State {
        Start,
        Next(String),
        Done,
    }
    stream::unfold((fetch, State::Start), |(mut fetch, state)| async move {
        let token = match state {
            State::Start => None,
            State::Next(token) => Some(token),
            State::Done => return None,
        };
        match fetch(token).await {
            Ok(page) => {
                let next = match page.next {
                    Some(token) if !token.is_empty() => State::Next(token),
                    _ => State::Done,
                };
                let items = stream::iter(page.items.into_iter().map(Ok));
                Some((items.boxed(), (fetch, next)))
            }
            Err(error) => Some((stream::iter([Err(error)]).boxed(), (fetch, State::Done))),
        }
    })
    .flatten()
    .boxed()
}

/// The entry for `key` one level under `prefix`: the object itself, or the
/// sub-prefix it lies under. `None` if the key is not under `prefix`.
pub(crate) fn entry_of(meta: ObjectMeta, prefix: &str) -> Option<DirEntry> {
    let rest = meta.key.as_str().strip_prefix(prefix)?;
    Some(match rest.find('/') {
        Some(slash) => DirEntry::Prefix(format!("{prefix}{}", &rest[..=slash])),
        None => DirEntry::Object(meta),
    })
}

/// The generic one-level listing: the full listing, each sub-prefix kept
/// once. Memory: the distinct sub-prefixes seen, not the keys under them.
pub(crate) fn one_level<'a>(
    all: BoxStream<'a, Result<ObjectMeta, StorageError>>,
    prefix: String,
) -> BoxStream<'a, Result<DirEntry, StorageError>> {
    let mut seen = HashSet::new();
    all.try_filter_map(move |meta| {
        let entry = match entry_of(meta, &prefix) {
            Some(DirEntry::Prefix(sub)) if !seen.insert(sub.clone()) => None,
            other => other,
        };
        futures::future::ready(Ok(entry))
    })
    .boxed()
}

/// The objects of a listing that can also name sub-prefixes.
pub(crate) fn objects_only(
    entries: BoxStream<'_, Result<DirEntry, StorageError>>,
) -> BoxStream<'_, Result<ObjectMeta, StorageError>> {
    entries
        .try_filter_map(|entry| {
            futures::future::ready(Ok(match entry {
                DirEntry::Object(meta) => Some(meta),
                DirEntry::Prefix(_) => None,
            }))
        })
        .boxed()
}

pub(crate) async fn collect_dir(
    mut entries: BoxStream<'_, Result<DirEntry, StorageError>>,
) -> Result<DirListing, StorageError> {
    let mut listing = DirListing::default();
    while let Some(entry) = entries.try_next().await? {
        match entry {
            DirEntry::Object(meta) => listing.objects.push(meta),
            DirEntry::Prefix(prefix) => listing.prefixes.push(prefix),
        }
    }
    Ok(listing)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // allowed in tests (style.md)
mod tests {
    use super::*;
    use crate::storage::Key;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::UNIX_EPOCH;

    fn meta(key: &str) -> ObjectMeta {
        ObjectMeta {
            key: Key::new(key).unwrap(),
            size: 0,
            modified: UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn pages_follow_tokens_and_stop_at_an_error() {
        let calls = AtomicU32::new(0);
        let items: Vec<u32> = pages(|token: Option<String>| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move {
                let page = token.map_or(0, |token| token.parse().unwrap());
                Ok(Page {
                    items: vec![page * 10, page * 10 + 1],
                    next: (page < 2).then(|| (page + 1).to_string()),
                })
            }
        })
        .try_collect()
        .await
        .unwrap();
        assert_eq!(items, [0, 1, 10, 11, 20, 21]);
        assert_eq!(calls.load(Ordering::Relaxed), 3);

        let results: Vec<Result<u32, StorageError>> = pages(|token: Option<String>| async move {
            match token {
                None => Ok(Page {
                    items: vec![1],
                    next: Some("x".into()),
                }),
                Some(_) => Err(StorageError::Other {
                    key: "p/".into(),
                    message: "broken".into(),
                }),
            }
        })
        .collect()
        .await;
        assert_eq!(results.len(), 2);
        assert!(results[1].is_err());
    }

    #[tokio::test]
    async fn one_level_keeps_each_sub_prefix_once() {
        let all = stream::iter(
            ["m/a.toml", "m/x/1", "m/x/2", "m/y/z/3", "m/b", "m/x/3"].map(|key| Ok(meta(key))),
        )
        .boxed();
        let listing = collect_dir(one_level(all, "m/".into())).await.unwrap();
        let objects: Vec<_> = listing.objects.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(objects, ["m/a.toml", "m/b"]);
        assert_eq!(listing.prefixes, ["m/x/", "m/y/"]);
        // A prefix that is not a directory cuts at the next `/`.
        assert_eq!(
            entry_of(meta("m/xy/1"), "m/x"),
            Some(DirEntry::Prefix("m/xy/".into()))
        );
    }
}
