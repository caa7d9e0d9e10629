//! What `verify` reports: per checked backup its problems, and the
//! counts a summary or a metrics file needs. The fields are the `--json`
//! schema (README, "Verifying backups"): add fields, never rename them.

use serde::Serialize;

/// What was checked and what was found broken: for the summary, and for
/// a metrics file.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct VerifyCounts {
    /// Distinct backup ids among the checked backups.
    pub backups: usize,
    pub repositories: usize,
    /// Files found on storage (each step's bundle, refs file, hooks).
    pub files: usize,
    /// Their bytes on storage.
    pub bytes: u64,
    /// Bytes read and hashed (files with a recorded SHA-256).
    pub bytes_hashed: u64,
    /// Backups restored into a scratch directory (`--deep`).
    pub deep_restores: usize,
    pub broken_backups: usize,
    pub broken_repositories: usize,
    /// Files missing, truncated or changed.
    pub broken_files: usize,
}

/// Why a backup is not sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The manifest cannot be read or parsed.
    UnreadableManifest,
    /// A file of the backup's own (last) step is not on storage.
    Missing,
    /// Shorter than recorded.
    Truncated,
    /// Longer than recorded.
    SizeMismatch,
    /// The recorded size, another SHA-256.
    ChecksumMismatch,
    /// An earlier step's file is gone, or the steps do not follow each
    /// other: nothing after the break restores.
    BrokenChain,
    /// Storage failed to serve a file (after its retries).
    ReadError,
    /// `--deep`: the restore failed (git's reason).
    DeepRestore,
    /// `--deep`: the restored refs are not the refs file's.
    RefsMismatch,
}

impl ProblemKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::UnreadableManifest => "unreadable manifest",
            Self::Missing => "missing",
            Self::Truncated => "truncated",
            Self::SizeMismatch => "size mismatch",
            Self::ChecksumMismatch => "checksum mismatch",
            Self::BrokenChain => "broken chain",
            Self::ReadError => "read error",
            Self::DeepRestore => "restore failed",
            Self::RefsMismatch => "refs mismatch",
        }
    }

    /// A damaged or absent file (counted in `broken_files`).
    pub(super) fn is_file_damage(self) -> bool {
        matches!(
            self,
            Self::Missing
                | Self::Truncated
                | Self::SizeMismatch
                | Self::ChecksumMismatch
                | Self::BrokenChain
        )
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The file concerned, when it is one.
    pub file: Option<String>,
    /// Its step in the chain, from 1.
    pub step: Option<usize>,
    /// One line: what is wrong (sizes, digests, git's reason).
    pub detail: String,
}

/// One repository's checked backup.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BackupCheck {
    pub storage: String,
    pub relative_path: String,
    /// `null` for a `+latest.toml` without a per-id manifest.
    pub backup_id: Option<String>,
    pub manifest: String,
    /// `full`, `incremental`, `unchanged`, `missing` (the repository did
    /// not exist: nothing to check) or `unreadable`.
    pub kind: &'static str,
    pub steps: usize,
    pub files: usize,
    pub bytes: u64,
    pub bytes_hashed: u64,
    /// `--deep`: whether it was restored in a scratch directory (not when
    /// the plain checks already failed, nor for a missing repository).
    pub restored: bool,
    pub problems: Vec<Problem>,
}

impl BackupCheck {
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VerifyReport {
    /// Every checked backup sound.
    pub sound: bool,
    pub counts: VerifyCounts,
    /// One per checked repository, in repository order.
    pub backups: Vec<BackupCheck>,
}
