//! Plans over a history of ten daily backups in chains of three.

use std::time::{Duration as StdDuration, UNIX_EPOCH};

use super::*;
use crate::layout::catalog::{CatalogBuilder, ManifestRead};
use crate::layout::manifest::Manifest;
use crate::layout::time::parse_rfc3339;
use crate::retention::Count;
use crate::storage::Key;

fn id(day: u32) -> String {
    format!("202401{day:02}000000")
}

fn meta(key: &str, size: u64) -> ObjectMeta {
    ObjectMeta {
        key: Key::new(key).unwrap(),
        size,
        modified: UNIX_EPOCH,
    }
}

/// Days 1..=10 of `default/a.git`; a chain restarts every three days
/// (1-3, 4-6, 7-9, 10), every run has its marker.
fn history() -> Catalog {
    let mut listing = Vec::new();
    let mut manifests = Vec::new();
    for day in 1..=10u32 {
        for ext in ["bundle", "refs"] {
            listing.push(meta(
                &format!("default/a.git/{}/{day:03}.{ext}", id(day)),
                100,
            ));
        }
        listing.push(meta(&format!("backup_ids/{}", id(day)), 0));
        let first = (day - 1) / 3 * 3 + 1;
        let mut text = "object_format = 'sha1'\n".to_owned();
        for step in first..=day {
            let base = format!("default/a.git/{}/{step:03}", id(step));
            text.push_str(&format!(
                "\n[[steps]]\nbundle_path = '{base}.bundle'\nref_path = '{base}.refs'\n"
            ));
        }
        let key = format!("manifests/default/a.git/{}.toml", id(day));
        listing.push(meta(&key, 10));
        manifests.push((key, text));
    }
    let mut builder = CatalogBuilder::new(listing);
    for (key, text) in manifests {
        let read = ManifestRead::Parsed(Manifest::parse(&text).unwrap());
        builder.add_manifest(&Key::new(key).unwrap(), read);
    }
    builder.build()
}

fn keep_last(n: u32) -> Policy {
    Policy {
        last: Some(Count::Periods(n)),
        ..Policy::default()
    }
}

fn at(text: &str) -> Timestamp {
    parse_rfc3339(text).unwrap()
}

fn file_keys<'a>(catalog: &'a Catalog, files: &[usize]) -> Vec<&'a str> {
    let mut keys: Vec<&str> = files
        .iter()
        .map(|&f| catalog.files()[f].key.as_str())
        .collect();
    keys.sort();
    keys
}

const NOW: &str = "2024-01-20T00:00:00Z";

#[test]
fn removed_backups_free_only_what_kept_chains_do_not_need() {
    let catalog = history();
    let day = Duration::parse("1d").unwrap();
    let plan = plan(
        &catalog,
        &keep_last(2),
        at(NOW),
        day,
        &Record::default(),
        &[],
    );
    let verdicts: Vec<(&str, String, usize)> = plan.repositories[0]
        .backups
        .iter()
        .map(|backup| {
            let id = catalog.manifests[backup.manifest]
                .backup_id
                .as_ref()
                .unwrap();
            let verdict = match &backup.verdict {
                Verdict::Keep(reasons) => format!("keep {}", reasons[0]),
                other => format!("{other:?}"),
            };
            (&id.as_str()[6..8], verdict, backup.files_still_needed)
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("01", "Remove".into(), 0),
            ("02", "Remove".into(), 0),
            ("03", "Remove".into(), 0),
            ("04", "Remove".into(), 0),
            ("05", "Remove".into(), 0),
            ("06", "Remove".into(), 0),
            // Backup 9 continues 7 and 8: their steps stay.
            ("07", "Remove".into(), 2),
            ("08", "Remove".into(), 4),
            ("09", "keep last 2/2".into(), 0),
            ("10", "keep last 1/2".into(), 0),
        ]
    );
    assert_eq!(plan.manifests.len(), 8);
    assert_eq!(plan.markers.len(), 8);
    // First found unreferenced now: every freed file waits a day.
    assert!(plan.files.is_empty());
    assert_eq!(plan.waiting_files.len(), 12);
    assert!(plan
        .waiting_files
        .iter()
        .all(|(_, since)| *since == at(NOW)));
    assert_eq!(plan.grace_cutoff, at("2024-01-19T00:00:00Z"));
}

