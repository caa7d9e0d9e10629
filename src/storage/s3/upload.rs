//! Uploads to S3: one PutObject for a body shorter than a part, else a
//! multipart upload with bounded parts in flight, aborted on failure.

use super::*;
use crate::storage::budget::{grown, Reservation};

/// S3's limits: parts of 5 MiB to 5 GiB, at most 10,000 of them.
const MIN_PART_SIZE: usize = 5 << 20;
const MAX_PART_SIZE: usize = 5 << 30;
const MAX_PARTS: i32 = 10_000;
/// Parts double in size every this many parts, so 10,000 parts hold 5 TB
/// from a 5 MiB start and more than S3's 5 TiB object limit from 16 MiB.
const PARTS_PER_SIZE_STEP: i32 = 1000;
/// User metadata naming one put, so a retried create-only request that finds
/// "already exists" can tell its own earlier attempt from someone else's object.
const WRITE_ID_METADATA: &str = "gitbak-write-id";

/// Size of part `number` (from 1): the tuned size, doubled every
/// `PARTS_PER_SIZE_STEP` parts while it stays within `largest` (half the
/// memory budget) and S3's bounds.
pub(super) fn part_size(tuned: usize, number: i32, largest: usize) -> usize {
    let doublings = ((number - 1) / PARTS_PER_SIZE_STEP).clamp(0, 20) as u32;
    grown(
        tuned.clamp(MIN_PART_SIZE, MAX_PART_SIZE),
        doublings,
        largest.min(MAX_PART_SIZE),
    )
}

/// A value unique to one put: process, time and a counter, hashed.
fn new_write_id(key: &Key) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = format!(
        "{}/{nanos}/{}/{key}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    hex::encode(&Sha256::digest(seed.as_bytes())[..16])
}

/// Reads up to `limit` bytes, fewer only at the end of the body.
/// `capacity` is allocated up front; a first part grows as it fills, so a
/// small manifest does not cost a whole part.
pub(super) async fn read_part(
    body: &mut ByteReader,
    limit: usize,
    capacity: usize,
) -> std::io::Result<Vec<u8>> {
    let mut part = Vec::with_capacity(capacity.min(limit));
    while part.len() < limit {
        if part.len() == part.capacity() {
            part.reserve_exact(part.len().max(64 << 10).min(limit - part.len()));
        }
        let room = (part.capacity() - part.len()).min(limit - part.len());
        if (&mut *body).take(room as u64).read_buf(&mut part).await? == 0 {
            break;
        }
    }
    Ok(part)
}

impl S3Storage {
    fn written(key: &Key, size: u64) -> ObjectMeta {
        // The clock here, not the server's: asking would cost a request per put.
        ObjectMeta {
            key: key.clone(),
            size,
            modified: SystemTime::now(),
        }
    }

    pub(super) async fn put_single(
        &self,
        key: &Key,
        bytes: Vec<u8>,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        let size = bytes.len() as u64;
        let write_id = new_write_id(key);
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .body(ByteStream::from(bytes))
            .metadata(WRITE_ID_METADATA, &write_id)
            .set_server_side_encryption(self.server_side_encryption.clone())
            .set_ssekms_key_id(self.kms_key_id.clone());
        if mode == WriteMode::CreateOnly {
            request = request.if_none_match("*");
        }
        match request.send().await {
            Ok(_) => Ok(Self::written(key, size)),
            Err(error) => match self.error(key.as_str(), error) {
                StorageError::AlreadyExists { .. }
                    if self.is_own_write(key, size, &write_id).await =>
                {
                    Ok(Self::written(key, size))
                }
                other => Err(other),
            },
        }
    }

    /// Whether the object at `key` is this put's own: a request whose earlier
    /// attempt reached S3 but whose response was lost is retried by the SDK,
    /// and then finds the object ("already exists") or, for a completion,
    /// no longer finds the upload.
    async fn is_own_write(&self, key: &Key, size: u64, write_id: &str) -> bool {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await;
        let ours = head.is_ok_and(|head| {
            let found_id = head
                .metadata()
                .and_then(|metadata| metadata.get(WRITE_ID_METADATA));
            found_id.map(String::as_str) == Some(write_id)
                && head.content_length() == Some(size as i64)
        });
        if ours {
            tracing::debug!(%key, "a retried request found this put's own object");
        }
        ours
    }

