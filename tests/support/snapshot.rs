//! Directory trees as values: for "this repository is byte-for-byte
//! unchanged", "these hooks came back", modes on backup storage, and
//! leftover temporary directories.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// One path of a tree. Files are kept as size and SHA-256, so a failed
/// comparison of a repository does not print its packs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        sha256: String,
    },
    Symlink {
        target: PathBuf,
    },
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every path under `dir` (relative, `/`-separated; `dir` itself excluded).
/// A missing `dir` is an empty tree.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Entry> {
    let mut entries = BTreeMap::new();
    for (relative, path) in walk(dir) {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        let mode = metadata.permissions().mode() & 0o7777;
        let entry = if metadata.file_type().is_symlink() {
            Entry::Symlink {
                target: std::fs::read_link(&path).unwrap(),
            }
        } else if metadata.is_dir() {
            Entry::Dir { mode }
        } else {
            let bytes = std::fs::read(&path).unwrap();
            Entry::File {
                mode,
                size: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
            }
        };
        entries.insert(relative, entry);
    }
    entries
}

/// Modification time of every path under `dir`.
pub fn modified_times(dir: &Path) -> BTreeMap<String, SystemTime> {
    walk(dir)
        .into_iter()
        .map(|(relative, path)| {
            (
                relative,
                std::fs::symlink_metadata(path).unwrap().modified().unwrap(),
            )
        })
        .collect()
}

/// Relative paths of the regular files under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    walk(dir)
        .into_iter()
        .filter(|(_, path)| path.symlink_metadata().unwrap().is_file())
        .map(|(relative, _)| relative)
        .collect()
}

/// Fails naming any `+gitbak-tmp-*` path left under `root`.
pub fn assert_no_temp_dirs(root: &Path) {
    let leftovers: Vec<String> = walk(root)
        .into_iter()
        .map(|(relative, _)| relative)
        .filter(|relative| {
            relative
                .rsplit('/')
                .next()
                .unwrap()
                .starts_with("+gitbak-tmp-")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary directories left in {}: {leftovers:?}",
        root.display()
    );
}

/// (relative path, full path) of everything under `dir`, sorted, without
/// following symlinks.
fn walk(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let mut pending = vec![(String::new(), dir.to_path_buf())];
    while let Some((relative, path)) = pending.pop() {
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => panic!("{}: {error}", path.display()),
        };
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let child = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            if entry.file_type().unwrap().is_dir() {
                pending.push((child.clone(), entry.path()));
            }
            found.push((child, entry.path()));
        }
    }
    found.sort();
    found
}
