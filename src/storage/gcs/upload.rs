//! `put` for GCS: one multipart request for a body smaller than a chunk,
//! else a resumable upload in chunks.
//!
//! A resumable upload is sequential by protocol, so one chunk is in flight
//! (`Tuning::upload_concurrency` does not apply) while the next is read from
//! the body: memory is two chunks, each reserved from the process-wide
//! budget (`storage::budget`) before it is read and given back as soon as
//! it is sent. Chunks are multiples of 256 KiB (GCS
//! refuses others) and grow as the upload grows. Full chunks go up with an
//! unknown total; the first short chunk is the last and names the total (an
//! empty one if the body ends on a chunk boundary). Every upload is checked
//! against the CRC32C GCS computes, and a failed one is cancelled, so
//! nothing partial becomes visible.

use bytes::Bytes;
use gcloud_storage::http::objects::upload::{UploadObjectRequest, UploadType};
use gcloud_storage::http::objects::Object;
use gcloud_storage::http::resumable_upload_client::{
    ChunkSize, ResumableUploadClient, UploadStatus,
};
use tokio::io::AsyncReadExt;

use super::requests::{backoff, with_retries, Failed, Failure};
use super::GcsStorage;
use crate::storage::budget::Reservation;
use crate::storage::{ByteReader, Key, ObjectMeta, StorageError, WriteMode};

/// GCS accepts only non-final chunks that are multiples of this.
const CHUNK_ALIGNMENT: usize = 256 << 10;
/// Chunks double after this many, so a huge bundle needs fewer requests.
const CHUNKS_PER_SIZE: usize = 8;
/// …up to this multiple of the first chunk, and only while a grown chunk
/// is at most `largest` (half the memory budget). GCS has no chunk-count
/// limit, so growth only saves requests.
const MAX_GROWTH: usize = 2;

/// Size of chunk `index` (0-based) for a first chunk of `part_size`.
pub fn chunk_size(part_size: usize, index: usize, largest: usize) -> usize {
    let first = part_size.max(1).div_ceil(CHUNK_ALIGNMENT) * CHUNK_ALIGNMENT;
    let growth = 1usize << (index / CHUNKS_PER_SIZE).min(MAX_GROWTH.ilog2() as usize);
    match first.saturating_mul(growth) {
        grown if grown <= largest => grown,
        _ => first,
    }
}

/// Reads up to `size` bytes; fewer only at the end of the body, and then
/// the buffer is cut to what it holds, so a short chunk (a small file's
/// only one) keeps no more memory than it needs.
async fn read_chunk(body: &mut ByteReader, size: usize) -> Result<Vec<u8>, StorageError> {
    // Not read_to_end: on a full buffer it reserves more and doubles the memory.
    let mut chunk = vec![0u8; size];
    let mut filled = 0;
    while filled < size {
        match body
            .read(&mut chunk[filled..])
            .await
            .map_err(StorageError::Source)?
        {
            0 => break,
            read => filled += read,
        }
    }
    if filled < size {
        chunk.truncate(filled);
        chunk.shrink_to_fit();
    }
    Ok(chunk)
}

/// GCS's `crc32c` field: big-endian bytes, base64.
fn crc32c_field(crc: u32) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

/// What was sent, to check against what GCS stored.
struct Sent {
    size: u64,
    crc32c: String,
}

impl GcsStorage {
    pub(super) async fn upload(
        &self,
        key: &Key,
        mut body: ByteReader,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        let first_size = self.chunk_size(0);
        // Held until the body is sent: a short body by the one request
        // below, the first chunk of a long one by `upload_chunks`.
        let mut reservation = self.tuning.upload_memory.reserve(first_size).await;
        let first = read_chunk(&mut body, first_size).await?;
        if first.len() < first_size {
            reservation.shrink_to(first.capacity());
            return self.upload_in_one_request(key, first, mode).await;
        }
        let session = self.start_resumable(key, mode).await?;
        let result = self
            .upload_chunks(key, &session, (first, reservation), body)
            .await;
        if result.is_err() {
            self.cancel(key, session).await;
        }
        result
    }