    /// Size of part `number` (from 1) for this storage's tuning.
    pub(super) fn part_size(&self, number: i32) -> usize {
        part_size(
            self.tuning.part_size,
            number,
            self.tuning.upload_memory.largest_part(),
        )
    }

    pub(super) async fn put_multipart(
        &self,
        key: &Key,
        first_part: (Vec<u8>, Reservation),
        body: ByteReader,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        let write_id = new_write_id(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .metadata(WRITE_ID_METADATA, &write_id)
            .set_server_side_encryption(self.server_side_encryption.clone())
            .set_ssekms_key_id(self.kms_key_id.clone())
            .set_checksum_algorithm(self.part_checksums.then_some(ChecksumAlgorithm::Crc32))
            .send()
            .await
            .map_err(|error| self.error(key.as_str(), error))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let result = match self.upload_parts(key, &upload_id, first_part, body).await {
            Ok((parts, size)) => {
                self.complete(key, &upload_id, parts, size, &write_id, mode)
                    .await
            }
            Err(error) => Err(error),
        };
        if result.is_err() {
            self.abort(key, &upload_id).await;
        }
        result
    }

    /// Uploads the body as parts, at most `upload_concurrency` at once, and
    /// returns them in order with the total size. Dropping the in-flight set
    /// on an early return cancels the other parts and frees their memory.
    ///
    /// Each part's memory is reserved from the process-wide budget before
    /// it is read, while this upload holds no part it has not handed to a
    /// task: those tasks end by themselves, so waiting cannot deadlock.
    async fn upload_parts(
        &self,
        key: &Key,
        upload_id: &str,
        first_part: (Vec<u8>, Reservation),
        mut body: ByteReader,
    ) -> Result<(Vec<CompletedPart>, u64), StorageError> {
        let concurrency = self.tuning.upload_concurrency.max(1);
        let mut in_flight = JoinSet::new();
        let mut completed = Vec::new();
        let ((mut part, mut reservation), mut number, mut size) = (first_part, 1, 0u64);
        loop {
            size += part.len() as u64;
            while in_flight.len() >= concurrency {
                completed.push(Self::joined(key, in_flight.join_next().await)?);
            }
            in_flight.spawn(self.upload_part(key, upload_id, number, part, reservation));
            if number == MAX_PARTS {
                let mut probe = [0u8; 1];
                if body.read(&mut probe).await.map_err(StorageError::Source)? > 0 {
                    return Err(StorageError::Other {
                        key: key.to_string(),
                        message: format!(
                            "object exceeds S3's limit of {MAX_PARTS} parts; raise --upload-memory (parts grow to half of it) or --part-size"
                        ),
                    });
                }
                break;
            }
            number += 1;
            let limit = self.part_size(number);
            reservation = self.tuning.upload_memory.reserve(limit).await;
            part = read_part(&mut body, limit, limit)
                .await
                .map_err(StorageError::Source)?;
            if part.is_empty() {
                // Not held while the last parts finish.
                drop(reservation);
                break;
            }
        }
        while let Some(joined) = in_flight.join_next().await {
            completed.push(Self::joined(key, Some(joined))?);
        }
        completed.sort_by_key(|part| part.part_number());
        Ok((completed, size))
    }

    fn joined(
        key: &Key,
        joined: Option<Result<Result<CompletedPart, StorageError>, tokio::task::JoinError>>,
    ) -> Result<CompletedPart, StorageError> {
        match joined {
            Some(Ok(part)) => part,
            Some(Err(error)) => Err(StorageError::Other {
                key: key.to_string(),
                message: error.to_string(),
            }),
            None => Err(StorageError::Other {
                key: key.to_string(),
                message: "no part upload to wait for".into(),
            }),
        }
    }

    /// One part's upload as a task of its own; the SDK retries it with the
    /// same buffer. Its memory goes back to the budget when the request
    /// ends (or the task is dropped).
    fn upload_part(
        &self,
        key: &Key,
        upload_id: &str,
        number: i32,
        bytes: Vec<u8>,
        reservation: Reservation,
    ) -> impl std::future::Future<Output = Result<CompletedPart, StorageError>> + Send + 'static
    {
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .part_number(number)
            .set_checksum_algorithm(self.part_checksums.then_some(ChecksumAlgorithm::Crc32))
            .body(ByteStream::from(bytes));
        let (key, bucket) = (key.to_string(), self.bucket.clone());
        // Over TLS parts go up unsigned, as the AWS CLI and Go SDK send them:
        // SigV4 would hash every part once more, the largest CPU cost of an
        // upload after gitbak's own digest. TLS protects them in transit,
        // and the manifest (signed) records the bundle's SHA-256, which
        // restore checks. Over plain HTTP the signature is all there is.
        let request = request.customize();
        let request = match self.over_tls {
            true => request.disable_payload_signing(),
            false => request,
        };
        async move {
            let sent = request.send().await;
            drop(reservation);
            match sent {
                Ok(output) => Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(output.e_tag().map(str::to_owned))
                    .set_checksum_crc32(output.checksum_crc32().map(str::to_owned))
                    .build()),
                Err(error) => Err(storage_error(&bucket, &key, error)),
            }
        }
    }

