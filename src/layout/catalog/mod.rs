//! What a backup location holds: the backups (runs) with their time and
//! whether they finished, each repository's backups and chains, and for
//! every manifest, `+latest.toml` included, every key it names.
//!
//! Built in two steps from what the caller fetched: the listed keys
//! (`CatalogBuilder::new`), then each manifest the builder asks for, parsed
//! (`add_manifest`). Pure: no I/O and no clock.
//!
//! Later manifests name step files under older ids, so what a backup
//! "owns" is never a directory: it is the set of keys that no remaining
//! manifest names (`referenced`). Only keys shaped like a manifest-layout
//! step file of a known repository or run are ever candidates for removal
//! (`FileEntry::sweepable`): the pointer and legacy layouts' files, and
//! anything foreign, are listed read-only. gitbak's own objects
//! (`gitbak-*/`) and temporary files are never taken for backups.

mod build;
mod keys;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

pub use build::{CatalogBuilder, ManifestRead};
pub use keys::{classify, step_file, KeyKind, StepFile, GITBAK_PREFIX, TEMPORARY_SUFFIX};

use super::time::Timestamp;
use super::{BackupId, RelativePath, StorageName};
use crate::storage::{Key, ObjectMeta};

/// A repository as manifests name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    pub storage: StorageName,
    pub path: RelativePath,
}

/// `STORAGE:PATH`, as `--repository` takes it.
impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.storage, self.path)
    }
}

/// Where a backup's time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// The id is a timestamp (`layout::time::backup_id_time`).
    Id,
    /// The earliest `[gitbak] created_at` of its manifests.
    Manifest,
}

/// One run: every repository's manifest under one backup id.
#[derive(Debug, Clone)]
pub struct Backup {
    pub id: BackupId,
    /// `None`: time unknown (such a backup is always kept).
    pub time: Option<Timestamp>,
    pub time_source: Option<TimeSource>,
    /// Its `backup_ids/<id>` marker exists: the run ended (the marker is
    /// written even when some repositories failed).
    pub finished: bool,
    /// Its per-id manifests, indexes into `Catalog::manifests`.
    pub manifests: Vec<usize>,
}

/// How a manifest's backup came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupKind {
    /// One step: a full backup (of an empty repository too).
    Full,
    /// A new step continuing a chain.
    Incremental,
    /// No new step: the previous backup's steps, listed again.
    Unchanged,
    /// The repository did not exist; no files.
    Missing,
}

impl BackupKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Incremental => "incremental",
            Self::Unchanged => "unchanged",
            Self::Missing => "missing",
        }
    }
}

/// What a readable manifest says, as far as the catalogue needs it.
#[derive(Debug, Clone)]
pub struct ManifestSummary {
    pub kind: BackupKind,
    /// Steps a restore replays: the chain's length.
    pub steps: usize,
    /// `[gitbak] created_at`, when recorded.
    pub created_at: Option<Timestamp>,
    /// Every key the manifest names, as indexes into the file table.
    named: Vec<usize>,
}

/// A manifest on storage: per-id or `+latest.toml`.
#[derive(Debug, Clone)]
pub struct ManifestEntry {
    pub key: Key,
    pub size: u64,
    pub repository: Repository,
    /// `None` for `+latest.toml`.
    pub backup_id: Option<BackupId>,
    /// `Err`: it could not be parsed (why), so which keys it names is
    /// unknown, and nothing of its repository is ever swept.
    pub content: Result<ManifestSummary, String>,
}

/// A key some manifest names or the listing showed (not manifests,
/// markers, gitbak's own objects or temporaries).
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub key: String,
    /// `None`: named by a manifest but not on storage.
    pub size: Option<u64>,
    /// A manifest-layout step file of a known repository or run, outside
    /// pointer-layout directories: removable once no manifest names it.
    pub sweepable: bool,
}

/// A backup in a layout gitbak reads but never prunes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOnlyBackup {
    pub layout: ReadOnlyLayout,
    /// The repository's relative path without `.git`, as these layouts
    /// name it (they record no storage).
    pub repository_prefix: String,
    /// The pointer layout's backup directory; the legacy layout has none.
    pub backup_id: Option<String>,
    pub steps: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnlyLayout {
    Pointer,
    Legacy,
}

impl ReadOnlyLayout {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pointer => "pointer",
            Self::Legacy => "legacy",
        }
    }
}

/// One repository's manifests.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Per-id manifests, oldest first (by backup time, then id; unknown
    /// times last).
    pub backups: Vec<usize>,
    /// `+latest.toml`, if any.
    pub latest_copy: Option<usize>,
}

/// What a backup location holds.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub backups: BTreeMap<BackupId, Backup>,
    pub repositories: BTreeMap<Repository, History>,
    pub manifests: Vec<ManifestEntry>,
    files: Vec<FileEntry>,
    /// Ids with a `backup_ids/` marker.
    pub markers: Vec<BackupId>,
    pub read_only: Vec<ReadOnlyBackup>,
    /// gitbak's temporary files as listed, with their modification time.
    pub temporaries: Vec<ObjectMeta>,
}

impl Catalog {
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// The indexes (into `files()`) of the keys manifest `index` names;
    /// none for an unreadable one.
    pub fn named(&self, index: usize) -> &[usize] {
        match &self.manifests[index].content {
            Ok(summary) => &summary.named,
            Err(_) => &[],
        }
    }

    /// The time of the backup manifest `index` belongs to.
    pub fn backup_time(&self, index: usize) -> Option<Timestamp> {
        let id = self.manifests[index].backup_id.as_ref()?;
        self.backups.get(id)?.time
    }

    /// Which files some manifest not `removed` names, by file index.
    pub fn referenced(&self, removed: &[bool]) -> Vec<bool> {
        let mut referenced = vec![false; self.files.len()];
        for index in (0..self.manifests.len()).filter(|&index| !removed[index]) {
            for &file in self.named(index) {
                referenced[file] = true;
            }
        }
        referenced
    }

    /// Bytes on storage of the files manifest `index` names: what a
    /// restore of it reads.
    pub fn restore_bytes(&self, index: usize) -> u64 {
        self.named(index)
            .iter()
            .filter_map(|&file| self.files[file].size)
            .sum()
    }

    /// Per manifest, the bytes of the files it names that no older backup
    /// of its repository names (by backup time): what the backup added.
    /// Its own manifest's bytes included; 0 for `+latest.toml`.
    pub fn added_bytes(&self) -> Vec<u64> {
        let mut added = vec![0; self.manifests.len()];
        for history in self.repositories.values() {
            let mut seen = std::collections::HashSet::new();
            for &index in &history.backups {
                let new: u64 = self
                    .named(index)
                    .iter()
                    .filter(|&&file| seen.insert(file))
                    .filter_map(|&file| self.files[file].size)
                    .sum();
                added[index] = new + self.manifests[index].size;
            }
        }
        added
    }
}
