//! `restore --all`: the job list of a disaster recovery, taken from the
//! location's catalogue instead of written by hand. Chooses which
//! repositories to restore; which backup each one gets is still decided
//! per job by the ordinary lookup (`lookup.rs`), so `--all` restores
//! exactly what the same list on stdin would.

use std::collections::BTreeMap;

use crate::job::Job;
use crate::layout::catalog::Catalog;
use crate::layout::time::Timestamp;
use crate::layout::BackupId;
use crate::storage::StorageError;

use super::super::catalog;
use super::Context;

/// The repositories `--all` restores, and what it leaves out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AllJobs {
    pub jobs: Vec<Job>,
    /// Storages the backups name that this node does not have, each with
    /// how many of its repositories were left out.
    pub skipped_storages: BTreeMap<String, usize>,
    /// Backups in the pointer or legacy layout: they record no storage,
    /// so only a job list can say where they go.
    pub read_only: usize,
}

/// Reads the catalogue and picks the repositories; `None` when the run
/// was cancelled while it read.
pub async fn jobs(
    ctx: &Context,
    id: Option<&BackupId>,
    at: Option<Timestamp>,
) -> Result<Option<AllJobs>, StorageError> {
    let Some(catalog) =
        catalog::load_until_cancelled(ctx.storage.as_ref(), ctx.progress.as_ref(), &ctx.cancel)
            .await?
    else {
        return Ok(None);
    };
    Ok(Some(select(&catalog, id, at, |storage| {
        ctx.roots.iter().any(|(name, _)| name == storage)
    })))
}

/// With `id`: the repositories that have a backup under that id; with
/// `at`: those with a backup taken at or before it; else every repository
/// with a backup. Those on storages `configured` rejects are counted, not
/// restored.
pub fn select(
    catalog: &Catalog,
    id: Option<&BackupId>,
    at: Option<Timestamp>,
    configured: impl Fn(&str) -> bool,
) -> AllJobs {
    let mut all = AllJobs {
        read_only: catalog.read_only.len(),
        ..AllJobs::default()
    };
    for (repository, history) in &catalog.repositories {
        // A backup's time as `--at` reads it for each job (`lookup.rs`):
        // when its refs were read, else the time its id names.
        let mut backups = history.backups.iter().map(|&index| {
            let manifest = &catalog.manifests[index];
            let recorded = manifest.content.as_ref().ok().and_then(|m| m.created_at);
            (
                manifest.backup_id.as_ref(),
                recorded.or_else(|| catalog.backup_time(index)),
            )
        });
        let wanted = match (id, at) {
            (Some(id), _) => backups.any(|(backup, _)| backup == Some(id)),
            (None, Some(at)) => backups.any(|(_, time)| time.is_some_and(|time| time <= at)),
            (None, None) => history.latest_copy.is_some() || !history.backups.is_empty(),
        };
        if !wanted {
            continue;
        }
        let storage = repository.storage.to_string();
        if !configured(&storage) {
            *all.skipped_storages.entry(storage).or_default() += 1;
            continue;
        }
        all.jobs.push(Job {
            storage_name: storage,
            relative_path: repository.path.to_string(),
            ..Job::default()
        });
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::catalog::{CatalogBuilder, ManifestRead};
    use crate::layout::manifest::Manifest;
    use crate::storage::{Key, ObjectMeta};

    fn catalog(manifests: &[&str]) -> Catalog {
        let mut builder = CatalogBuilder::empty();
        for key in manifests {
            let key = Key::new(*key).unwrap();
            let meta = ObjectMeta {
                key: key.clone(),
                size: 10,
                modified: std::time::SystemTime::UNIX_EPOCH,
            };
            if builder.add_listed(meta).is_some() {
                let manifest = Manifest::parse(
                    "[[steps]]\nbundle_path = \"x.bundle\"\nref_path = \"x.refs\"\n",
                )
                .unwrap();
                builder.add_manifest(&key, ManifestRead::Parsed(manifest));
            }
        }
        builder.build()
    }

    fn paths(all: &AllJobs) -> Vec<String> {
        all.jobs
            .iter()
            .map(|job| format!("{}:{}", job.storage_name, job.relative_path))
            .collect()
    }

    #[test]
    fn picks_by_id_by_time_or_every_repository() {
        let catalog = catalog(&[
            "manifests/default/a.git/20260101020000.toml",
            "manifests/default/a.git/20260103020000.toml",
            "manifests/default/a.git/+latest.toml",
            "manifests/default/b.git/20260103020000.toml",
            "manifests/other/c.git/20260101020000.toml",
        ]);
        let here = |storage: &str| storage == "default";

        let every = select(&catalog, None, None, here);
        assert_eq!(paths(&every), ["default:a.git", "default:b.git"]);
        assert_eq!(
            every.skipped_storages,
            BTreeMap::from([("other".into(), 1)])
        );

        let id = BackupId::parse("20260103020000").unwrap();
        let by_id = select(&catalog, Some(&id), None, here);
        assert_eq!(paths(&by_id), ["default:a.git", "default:b.git"]);
        assert!(by_id.skipped_storages.is_empty());

        let at = crate::layout::time::parse_rfc3339("2026-01-02T00:00:00Z").unwrap();
        let by_time = select(&catalog, None, Some(at), here);
        assert_eq!(paths(&by_time), ["default:a.git"]);
        assert_eq!(by_time.skipped_storages.get("other"), Some(&1));

        let unknown = BackupId::parse("20250101000000").unwrap();
        assert!(select(&catalog, Some(&unknown), None, here).jobs.is_empty());
    }
}
