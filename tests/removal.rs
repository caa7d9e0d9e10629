//! What a restore run removes (spec §4.6, §4.7): `-remove-all-repositories`
//! and gitaly mode's rule for a repository without a backup. Today's flags
//! cannot reach either, so these tests call `gitbak::cmd::restore::run`
//! with its options over real storages, real git repositories and a backup
//! location the real binary wrote.

use std::path::PathBuf;
use std::sync::Arc;

use gitbak::cmd::restore::{self, RemovalReason, RestoreOptions, RestoreReport};
use gitbak::cmd::{Context, RunOptions, Setup};
use gitbak::job::progress::Silent;
use gitbak::job::scheduler::{JobSource, Limits};
use gitbak::job::{InputError, Job, JobReader};
use gitbak::layout::BackupId;
use tokio_util::sync::CancellationToken;

use crate::support::{Repo, RepoState, TestEnv};

const ID: &str = "20240101000000";

/// A storage as a Gitaly node has it: two project repositories that get
/// backed up, and beside them what a remove-all must never touch.
struct Node {
    env: TestEnv,
    backed_up: Vec<Repo>,
    root: PathBuf,
}

fn node() -> Node {
    let env = TestEnv::new();
    let backed_up = vec![
        env.fixture_at("default", "linear", "@hashed/aa/bb/a.git", &[]),
        env.fixture_at("default", "branches-and-tags", "group/b.git", &[]),
    ];
    env.create(ID, &backed_up.iter().collect::<Vec<_>>())
        .assert_success();
    let root = env.storage_root("default");
    Node {
        env,
        backed_up,
        root,
    }
}

impl Node {
    /// A repository made after the backup: nothing restores it.
    fn extra(&self, relative_path: &str) -> PathBuf {
        self.env
            .fixture_at("default", "linear", relative_path, &[])
            .path()
    }

    fn restore(&self, jobs: &[&str], configure: impl FnOnce(&mut RestoreOptions)) -> RestoreReport {
        self.restore_from(self.env.backups(), jobs, configure)
    }

    fn restore_from(
        &self,
        location: PathBuf,
        jobs: &[&str],
        configure: impl FnOnce(&mut RestoreOptions),
    ) -> RestoreReport {
        let jobs: Vec<Job> = jobs
            .iter()
            .enumerate()
            .map(|(index, path)| Job {
                line: index + 1,
                storage_name: "default".into(),
                relative_path: (*path).into(),
                gl_project_path: format!("group/{index}"),
                ..Job::default()
            })
            .collect();
        self.run(
            location,
            jobs.into_iter(),
            CancellationToken::new(),
            configure,
        )
    }

    fn run(
        &self,
        location: PathBuf,
        jobs: impl JobSource,
        cancel: CancellationToken,
        configure: impl FnOnce(&mut RestoreOptions),
    ) -> RestoreReport {
        let mut options = RestoreOptions {
            id: None,
            at: None,
            run: RunOptions {
                limits: Limits {
                    parallel: 2,
                    parallel_storage: 2,
                },
                local_storages_only: false,
            },
            remove_all_repositories: Vec::new(),
            remove_when_no_backup: false,
        };
        configure(&mut options);
        let setup = Setup {
            location: Some(location.to_str().unwrap().to_owned()),
            storages: vec![("default".into(), self.root.clone())],
            gitaly_config: None,
            git: "git".into(),
            parallel: 2,
            part_size: None,
            upload_concurrency: 1,
            upload_memory: None,
            retries: 0,
            immutable: false,
            gitaly_addresses: Default::default(),
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let ctx = Context::open(setup, Arc::new(Silent), cancel)
                .await
                .unwrap();
            restore::run(&ctx, options, jobs).await.unwrap()
        })
    }

    fn all_jobs(&self) -> Vec<&str> {
        self.backed_up
            .iter()
            .map(|repo| repo.relative_path.as_str())
            .collect()
    }
}

/// Hands out its jobs, then waits until their repositories are restored
/// (`diverge`'s loose branch is gone) and interrupts the run, as Ctrl-C
/// between the last job and the end of stdin would.
struct CancelWhenRestored {
    jobs: std::vec::IntoIter<Job>,
    repositories: Vec<PathBuf>,
    cancel: CancellationToken,
}

