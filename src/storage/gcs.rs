//! Google Cloud Storage through its JSON API (`gcloud-storage`).
//!
//! SDK types stay inside this module and its children: `connection` (endpoint,
//! HTTP client, credentials), `requests` (time limits, retries, error
//! mapping) and `upload` (`put`). Create-only puts use `ifGenerationMatch=0`,
//! which GCS checks when the object would come into existence; nothing else
//! is needed for write-once (retention-locked) buckets, so
//! `Tuning::immutable` changes nothing here. The bucket must exist: gitbak
//! never creates one.

mod connection;
mod delete;
mod listing;
mod requests;
mod upload;

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use gcloud_storage::client::Client;
use gcloud_storage::http::objects::delete::DeleteObjectRequest;
use gcloud_storage::http::objects::download::Range;
use gcloud_storage::http::objects::get::GetObjectRequest;
use gcloud_storage::http::objects::list::ListObjectsRequest;
use gcloud_storage::http::objects::Object;
use gcloud_storage::http::Error as HttpError;

pub use connection::GcsEnvironment;
pub use requests::GcsTimeouts;
use requests::{backoff, with_retries, Failure};

use super::bulk::refine_refusal;
use super::listing::objects_only;
use super::location::GcsLocation;
use super::{
    ByteReader, DirEntry, Key, ObjectMeta, Storage, StorageError, Tuning, Versioning, WriteMode,
};

/// GCS returns at most this many objects per list page.
const MAX_LIST_PAGE: u32 = 1000;

pub struct GcsStorage {
    client: Client,
    bucket: String,
    tuning: Tuning,
    timeouts: GcsTimeouts,
}

/// Opens the bucket a `gs://` location names, with credentials and
/// emulator settings from the process environment.
pub async fn open(
    location: &GcsLocation,
    tuning: Tuning,
) -> Result<Arc<dyn Storage>, StorageError> {
    open_with(location, tuning, GcsEnvironment::from_process()).await
}

/// `open` with the environment passed in (tests use this).
pub async fn open_with(
    location: &GcsLocation,
    tuning: Tuning,
    environment: GcsEnvironment,
) -> Result<Arc<dyn Storage>, StorageError> {
    let config = connection::client_config(location, &environment).await?;
    let storage = GcsStorage {
        client: Client::new(config),
        bucket: location.bucket.clone(),
        tuning,
        timeouts: environment.timeouts,
    };
    storage.check_bucket().await?;
    Ok(Arc::new(storage))
}

impl fmt::Display for GcsStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gs://{}", self.bucket)
    }
}

fn meta_of(key: Key, object: &Object) -> ObjectMeta {
    ObjectMeta {
        key,
        size: u64::try_from(object.size).unwrap_or(0),
        modified: object.updated.map(SystemTime::from).unwrap_or(UNIX_EPOCH),
    }
}

impl GcsStorage {
    fn bucket_key(&self) -> String {
        format!("gs://{}", self.bucket)
    }

    /// Fails unless the bucket exists and can be listed. Listing needs only
    /// `storage.objects.list`, which every role gitbak can work with has
    /// (unlike `storage.buckets.get`).
    async fn check_bucket(&self) -> Result<(), StorageError> {
        let request = ListObjectsRequest {
            bucket: self.bucket.clone(),
            max_results: Some(1),
            ..Default::default()
        };
        let key = self.bucket_key();
        match with_retries(&key, self.tuning.retries, self.timeouts.response, || self.client.list_objects(&request)).await {
            Ok(_) => Ok(()),
            Err(failed) if failed.failure.status() == Some(404) => Err(StorageError::Other {
                key,
                message: format!(
                    "Google Cloud Storage bucket {:?} does not exist; create it first (gitbak never creates buckets)",
                    self.bucket
                ),
            }),
            Err(failed) => Err(failed.failure.into_storage_error(&key)),
        }
    }

    /// The object's metadata, `None` if there is none.
    async fn stat(&self, key: &Key) -> Result<Option<Object>, StorageError> {
        let request = GetObjectRequest {
            bucket: self.bucket.clone(),
            object: key.to_string(),
            ..Default::default()
        };
        match with_retries(
            key.as_str(),
            self.tuning.retries,
            self.timeouts.response,
            || self.client.get_object(&request),
        )
        .await
        {
            Ok(object) => Ok(Some(object)),
            Err(failed) if failed.failure.status() == Some(404) => Ok(None),
            Err(failed) => Err(failed.failure.into_storage_error(key.as_str())),
        }
    }