    /// Size of chunk `index` for this storage's tuning.
    fn chunk_size(&self, index: usize) -> usize {
        chunk_size(
            self.tuning.part_size,
            index,
            self.tuning.upload_memory.largest_part(),
        )
    }

    fn upload_request(&self, mode: WriteMode) -> UploadObjectRequest {
        UploadObjectRequest {
            bucket: self.bucket.clone(),
            // Generation 0 means "no live object": create-only, checked by GCS.
            if_generation_match: (mode == WriteMode::CreateOnly).then_some(0),
            ..UploadObjectRequest::default()
        }
    }

    fn new_object(&self, key: &Key) -> Object {
        Object {
            name: key.as_str().to_owned(),
            content_type: Some("application/octet-stream".into()),
            ..Object::default()
        }
    }

    /// A body smaller than one chunk: one `uploadType=multipart` request
    /// carrying our CRC32C, which GCS verifies before storing anything.
    async fn upload_in_one_request(
        &self,
        key: &Key,
        data: Vec<u8>,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        let sent = Sent {
            size: data.len() as u64,
            crc32c: crc32c_field(crc32c::crc32c(&data)),
        };
        let request = self.upload_request(mode);
        let upload_type = UploadType::Multipart(Box::new(Object {
            crc32c: Some(sent.crc32c.clone()),
            ..self.new_object(key)
        }));
        let data = Bytes::from(data);
        let limit = self.timeouts.for_body(data.len());
        let result = with_retries(key.as_str(), self.tuning.retries, limit, || {
            self.client
                .upload_object(&request, data.clone(), &upload_type)
        })
        .await;
        match result {
            Ok(object) => self.check_stored(key, object, &sent).await,
            Err(failed) => self.upload_failed(key, failed, &sent).await,
        }
    }

    /// Starts a resumable session; no object exists until its last chunk.
    async fn start_resumable(
        &self,
        key: &Key,
        mode: WriteMode,
    ) -> Result<ResumableUploadClient, StorageError> {
        let request = self.upload_request(mode);
        let upload_type = UploadType::Multipart(Box::new(self.new_object(key)));
        with_retries(
            key.as_str(),
            self.tuning.retries,
            self.timeouts.response,
            || self.client.prepare_resumable_upload(&request, &upload_type),
        )
        .await
        .map_err(|failed| failed.failure.into_storage_error(key.as_str()))
    }

    /// Sends `first` and the rest of the body, reading each chunk while the
    /// previous one is being sent.
    ///
    /// The next chunk's memory is reserved while the current one is being
    /// sent, and the current one's goes back as soon as its send ends: an
    /// upload waiting for the budget holds nothing it has not handed to a
    /// request, so waiting cannot deadlock.
    async fn upload_chunks(
        &self,
        key: &Key,
        session: &ResumableUploadClient,
        (first, first_reservation): (Vec<u8>, Reservation),
        mut body: ByteReader,
    ) -> Result<ObjectMeta, StorageError> {
        let budget = &self.tuning.upload_memory;
        let mut crc = 0u32;
        let mut offset = 0u64;
        let mut index = 0;
        let (mut current, mut reservation) = (Bytes::from(first), first_reservation);
        loop {
            crc = crc32c::crc32c_append(crc, &current);
            let next_size = self.chunk_size(index + 1);
            let length = current.len() as u64;
            let send = async {
                // Takes the chunk and its reservation: both go when the send ends.
                let sent = self.send_chunk(key, session, current, offset, None).await;
                drop(reservation);
                sent.map_err(|failed| failed.failure.into_storage_error(key.as_str()))
            };
            let read_next = async {
                let reserved = budget.reserve(next_size).await;
                Ok::<_, StorageError>((read_chunk(&mut body, next_size).await?, reserved))
            };
            let (_, (next, next_reservation)) = tokio::try_join!(send, read_next)?;
            offset += length;
            index += 1;
            reservation = next_reservation;
            if next.len() == next_size {
                current = Bytes::from(next);
                continue;
            }
            reservation.shrink_to(next.capacity());
            crc = crc32c::crc32c_append(crc, &next);
            let total = offset + next.len() as u64;
            let sent = Sent {
                size: total,
                crc32c: crc32c_field(crc),
            };
            return match self
                .send_chunk(key, session, Bytes::from(next), offset, Some(total))
                .await
            {
                Ok(Some(object)) => self.check_stored(key, object, &sent).await,
                Ok(None) => Err(StorageError::Other {
                    key: key.to_string(),
                    message:
                        "Google Cloud Storage did not complete the upload after its last chunk"
                            .into(),
                }),
                Err(failed) => self.upload_failed(key, failed, &sent).await,
            };
        }
    }

