//! End to end through the object-storage emulators: `create` then
//! `restore` of fixture repositories through each provider gives identical
//! repositories, and a backup in a bucket has exactly the keys and refs
//! files of the same backup written to a local directory.

use std::collections::BTreeMap;
use std::sync::Arc;

use gitbak::storage::azure::{open_with, AzureCredentials, AzureTimeouts};
use gitbak::storage::{Location, Storage, StorageExt, Tuning};

use crate::storage::azure::{Azurite, ACCOUNT, KEY};
use crate::storage::gcs::Emulator as FakeGcs;
use crate::storage::s3::{Moto, CREDENTIALS as MOTO_CREDENTIALS, SECRET as S3_SECRET};
use crate::support::{files_under, Repo, RepoState, TestEnv};

const ID: &str = "20261123000000";

/// A backup location URL and the environment gitbak needs to reach it.
struct Target {
    url: String,
    vars: Vec<(&'static str, String)>,
}

fn fixtures(env: &TestEnv) -> Vec<Repo> {
    let mut repos = crate::create::fixtures(env);
    // A job for a repository that does not exist: a manifest, no files.
    repos.push(Repo::new(
        "default",
        env.storage_root("default"),
        "fixtures/ghost.git",
    ));
    repos
}

/// Every object under the location, key → bytes.
async fn objects(storage: Arc<dyn Storage>) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    for meta in storage.list("").await.unwrap() {
        let bytes = storage.get_bytes(&meta.key).await.unwrap();
        found.insert(meta.key.to_string(), bytes);
    }
    found
}

fn local_objects(env: &TestEnv) -> BTreeMap<String, Vec<u8>> {
    files_under(&env.backups())
        .into_iter()
        .map(|relative| {
            let bytes = std::fs::read(env.backups().join(&relative)).unwrap();
            (relative, bytes)
        })
        .collect()
}