    /// Deletes the live object, or only `generation` if given; a missing
    /// object (or a newer generation) is left alone and is `Ok`.
    async fn delete_generation(
        &self,
        key: &Key,
        generation: Option<i64>,
    ) -> Result<(), StorageError> {
        let request = DeleteObjectRequest {
            bucket: self.bucket.clone(),
            object: key.to_string(),
            if_generation_match: generation,
            ..Default::default()
        };
        match with_retries(
            key.as_str(),
            self.tuning.retries,
            self.timeouts.response,
            || self.client.delete_object(&request),
        )
        .await
        {
            Ok(()) => Ok(()),
            Err(failed) if matches!(failed.failure.status(), Some(404 | 412)) => Ok(()),
            Err(failed) => Err(failed.failure.into_storage_error(key.as_str())),
        }
    }
}

#[async_trait]
impl Storage for GcsStorage {
    async fn put(
        &self,
        key: &Key,
        body: ByteReader,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        self.upload(key, body, mode).await
    }

    async fn get(&self, key: &Key) -> Result<ByteReader, StorageError> {
        let object = self
            .stat(key)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                key: key.to_string(),
            })?;
        let download = Download {
            client: self.client.clone(),
            request: GetObjectRequest {
                bucket: self.bucket.clone(),
                object: key.to_string(),
                // Pinned, so a resumed download never mixes two versions.
                generation: Some(object.generation),
                ..Default::default()
            },
            size: u64::try_from(object.size).unwrap_or(0),
            offset: 0,
            body: None,
            failures: 0,
            finished: false,
            retries: self.tuning.retries,
            timeouts: self.timeouts,
        };
        let pieces = futures::stream::unfold(download, |mut download| async move {
            download.next_piece().await.map(|piece| (piece, download))
        });
        Ok(Box::pin(tokio_util::io::StreamReader::new(pieces)))
    }

    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>, StorageError> {
        Ok(self
            .stat(key)
            .await?
            .map(|object| meta_of(key.clone(), &object)))
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
        match self.delete_generation(key, None).await {
            Err(error) => Err(refine_refusal(error, self.hold(key)).await),
            Ok(()) => Ok(()),
        }
    }

    async fn versioning(&self) -> Result<Versioning, StorageError> {
        self.bucket_versioning().await
    }
}

/// A streamed download that picks up where it broke off, up to `retries`
/// times, so a long restore survives a dropped connection. Memory: the one
/// piece reqwest hands over at a time.
struct Download {
    client: Client,
    request: GetObjectRequest,
    size: u64,
    offset: u64,
    body: Option<BoxStream<'static, Result<Bytes, HttpError>>>,
    failures: u32,
    finished: bool,
    retries: u32,
    timeouts: GcsTimeouts,
}

impl Download {
    async fn next_piece(&mut self) -> Option<io::Result<Bytes>> {
        while !self.finished {
            let failure = match self.body.as_mut() {
                None if self.offset >= self.size => {
                    self.finished = true;
                    return None;
                }
                None => match open_download(
                    &self.client,
                    &self.request,
                    self.offset,
                    self.retries,
                    self.timeouts,
                )
                .await
                {
                    Ok(body) => {
                        self.body = Some(body);
                        continue;
                    }
                    Err(failure) => failure,
                },
                Some(body) => match tokio::time::timeout(self.timeouts.response, body.next()).await
                {
                    Ok(Some(Ok(piece))) => {
                        self.offset += piece.len() as u64;
                        return Some(Ok(piece));
                    }
                    Ok(None) if self.offset >= self.size => {
                        self.finished = true;
                        return None;
                    }
                    Ok(None) => Failure::EndedEarly,
                    Ok(Some(Err(error))) => Failure::Http(error),
                    Err(_) => Failure::TimedOut(self.timeouts.response),
                },
            };
            self.body = None;
            if !failure.is_transient() || self.failures >= self.retries {
                self.finished = true;
                let message = format!(
                    "{} at byte {}: {}",
                    self.request.object,
                    self.offset,
                    failure.describe()
                );
                return Some(Err(io::Error::other(message)));
            }
            self.failures += 1;
            tracing::debug!(key = self.request.object, offset = self.offset, error = %failure.describe(), "resuming a download");
            tokio::time::sleep(backoff(self.failures)).await;
        }
        None
    }
}

/// Requests the body from `offset` on. A free function: `Download` holds a
/// stream that is `Send` but not `Sync`, so no `&Download` may cross an await.
async fn open_download(
    client: &Client,
    request: &GetObjectRequest,
    offset: u64,
    retries: u32,
    timeouts: GcsTimeouts,
) -> Result<BoxStream<'static, Result<Bytes, HttpError>>, Failure> {
    let result = with_retries(&request.object, retries, timeouts.response, || async {
        let range = if offset == 0 {
            Range::default()
        } else {
            Range(Some(offset), None)
        };
        let body = client.download_streamed_object(request, &range).await?;
        Ok(body.boxed())
    })
    .await;
    result.map_err(|failed| failed.failure)
}
