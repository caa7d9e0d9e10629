//! Selection over three repositories: `a` with three timed backups, `b`
//! with a backup whose time only its manifest records and one of unknown
//! time, `c` with only `+latest.toml`.

use std::time::UNIX_EPOCH;

use super::*;
use crate::layout::catalog::{CatalogBuilder, ManifestRead};
use crate::layout::manifest::Manifest;
use crate::layout::time::parse_rfc3339;
use crate::layout::{RelativePath, StorageName};
use crate::storage::{Key, ObjectMeta};

fn manifest(created_at: Option<&str>) -> String {
    let mut text =
        "object_format = 'sha1'\n\n[[steps]]\nref_path = 'x/y.git/1/001.refs'\n".to_owned();
    if let Some(created_at) = created_at {
        text.push_str(&format!("\n[gitbak]\ncreated_at = '{created_at}'\n"));
    }
    text
}

fn location() -> Catalog {
    let manifests = [
        ("a.git", "20240101000000", None),
        ("a.git", "20240102000000", None),
        ("a.git", "20240103000000", None),
        ("b.git", "nightly", Some("2024-01-02T12:00:00Z")),
        ("b.git", "mystery", None),
        ("c.git", "+latest", None),
    ];
    let keys: Vec<(String, String)> = manifests
        .iter()
        .map(|(path, id, created_at)| {
            (
                format!("manifests/default/{path}/{id}.toml"),
                manifest(*created_at),
            )
        })
        .collect();
    let listing = keys.iter().map(|(key, _)| ObjectMeta {
        key: Key::new(key.clone()).unwrap(),
        size: 10,
        modified: UNIX_EPOCH,
    });
    let mut builder = CatalogBuilder::new(listing.collect::<Vec<_>>());
    for (key, text) in keys {
        let read = ManifestRead::Parsed(Manifest::parse(&text).unwrap());
        builder.add_manifest(&Key::new(key).unwrap(), read);
    }
    builder.build()
}

fn repository(path: &str) -> Repository {
    Repository {
        storage: StorageName::parse("default").unwrap(),
        path: RelativePath::parse(path).unwrap(),
    }
}

/// The selected manifests' keys, without the common prefix.
fn chosen(catalog: &Catalog, selected: &[usize]) -> Vec<String> {
    selected
        .iter()
        .map(|&index| {
            let key = catalog.manifests[index].key.as_str();
            key.trim_start_matches("manifests/default/").to_owned()
        })
        .collect()
}

#[test]
fn the_default_is_each_repositorys_newest_backup() {
    let catalog = location();
    let selected = select(&catalog, &Selection::Latest, None);
    assert_eq!(
        chosen(&catalog, &selected),
        [
            "a.git/20240103000000.toml",
            // A known time wins over an unknown one.
            "b.git/nightly.toml",
            // Only the copy exists.
            "c.git/+latest.toml",
        ]
    );
}

#[test]
fn an_id_selects_the_repositories_that_have_it() {
    let catalog = location();
    let id = BackupId::parse("20240102000000").unwrap();
    let selected = select(&catalog, &Selection::Id(id), None);
    assert_eq!(chosen(&catalog, &selected), ["a.git/20240102000000.toml"]);
    let none = select(
        &catalog,
        &Selection::Id(BackupId::parse("20990101000000").unwrap()),
        None,
    );
    assert!(none.is_empty());
}

#[test]
fn a_time_selects_the_newest_backup_taken_by_then() {
    let catalog = location();
    for (at, want) in [
        (
            "2024-01-02T13:00:00Z",
            vec!["a.git/20240102000000.toml", "b.git/nightly.toml"],
        ),
        ("2024-01-02T11:00:00Z", vec!["a.git/20240102000000.toml"]),
        ("2023-12-31T00:00:00Z", vec![]),
    ] {
        let at = parse_rfc3339(at).unwrap();
        let selected = select(&catalog, &Selection::At(at), None);
        assert_eq!(chosen(&catalog, &selected), want, "{at}");
    }
}

#[test]
fn a_repository_narrows_the_selection() {
    let catalog = location();
    let b = repository("b.git");
    let selected = select(&catalog, &Selection::Latest, Some(&b));
    assert_eq!(chosen(&catalog, &selected), ["b.git/nightly.toml"]);
    let unknown = repository("d.git");
    assert!(select(&catalog, &Selection::Latest, Some(&unknown)).is_empty());
}

#[test]
fn a_sample_is_a_repeatable_subset_of_the_asked_size() {
    let selected: Vec<usize> = (100..120).collect();
    for seed in [0, 1, 42, u64::MAX] {
        let picked = sample(&selected, 5, seed);
        assert_eq!(picked.len(), 5, "seed {seed}");
        assert!(
            picked.windows(2).all(|pair| pair[0] < pair[1]),
            "{picked:?}"
        );
        assert!(picked.iter().all(|index| selected.contains(index)));
        assert_eq!(picked, sample(&selected, 5, seed));
    }
    assert_ne!(sample(&selected, 5, 1), sample(&selected, 5, 2));
    assert_eq!(sample(&selected, 50, 7), selected);
    assert!(sample(&selected, 0, 7).is_empty());
    // Every repository gets picked by some seed.
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..200 {
        seen.extend(sample(&selected, 1, seed));
    }
    assert_eq!(seen.len(), selected.len());
}
