//! Prune on object storage (S3 on moto): the same history backed up to a
//! local directory and to a bucket, pruned with the same policy, leaves
//! the same keys in both, and the kept backups restore from the bucket.

use std::collections::BTreeSet;

use gitbak::storage::{Location, StorageExt, Tuning};

use super::{create, day, files, prune};
use crate::storage::s3::{Moto, CREDENTIALS};
use crate::support::{Repo, RepoState, TestEnv};

#[tokio::test(flavor = "multi_thread")]
async fn prune_leaves_in_a_bucket_what_it_leaves_in_a_directory() {
    let moto = Moto::start();
    moto.create_bucket("backups", false);
    let url = moto.url("backups");
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let to_bucket = |id: &str| {
        env.gitbak([
            "create",
            "--incremental",
            "--max-chain",
            "3",
            "--id",
            id,
            "--path",
            &url,
        ])
        .storages_of(&[&repo])
        .jobs(&[&repo])
        .envs(CREDENTIALS)
        .run()
        .assert_success();
    };
    let mut states = Vec::new();
    for d in 1..=5 {
        env.add_commit(&repo.path(), "refs/heads/main", &format!("day-{d}.txt"));
        create(&env, &repo, &day(d), &["--incremental", "--max-chain", "3"]).assert_success();
        to_bucket(&day(d));
        states.push(RepoState::capture(&env, &repo.path()));
    }
    let policy = [
        "--keep-last",
        "2",
        "--grace",
        "0",
        "--now",
        "2026-02-01T00:00:00Z",
    ];
    let local = prune(&env, &policy);
    let run = env
        .gitbak(["prune", "--json", "--path", &url])
        .args(policy)
        .envs(CREDENTIALS)
        .run();
    run.assert_success();
    let remote: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(remote["repositories"], local["repositories"]);
    assert_eq!(
        remote["removed"]["manifests"],
        local["removed"]["manifests"]
    );
    assert_eq!(remote["removed"]["markers"], 3);
    // Days 1-3 went whole; day 4's files stay for day 5's chain.
    assert_eq!(remote["removed"]["data_files"]["count"], 6);

    let bucket = gitbak::storage::open(&Location::parse(&url).unwrap(), Tuning::default())
        .await
        .unwrap();
    let in_bucket: BTreeSet<String> = bucket
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|meta| meta.key.to_string())
        .collect();
    assert_eq!(in_bucket, files(&env));
    for (d, state) in [(4, &states[3]), (5, &states[4])] {
        let fresh: Repo = repo.on_root(env.storage_root(&format!("from-s3-{d}")));
        env.gitbak(["restore", "--id", &day(d), "--path", &url])
            .storages_of(&[&fresh])
            .jobs(&[&fresh])
            .envs(CREDENTIALS)
            .run()
            .assert_success();
        state.assert_same(
            &RepoState::capture(&env, &fresh.path()),
            &format!("day {d} from S3"),
        );
    }
}