    /// Sends `data` at `offset`; `total` marks the last chunk. `Some(object)`
    /// once the upload is complete.
    ///
    /// GCS may keep less than was sent (its answer says how much), and then
    /// gets the rest. A failed request is sent again from the last byte GCS
    /// confirmed, as Google's Go client does; GCS skips bytes it already has.
    /// There is no status query (`bytes */*`) before a retry: fake-gcs-server
    /// takes that as the end of the upload and would store a partial object.
    async fn send_chunk(
        &self,
        key: &Key,
        session: &ResumableUploadClient,
        data: Bytes,
        offset: u64,
        total: Option<u64>,
    ) -> Result<Option<Object>, Failed> {
        let end = offset + data.len() as u64;
        let mut confirmed = offset;
        let mut attempt = 0;
        loop {
            let rest = data.slice((confirmed - offset) as usize..);
            let range = match rest.len() as u64 {
                // Only the last chunk can be empty: "bytes */total" completes the upload.
                0 => ChunkSize::new(confirmed, confirmed, total),
                len => ChunkSize::new(confirmed, confirmed + len - 1, total),
            };
            let limit = self.timeouts.for_body(rest.len());
            let failure = match tokio::time::timeout(
                limit,
                session.upload_multiple_chunk(rest, &range),
            )
            .await
            {
                Ok(Ok(UploadStatus::Ok(object))) => return Ok(Some(object)),
                Ok(Ok(UploadStatus::ResumeIncomplete(kept)))
                    if kept.last_byte + 1 >= end && total.is_none() =>
                {
                    return Ok(None)
                }
                Ok(Ok(UploadStatus::ResumeIncomplete(kept))) if kept.last_byte + 1 > confirmed => {
                    // GCS kept part of it: send the rest straight away.
                    confirmed = kept.last_byte + 1;
                    continue;
                }
                Ok(Ok(_)) => Failure::Protocol("the upload session kept none of a chunk"),
                Ok(Err(error)) => Failure::Http(error),
                Err(_) => Failure::TimedOut(limit),
            };
            if !failure.is_transient() || attempt >= self.tuning.retries {
                return Err(Failed {
                    failure,
                    retried: attempt > 0,
                });
            }
            attempt += 1;
            tracing::debug!(key = key.as_str(), attempt, offset = confirmed, error = %failure.describe(), "retrying an upload chunk");
            tokio::time::sleep(backoff(attempt)).await;
        }
    }

