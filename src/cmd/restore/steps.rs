//! Reading a backup's steps into the new repository: each file checked
//! against the manifest's digests, each bundle indexed by git (streamed
//! from object storage, or read by git itself from a local file), and the
//! refs settled from the last refs file.

use std::path::Path;

use tokio::io::{AsyncRead, BufReader};

use crate::git::bundle::{drain, read_bundle_header, BundleHeader};
use crate::git::refs::{parse_ref_lines, RefLine};
use crate::git::ObjectFormat;
use crate::job::progress::{CommandName, Event};
use crate::layout::manifest::Step;
use crate::node::hooks;
use crate::storage::digest::{
    self, digest_file, digest_of, BodyDigest, DigestReader, VerifyingReader,
};
use crate::storage::{ByteReader, Key, LocalFiles, StorageExt};

use super::{Restore, RestoreError};

/// Read buffer between storage and `git index-pack`.
const PACK_BUFFER: usize = 1 << 20;

impl Restore<'_> {
    /// Opens a file the manifest names, verified against its recorded digest.
    async fn open(&self, path: &str) -> Result<ByteReader, RestoreError> {
        let key = Key::new(path.to_owned())?;
        let reader = self.ctx.storage.get(&key).await?;
        Ok(match self.expected_digest(path) {
            Some(expected) => Box::pin(VerifyingReader::new(reader, path, expected)),
            None => reader,
        })
    }

    /// Size and SHA-256 the manifest records for a file, when it does.
    fn expected_digest(&self, path: &str) -> Option<BodyDigest> {
        self.manifest.digest(path).map(|digest| BodyDigest {
            size: digest.size,
            sha256: digest.sha256.clone(),
        })
    }

    async fn read_small(&self, path: &str) -> Result<Vec<u8>, RestoreError> {
        let key = Key::new(path.to_owned())?;
        let bytes = self.ctx.storage.get_bytes(&key).await?;
        if let Some(expected) = self.expected_digest(path) {
            let actual = digest_of(&bytes);
            if actual != expected {
                let error = digest::mismatch(path, &expected, &actual);
                return Err(RestoreError::Backup(error.to_string()));
            }
        }
        Ok(bytes)
    }

    /// Fetches every step's bundle in order and returns the refs the
    /// repository must end with: the last refs file's.
    pub(super) async fn apply_steps(
        &self,
        repository: &Path,
        object_format: ObjectFormat,
    ) -> Result<FinalRefs, RestoreError> {
        let git = &self.ctx.git;
        let steps = &self.manifest.steps;
        let mut last_refs = Vec::new();
        let mut bundle_refs = Vec::new();
        let mut bundle_head = None;
        let mut all_self_contained = true;
        for (index, step) in steps.iter().enumerate() {
            let number = index + 1;
            if step.ref_path.is_empty() && step.bundle_path.is_empty() {
                return Err(RestoreError::Backup(format!(
                    "step {number} of the manifest has no ref_path"
                )));
            }
            // No refs file only in legacy backups older than GitLab 14.2:
            // the bundle's refs are then the repository's.
            let refs = match step.ref_path.as_str() {
                "" => None,
                path => {
                    let bytes = self
                        .read_small(path)
                        .await
                        .map_err(|error| missing_step(number, path, error))?;
                    Some(
                        parse_ref_lines(&bytes)
                            .map_err(|error| RestoreError::Backup(format!("{path}: {error}")))?,
                    )
                }
            };
            let has_refs = refs.as_ref().is_none_or(|refs| !refs.is_empty());
            if has_refs && !step.bundle_path.is_empty() {
                let bundle = StepBundle {
                    number,
                    path: &step.bundle_path,
                };
                let header = match self.ctx.storage.local_files() {
                    Some(files) => {
                        self.index_bundle_file(&files, repository, bundle, object_format)
                            .await
                    }
                    None => {
                        self.index_bundle_stream(repository, bundle, object_format)
                            .await
                    }
                }
                .map_err(|error| missing_step(number, &step.bundle_path, error))?;
                all_self_contained &= stands_alone(number, &header);
                if let Some(head) = header.refs.iter().find(|line| line.name == "HEAD") {
                    bundle_head = Some(head.object_id.clone());
                }
                bundle_refs = header.refs;
            }
            last_refs = refs.unwrap_or_else(|| bundle_refs.clone());
        }
        let mut final_refs = self
            .settle_refs(repository, last_refs, &bundle_refs)
            .await?;
        final_refs.bundle_head = bundle_head;
        if !(all_self_contained && steps.len() == 1) {
            git.check_connectivity(repository).await?;
        }
        Ok(final_refs)
    }

    /// Checks a bundle's header against the manifest and the repository
    /// built so far: an increment whose prerequisites the earlier steps do
    /// not provide is a broken chain, refused before it is applied.
    async fn check_header(
        &self,
        repository: &Path,
        bundle: StepBundle<'_>,
        header: &BundleHeader,
        object_format: ObjectFormat,
    ) -> Result<(), RestoreError> {
        let StepBundle { number, path } = bundle;
        if header.object_format != object_format {
            return Err(RestoreError::Backup(format!(
                "{path} is a {} bundle but the manifest says {object_format}",
                header.object_format
            )));
        }
        let prerequisites: Vec<&str> = header.prerequisites.iter().map(String::as_str).collect();
        let missing = self
            .ctx
            .git
            .missing_objects(repository, &prerequisites)
            .await?;
        if let Some(first) = missing.first() {
            let earlier = match number {
                1 => "but it is the first step of the chain".to_owned(),
                2 => "which step 1 does not provide".to_owned(),
                _ => format!("which steps 1–{} do not provide", number - 1),
            };
            return Err(RestoreError::Backup(format!(
                "broken backup chain: step {number} ({path}) needs commit {first}, {earlier}"
            )));
        }
        Ok(())
    }

    /// Object storage: the bundle streams through a verifying reader into
    /// `git index-pack`.
    async fn index_bundle_stream(
        &self,
        repository: &Path,
        bundle: StepBundle<'_>,
        object_format: ObjectFormat,
    ) -> Result<BundleHeader, RestoreError> {
        let path = bundle.path;
        let mut reader = BufReader::with_capacity(PACK_BUFFER, self.open(path).await?);
        let header = read_bundle_header(&mut reader, path).await?;
        self.check_header(repository, bundle, &header, object_format)
            .await?;
        let in_bundle = |error: String| RestoreError::Backup(format!("{path}: {error}"));
        let self_contained = stands_alone(bundle.number, &header);
        self.ctx
            .git
            .index_pack(repository, &mut reader, self_contained)
            .await
            .map_err(|e| in_bundle(e.to_string()))?;
        drain(&mut reader)
            .await
            .map_err(|error| in_bundle(error.to_string()))?;
        Ok(header)
    }

    /// Local storage: `git index-pack` reads the bundle file itself from
    /// the pack's first byte, while a blocking task checks the whole file's
    /// digest; a mismatch wins over whatever git made of the pack.
    async fn index_bundle_file(
        &self,
        files: &LocalFiles,
        repository: &Path,
        bundle: StepBundle<'_>,
        object_format: ObjectFormat,
    ) -> Result<BundleHeader, RestoreError> {
        let path = bundle.path;
        let key = Key::new(path.to_owned())?;
        let (owned_files, owned_key) = (files.clone(), key.clone());
        let file = tokio::task::spawn_blocking(move || owned_files.open(&owned_key))
            .await
            .map_err(|error| RestoreError::Backup(error.to_string()))??;
        let io_error = |error: std::io::Error| RestoreError::Backup(format!("{path}: {error}"));
        let (counted, consumed) = DigestReader::new(tokio::fs::File::from_std(
            file.try_clone().map_err(io_error)?,
        ));
        let mut reader = BufReader::with_capacity(64 << 10, counted);
        let header = read_bundle_header(&mut reader, path).await?;
        let pack_start = consumed.finish().size - reader.buffer().len() as u64;
        drop(reader);
        self.check_header(repository, bundle, &header, object_format)
            .await?;
        let verify = self.expected_digest(path);
        let hashed = file.try_clone().map_err(io_error)?;
        let hashing = tokio::task::spawn_blocking(move || match verify {
            Some(expected) => digest_file(&hashed, || true, |_, _| {}).map(|d| Some((expected, d))),
            None => Ok(None),
        });
        let size = file.metadata().map_err(io_error)?.len();
        let indexed = if size > pack_start {
            let mut pack = file;
            std::io::Seek::seek(&mut pack, std::io::SeekFrom::Start(pack_start))
                .map_err(io_error)?;
            let self_contained = stands_alone(bundle.number, &header);
            self.ctx
                .git
                .index_pack_file(repository, pack, self_contained)
                .await
        } else {
            Ok(())
        };
        let checked = hashing
            .await
            .map_err(|error| RestoreError::Backup(error.to_string()))?
            .map_err(io_error)?;
        if let Some((expected, actual)) = checked {
            if expected != actual {
                return Err(RestoreError::Backup(
                    digest::mismatch(path, &expected, &actual).to_string(),
                ));
            }
        }
        indexed.map_err(|error| RestoreError::Backup(format!("{path}: {error}")))?;
        Ok(header)
    }

    /// The refs file is the truth. A ref whose object is missing (gitaly
    /// lists refs before it bundles, so a push in between can leave one
    /// behind) takes the bundle's value for that name, with a warning;
    /// otherwise it is an error.
    async fn settle_refs(
        &self,
        repository: &Path,
        refs: Vec<RefLine>,
        bundle_refs: &[RefLine],
    ) -> Result<FinalRefs, RestoreError> {
        let tips: Vec<&str> = {
            let mut tips: Vec<&str> = refs.iter().map(|line| line.object_id.as_str()).collect();
            tips.sort_unstable();
            tips.dedup();
            tips
        };
        let missing = self.ctx.git.missing_objects(repository, &tips).await?;
        let mut head = None;
        let mut settled = Vec::with_capacity(refs.len());
        for mut line in refs {
            if missing.contains(&line.object_id) {
                let replacement = bundle_refs.iter().find(|bundle| bundle.name == line.name);
                match replacement {
                    Some(bundle) if !missing.contains(&bundle.object_id) => {
                        let message = format!(
                            "{} points at {}, which the bundle lacks; restored at the bundle's {}",
                            line.name, line.object_id, bundle.object_id
                        );
                        self.ctx.progress.job_event(
                            CommandName::Restore,
                            self.job,
                            Event::Warning { message: &message },
                        );
                        line.object_id = bundle.object_id.clone();
                    }
                    _ => {
                        return Err(RestoreError::Backup(format!(
                            "the backup lacks object {} that {} points at",
                            line.object_id, line.name
                        )))
                    }
                }
            }
            if line.name == "HEAD" {
                head = Some(line.object_id);
            } else {
                settled.push(line);
            }
        }
        Ok(FinalRefs {
            refs: settled,
            head,
            bundle_head: None,
        })
    }

    /// Hooks come from the last step only; when it has none, the repository
    /// keeps the hooks it had, as gitaly-backup does (`apply_custom_hooks`).
    pub(super) async fn fetch_custom_hooks(
        &self,
        last: &Step,
    ) -> Result<Option<Vec<u8>>, RestoreError> {
        if last.custom_hooks_path.is_empty() {
            return Ok(None);
        }
        match self.open(&last.custom_hooks_path).await {
            Ok(reader) => Ok(Some(read_capped(reader).await?)),
            Err(RestoreError::Storage(error)) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// A step's bundle: its place in the chain (from 1) and its key.
#[derive(Clone, Copy)]
struct StepBundle<'a> {
    number: usize,
    path: &'a str,
}

/// A step's file that storage does not have is a broken chain: the error
/// names the step, since the key alone does not say where in the chain it is.
fn missing_step(number: usize, path: &str, error: RestoreError) -> RestoreError {
    match error {
        RestoreError::Storage(error) if error.is_not_found() => RestoreError::Backup(format!(
            "broken backup chain: step {number} is missing its file {path}"
        )),
        other => other,
    }
}

pub(super) struct FinalRefs {
    pub(super) refs: Vec<RefLine>,
    /// The refs file's HEAD line: where a detached HEAD pointed.
    pub(super) head: Option<String>,
    /// HEAD in the last bundle that lists it (`git bundle create --all`
    /// does), for backups that do not record HEAD's name.
    pub(super) bundle_head: Option<String>,
}

async fn read_capped(mut reader: impl AsyncRead + Unpin) -> Result<Vec<u8>, RestoreError> {
    let mut bytes = Vec::new();
    let limit = hooks::MAX_HOOKS_ARCHIVE + 1;
    tokio::io::AsyncReadExt::read_to_end(
        &mut tokio::io::AsyncReadExt::take(&mut reader, limit),
        &mut bytes,
    )
    .await
    .map_err(|error| RestoreError::Backup(error.to_string()))?;
    if bytes.len() as u64 > hooks::MAX_HOOKS_ARCHIVE {
        return Err(RestoreError::Backup(
            "custom hooks archive is larger than 64 MiB".into(),
        ));
    }
    Ok(bytes)
}

/// Whether git may check a step's pack for standing alone. Only a chain's
/// first bundle must: an increment may point at objects of earlier steps
/// that its header does not list (a new tag on an old commit brings no new
/// commit, so no boundary), which that check would refuse. After the last
/// step, a connectivity check covers every increment.
fn stands_alone(number: usize, header: &BundleHeader) -> bool {
    number == 1 && header.prerequisites.is_empty()
}
