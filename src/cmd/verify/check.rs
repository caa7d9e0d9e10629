//! Plain verify of one backup: which files its manifest needs (`plan_files`,
//! pure) and whether storage has them intact (`check_files`). A file with
//! a recorded digest is read whole and hashed as it streams; one without
//! (gitaly-backup's manifests) only has to exist, which the catalogue's
//! listing already tells.

use futures::StreamExt;

use super::{Problem, ProblemKind};
use crate::layout::catalog::Catalog;
use crate::layout::manifest::Manifest;
use crate::storage::digest::{digest_file, BodyDigest, DigestReader};
use crate::storage::{Key, Storage, StorageError};

/// Files of one backup read at once.
pub(super) const FILES_IN_FLIGHT: usize = 4;

/// Read buffer of one file streamed from object storage into the hasher:
/// with `FILES_IN_FLIGHT` and `BACKUPS_IN_FLIGHT`, 16 × 256 KiB = 4 MiB
/// at most, besides what the storage client keeps per request. A local
/// file is hashed through `digest_file`'s buffer of at most 512 KiB:
/// 16 × 512 KiB = 8 MiB at most.
const REMOTE_READ_BUFFER: usize = 256 << 10;

/// What the catalogue's listing says of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listed {
    Size(u64),
    Absent,
    /// Not in the catalogue (the manifest changed since): ask storage.
    Unknown,
}

/// One file a backup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileCheck {
    pub(super) key: String,
    /// From 1.
    pub(super) step: usize,
    pub(super) expected: Option<BodyDigest>,
    /// Its absence is a problem: it has a recorded digest, or a restore
    /// cannot do without it.
    pub(super) required: bool,
}

pub(super) struct FilesChecked {
    pub(super) found: usize,
    pub(super) bytes: u64,
    pub(super) bytes_hashed: u64,
    pub(super) problems: Vec<Problem>,
}

/// The files `manifest` needs, and what is wrong with its chain on its
/// face: a step that does not continue the one before it. A refs file is
/// always needed; a bundle unless its step's refs file is empty (gitaly
/// writes none for an empty repository); a hooks archive and a bundle's
/// sidecars only when their digests are recorded.
pub(super) fn plan_files(
    manifest: &Manifest,
    listed: impl Fn(&str) -> Listed,
) -> (Vec<FileCheck>, Vec<Problem>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let steps = &manifest.steps;
    for (position, step) in steps.iter().enumerate() {
        let number = position + 1;
        if let Some(previous) = position.checked_sub(1).map(|before| &steps[before]) {
            let continued = &step.previous_ref_path;
            if !continued.is_empty() && *continued != previous.ref_path {
                problems.push(Problem {
                    kind: ProblemKind::BrokenChain,
                    file: None,
                    step: Some(number),
                    detail: format!(
                        "step {number} continues {continued}, but step {position} is {}",
                        previous.ref_path
                    ),
                });
            }
        }
        let refs_empty = listed(&step.ref_path) == Listed::Size(0);
        // Sidecars always have a recorded digest, which makes them needed.
        let sidecars = manifest.sidecars(step);
        let sidecar_files = sidecars.iter().flat_map(|sidecars| sidecars.files());
        let sidecar_keys = sidecar_files.map(|(_, file)| (&file.path, false));
        for (key, needed) in [
            (&step.bundle_path, !refs_empty && !manifest.empty),
            (&step.ref_path, true),
            (&step.custom_hooks_path, false),
        ]
        .into_iter()
        .chain(sidecar_keys)
        {
            if key.is_empty() {
                continue;
            }
            let expected = manifest.digest(key).map(|digest| BodyDigest {
                size: digest.size,
                sha256: digest.sha256.clone(),
            });
            files.push(FileCheck {
                key: key.clone(),
                step: number,
                required: needed || expected.is_some(),
                expected,
            });
        }
    }
    (files, problems)
}

/// Checks every file `manifest` (catalogue entry `index`) needs.
pub(super) async fn check_files(
    storage: &dyn Storage,
    catalog: &Catalog,
    index: usize,
    manifest: &Manifest,
) -> FilesChecked {
    let named: std::collections::HashMap<&str, Option<u64>> = catalog
        .named(index)
        .iter()
        .map(|&file| {
            let entry = &catalog.files()[file];
            (entry.key.as_str(), entry.size)
        })
        .collect();
    let listed = |key: &str| match named.get(key) {
        Some(Some(size)) => Listed::Size(*size),
        Some(None) => Listed::Absent,
        None => Listed::Unknown,
    };
    let (files, mut problems) = plan_files(manifest, listed);
    let steps = manifest.steps.len();
    let outcomes: Vec<FileOutcome> = futures::stream::iter(files)
        .map(|file| {
            let listed = listed(&file.key);
            async move { check_file(storage, &file, listed, steps).await }
        })
        .buffered(FILES_IN_FLIGHT)
        .collect()
        .await;
    let mut checked = FilesChecked {
        found: 0,
        bytes: 0,
        bytes_hashed: 0,
        problems: Vec::new(),
    };
    for outcome in outcomes {
        if let Some(size) = outcome.size {
            checked.found += 1;
            checked.bytes += size;
        }
        checked.bytes_hashed += outcome.hashed;
        problems.extend(outcome.problem);
    }
    checked.problems = problems;
    checked
}

