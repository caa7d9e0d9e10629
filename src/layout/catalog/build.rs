//! Building a `Catalog`: the listing classified, then the manifests the
//! listing named, then the backups, histories and read-only backups.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::keys::{self, KeyKind};
use super::{
    Backup, BackupKind, Catalog, FileEntry, History, ManifestEntry, ManifestSummary,
    ReadOnlyBackup, ReadOnlyLayout, Repository, TimeSource,
};
use crate::layout::manifest::Manifest;
use crate::layout::time::{backup_id_time, parse_rfc3339};
use crate::layout::BackupId;
use crate::storage::{Key, ObjectMeta};

/// What reading a manifest the builder asked for gave.
#[derive(Debug)]
pub enum ManifestRead {
    Parsed(Manifest),
    /// Not UTF-8 or not TOML: why.
    Damaged(String),
    /// Gone since the listing (a concurrent prune): left out.
    Vanished,
}

/// A catalogue being built. Keys are interned once: a location holds
/// tens of thousands of manifests naming the same step files.
pub struct CatalogBuilder {
    manifests: Vec<ManifestEntry>,
    /// Manifest key → index into `manifests`.
    manifest_index: HashMap<String, usize>,
    vanished: Vec<bool>,
    markers: BTreeSet<BackupId>,
    pointer_directories: HashSet<String>,
    files: Vec<FileEntry>,
    file_index: HashMap<String, usize>,
    temporaries: Vec<ObjectMeta>,
}

impl CatalogBuilder {
    /// Classifies every listed object (any order).
    pub fn new(listing: impl IntoIterator<Item = ObjectMeta>) -> Self {
        let mut builder = Self::empty();
        for meta in listing {
            builder.add_listed(meta);
        }
        builder
    }

    /// A builder that has seen no listing yet: `add_listed` feeds it as
    /// pages arrive, so reading manifests can start before the listing of
    /// a large location ends.
    pub fn empty() -> Self {
        Self {
            manifests: Vec::new(),
            manifest_index: HashMap::new(),
            vanished: Vec::new(),
            markers: BTreeSet::new(),
            pointer_directories: HashSet::new(),
            files: Vec::new(),
            file_index: HashMap::new(),
            temporaries: Vec::new(),
        }
    }

    /// Classifies one listed object; a manifest's key comes back, to be
    /// read and handed to `add_manifest` (in any order, before or after
    /// the rest of the listing).
    pub fn add_listed(&mut self, meta: ObjectMeta) -> Option<Key> {
        match keys::classify(meta.key.as_str()) {
            KeyKind::Manifest {
                repository,
                backup_id,
            } => {
                if self.manifest_index.contains_key(meta.key.as_str()) {
                    return None;
                }
                self.manifest_index
                    .insert(meta.key.to_string(), self.manifests.len());
                let key = meta.key.clone();
                self.manifests.push(ManifestEntry {
                    key: meta.key,
                    size: meta.size,
                    repository,
                    backup_id,
                    content: Err("not read".into()),
                });
                self.vanished.push(false);
                return Some(key);
            }
            KeyKind::Marker(id) => {
                self.markers.insert(id);
            }
            KeyKind::Pointer => {
                let directory = meta.key.as_str().rsplit_once('/').map(|(dir, _)| dir);
                self.pointer_directories
                    .insert(directory.unwrap_or("").to_owned());
            }
            KeyKind::Temporary => self.temporaries.push(meta),
            KeyKind::Gitbak => {}
            KeyKind::Data => {
                let file = self.intern(meta.key.as_str());
                self.files[file].size = Some(meta.size);
            }
        }
        None
    }

    /// The manifests to read, `+latest.toml` included.
    pub fn manifest_keys(&self) -> Vec<Key> {
        self.manifests
            .iter()
            .map(|entry| entry.key.clone())
            .collect()
    }

    /// Records what reading manifest `key` gave; keys not listed are
    /// ignored.
    pub fn add_manifest(&mut self, key: &Key, read: ManifestRead) {
        let Some(&index) = self.manifest_index.get(key.as_str()) else {
            return;
        };
        self.manifests[index].content = match read {
            ManifestRead::Parsed(manifest) => Ok(self.summarize(index, &manifest)),
            ManifestRead::Damaged(reason) => Err(reason),
            ManifestRead::Vanished => {
                self.vanished[index] = true;
                return;
            }
        };
    }

