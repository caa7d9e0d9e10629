//! Which packs git may read for a repository: those in its
//! `objects/pack/` and, through `objects/info/alternates`, those of the
//! object directories it borrows from (a Gitaly object pool), as git
//! finds them (gitrepository-layout(5)).

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::git::ObjectFormat;

use super::index::{read_object_name, PackIndex};
use super::verify::{check_entries, Damage};
use super::{PackError, READ_CHUNK};

/// git follows alternates of alternates this deep (`link_alt_odb_entry`).
const MAX_ALTERNATE_DEPTH: usize = 5;

/// A pack and its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackFiles {
    pub pack: PathBuf,
    pub index: PathBuf,
}

/// The packs with an index in `objects` (a repository's object directory)
/// and in the object directories it borrows from, each directory once.
pub fn reusable_packs(objects: &Path) -> Result<Vec<PackFiles>, PackError> {
    let mut directories = Vec::new();
    collect_object_directories(objects, 0, &mut directories)?;
    let mut packs = Vec::new();
    for directory in directories {
        let pack_dir = directory.join("pack");
        let listing = match std::fs::read_dir(&pack_dir) {
            Ok(listing) => listing,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(PackError::io(&pack_dir, error)),
        };
        let mut found = Vec::new();
        for item in listing {
            let item = item.map_err(|error| PackError::io(&pack_dir, error))?;
            let index = item.path();
            if index
                .extension()
                .is_some_and(|extension| extension == "idx")
            {
                let pack = index.with_extension("pack");
                found.push(PackFiles { pack, index });
            }
        }
        found.sort_by(|a, b| a.index.cmp(&b.index));
        packs.extend(found);
    }
    Ok(packs)
}

fn collect_object_directories(
    objects: &Path,
    depth: usize,
    found: &mut Vec<PathBuf>,
) -> Result<(), PackError> {
    let canonical = match objects.canonicalize() {
        Ok(path) => path,
        // A dangling alternate: git warns and goes on without it.
        Err(error) if error.kind() == io::ErrorKind::NotFound && depth > 0 => return Ok(()),
        Err(error) => return Err(PackError::io(objects, error)),
    };
    if found.contains(&canonical) {
        return Ok(());
    }
    found.push(canonical.clone());
    if depth >= MAX_ALTERNATE_DEPTH {
        return Ok(());
    }
    let list = canonical.join("info").join("alternates");
    let text = match std::fs::read(&list) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(PackError::io(&list, error)),
    };
    for line in String::from_utf8_lossy(&text).lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let path = PathBuf::from(unquote(line));
        // Relative entries are relative to this object directory.
        collect_object_directories(&canonical.join(path), depth + 1, found)?;
    }
    Ok(())
}

/// An alternates line in double quotes uses C-style escapes (git's
/// `unquote_c_style`); others are taken as they are.
fn unquote(line: &str) -> String {
    let Some(inner) = line
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return line.to_owned();
    };
    let mut bytes = Vec::with_capacity(inner.len());
    let mut chars = inner.bytes().peekable();
    while let Some(byte) = chars.next() {
        if byte != b'\\' {
            bytes.push(byte);
            continue;
        }
        match chars.next() {
            Some(b'n') => bytes.push(b'\n'),
            Some(b't') => bytes.push(b'\t'),
            Some(digit @ b'0'..=b'3') => {
                let mut value = digit - b'0';
                for _ in 0..2 {
                    if let Some(next @ b'0'..=b'7') = chars.peek().copied() {
                        value = value * 8 + (next - b'0');
                        chars.next();
                    }
                }
                bytes.push(value);
            }
            Some(other) => bytes.push(other),
            None => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A pack and its index, open: once open, a repack that deletes them
/// does not take them away from a check under way.
pub struct OpenPack {
    pub files: PackFiles,
    pack: File,
    index: File,
}

impl OpenPack {
    /// Opens both files; `None` when either is gone (a repack removed the
    /// pack since it was listed, or is still writing it: git writes the
    /// index last).
    pub fn open(files: PackFiles) -> Result<Option<Self>, PackError> {
        let open = |path: &Path| match File::open(path) {
            Ok(file) => Ok(Some(file)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(PackError::io(path, error)),
        };
        let (Some(index), Some(pack)) = (open(&files.index)?, open(&files.pack)?) else {
            return Ok(None);
        };
        Ok(Some(Self { files, pack, index }))
    }

    /// Checks the index's checksum, then every entry of the pack against
    /// its CRC32 and the pack's trailer against the index. `stop` ends an
    /// abandoned check between reads (`PackError::Stopped`). Returns the
    /// bytes read.
    pub fn check(&self, object_format: ObjectFormat, stop: &AtomicBool) -> Result<u64, PackError> {
        let bad_index = |detail: String| PackError::BadIndex {
            path: self.files.index.clone(),
            detail,
        };
        let index_len = length(&self.index, &self.files.index)?;
        let pack_len = length(&self.pack, &self.files.pack)?;
        advise_sequential(&self.index);
        advise_sequential(&self.pack);
        let reader = BufReader::with_capacity(READ_CHUNK.min(1 << 20), &self.index);
        let index = PackIndex::read(reader, index_len, object_format).map_err(bad_index)?;
        let pack_checksum = index.pack_checksum.clone();
        let layout = index.into_layout(pack_len).map_err(bad_index)?;
        let damage = match check_entries(&self.pack, &layout, &pack_checksum, stop) {
            Ok(()) => return Ok(index_len + pack_len),
            Err(Damage::Stopped) => return Err(PackError::Stopped),
            Err(Damage::Io(error)) => return Err(PackError::io(&self.files.pack, error)),
            Err(damage) => damage,
        };
        let mut detail = damage.to_string();
        if let Damage::Entry { position, .. } = damage {
            if let Ok(name) = read_object_name(&self.index, object_format, position) {
                detail.push_str(&format!(" (object {name})"));
            }
        }
        Err(PackError::Damaged {
            path: self.files.pack.clone(),
            damage: detail,
        })
    }
}

fn length(file: &File, path: &Path) -> Result<u64, PackError> {
    Ok(file
        .metadata()
        .map_err(|error| PackError::io(path, error))?
        .len())
}

/// Tells the kernel the file is read once, front to back: larger
/// read-ahead. Best effort.
fn advise_sequential(file: &File) {
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Sequential);
}
