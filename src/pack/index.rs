//! Pack index files, version 2: a fan-out table, the object names in
//! order, one CRC32 per entry, 31-bit offsets with a table of 64-bit ones
//! for entries past 2 GiB, the pack's checksum and the index's own
//! (gitformat-pack(5)).
//!
//! The index is read as a stream, its checksum computed on the way, so
//! nothing but the CRC and offset tables is kept: 12 bytes per object,
//! about 12 MB per million objects (object names stay on disk; see
//! `read_object_name`).

use std::io::{self, Read, Seek, SeekFrom};

use crate::git::ObjectFormat;

const MAGIC: [u8; 4] = [0xff, b't', b'O', b'c'];
const FANOUT_ENTRIES: usize = 256;
/// Magic and version, then the fan-out table.
const NAMES_START: u64 = 8 + 4 * FANOUT_ENTRIES as u64;
/// An offset entry with this bit set indexes the 64-bit offset table.
const LARGE_OFFSET: u32 = 0x8000_0000;

/// What an index says about its pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackIndex {
    pub object_format: ObjectFormat,
    /// Per entry, in index (object name) order: the CRC32 of its packed
    /// bytes and its offset in the pack.
    crc32: Vec<u32>,
    offsets: Vec<u64>,
    /// The pack's trailing checksum, as the index recorded it.
    pub pack_checksum: Vec<u8>,
}

/// One entry of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub crc32: u32,
    /// Its position in the index (the rank of its object name).
    pub position: u32,
}

/// A pack's entries in pack order: each occupies the bytes up to the next
/// one, the last up to the trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackLayout {
    pub entries: Vec<Entry>,
    /// Where the pack's trailing checksum starts.
    pub trailer: u64,
}

impl PackLayout {
    /// Where entry `i` (in pack order) ends.
    pub fn end(&self, i: usize) -> u64 {
        self.entries
            .get(i + 1)
            .map_or(self.trailer, |next| next.offset)
    }
}

impl PackIndex {
    /// Reads a whole index of `index_len` bytes from `reader` and checks
    /// its trailing checksum. `Err(detail)` says what is wrong, for the
    /// caller to name the file.
    pub fn read(
        reader: impl Read,
        index_len: u64,
        object_format: ObjectFormat,
    ) -> Result<Self, String> {
        let hash_len = hash_len(object_format);
        let mut reader = HashingReader {
            inner: reader,
            hasher: Hasher::new(object_format),
        };
        let fail = |error: io::Error| match error.kind() {
            io::ErrorKind::UnexpectedEof => "it is truncated".to_owned(),
            _ => error.to_string(),
        };
        let mut word = [0u8; 4];
        reader.read_exact(&mut word).map_err(fail)?;
        if word != MAGIC {
            return Err(
                "it is a version 1 index, which records no CRC32s; rewrite it with \
                        `git index-pack` or `git repack -a -d`"
                    .into(),
            );
        }
        reader.read_exact(&mut word).map_err(fail)?;
        let version = u32::from_be_bytes(word);
        if version != 2 {
            return Err(format!("unsupported index version {version}"));
        }
        let fanout = read_u32_table(&mut reader, FANOUT_ENTRIES).map_err(fail)?;
        if fanout.windows(2).any(|pair| pair[0] > pair[1]) {
            return Err("its fan-out table is not sorted".into());
        }
        let count = fanout[FANOUT_ENTRIES - 1] as usize;
        // Before any table is allocated: a damaged count must not ask for
        // gigabytes.
        let fixed = NAMES_START + count as u64 * (hash_len as u64 + 8) + 2 * hash_len as u64;
        let large_bytes = index_len.checked_sub(fixed);
        if !large_bytes.is_some_and(|bytes| bytes % 8 == 0 && bytes / 8 <= count as u64) {
            return Err(format!(
                "its size ({index_len} bytes) does not fit its {count} objects"
            ));
        }
        skip(&mut reader, count as u64 * hash_len as u64).map_err(fail)?;
        let crc32 = read_u32_table(&mut reader, count).map_err(fail)?;
        let small = read_u32_table(&mut reader, count).map_err(fail)?;
        let large_count = small.iter().filter(|o| *o & LARGE_OFFSET != 0).count();
        let large = read_u64_table(&mut reader, large_count).map_err(fail)?;
        let mut offsets = Vec::with_capacity(count);
        for offset in small {
            if offset & LARGE_OFFSET == 0 {
                offsets.push(u64::from(offset));
            } else {
                let index = (offset & !LARGE_OFFSET) as usize;
                let large = large
                    .get(index)
                    .ok_or_else(|| format!("64-bit offset {index} is out of its table"))?;
                offsets.push(*large);
            }
        }
        let mut pack_checksum = vec![0u8; hash_len];
        reader.read_exact(&mut pack_checksum).map_err(fail)?;
        let computed = reader.hasher.finish();
        let mut recorded = vec![0u8; hash_len];
        reader.inner.read_exact(&mut recorded).map_err(fail)?;
        if computed != recorded {
            return Err(format!(
                "its checksum is {} but it records {}",
                hex::encode(&computed),
                hex::encode(&recorded)
            ));
        }
        if reader.inner.read(&mut word).map_err(fail)? != 0 {
            return Err("it has bytes after its checksum".into());
        }
        Ok(Self {
            object_format,
            crc32,
            offsets,
            pack_checksum,
        })
    }