async fn round_trip(target: Target, bucket: Arc<dyn Storage>) {
    let env = TestEnv::new();
    let repos = fixtures(&env);
    let refs: Vec<&Repo> = repos.iter().collect();
    // The same backup, locally and in the bucket.
    env.create(ID, &refs).assert_success();
    let local = local_objects(&env);
    let mut create = env
        .gitbak(["create", "--id", ID, "--path", &target.url])
        .storages_of(&refs)
        .jobs(&refs);
    for (name, value) in &target.vars {
        create = create.env(name, value);
    }
    create.run().assert_success();
    let remote = objects(bucket).await;
    assert_eq!(
        remote.keys().collect::<Vec<_>>(),
        local.keys().collect::<Vec<_>>(),
        "keys differ from a local backup"
    );
    for (key, bytes) in &local {
        if key.ends_with(".refs") || key.ends_with(".tar") || key.starts_with("backup_ids/") {
            assert!(remote[key] == *bytes, "{key} differs from the local backup");
        }
    }
    // Restore from the bucket into a fresh storage root.
    let restored: Vec<Repo> = repos
        .iter()
        .map(|repo| repo.on_root(env.storage_root("restored")))
        .collect();
    let restored_refs: Vec<&Repo> = restored.iter().collect();
    let mut restore = env
        .gitbak(["restore", "--id", ID, "--path", &target.url])
        .storages_of(&restored_refs)
        .jobs(&restored_refs);
    for (name, value) in &target.vars {
        restore = restore.env(name, value);
    }
    restore.run().assert_success();
    for (original, copy) in repos.iter().zip(&restored) {
        if !original.path().exists() {
            assert!(
                !copy.path().exists(),
                "{} was created from a non-existent backup",
                copy.relative_path
            );
            continue;
        }
        RepoState::capture(&env, &original.path()).assert_same(
            &RepoState::capture(&env, &copy.path()),
            &original.relative_path,
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_through_azurite() {
    let azurite = Azurite::start();
    azurite.create_container("backups");
    let url = format!(
        "azblob://backups?domain=127.0.0.1:{}&protocol=http&localemu=true",
        azurite.port
    );
    let vars = vec![
        ("AZURE_STORAGE_ACCOUNT", ACCOUNT.to_owned()),
        ("AZURE_STORAGE_KEY", KEY.to_owned()),
    ];
    let Location::Azure(location) = Location::parse(&url).unwrap() else {
        unreachable!()
    };
    let credentials = AzureCredentials {
        account: Some(ACCOUNT.into()),
        key: Some(KEY.into()),
        ..Default::default()
    };
    let bucket = open_with(
        &location,
        Tuning::default(),
        &credentials,
        AzureTimeouts::default(),
    )
    .await
    .unwrap();
    round_trip(Target { url, vars }, bucket).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_through_fake_gcs_server() {
    let gcs = FakeGcs::start();
    gcs.create_bucket("backups");
    let url = gcs.url("backups");
    let bucket = gitbak::storage::open(&Location::parse(&url).unwrap(), Tuning::default())
        .await
        .unwrap();
    round_trip(
        Target {
            url,
            vars: Vec::new(),
        },
        bucket,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_through_moto() {
    let moto = Moto::start();
    moto.create_bucket("backups", false);
    let url = moto.url("backups");
    let vars = vec![
        ("AWS_ACCESS_KEY_ID", "gitbak-test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", S3_SECRET.to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ];
    // `Moto::start` put the same credentials into this process's environment.
    let bucket = gitbak::storage::open(&Location::parse(&url).unwrap(), Tuning::default())
        .await
        .unwrap();
    round_trip(Target { url, vars }, bucket).await;
}

/// A storage that stops answering stops the run cleanly (no manifest, no
/// marker), and the same backup id then completes.
#[tokio::test(flavor = "multi_thread")]
async fn paused_storage_fails_cleanly_and_the_rerun_succeeds() {
    let moto = Moto::start();
    moto.create_bucket("backups", false);
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let url = moto.url("backups");
    let create = |timeout: &str| {
        env.gitbak(["create", "--id", ID, "--retries", "1", "--path", &url])
            .storages_of(&[&repo])
            .jobs(&[&repo])
            .envs(MOTO_CREDENTIALS)
            .env("GITBAK_S3_TIMEOUT_SECS", timeout)
            .run()
    };
    let bucket = gitbak::storage::open(&Location::parse(&url).unwrap(), Tuning::default())
        .await
        .unwrap();

    moto.signal(rustix::process::Signal::STOP);
    let failed = create("2");
    moto.signal(rustix::process::Signal::CONT);
    // The start-up check's request is the first to meet the pause: one
    // error for the run, no job started.
    failed.assert_code(2);
    assert!(!failed.stderr.contains(S3_SECRET), "{}", failed.stderr);
    assert!(failed.stderr.contains("timeout"), "{}", failed.stderr);
    assert!(
        failed.paths_with_msg("started create").is_empty(),
        "{}",
        failed.stdout
    );
    let keys: Vec<String> = bucket
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|meta| meta.key.to_string())
        .collect();
    assert!(
        !keys
            .iter()
            .any(|key| key.starts_with("manifests/") || key.starts_with("backup_ids/")),
        "{keys:?}"
    );

    create("30").assert_success();
    let restored = repo.on_root(env.storage_root("restored"));
    env.gitbak(["restore", "--id", ID, "--path", &url])
        .storages_of(&[&restored])
        .jobs(&[&restored])
        .envs(MOTO_CREDENTIALS)
        .run()
        .assert_success();
    RepoState::capture(&env, &repo.path())
        .assert_same(&RepoState::capture(&env, &restored.path()), "restored");
}

/// git writing more than a pipe's worth of stderr while its pack streams
/// to object storage: gitbak drains stderr from the start, so nothing
/// waits on anything (it used to hang forever).
#[tokio::test(flavor = "multi_thread")]
async fn a_git_chatty_on_stderr_does_not_hang_an_upload() {
    let moto = Moto::start();
    moto.create_bucket("backups", false);
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let wrapper = env.root().join("chatty-git");
    std::fs::write(
        &wrapper,
        "#!/bin/bash\nfor a in \"$@\"; do\n  if [ \"$a\" = pack-objects ]; then\n    \
         head -c 200000 /dev/zero | tr '\\0' 'w' >&2; echo >&2; echo 'warning: chatty' >&2\n  fi\ndone\nexec git \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let url = moto.url("backups");
    let env = Arc::new(env);
    let (done, finished) = std::sync::mpsc::channel();
    let (thread_env, thread_repo, thread_url) = (env.clone(), repo.clone(), url.clone());
    std::thread::spawn(move || {
        let run = thread_env
            .gitbak(["create", "--id", ID, "--path", &thread_url, "--git"])
            .args([&wrapper])
            .storages_of(&[&thread_repo])
            .jobs(&[&thread_repo])
            .envs(MOTO_CREDENTIALS)
            .run();
        let _ = done.send(run);
    });
    let run = finished
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("gitbak hung on a git that writes 200 KB to stderr");
    run.assert_success();
    let restored = repo.on_root(env.storage_root("restored"));
    env.gitbak(["restore", "--id", ID, "--path", &url])
        .storages_of(&[&restored])
        .jobs(&[&restored])
        .envs(MOTO_CREDENTIALS)
        .run()
        .assert_success();
    RepoState::capture(&env, &repo.path())
        .assert_same(&RepoState::capture(&env, &restored.path()), "restored");
}

/// A repository of one incompressible 12 MiB file: its bundle needs three
/// parts of 5 MiB.
fn big_repository(env: &TestEnv, index: u64) -> Repo {
    let repo = Repo::new(
        "default",
        env.storage_root("default"),
        &format!("big/{index}.git"),
    );
    let path = repo.path();
    env.program("git", ["init", "--bare", "-q", path.to_str().unwrap()])
        .assert_success();
    let data = crate::storage::pattern(12 << 20, 70 + index);
    let blob = env.git_with_input(&path, ["hash-object", "-w", "--stdin"], &data);
    let entry = format!("100644 blob {}\tdata.bin\n", blob.trim());
    let tree = env.git_with_input(&path, ["mktree"], entry.as_bytes());
    let commit = env.git(&path, ["commit-tree", tree.trim(), "-m", "data"]);
    env.git(&path, ["update-ref", "refs/heads/main", commit.trim()]);
    env.git(&path, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    repo
}

/// `--parallel 4` bundle uploads share `--upload-memory` of two parts:
/// they wait for each other's parts rather than deadlock or exceed it,
/// and every bundle arrives whole (the restore checks each SHA-256). A
/// budget below two parts is refused before anything is written.
#[tokio::test(flavor = "multi_thread")]
async fn parallel_uploads_share_a_small_upload_memory() {
    let moto = Moto::start();
    moto.create_bucket("backups", false);
    let env = TestEnv::new();
    let repos: Vec<Repo> = (0..4).map(|index| big_repository(&env, index)).collect();
    let refs: Vec<&Repo> = repos.iter().collect();
    let url = moto.url("backups");
    let create = |memory: &str| {
        env.gitbak(["create", "--id", ID, "--path", &url, "--parallel", "4"])
            .args(["--part-size", "5MiB", "--upload-memory", memory])
            .storages_of(&refs)
            .jobs(&refs)
            .envs(MOTO_CREDENTIALS)
            .run()
    };
    let refused = create("9MiB");
    refused.assert_code(2);
    assert!(
        refused
            .stderr
            .contains("pass --upload-memory 10MiB or more"),
        "{}",
        refused.stderr
    );
    let bucket = gitbak::storage::open(&Location::parse(&url).unwrap(), Tuning::default())
        .await
        .unwrap();
    assert!(
        bucket.list("").await.unwrap().is_empty(),
        "a refused run wrote"
    );

    create("10MiB").assert_success();
    let restored: Vec<Repo> = repos
        .iter()
        .map(|repo| repo.on_root(env.storage_root("restored")))
        .collect();
    let restored_refs: Vec<&Repo> = restored.iter().collect();
    env.gitbak(["restore", "--id", ID, "--path", &url])
        .storages_of(&restored_refs)
        .jobs(&restored_refs)
        .envs(MOTO_CREDENTIALS)
        .run()
        .assert_success();
    for (original, copy) in repos.iter().zip(&restored) {
        RepoState::capture(&env, &original.path()).assert_same(
            &RepoState::capture(&env, &copy.path()),
            &original.relative_path,
        );
    }
}

/// Object storage completes an upload when its body ends: a bundle copied
/// from a damaged pack must never end, so nothing of it is in the bucket
/// and the error names the pack (issue #12).
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_pack_leaves_nothing_in_the_bucket() {
    let moto = Moto::start();
    moto.create_bucket("backups", false);
    let url = moto.url("backups");
    let env = TestEnv::new();
    let damaged = env.fixture("branches-and-tags");
    let sound = env.fixture("custom-hooks");
    let noise = crate::create::sources::packed_with_noise(&env, &damaged);
    let pack = crate::create::sources::damage_packed_object(&env, &damaged.path(), &noise);
    let run = env
        .gitbak(["create", "--id", ID, "--path", &url])
        .storages_of(&[&damaged, &sound])
        .jobs(&[&damaged, &sound])
        .envs(MOTO_CREDENTIALS)
        .run();
    run.assert_code(1);
    let error = run.job_error("create", &damaged.relative_path);
    assert!(error.contains(&pack.display().to_string()), "{error}");
    let bucket = gitbak::storage::open(&Location::parse(&url).unwrap(), Tuning::default())
        .await
        .unwrap();
    let keys: Vec<String> = objects(bucket).await.into_keys().collect();
    assert!(
        !keys.iter().any(|key| key.contains(&damaged.relative_path)),
        "{keys:?}"
    );
    assert!(keys.contains(&sound.manifest_key(ID)), "{keys:?}");
}