    fn intern(&mut self, key: &str) -> usize {
        if let Some(&index) = self.file_index.get(key) {
            return index;
        }
        let index = self.files.len();
        self.files.push(FileEntry {
            key: key.to_owned(),
            size: None,
            sweepable: false,
        });
        self.file_index.insert(key.to_owned(), index);
        index
    }

    fn summarize(&mut self, index: usize, manifest: &Manifest) -> ManifestSummary {
        let step_paths = manifest.steps.iter().flat_map(|step| {
            [
                &step.bundle_path,
                &step.ref_path,
                &step.previous_ref_path,
                &step.custom_hooks_path,
            ]
        });
        let recorded = manifest.gitbak.iter().flat_map(|info| &info.files);
        let paths: BTreeSet<&str> = step_paths
            .map(String::as_str)
            .chain(recorded.map(|file| file.path.as_str()))
            .filter(|path| !path.is_empty())
            .collect();
        let named = paths.into_iter().map(|path| self.intern(path)).collect();
        ManifestSummary {
            kind: kind_of(&self.manifests[index], manifest),
            steps: manifest.steps.len(),
            created_at: manifest
                .gitbak
                .as_ref()
                .and_then(|info| parse_rfc3339(&info.created_at).ok()),
            named,
        }
    }

    pub fn build(self) -> Catalog {
        let Self {
            manifests,
            vanished,
            markers,
            pointer_directories,
            mut files,
            temporaries,
            ..
        } = self;
        let manifests: Vec<ManifestEntry> = manifests
            .into_iter()
            .zip(vanished)
            .filter_map(|(entry, vanished)| (!vanished).then_some(entry))
            .collect();
        let backups = backups(&manifests, &markers);
        mark_sweepable(&mut files, &manifests, &backups, &pointer_directories);
        let repositories = histories(&manifests, &backups);
        let read_only = read_only_backups(&files, &pointer_directories);
        Catalog {
            backups,
            repositories,
            manifests,
            files,
            markers: markers.into_iter().collect(),
            read_only,
            temporaries,
        }
    }
}

/// Full, incremental, unchanged (the last step lives under another id of
/// the same repository: no step was written) or missing.
fn kind_of(entry: &ManifestEntry, manifest: &Manifest) -> BackupKind {
    if manifest.non_existent {
        return BackupKind::Missing;
    }
    let last_step_under_other_id = match (manifest.steps.last(), &entry.backup_id) {
        (Some(last), Some(id)) => keys::step_file(&last.ref_path).is_some_and(|step| {
            let repository = format!("{}/{}", entry.repository.storage, entry.repository.path);
            step.repository == repository && step.backup_id != id.as_str()
        }),
        _ => false,
    };
    if last_step_under_other_id {
        BackupKind::Unchanged
    } else if manifest.steps.len() > 1 {
        BackupKind::Incremental
    } else {
        BackupKind::Full
    }
}

/// Every run: the ids of per-id manifests and of markers. A backup's time
/// is its id's when the id is a timestamp, else the earliest `created_at`
/// its manifests record.
fn backups(
    manifests: &[ManifestEntry],
    markers: &BTreeSet<BackupId>,
) -> BTreeMap<BackupId, Backup> {
    let mut backups: BTreeMap<BackupId, Backup> = BTreeMap::new();
    let new_backup = |id: &BackupId| Backup {
        id: id.clone(),
        time: None,
        time_source: None,
        finished: markers.contains(id),
        manifests: Vec::new(),
    };
    for (index, entry) in manifests.iter().enumerate() {
        if let Some(id) = &entry.backup_id {
            backups
                .entry(id.clone())
                .or_insert_with(|| new_backup(id))
                .manifests
                .push(index);
        }
    }
    for id in markers {
        backups.entry(id.clone()).or_insert_with(|| new_backup(id));
    }
    for backup in backups.values_mut() {
        if let Some(time) = backup_id_time(backup.id.as_str()) {
            backup.time = Some(time);
            backup.time_source = Some(TimeSource::Id);
            continue;
        }
        let recorded = backup.manifests.iter().filter_map(|&index| {
            let summary = manifests[index].content.as_ref().ok()?;
            summary.created_at
        });
        if let Some(time) = recorded.min() {
            backup.time = Some(time);
            backup.time_source = Some(TimeSource::Manifest);
        }
    }
    backups
}