    pub fn object_count(&self) -> usize {
        self.offsets.len()
    }

    /// The entries in pack order, for a pack `pack_len` bytes long, after
    /// checking that they tile it from its header to its trailer. Consumes
    /// the index: its tables are not needed after. Peak memory: the tables
    /// plus 16 bytes per object.
    pub fn into_layout(self, pack_len: u64) -> Result<PackLayout, String> {
        let trailer = pack_len
            .checked_sub(hash_len(self.object_format) as u64)
            .filter(|trailer| *trailer >= PACK_HEADER_LEN)
            .ok_or("the pack is shorter than its header and trailer")?;
        let mut entries: Vec<Entry> = self
            .offsets
            .iter()
            .zip(&self.crc32)
            .enumerate()
            .map(|(position, (offset, crc32))| Entry {
                offset: *offset,
                crc32: *crc32,
                // The count came from a u32 fan-out entry.
                position: position as u32,
            })
            .collect();
        drop(self);
        entries.sort_unstable_by_key(|entry| entry.offset);
        let layout = PackLayout { entries, trailer };
        let mut expected = PACK_HEADER_LEN;
        for (i, entry) in layout.entries.iter().enumerate() {
            let end = layout.end(i);
            if entry.offset != expected || end <= entry.offset {
                return Err(format!(
                    "the index places an entry at offset {}, where none can start",
                    entry.offset
                ));
            }
            expected = end;
        }
        if expected != trailer {
            return Err(format!(
                "the pack has {} bytes the index does not account for",
                trailer.saturating_sub(expected)
            ));
        }
        Ok(layout)
    }
}

/// `PACK`, the version and the object count.
pub(super) const PACK_HEADER_LEN: u64 = 12;

/// The hex name of the object at `position` of an index, read from the
/// file on demand (the names are not kept in memory).
pub fn read_object_name(
    mut index: impl Read + Seek,
    object_format: ObjectFormat,
    position: u32,
) -> io::Result<String> {
    let len = hash_len(object_format);
    index.seek(SeekFrom::Start(
        NAMES_START + u64::from(position) * len as u64,
    ))?;
    let mut name = vec![0u8; len];
    index.read_exact(&mut name)?;
    Ok(hex::encode(name))
}

pub(super) fn hash_len(object_format: ObjectFormat) -> usize {
    object_format.hex_len() / 2
}

fn read_u32_table(reader: &mut impl Read, count: usize) -> io::Result<Vec<u32>> {
    let mut table = Vec::with_capacity(count);
    let mut chunk = vec![0u8; 4 * count.min(1 << 16)];
    while table.len() < count {
        let want = 4 * (count - table.len()).min(1 << 16);
        reader.read_exact(&mut chunk[..want])?;
        table.extend(
            chunk[..want]
                .chunks_exact(4)
                .map(|bytes| u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        );
    }
    Ok(table)
}

fn read_u64_table(reader: &mut impl Read, count: usize) -> io::Result<Vec<u64>> {
    let words = read_u32_table(reader, 2 * count)?;
    Ok(words
        .chunks_exact(2)
        .map(|pair| u64::from(pair[0]) << 32 | u64::from(pair[1]))
        .collect())
}

fn skip(reader: &mut impl Read, len: u64) -> io::Result<()> {
    let copied = io::copy(&mut reader.take(len), &mut io::sink())?;
    if copied != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// The index's own checksum uses the repository's hash.
enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(object_format: ObjectFormat) -> Self {
        match object_format {
            ObjectFormat::Sha1 => Self::Sha1(sha1::Digest::new()),
            ObjectFormat::Sha256 => Self::Sha256(sha2::Digest::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha1(hasher) => sha1::Digest::update(hasher, bytes),
            Self::Sha256(hasher) => sha2::Digest::update(hasher, bytes),
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        match self {
            Self::Sha1(hasher) => sha1::Digest::finalize_reset(hasher).to_vec(),
            Self::Sha256(hasher) => sha2::Digest::finalize_reset(hasher).to_vec(),
        }
    }
}

/// Hashes exactly the bytes its consumer reads.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}
