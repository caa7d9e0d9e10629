//! The catalogue of a location holding every kind of thing a backup
//! location can: gitbak's chains, gitaly-backup's manifests, pointer and
//! legacy layouts, an interrupted run, gitbak's own objects, a damaged
//! manifest and foreign files.

use std::time::UNIX_EPOCH;

use super::*;
use crate::layout::manifest::Manifest;

fn meta(key: &str, size: u64) -> ObjectMeta {
    ObjectMeta {
        key: Key::new(key).unwrap(),
        size,
        modified: UNIX_EPOCH,
    }
}

/// A gitbak manifest of repository `default/a.git` with the steps under
/// `ids` (step n under ids[n-1]), recording every file.
fn chain(ids: &[&str], created_at: &str) -> String {
    let mut text = "empty = false\nnon_existent = false\nobject_format = 'sha1'\n".to_owned();
    let mut files = String::new();
    for (n, id) in ids.iter().enumerate() {
        let base = format!("default/a.git/{id}/{:03}", n + 1);
        text.push_str(&format!(
            "\n[[steps]]\nbundle_path = '{base}.bundle'\nref_path = '{base}.refs'\ncustom_hooks_path = '{base}.custom_hooks.tar'\n"
        ));
        for ext in ["bundle", "refs"] {
            files.push_str(&format!(
                "\n[[gitbak.files]]\npath = '{base}.{ext}'\nsize = 10\nsha256 = '00'\n"
            ));
        }
    }
    format!("{text}\n[gitbak]\nversion = '0.1.0'\ncreated_at = '{created_at}'\nref_format = 'files'\n{files}")
}

const GITALY: &str = "object_format = 'sha1'\n\n[[steps]]\nbundle_path = 'default/b.git/1700000000_2023_11_14_16.6.0/001.bundle'\nref_path = 'default/b.git/1700000000_2023_11_14_16.6.0/001.refs'\ncustom_hooks_path = 'default/b.git/1700000000_2023_11_14_16.6.0/001.custom_hooks.tar'\n";

fn location() -> Catalog {
    let listing = [
        ("manifests/default/a.git/20240101000000.toml", 300),
        ("manifests/default/a.git/20240102000000.toml", 400),
        ("manifests/default/a.git/20240103000000.toml", 400),
        ("manifests/default/a.git/+latest.toml", 400),
        ("manifests/default/a.git/20240101000000.toml.attrs", 5),
        ("default/a.git/20240101000000/001.bundle", 10),
        ("default/a.git/20240101000000/001.refs", 10),
        ("default/a.git/20240102000000/002.bundle", 10),
        ("default/a.git/20240102000000/002.refs", 10),
        // An interrupted run: files, no manifest.
        ("default/a.git/20240104000000/001.bundle", 7),
        ("default/a.git/20240104000000/.001.refs~h~1-0.gitbak.tmp", 3),
        // gitaly-backup's manifest, and a run with its time recorded.
        (
            "manifests/default/b.git/1700000000_2023_11_14_16.6.0.toml",
            200,
        ),
        ("default/b.git/1700000000_2023_11_14_16.6.0/001.bundle", 50),
        ("default/b.git/1700000000_2023_11_14_16.6.0/001.refs", 5),
        ("manifests/default/b.git/nightly.toml", 200),
        ("manifests/default/b.git/mystery.toml", 100),
        // A repository whose only manifest is damaged.
        ("manifests/default/c.git/20240101000000.toml", 9),
        ("default/c.git/20240101000000/001.bundle", 70),
        ("backup_ids/20240101000000", 0),
        ("backup_ids/20240102000000", 0),
        ("backup_ids/gone", 0),
        // Pointer and legacy layouts.
        ("g/p/LATEST", 14),
        ("g/p/20210930065413/LATEST", 3),
        ("g/p/20210930065413/001.bundle", 100),
        ("g/p/20210930065413/001.refs", 20),
        ("g/p/20210930065413/002.bundle", 30),
        ("h/q.bundle", 40),
        ("h/q.refs", 4),
        ("h/q/custom_hooks.tar", 1),
        // gitbak's own objects, and something foreign.
        ("gitbak-locks/run", 1),
        ("gitbak-prune/unreferenced.json", 1),
        ("notes.txt", 1),
    ];
    let mut builder = CatalogBuilder::new(listing.iter().map(|(key, size)| meta(key, *size)));
    let mut keys = builder.manifest_keys();
    keys.sort();
    let texts = [
        chain(&["20240101000000"], "2024-01-01T00:00:05Z"),
        chain(
            &["20240101000000", "20240102000000"],
            "2024-01-02T00:00:05Z",
        ),
        chain(
            &["20240101000000", "20240102000000"],
            "2024-01-03T00:00:05Z",
        ),
        chain(
            &["20240101000000", "20240102000000"],
            "2024-01-03T00:00:05Z",
        ),
    ];
    let reads = [
        (
            "manifests/default/a.git/20240101000000.toml",
            texts[0].as_str(),
        ),
        (
            "manifests/default/a.git/20240102000000.toml",
            texts[1].as_str(),
        ),
        (
            "manifests/default/a.git/20240103000000.toml",
            texts[2].as_str(),
        ),
        ("manifests/default/a.git/+latest.toml", texts[3].as_str()),
        (
            "manifests/default/b.git/1700000000_2023_11_14_16.6.0.toml",
            GITALY,
        ),
        (
            "manifests/default/b.git/nightly.toml",
            "[gitbak]\ncreated_at = '2024-02-01T00:00:00Z'\n",
        ),
        ("manifests/default/b.git/mystery.toml", ""),
    ];
    assert_eq!(keys.len(), reads.len() + 1);
    for (key, text) in reads {
        let read = ManifestRead::Parsed(Manifest::parse(text).unwrap());
        builder.add_manifest(&Key::new(key).unwrap(), read);
    }
    builder.add_manifest(
        &Key::new("manifests/default/c.git/20240101000000.toml").unwrap(),
        ManifestRead::Damaged("not TOML".into()),
    );
    builder.build()
}