/// A listed step file is sweepable when it belongs to a repository with
/// manifests or to a known run, is not in a pointer-layout directory, and
/// its repository has no unreadable manifest (whose keys are unknown).
fn mark_sweepable(
    files: &mut [FileEntry],
    manifests: &[ManifestEntry],
    backups: &BTreeMap<BackupId, Backup>,
    pointer_directories: &HashSet<String>,
) {
    let repository_of =
        |entry: &ManifestEntry| format!("{}/{}", entry.repository.storage, entry.repository.path);
    let known: HashSet<String> = manifests.iter().map(repository_of).collect();
    let damaged: HashSet<String> = manifests
        .iter()
        .filter(|entry| entry.content.is_err())
        .map(repository_of)
        .collect();
    for file in files.iter_mut().filter(|file| file.size.is_some()) {
        file.sweepable = keys::step_file(&file.key).is_some_and(|step| {
            let owner_known = known.contains(step.repository)
                || BackupId::parse(step.backup_id).is_ok_and(|id| backups.contains_key(&id));
            owner_known
                && !pointer_directories.contains(step.directory)
                && !damaged.contains(step.repository)
        });
    }
}

/// Each repository's manifests, per-id ones oldest first.
fn histories(
    manifests: &[ManifestEntry],
    backups: &BTreeMap<BackupId, Backup>,
) -> BTreeMap<super::Repository, History> {
    let mut histories: BTreeMap<Repository, History> = BTreeMap::new();
    for (index, entry) in manifests.iter().enumerate() {
        let history = histories.entry(entry.repository.clone()).or_default();
        match entry.backup_id {
            Some(_) => history.backups.push(index),
            None => history.latest_copy = Some(index),
        }
    }
    for history in histories.values_mut() {
        history.backups.sort_by_cached_key(|&index| {
            let id = manifests[index].backup_id.clone();
            let time = id.as_ref().and_then(|id| backups.get(id)?.time);
            (time.is_none(), time, id)
        });
    }
    histories
}

/// Pointer-layout backup directories (a `LATEST` beside step files) and
/// legacy-layout bundles, with their files' bytes.
fn read_only_backups(
    files: &[FileEntry],
    pointer_directories: &HashSet<String>,
) -> Vec<ReadOnlyBackup> {
    let mut pointer: BTreeMap<&str, (BTreeSet<&str>, u64)> = BTreeMap::new();
    let mut legacy: BTreeMap<&str, u64> = BTreeMap::new();
    let sizes: HashMap<&str, u64> = files
        .iter()
        .filter_map(|file| Some((file.key.as_str(), file.size?)))
        .collect();
    for (key, &size) in &sizes {
        if let Some(step) = keys::step_file(key) {
            if pointer_directories.contains(step.directory) {
                let name = &key[step.directory.len() + 1..];
                let number = name.split('.').next().unwrap_or(name);
                let entry = pointer.entry(step.directory).or_default();
                entry.0.insert(number);
                entry.1 += size;
            }
        } else if let Some(prefix) = keys::legacy_bundle_prefix(key) {
            let extra = [
                format!("{prefix}.refs"),
                format!("{prefix}/custom_hooks.tar"),
            ];
            let bytes = extra
                .iter()
                .filter_map(|key| sizes.get(key.as_str()))
                .sum::<u64>();
            legacy.insert(prefix, size + bytes);
        }
    }
    let pointer = pointer.into_iter().map(|(directory, (steps, bytes))| {
        let (prefix, id) = directory.rsplit_once('/').unwrap_or(("", directory));
        ReadOnlyBackup {
            layout: ReadOnlyLayout::Pointer,
            repository_prefix: prefix.to_owned(),
            backup_id: Some(id.to_owned()),
            steps: steps.len(),
            bytes,
        }
    });
    let legacy = legacy.into_iter().map(|(prefix, bytes)| ReadOnlyBackup {
        layout: ReadOnlyLayout::Legacy,
        repository_prefix: prefix.to_owned(),
        backup_id: None,
        steps: 1,
        bytes,
    });
    pointer.chain(legacy).collect()
}
