//! Indexes and packs built byte by byte, so each field can be damaged.

use std::sync::atomic::AtomicBool;

use super::*;
use crate::git::ObjectFormat;

/// A pack of `bodies` (opaque entry bytes: the checks never inflate) and
/// its index; `large` entries get their offset through the 64-bit table,
/// as git does past 2 GiB.
struct Built {
    pack: Vec<u8>,
    index: Vec<u8>,
}

fn build(bodies: &[&[u8]], large: &[usize], format: ObjectFormat) -> Built {
    let hash_len = format.hex_len() / 2;
    let mut pack = b"PACK".to_vec();
    pack.extend_from_slice(&2u32.to_be_bytes());
    pack.extend_from_slice(&(bodies.len() as u32).to_be_bytes());
    // (name, offset, crc); names sorted as an index requires.
    let mut entries = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let mut name = vec![0u8; hash_len];
        // Names in reverse pack order: index order must not be pack order.
        name[0] = (bodies.len() - i) as u8;
        entries.push((name, pack.len() as u64, crc32fast::hash(body), i));
        pack.extend_from_slice(body);
    }
    let pack_checksum = vec![0xabu8; hash_len];
    pack.extend_from_slice(&pack_checksum);
    entries.sort();
    let mut index = vec![0xff, b't', b'O', b'c', 0, 0, 0, 2];
    for first in 0..=255u8 {
        let count = entries.iter().filter(|(name, ..)| name[0] <= first).count() as u32;
        index.extend_from_slice(&count.to_be_bytes());
    }
    for (name, ..) in &entries {
        index.extend_from_slice(name);
    }
    for (_, _, crc, _) in &entries {
        index.extend_from_slice(&crc.to_be_bytes());
    }
    let mut large_table = Vec::new();
    for (_, offset, _, i) in &entries {
        if large.contains(i) {
            let slot = (large_table.len() / 8) as u32 | 0x8000_0000;
            index.extend_from_slice(&slot.to_be_bytes());
            large_table.extend_from_slice(&offset.to_be_bytes());
        } else {
            index.extend_from_slice(&(*offset as u32).to_be_bytes());
        }
    }
    index.extend_from_slice(&large_table);
    index.extend_from_slice(&pack_checksum);
    let checksum = match format {
        ObjectFormat::Sha1 => <sha1::Sha1 as sha1::Digest>::digest(&index).to_vec(),
        ObjectFormat::Sha256 => <sha2::Sha256 as sha2::Digest>::digest(&index).to_vec(),
    };
    index.extend_from_slice(&checksum);
    Built { pack, index }
}

fn read(built: &Built, format: ObjectFormat) -> Result<PackIndex, String> {
    PackIndex::read(&built.index[..], built.index.len() as u64, format)
}

fn check(built: &Built, format: ObjectFormat) -> Result<(), Damage> {
    let index = read(built, format)
        .map_err(|detail| panic!("{detail}"))
        .unwrap();
    let checksum = index.pack_checksum.clone();
    let layout = index
        .into_layout(built.pack.len() as u64)
        .map_err(|detail| panic!("{detail}"))
        .unwrap();
    check_entries(&built.pack[..], &layout, &checksum, &AtomicBool::new(false))
}

const BODIES: [&[u8]; 3] = [b"first entry", b"a second, longer entry", b"3"];

#[test]
fn reads_an_index_and_lays_out_its_pack() {
    for format in [ObjectFormat::Sha1, ObjectFormat::Sha256] {
        let built = build(&BODIES, &[], format);
        let index = read(&built, format).unwrap();
        assert_eq!(index.object_count(), 3);
        let layout = index.into_layout(built.pack.len() as u64).unwrap();
        let offsets: Vec<u64> = layout.entries.iter().map(|entry| entry.offset).collect();
        assert_eq!(offsets, [12, 23, 45]);
        // Names run in reverse pack order: the first entry is the last name.
        assert_eq!(layout.entries[0].position, 2);
        assert_eq!(layout.end(2), 46);
        assert_eq!(layout.trailer, 46);
        check(&built, format).unwrap();
    }
}

#[test]
fn reads_64_bit_offsets() {
    let built = build(&BODIES, &[0, 2], ObjectFormat::Sha1);
    let index = read(&built, ObjectFormat::Sha1).unwrap();
    let layout = index.into_layout(built.pack.len() as u64).unwrap();
    assert_eq!(layout.entries[2].offset, 45);
    check(&built, ObjectFormat::Sha1).unwrap();

    // Past 4 GiB: only the layout, no pack that large is written.
    let mut built = build(&[b"x"], &[0], ObjectFormat::Sha1);
    let table = built.index.len() - 2 * 20 - 8;
    let far = (5u64 << 30) + 12;
    built.index[table..table + 8].copy_from_slice(&far.to_be_bytes());
    let body = built.index.len() - 20;
    let checksum = <sha1::Sha1 as sha1::Digest>::digest(&built.index[..body]);
    built.index[body..].copy_from_slice(&checksum);
    let index = read(&built, ObjectFormat::Sha1).unwrap();
    let error = index.into_layout(far + 1 + 20).unwrap_err();
    assert!(error.contains("offset 5368709132"), "{error}");
}

#[test]
fn a_changed_byte_in_an_entry_names_its_offset() {
    let mut built = build(&BODIES, &[1], ObjectFormat::Sha1);
    built.pack[30] ^= 1;
    match check(&built, ObjectFormat::Sha1) {
        Err(Damage::Entry { offset, position }) => assert_eq!((offset, position), (23, 1)),
        other => panic!("{other:?}"),
    }
    let name = read_object_name(std::io::Cursor::new(&built.index), ObjectFormat::Sha1, 1);
    assert_eq!(name.unwrap(), format!("02{}", "0".repeat(38)));
}