fn manifest_index(catalog: &Catalog, key: &str) -> usize {
    catalog
        .manifests
        .iter()
        .position(|entry| entry.key.as_str() == key)
        .unwrap()
}

fn file_keys(catalog: &Catalog, select: impl Fn(usize, &FileEntry) -> bool) -> Vec<&str> {
    let mut keys: Vec<&str> = catalog
        .files()
        .iter()
        .enumerate()
        .filter(|(index, file)| select(*index, file))
        .map(|(_, file)| file.key.as_str())
        .collect();
    keys.sort();
    keys
}

#[test]
fn backups_have_times_and_markers() {
    let catalog = location();
    type Row<'a> = (&'a str, Option<String>, Option<TimeSource>, bool, usize);
    let summary: Vec<Row> = catalog
        .backups
        .values()
        .map(|backup| {
            (
                backup.id.as_str(),
                backup.time.map(|time| time.to_string()),
                backup.time_source,
                backup.finished,
                backup.manifests.len(),
            )
        })
        .collect();
    let id = Some(TimeSource::Id);
    assert_eq!(
        summary,
        [
            (
                "1700000000_2023_11_14_16.6.0",
                Some("2023-11-14T22:13:20Z".into()),
                id,
                false,
                1
            ),
            // The damaged manifest of c counts; the id names the time.
            (
                "20240101000000",
                Some("2024-01-01T00:00:00Z".into()),
                id,
                true,
                2
            ),
            (
                "20240102000000",
                Some("2024-01-02T00:00:00Z".into()),
                id,
                true,
                1
            ),
            (
                "20240103000000",
                Some("2024-01-03T00:00:00Z".into()),
                id,
                false,
                1
            ),
            // A marker whose manifests are all gone.
            ("gone", None, None, true, 0),
            ("mystery", None, None, false, 1),
            (
                "nightly",
                Some("2024-02-01T00:00:00Z".into()),
                Some(TimeSource::Manifest),
                false,
                1
            ),
        ]
    );
    assert_eq!(catalog.markers.len(), 3);
}

