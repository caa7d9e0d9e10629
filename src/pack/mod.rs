//! Git pack files and their `.idx` (version 2) indexes, read in pure Rust.
//!
//! `git pack-objects` copies the bytes of objects it reuses from existing
//! packs without checking them, so a damaged byte at rest would travel
//! into a backup unnoticed. This module reads what git wrote about each
//! pack (the index's per-entry CRC32 and its own checksum) and checks a
//! pack's bytes against it. It knows packs and indexes, not backups: it
//! reads files and spawns nothing, and callers choose which packs to check
//! and when (`cmd::create` checks the ones a bundle may copy from; later
//! paths that copy pack bytes can reuse the same reader).

mod find;
mod index;
mod verify;

pub use find::{reusable_packs, OpenPack, PackFiles};
pub use index::{read_object_name, Entry, PackIndex, PackLayout};
pub use verify::{check_entries, Damage};

use std::path::PathBuf;

/// Reads from files go in chunks this large: few system calls, and the
/// kernel's read-ahead sees one sequential reader. One buffer per check.
pub const READ_CHUNK: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is not a usable pack index: {detail}; run `git fsck` in the repository to see the \
         damage, then repair it from a replica or a backup",
        path.display()
    )]
    BadIndex { path: PathBuf, detail: String },
    #[error(
        "pack {} is damaged: {damage}; run `git fsck` in the repository to see the damage, then \
         repair it from a replica or a backup (earlier backups are untouched)",
        path.display()
    )]
    Damaged { path: PathBuf, damage: String },
    #[error("the check of the packs was stopped")]
    Stopped,
}

impl PackError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests;