#[test]
fn files_go_once_unreferenced_for_the_grace_period() {
    let catalog = history();
    let day = Duration::parse("1d").unwrap();
    let mut record = Record::default();
    for step in 1..=3 {
        let key = format!("default/a.git/{}/{step:03}.bundle", id(step));
        record.first_seen.insert(key, at("2024-01-18T23:00:00Z"));
    }
    // Named again by a kept manifest since: recorded, but not removable.
    record.first_seen.insert(
        format!("default/a.git/{}/007.refs", id(7)),
        at("2024-01-01T00:00:00Z"),
    );
    let plan = plan(&catalog, &keep_last(2), at(NOW), day, &record, &[]);
    assert_eq!(
        file_keys(&catalog, &plan.files),
        [
            "default/a.git/20240101000000/001.bundle",
            "default/a.git/20240102000000/002.bundle",
            "default/a.git/20240103000000/003.bundle",
        ]
    );
    assert_eq!(plan.waiting_files.len(), 9);
    // With no grace, everything unreferenced goes at once.
    let now = Duration::default();
    let plan = super::plan(
        &catalog,
        &keep_last(2),
        at(NOW),
        now,
        &Record::default(),
        &[],
    );
    assert_eq!(plan.files.len(), 12);
    assert!(plan.waiting_files.is_empty());
}

#[test]
fn if_a_manifest_stays_its_files_and_marker_stay() {
    let catalog = history();
    let plan = plan(
        &catalog,
        &keep_last(2),
        at(NOW),
        Duration::default(),
        &Record::default(),
        &[],
    );
    let mut removed = plan.removed_mask(&catalog);
    // The removal of backup 2's manifest failed.
    let second = catalog
        .manifests
        .iter()
        .position(|entry| entry.key.as_str().contains(&id(2)))
        .unwrap();
    removed[second] = false;
    let (files, _) = files_to_remove(&catalog, &removed, &Record::default(), at(NOW), at(NOW));
    assert_eq!(files.len(), 8);
    assert!(file_keys(&catalog, &files)
        .iter()
        .all(|key| !key.contains("/001.") && !key.contains("/002.")));
    let markers = markers_to_remove(&catalog, &removed);
    assert_eq!(markers.len(), 7);
    assert!(!markers.contains(&BackupId::parse(&id(2)).unwrap()));
}

#[test]
fn temporaries_of_dead_runs_here_go_now_others_after_grace() {
    let catalog = history();
    let day = Duration::parse("1d").unwrap();
    let old = UNIX_EPOCH + StdDuration::from_secs(at("2024-01-10T00:00:00Z").unix_seconds() as u64);
    let fresh =
        UNIX_EPOCH + StdDuration::from_secs(at("2024-01-19T12:00:00Z").unix_seconds() as u64);
    let temporary = |name: &str, modified| ObjectMeta {
        modified,
        ..meta(&format!("default/a.git/x/.{name}.gitbak.tmp"), 5)
    };
    let found = [
        (temporary("a~here~1-0", old), TemporaryOwner::DeadHere),
        (temporary("b~here~2-0", old), TemporaryOwner::RunningHere),
        (temporary("c~there~3-0", old), TemporaryOwner::Elsewhere),
        (temporary("d~there~4-0", old), TemporaryOwner::Elsewhere),
        (temporary("e~there~5-0", fresh), TemporaryOwner::Elsewhere),
    ];
    let mut record = Record::default();
    for name in ["d~there~4-0", "e~there~5-0"] {
        let key = format!("default/a.git/x/.{name}.gitbak.tmp");
        record.first_seen.insert(key, at("2024-01-01T00:00:00Z"));
    }
    let plan = plan(&catalog, &keep_last(10), at(NOW), day, &record, &found);
    let removed: Vec<&str> = plan
        .temporaries
        .iter()
        .map(|meta| meta.key.as_str())
        .collect();
    assert_eq!(
        removed,
        [
            "default/a.git/x/.a~here~1-0.gitbak.tmp",
            "default/a.git/x/.d~there~4-0.gitbak.tmp"
        ]
    );
    // c is first found now; e was written to within the grace period.
    assert_eq!(plan.waiting_temporaries.len(), 2);
    assert!(plan.manifests.is_empty() && plan.markers.is_empty());
}