#[test]
fn histories_chains_and_kinds() {
    let catalog = location();
    let a = &catalog.repositories[&Repository {
        storage: StorageName::parse("default").unwrap(),
        path: RelativePath::parse("a.git").unwrap(),
    }];
    let kinds: Vec<(&str, &str, usize)> = a
        .backups
        .iter()
        .map(|&index| {
            let entry = &catalog.manifests[index];
            let summary = entry.content.as_ref().unwrap();
            (
                entry.backup_id.as_ref().unwrap().as_str(),
                summary.kind.name(),
                summary.steps,
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("20240101000000", "full", 1),
            ("20240102000000", "incremental", 2),
            ("20240103000000", "unchanged", 2),
        ]
    );
    assert!(a.latest_copy.is_some());
    // Unknown times sort last.
    let b = catalog.repositories.values().nth(1).unwrap();
    let ids: Vec<&str> = b
        .backups
        .iter()
        .map(|&index| {
            catalog.manifests[index]
                .backup_id
                .as_ref()
                .unwrap()
                .as_str()
        })
        .collect();
    assert_eq!(ids, ["1700000000_2023_11_14_16.6.0", "nightly", "mystery"]);
    let gitaly = manifest_index(
        &catalog,
        "manifests/default/b.git/1700000000_2023_11_14_16.6.0.toml",
    );
    let summary = catalog.manifests[gitaly].content.as_ref().unwrap();
    assert_eq!((summary.kind, summary.created_at), (BackupKind::Full, None));
    // A file the manifest names but storage lacks (no hooks) counts 0.
    assert_eq!(catalog.restore_bytes(gitaly), 55);
    let added = catalog.added_bytes();
    let second = manifest_index(&catalog, "manifests/default/a.git/20240102000000.toml");
    let third = manifest_index(&catalog, "manifests/default/a.git/20240103000000.toml");
    assert_eq!((added[second], added[third]), (400 + 20, 400));
    assert_eq!(catalog.restore_bytes(third), 40);
}

#[test]
fn what_a_removed_manifest_frees_is_what_no_other_names() {
    let catalog = location();
    let nothing = vec![false; catalog.manifests.len()];
    let referenced = catalog.referenced(&nothing);
    // Sweepable and named by nothing: only the interrupted run's file.
    assert_eq!(
        file_keys(&catalog, |index, file| file.sweepable && !referenced[index]),
        ["default/a.git/20240104000000/001.bundle"]
    );
    // Removing the first backup frees nothing: the later ones name step 1.
    let mut removed = nothing.clone();
    removed[manifest_index(&catalog, "manifests/default/a.git/20240101000000.toml")] = true;
    let referenced = catalog.referenced(&removed);
    assert!(file_keys(&catalog, |index, file| file.sweepable && !referenced[index]).len() == 1);
    // Removing every per-id manifest of a: +latest.toml still names them.
    for id in ["20240102000000", "20240103000000"] {
        removed[manifest_index(&catalog, &format!("manifests/default/a.git/{id}.toml"))] = true;
    }
    let referenced = catalog.referenced(&removed);
    assert!(file_keys(&catalog, |index, file| file.sweepable && !referenced[index]).len() == 1);
    removed[manifest_index(&catalog, "manifests/default/a.git/+latest.toml")] = true;
    let referenced = catalog.referenced(&removed);
    assert_eq!(
        file_keys(&catalog, |index, file| file.sweepable && !referenced[index]),
        [
            "default/a.git/20240101000000/001.bundle",
            "default/a.git/20240101000000/001.refs",
            "default/a.git/20240102000000/002.bundle",
            "default/a.git/20240102000000/002.refs",
            "default/a.git/20240104000000/001.bundle",
        ]
    );
}

#[test]
fn read_only_layouts_own_objects_and_damage_are_never_swept() {
    let catalog = location();
    assert_eq!(
        file_keys(&catalog, |_, file| file.sweepable),
        [
            "default/a.git/20240101000000/001.bundle",
            "default/a.git/20240101000000/001.refs",
            "default/a.git/20240102000000/002.bundle",
            "default/a.git/20240102000000/002.refs",
            "default/a.git/20240104000000/001.bundle",
            "default/b.git/1700000000_2023_11_14_16.6.0/001.bundle",
            "default/b.git/1700000000_2023_11_14_16.6.0/001.refs",
        ]
    );
    let read_only: Vec<(&str, &str, Option<&str>, usize, u64)> = catalog
        .read_only
        .iter()
        .map(|backup| {
            (
                backup.layout.name(),
                backup.repository_prefix.as_str(),
                backup.backup_id.as_deref(),
                backup.steps,
                backup.bytes,
            )
        })
        .collect();
    assert_eq!(
        read_only,
        [
            ("pointer", "g/p", Some("20210930065413"), 2, 150),
            ("legacy", "h/q", None, 1, 45),
        ]
    );
    let temporaries: Vec<&str> = catalog
        .temporaries
        .iter()
        .map(|meta| meta.key.as_str())
        .collect();
    assert_eq!(
        temporaries,
        ["default/a.git/20240104000000/.001.refs~h~1-0.gitbak.tmp"]
    );
    let damaged = manifest_index(&catalog, "manifests/default/c.git/20240101000000.toml");
    assert_eq!(
        catalog.manifests[damaged]
            .content
            .as_ref()
            .err()
            .map(String::as_str),
        Some("not TOML")
    );
    assert!(catalog.named(damaged).is_empty());
}

#[test]
fn vanished_manifests_are_left_out() {
    let mut builder = CatalogBuilder::new([
        meta("manifests/default/a.git/20240101000000.toml", 1),
        meta("manifests/default/a.git/20240102000000.toml", 1),
    ]);
    builder.add_manifest(
        &Key::new("manifests/default/a.git/20240101000000.toml").unwrap(),
        ManifestRead::Vanished,
    );
    builder.add_manifest(
        &Key::new("manifests/default/a.git/20240102000000.toml").unwrap(),
        ManifestRead::Parsed(Manifest::default()),
    );
    let catalog = builder.build();
    assert_eq!(catalog.manifests.len(), 1);
    assert_eq!(catalog.backups.len(), 1);
    let history = catalog.repositories.values().next().unwrap();
    assert_eq!(history.backups, [0]);
}