struct FileOutcome {
    /// Its size when it is on storage.
    size: Option<u64>,
    hashed: u64,
    problem: Option<Problem>,
}

async fn check_file(
    storage: &dyn Storage,
    file: &FileCheck,
    listed: Listed,
    steps: usize,
) -> FileOutcome {
    let problem = |kind: ProblemKind, detail: String| Problem {
        kind,
        file: Some(file.key.clone()),
        step: Some(file.step),
        detail,
    };
    let absent = || FileOutcome {
        size: None,
        hashed: 0,
        problem: file.required.then(|| missing(file, steps)),
    };
    let failed = |detail: String| FileOutcome {
        size: None,
        hashed: 0,
        problem: Some(problem(ProblemKind::ReadError, detail)),
    };
    let key = match Key::new(file.key.clone()) {
        Ok(key) => key,
        Err(error) => return failed(error.to_string()),
    };
    let size = match listed {
        Listed::Absent => return absent(),
        Listed::Size(size) => size,
        Listed::Unknown => match storage.head(&key).await {
            Ok(Some(meta)) => meta.size,
            Ok(None) => return absent(),
            Err(error) => return failed(error.to_string()),
        },
    };
    let Some(expected) = &file.expected else {
        return FileOutcome {
            size: Some(size),
            hashed: 0,
            problem: None,
        };
    };
    // The listing's size settles a truncated file without reading it.
    if let Some(kind) = size_problem(size, expected.size) {
        let detail = format!("{size} bytes, {} recorded", expected.size);
        return FileOutcome {
            size: Some(size),
            hashed: 0,
            problem: Some(problem(kind, detail)),
        };
    }
    let actual = match hash(storage, &key).await {
        Ok(actual) => actual,
        Err(error) if error.is_not_found() => return absent(),
        Err(error) => return failed(error.to_string()),
    };
    let problem = if let Some(kind) = size_problem(actual.size, expected.size) {
        Some(problem(
            kind,
            format!("read {} bytes, {} recorded", actual.size, expected.size),
        ))
    } else if actual.sha256 != expected.sha256 {
        Some(problem(
            ProblemKind::ChecksumMismatch,
            format!(
                "SHA-256 {}, {} recorded",
                short(&actual.sha256),
                short(&expected.sha256)
            ),
        ))
    } else {
        None
    };
    FileOutcome {
        size: Some(actual.size),
        hashed: actual.size,
        problem,
    }
}

/// A missing file of an earlier step breaks the chain: every backup
/// continuing it is lost, not only this one.
fn missing(file: &FileCheck, steps: usize) -> Problem {
    let (kind, detail) = if file.step < steps {
        (
            ProblemKind::BrokenChain,
            format!("step {} of {steps} is missing its file", file.step),
        )
    } else {
        (ProblemKind::Missing, "not on storage".to_owned())
    };
    Problem {
        kind,
        file: Some(file.key.clone()),
        step: Some(file.step),
        detail,
    }
}

fn size_problem(actual: u64, recorded: u64) -> Option<ProblemKind> {
    match actual.cmp(&recorded) {
        std::cmp::Ordering::Less => Some(ProblemKind::Truncated),
        std::cmp::Ordering::Greater => Some(ProblemKind::SizeMismatch),
        std::cmp::Ordering::Equal => None,
    }
}

/// Enough of a digest to tell two apart in a table.
fn short(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

/// Size and SHA-256 of a stored file: on a local location read by a
/// blocking task with positioned reads (`digest_file`, as restore hashes
/// a local bundle), elsewhere streamed from storage.
async fn hash(storage: &dyn Storage, key: &Key) -> Result<BodyDigest, StorageError> {
    let io_error = |error| StorageError::from_io(key.as_str(), error);
    if let Some(files) = storage.local_files() {
        let key = key.clone();
        let hashed = tokio::task::spawn_blocking(move || {
            let file = files.open(&key)?;
            digest_file(&file, || true, |_, _| {})
                .map_err(|error| StorageError::from_io(key.as_str(), error))
        });
        return hashed.await.map_err(|error| StorageError::Other {
            key: String::new(),
            message: format!("hashing: {error}"),
        })?;
    }
    let reader = storage.get(key).await?;
    let (reader, digest) = DigestReader::new(reader);
    let mut reader = tokio::io::BufReader::with_capacity(REMOTE_READ_BUFFER, reader);
    tokio::io::copy_buf(&mut reader, &mut tokio::io::sink())
        .await
        .map_err(io_error)?;
    Ok(digest.finish())
}

#[cfg(test)]
mod tests;