#[test]
fn damaged_headers_trailers_and_truncations() {
    type Change = fn(&mut Vec<u8>);
    let cases: [(&str, Change); 4] = [
        ("header", |pack| pack[0] = b'X'),
        ("count", |pack| pack[11] = 9),
        ("trailer", |pack| *pack.last_mut().unwrap() ^= 1),
        ("truncated", |pack| pack.truncate(30)),
    ];
    for (what, damage) in cases {
        let mut built = build(&BODIES, &[], ObjectFormat::Sha1);
        let length = built.pack.len() as u64;
        damage(&mut built.pack);
        let index = read(&built, ObjectFormat::Sha1).unwrap();
        let checksum = index.pack_checksum.clone();
        let layout = index.into_layout(length).unwrap();
        let result = check_entries(&built.pack[..], &layout, &checksum, &AtomicBool::new(false));
        let matched = matches!(
            (what, &result),
            ("header", Err(Damage::Header))
                | ("count", Err(Damage::Count { in_pack: 9, .. }))
                | ("trailer", Err(Damage::Trailer))
                | ("truncated", Err(Damage::Truncated))
        );
        assert!(matched, "{what}: {result:?}");
    }
}

#[test]
fn a_damaged_index_is_refused() {
    let built = build(&BODIES, &[], ObjectFormat::Sha1);
    // A changed CRC: the index's own checksum no longer matches.
    let mut changed = Built {
        pack: built.pack.clone(),
        index: built.index.clone(),
    };
    changed.index[8 + 1024 + 3 * 20] ^= 1;
    let error = read(&changed, ObjectFormat::Sha1).unwrap_err();
    assert!(error.contains("checksum"), "{error}");
    // A changed checksum itself.
    let mut changed = Built {
        pack: built.pack.clone(),
        index: built.index.clone(),
    };
    *changed.index.last_mut().unwrap() ^= 1;
    assert!(read(&changed, ObjectFormat::Sha1)
        .unwrap_err()
        .contains("checksum"));
    // Truncated, a count that does not fit the size, a version 1 index.
    let short = &built.index[..built.index.len() - 1];
    let error = PackIndex::read(short, built.index.len() as u64, ObjectFormat::Sha1).unwrap_err();
    assert!(error.contains("truncated"), "{error}");
    let mut huge = built.index.clone();
    huge[8 + 4 * 255..8 + 1024].copy_from_slice(&u32::MAX.to_be_bytes());
    let error = PackIndex::read(&huge[..], huge.len() as u64, ObjectFormat::Sha1).unwrap_err();
    assert!(error.contains("does not fit"), "{error}");
    let error = PackIndex::read(
        &built.index[8..],
        built.index.len() as u64,
        ObjectFormat::Sha1,
    )
    .unwrap_err();
    assert!(error.contains("version 1"), "{error}");
    // The wrong hash for the repository.
    assert!(read(&built, ObjectFormat::Sha256).is_err());
}

#[test]
fn entries_must_tile_the_pack() {
    let built = build(&BODIES, &[], ObjectFormat::Sha1);
    let index = read(&built, ObjectFormat::Sha1).unwrap();
    assert!(index.into_layout(10).is_err());
    // A pack with bytes beyond an empty index's account.
    let empty = build(&[], &[], ObjectFormat::Sha1);
    let index = read(&empty, ObjectFormat::Sha1).unwrap();
    let error = index.into_layout(empty.pack.len() as u64 + 5).unwrap_err();
    assert!(error.contains("does not account"), "{error}");
    // Bytes inserted before the trailer: the last entry's CRC fails.
    let mut longer = build(&BODIES, &[], ObjectFormat::Sha1);
    let at = longer.pack.len() - 20;
    longer.pack.insert(at, 0);
    let index = read(&longer, ObjectFormat::Sha1).unwrap();
    let checksum = index.pack_checksum.clone();
    let layout = index.into_layout(longer.pack.len() as u64).unwrap();
    let result = check_entries(
        &longer.pack[..],
        &layout,
        &checksum,
        &AtomicBool::new(false),
    );
    assert!(
        matches!(result, Err(Damage::Entry { offset: 45, .. })),
        "{result:?}"
    );
}

#[test]
fn finds_packs_through_alternates() {
    let root = tempfile::tempdir().unwrap();
    let pool = root.path().join("pool.git/objects");
    let repository = root.path().join("repo.git/objects");
    for (directory, name) in [(&pool, "pack-a"), (&repository, "pack-b")] {
        std::fs::create_dir_all(directory.join("pack")).unwrap();
        std::fs::create_dir_all(directory.join("info")).unwrap();
        for extension in ["idx", "pack", "bitmap"] {
            std::fs::write(directory.join(format!("pack/{name}.{extension}")), b"").unwrap();
        }
    }
    std::fs::write(
        repository.join("info/alternates"),
        "# a comment\n\"../../pool.git/objects\"\n/nonexistent/objects\n",
    )
    .unwrap();
    // A cycle back: each directory is read once.
    std::fs::write(pool.join("info/alternates"), repository.to_str().unwrap()).unwrap();
    let packs = reusable_packs(&repository).unwrap();
    let names: Vec<String> = packs
        .iter()
        .map(|files| {
            files
                .pack
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, ["pack-b.pack", "pack-a.pack"]);
    let removed = PackFiles {
        pack: pool.join("pack/gone.pack"),
        index: pool.join("pack/gone.idx"),
    };
    assert!(OpenPack::open(removed).unwrap().is_none());
}