    async fn complete(
        &self,
        key: &Key,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        size: u64,
        write_id: &str,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        let mut request = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        if mode == WriteMode::CreateOnly {
            request = request.if_none_match("*");
        }
        match request.send().await {
            Ok(_) => Ok(Self::written(key, size)),
            Err(error) => match self.error(key.as_str(), error) {
                StorageError::AlreadyExists { .. } | StorageError::NotFound { .. }
                    if self.is_own_write(key, size, write_id).await =>
                {
                    Ok(Self::written(key, size))
                }
                StorageError::NotFound { key } => Err(StorageError::Other {
                    key,
                    message: "S3 no longer knows this multipart upload".into(),
                }),
                other => Err(other),
            },
        }
    }

    /// Best effort: a failed abort leaves parts that are billed but never
    /// visible; a bucket lifecycle rule removes them.
    async fn abort(&self, key: &Key, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(error) = aborted {
            tracing::warn!(%key, error = %self.error(key.as_str(), error), "could not abort the multipart upload");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_within_s3_limits() {
        let mib = 1 << 20;
        let unbounded = usize::MAX;
        assert_eq!(
            part_size(mib, 1, unbounded),
            5 * mib,
            "raised to S3's minimum"
        );
        assert_eq!(part_size(16 * mib, 1000, unbounded), 16 * mib);
        assert_eq!(part_size(16 * mib, 1001, unbounded), 32 * mib);
        assert_eq!(part_size(16 * mib, MAX_PARTS, unbounded), MAX_PART_SIZE);
        let capacity = |first| {
            (1..=MAX_PARTS)
                .map(|number| part_size(first, number, unbounded) as u64)
                .sum::<u64>()
        };
        assert!(
            capacity(5 * mib) > 5_000_000_000_000,
            "{}",
            capacity(5 * mib)
        );
        assert!(
            capacity(16 * mib) > 5 << 40,
            "S3's 5 TiB object limit: {}",
            capacity(16 * mib)
        );
    }

    #[test]
    fn parts_grow_to_half_the_memory_budget() {
        let mib = 1 << 20;
        let budget = crate::storage::MemoryBudget::default();
        let largest = budget.largest_part();
        assert_eq!(largest, 128 * mib);
        let sizes: Vec<usize> = [1, 1001, 2001, 3001, 9000, MAX_PARTS]
            .iter()
            .map(|&number| part_size(16 * mib, number, largest) / mib)
            .collect();
        assert_eq!(sizes, [16, 32, 64, 128, 128, 128]);
        // What one bundle may hold with the default budget: about 984 GiB.
        let capacity: u64 = (1..=MAX_PARTS)
            .map(|number| part_size(16 * mib, number, largest) as u64)
            .sum();
        assert_eq!(capacity, 1_008_000 * mib as u64);
    }

    #[tokio::test]
    async fn parts_are_full_until_the_end() {
        let mut body: ByteReader = Box::pin(std::io::Cursor::new(vec![7u8; 300_000]));
        assert_eq!(
            read_part(&mut body, 200_000, 0).await.unwrap().len(),
            200_000
        );
        let last = read_part(&mut body, 200_000, 200_000).await.unwrap();
        assert_eq!((last.len(), last.capacity()), (100_000, 200_000));
        assert!(read_part(&mut body, 200_000, 200_000)
            .await
            .unwrap()
            .is_empty());
    }
}