#[async_trait::async_trait]
impl JobSource for CancelWhenRestored {
    async fn next_job(&mut self) -> Result<Option<Job>, InputError> {
        if let Some(job) = self.jobs.next() {
            return Ok(Some(job));
        }
        let restored = |path: &PathBuf| !path.join("refs/heads/after-backup").exists();
        for _ in 0..600 {
            if self.repositories.iter().all(restored) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.cancel.cancel();
        std::future::pending().await
    }
}

fn removed(report: &RestoreReport) -> Vec<(String, RemovalReason)> {
    report
        .removed
        .iter()
        .map(|gone| (gone.relative_path.clone(), gone.reason))
        .collect()
}

fn failed_paths(report: &RestoreReport) -> Vec<String> {
    let mut paths: Vec<String> = report
        .run
        .failures
        .iter()
        .map(|(job, _)| job.relative_path.clone())
        .collect();
    paths.sort();
    paths
}

#[test]
fn remove_all_removes_exactly_what_was_not_restored_and_keeps_pools() {
    let node = node();
    let states: Vec<RepoState> = node
        .backed_up
        .iter()
        .map(|repo| RepoState::capture(&node.env, &repo.path()))
        .collect();
    let dangling = node.extra("group/dangling.git");
    let nested = node.extra("@hashed/cc/dd/dangling.wiki.git");
    let kept: Vec<PathBuf> = [
        "@pools/11/22/pool.git",
        "@cluster/pools/11/22/7.git",
        "+gitaly/tmp/x.git",
    ]
    .into_iter()
    .map(|path| node.extra(path))
    .collect();
    for repo in &node.backed_up {
        node.env.diverge(&repo.path());
    }

    let report = node.restore(&node.all_jobs(), |options| {
        options.remove_all_repositories = vec!["default".into()];
    });
    assert!(report.run.failures.is_empty(), "{:?}", report.run.failures);
    assert_eq!(report.run.completed, 2);
    assert_eq!(
        removed(&report),
        [
            (
                "@hashed/cc/dd/dangling.wiki.git".to_owned(),
                RemovalReason::NotRestored
            ),
            ("group/dangling.git".to_owned(), RemovalReason::NotRestored),
        ]
    );
    assert!(!dangling.exists() && !nested.exists());
    for path in &kept {
        assert!(
            path.join("HEAD").is_file(),
            "{} was removed",
            path.display()
        );
    }
    for (repo, state) in node.backed_up.iter().zip(&states) {
        state.assert_same(&RepoState::capture(&node.env, &repo.path()), "restored");
    }
    crate::support::assert_no_temp_dirs(&node.root);
}

#[test]
fn remove_all_removes_nothing_when_one_job_failed() {
    let node = node();
    let dangling = node.extra("group/dangling.git");
    let mut jobs = node.all_jobs();
    jobs.push("group/never-backed-up.git");
    let report = node.restore(&jobs, |options| {
        options.remove_all_repositories = vec!["default".into()];
    });
    assert_eq!(failed_paths(&report), ["group/never-backed-up.git"]);
    assert_eq!(report.run.completed, 2);
    assert!(report.removed.is_empty(), "{:?}", report.removed);
    assert!(dangling.join("HEAD").is_file());
}

#[test]
fn remove_all_removes_nothing_when_no_backup_was_found() {
    // A wrong -path: every lookup finds nothing.
    let node = node();
    let dangling = node.extra("group/dangling.git");
    let wrong = node.env.root().join("not-the-backups");
    std::fs::create_dir_all(&wrong).unwrap();
    for jobs in [node.all_jobs(), Vec::new()] {
        let report = node.restore_from(wrong.clone(), &jobs, |options| {
            options.remove_all_repositories = vec!["default".into()];
            options.remove_when_no_backup = true;
        });
        assert_eq!(report.run.failures.len(), jobs.len());
        assert!(report.removed.is_empty(), "{:?}", report.removed);
    }
    assert!(dangling.join("HEAD").is_file());
    for repo in &node.backed_up {
        assert!(repo.path().join("HEAD").is_file());
    }
}

#[test]
fn remove_all_removes_nothing_after_an_input_error_or_an_interrupt() {
    let node = node();
    let dangling = node.extra("group/dangling.git");
    let lines: String = node
        .backed_up
        .iter()
        .map(|repo| repo.job_line() + "\n")
        .collect::<String>()
        + "{not json\n";
    let reader = JobReader::new(tokio::io::BufReader::new(std::io::Cursor::new(
        lines.into_bytes(),
    )));
    let all = |options: &mut RestoreOptions| {
        options.remove_all_repositories = vec!["default".into()];
        options.remove_when_no_backup = true;
    };
    let report = node.run(node.env.backups(), reader, CancellationToken::new(), all);
    assert!(report.run.input_error.is_some());
    assert!(report.removed.is_empty(), "{:?}", report.removed);

    // Interrupted after both repositories were restored.
    for repo in &node.backed_up {
        node.env.diverge(&repo.path());
    }
    let cancel = CancellationToken::new();
    let source = CancelWhenRestored {
        jobs: node
            .backed_up
            .iter()
            .map(|repo| Job {
                line: 1,
                storage_name: "default".into(),
                relative_path: repo.relative_path.clone(),
                ..Job::default()
            })
            .collect::<Vec<_>>()
            .into_iter(),
        repositories: node.backed_up.iter().map(Repo::path).collect(),
        cancel: cancel.clone(),
    };
    let report = node.run(node.env.backups(), source, cancel, all);
    assert!(report.run.interrupted);
    assert!(report.removed.is_empty(), "{:?}", report.removed);
    assert!(dangling.join("HEAD").is_file());
}

#[test]
fn a_backup_of_a_repository_that_did_not_exist_counts_as_restored() {
    let node = node();
    let env = &node.env;
    let absent = Repo::new("default", node.root.clone(), "group/absent.git");
    env.create(ID, &[&absent]).assert_success();
    // It exists now; its non_existent backup leaves it, and remove-all too.
    let absent_path = node.extra("group/absent.git");
    let mut jobs = node.all_jobs();
    jobs.push("group/absent.git");
    let report = node.restore(&jobs, |options| {
        options.remove_all_repositories = vec!["default".into(), "unknown".into()];
    });
    assert!(report.run.failures.is_empty(), "{:?}", report.run.failures);
    assert!(report.removed.is_empty(), "{:?}", report.removed);
    assert!(absent_path.join("HEAD").is_file());
}

#[test]
fn without_a_backup_gitaly_mode_removes_the_repository_at_the_end() {
    let node = node();
    let orphan = node.extra("group/orphan.git");
    let mut jobs = node.all_jobs();
    jobs.push("group/orphan.git");
    let report = node.restore(&jobs, |options| options.remove_when_no_backup = true);
    assert_eq!(failed_paths(&report), ["group/orphan.git"]);
    assert_eq!(report.run.completed, 2);
    assert_eq!(
        removed(&report),
        [("group/orphan.git".to_owned(), RemovalReason::NoBackup)]
    );
    assert!(!orphan.exists());
    crate::support::assert_no_temp_dirs(&node.root);
}

#[test]
fn without_a_backup_the_repository_stays_unless_the_lookup_succeeded() {
    let node = node();
    let orphan = node.extra("group/orphan.git");
    let broken = node.extra("group/broken.git");
    // A manifest that cannot be read is a lookup error, not "no backup".
    let manifest = node.env.backup_file("manifests/default/group/broken.git");
    std::fs::create_dir_all(&manifest).unwrap();
    std::fs::write(manifest.join(format!("{ID}.toml")), "steps = 'x").unwrap();
    let mut jobs = node.all_jobs();
    jobs.extend(["group/orphan.git", "group/broken.git"]);

    // Outside gitaly mode: always kept.
    let report = node.restore(&jobs, |_| {});
    assert_eq!(
        failed_paths(&report),
        ["group/broken.git", "group/orphan.git"]
    );
    assert!(report.removed.is_empty());
    // A missing explicit id: kept, in gitaly mode too.
    let report = node.restore(&jobs, |options| {
        options.remove_when_no_backup = true;
        options.id = Some(BackupId::parse("19991231000000").unwrap());
    });
    assert_eq!(report.run.failures.len(), 4);
    assert!(report.removed.is_empty());
    // Gitaly mode, latest: only the one whose lookup worked goes.
    let report = node.restore(&jobs, |options| options.remove_when_no_backup = true);
    assert_eq!(
        removed(&report),
        [("group/orphan.git".to_owned(), RemovalReason::NoBackup)]
    );
    assert!(!orphan.exists());
    assert!(broken.join("HEAD").is_file());
}
