//! S3 listings as streams: ListObjectsV2 page by page (continuation
//! tokens), flat or one level (`delimiter=/`).

use std::time::SystemTime;

use futures::stream::{BoxStream, StreamExt};

use super::S3Storage;
use crate::storage::listing::{pages, Page};
use crate::storage::{DirEntry, Key, ObjectMeta, StorageError};

impl S3Storage {
    /// Objects under `prefix`, and with `one_level` the common prefixes
    /// one `/` further.
    pub(super) fn entries<'a>(
        &'a self,
        prefix: &str,
        one_level: bool,
    ) -> BoxStream<'a, Result<DirEntry, StorageError>> {
        let page_size = i32::try_from(self.tuning.list_page_size)
            .unwrap_or(1000)
            .clamp(1, 1000);
        let prefix = prefix.to_owned();
        pages(move |token| {
            let prefix = prefix.clone();
            async move {
                let mut request = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(&prefix)
                    .max_keys(page_size)
                    .set_continuation_token(token);
                if one_level {
                    request = request.delimiter("/");
                }
                let page = request
                    .send()
                    .await
                    .map_err(|error| self.error(&prefix, error))?;
                let mut items = Vec::with_capacity(page.contents().len());
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
                    items.push(DirEntry::Object(ObjectMeta {
                        key,
                        size: object.size().unwrap_or(0).max(0) as u64,
                        modified: object
                            .last_modified()
                            .and_then(|time| SystemTime::try_from(*time).ok())
                            .unwrap_or(SystemTime::UNIX_EPOCH),
                    }));
                }
                items.extend(
                    page.common_prefixes()
                        .iter()
                        .filter_map(|common| common.prefix())
                        .map(|sub| DirEntry::Prefix(sub.to_owned())),
                );
                let next = match page.is_truncated() {
                    Some(true) => page.next_continuation_token().map(str::to_owned),
                    _ => None,
                };
                Ok(Page { items, next })
            }
        })
        .boxed()
    }
}
