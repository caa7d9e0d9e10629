//! GCS listings as streams: `objects.list` page by page (`pageToken`),
//! flat or one level (`delimiter=/`).

use futures::stream::{BoxStream, StreamExt};
use gcloud_storage::http::objects::list::ListObjectsRequest;

use super::requests::with_retries;
use super::{meta_of, GcsStorage, MAX_LIST_PAGE};
use crate::storage::listing::{pages, Page};
use crate::storage::{DirEntry, Key, StorageError};

impl GcsStorage {
    /// Objects under `prefix`, and with `one_level` the sub-prefixes one
    /// `/` further.
    pub(super) fn entries<'a>(
        &'a self,
        prefix: &str,
        one_level: bool,
    ) -> BoxStream<'a, Result<DirEntry, StorageError>> {
        let error_key = format!("gs://{}/{prefix}", self.bucket);
        let prefix = Some(prefix.to_owned()).filter(|prefix| !prefix.is_empty());
        pages(move |page_token| {
            let request = ListObjectsRequest {
                bucket: self.bucket.clone(),
                prefix: prefix.clone(),
                delimiter: one_level.then(|| "/".to_owned()),
                max_results: Some(self.tuning.list_page_size.clamp(1, MAX_LIST_PAGE) as i32),
                page_token,
                ..Default::default()
            };
            let error_key = error_key.clone();
            async move {
                let page = with_retries(
                    &error_key,
                    self.tuning.retries,
                    self.timeouts.response,
                    || self.client.list_objects(&request),
                )
                .await
                .map_err(|failed| failed.failure.into_storage_error(&error_key))?;
                let mut items = Vec::new();
                for object in page.items.unwrap_or_default() {
                    match Key::new(object.name.clone()) {
                        Ok(key) => items.push(DirEntry::Object(meta_of(key, &object))),
                        // Not written by gitbak (a console "folder", say): not ours to list.
                        Err(_) => tracing::debug!(
                            name = object.name,
                            "skipping an object whose name is no gitbak key"
                        ),
                    }
                }
                items.extend(
                    page.prefixes
                        .unwrap_or_default()
                        .into_iter()
                        .map(DirEntry::Prefix),
                );
                Ok(Page {
                    items,
                    next: page.next_page_token,
                })
            }
        })
        .boxed()
    }
}