    /// Cancels a resumable session so that none of it is ever stored. Best
    /// effort and bounded: GCS also drops sessions unused for a week.
    async fn cancel(&self, key: &Key, session: ResumableUploadClient) {
        match tokio::time::timeout(self.timeouts.response, session.cancel()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                let failure = Failure::Http(error);
                // 404 or 410: the session was already gone.
                if !matches!(failure.status(), Some(404 | 410)) {
                    tracing::debug!(key = key.as_str(), error = %failure.describe(), "cancelling an upload session failed");
                }
            }
            Err(_) => tracing::debug!(key = key.as_str(), "cancelling an upload session timed out"),
        }
    }

    /// A failed upload: a create-only conflict after a retry may be our own
    /// earlier attempt, which succeeded without us hearing of it.
    async fn upload_failed(
        &self,
        key: &Key,
        failed: Failed,
        sent: &Sent,
    ) -> Result<ObjectMeta, StorageError> {
        let is_conflict = matches!(failed.failure.status(), Some(409 | 412));
        if is_conflict && failed.retried {
            if let Some(object) = self.stat(key).await? {
                if object.size as u64 == sent.size
                    && object.crc32c.as_deref() == Some(sent.crc32c.as_str())
                {
                    tracing::debug!(
                        key = key.as_str(),
                        "create-only upload found its own earlier attempt"
                    );
                    return Ok(super::meta_of(key.clone(), &object));
                }
            }
        }
        Err(failed.failure.into_storage_error(key.as_str()))
    }

    /// Compares what GCS stored with what was sent; a mismatch is removed
    /// (only that generation) rather than left for a restore to find.
    async fn check_stored(
        &self,
        key: &Key,
        object: Object,
        sent: &Sent,
    ) -> Result<ObjectMeta, StorageError> {
        let size_matches = object.size as u64 == sent.size;
        let crc_matches = object
            .crc32c
            .as_deref()
            .is_none_or(|stored| stored == sent.crc32c);
        if size_matches && crc_matches {
            return Ok(super::meta_of(key.clone(), &object));
        }
        self.delete_generation(key, Some(object.generation)).await?;
        Err(StorageError::Other {
            key: key.to_string(),
            message: format!(
                "Google Cloud Storage stored {} bytes with CRC32C {} for {} bytes with CRC32C {} sent; removed it",
                object.size,
                object.crc32c.as_deref().unwrap_or("(none)"),
                sent.size,
                sent.crc32c
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_aligned_and_grow_to_a_limit() {
        assert_eq!(chunk_size(5 << 20, 0, usize::MAX), 5 << 20);
        assert_eq!(chunk_size(1, 0, usize::MAX), CHUNK_ALIGNMENT);
        assert_eq!(
            chunk_size(CHUNK_ALIGNMENT + 1, 0, usize::MAX),
            2 * CHUNK_ALIGNMENT
        );
        let sizes: Vec<usize> = (0..40)
            .map(|index| chunk_size(16 << 20, index, usize::MAX) >> 20)
            .collect();
        assert_eq!(&sizes[..9], &[16, 16, 16, 16, 16, 16, 16, 16, 32]);
        assert_eq!(sizes[16], 32);
        assert_eq!(sizes[39], 32);
        assert!(
            (0..100).all(|index| chunk_size(3_000_000, index, usize::MAX) % CHUNK_ALIGNMENT == 0)
        );
        // Chunks grow only while a grown one fits half the memory budget.
        assert_eq!(chunk_size(16 << 20, 39, 31 << 20), 16 << 20);
        assert_eq!(chunk_size(16 << 20, 39, 32 << 20), 32 << 20);
    }

    #[test]
    fn crc32c_as_gcs_writes_it() {
        // The CRC32C test vector "123456789" → 0xE3069283.
        assert_eq!(crc32c_field(crc32c::crc32c(b"123456789")), "4waSgw==");
        assert_eq!(crc32c_field(0), "AAAAAA==");
    }

    #[tokio::test]
    async fn chunks_are_read_whole() {
        let mut body: ByteReader =
            Box::pin(tokio::io::AsyncReadExt::chain(&b"abc"[..], &b"defgh"[..]));
        assert_eq!(read_chunk(&mut body, 5).await.unwrap(), b"abcde");
        assert_eq!(read_chunk(&mut body, 5).await.unwrap(), b"fgh");
        assert_eq!(read_chunk(&mut body, 5).await.unwrap(), b"");
    }
}
