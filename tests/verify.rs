//! `gitbak verify` over real backups: a sound full + incremental chain
//! passes, plain and `--deep`; a missing bundle, a truncated one, a
//! changed byte and a broken chain are each named (plain verify for
//! gitbak's manifests, which record digests; `--deep` for one
//! gitaly-backup wrote, which records none), and so is a refs file the
//! restored repository does not match; the selection options, the
//! JSON schema, the scratch directories (`TMPDIR`) left empty, also after
//! an interrupt, and a location in S3 (moto).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use crate::regression::{
    golden_manifest, write_gitaly_files, write_gitaly_manifest, StepFiles, FULL_ID, REPOSITORY,
};
use crate::support::{files_under, Repo, Run, TestEnv};

const FIRST: &str = "20260101000000";
const SECOND: &str = "20260102000000";

/// gitbak's "broken" exit status.
const BROKEN: i32 = 3;

fn incremental(env: &TestEnv, id: &str, repo: &Repo) {
    env.gitbak(["create", "--incremental", "--id", id])
        .backup_path()
        .storages_of(&[repo])
        .jobs(&[repo])
        .run()
        .assert_success();
}

/// A full backup, then an increment after a new commit.
fn chain(env: &TestEnv) -> Repo {
    let repo = env.fixture("branches-and-tags");
    incremental(env, FIRST, &repo);
    env.add_commit(&repo.path(), "refs/heads/main", "second.txt");
    incremental(env, SECOND, &repo);
    repo
}

/// The scratch root `--deep` restores under (as TMPDIR).
fn scratch(env: &TestEnv) -> PathBuf {
    let dir = env.root().join("scratch");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn verify(env: &TestEnv, extra: &[&str]) -> Run {
    let run = env
        .gitbak(["verify"])
        .args(extra)
        .backup_path()
        .env("TMPDIR", scratch(env).to_str().unwrap())
        .run();
    assert!(
        files_under(&scratch(env)).is_empty(),
        "verify left scratch files: {:?}",
        files_under(&scratch(env))
    );
    run
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|error| panic!("{error}: {}", run.stdout))
}

/// `(kind, file name, step)` of every problem found.
fn problems(report: &Value) -> Vec<(String, String, Option<u64>)> {
    report["backups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|backup| backup["problems"].as_array().unwrap().clone())
        .map(|problem| {
            let file = problem["file"].as_str().unwrap_or("");
            (
                problem["kind"].as_str().unwrap().to_owned(),
                file.rsplit('/').next().unwrap().to_owned(),
                problem["step"].as_u64(),
            )
        })
        .collect()
}

fn problem(kind: &str, file: &str, step: u64) -> (String, String, Option<u64>) {
    (kind.to_owned(), file.to_owned(), Some(step))
}

fn broken(env: &TestEnv, extra: &[&str]) -> Value {
    let run = verify(env, &[extra, &["--json"]].concat());
    run.assert_code(BROKEN);
    let report = json(&run);
    assert_eq!(report["sound"], false);
    report
}

#[test]
fn a_sound_chain_passes_plain_and_deep() {
    let env = TestEnv::new();
    chain(&env);
    let run = verify(&env, &[]);
    run.assert_success();
    assert!(run.stdout.contains("All sound."), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("Checked 1 repositories (1 backups): 4 files"),
        "{}",
        run.stdout
    );
    let run = verify(&env, &["--deep", "--json"]);
    run.assert_success();
    let report = json(&run);
    assert_eq!(report["sound"], true);
    assert_eq!(report["counts"]["deep_restores"], 1);
    let backup = &report["backups"][0];
    assert_eq!(backup["backup_id"], SECOND);
    assert_eq!(backup["kind"], "incremental");
    assert_eq!(backup["steps"], 2);
    assert_eq!(backup["restored"], true);
    // Every byte of both steps was hashed.
    assert_eq!(report["counts"]["bytes"], report["counts"]["bytes_hashed"]);
}

#[test]
fn damaged_files_of_gitbak_backups_are_named() {
    let env = TestEnv::new();
    let repo = chain(&env);
    let second_bundle = env.backup_file(&repo.step_key(SECOND, "002.bundle"));
    let first_refs = env.backup_file(&repo.step_key(FIRST, "001.refs"));
    let bytes = std::fs::read(&second_bundle).unwrap();

    // A truncated bundle, and a changed byte in the base's refs file.
    std::fs::write(&second_bundle, &bytes[..bytes.len() / 2]).unwrap();
    let mut refs = std::fs::read(&first_refs).unwrap();
    refs[0] = if refs[0] == b'0' { b'1' } else { b'0' };
    std::fs::write(&first_refs, &refs).unwrap();
    let report = broken(&env, &[]);
    assert_eq!(
        problems(&report),
        [
            problem("checksum_mismatch", "001.refs", 1),
            problem("truncated", "002.bundle", 2),
        ]
    );
    assert_eq!(report["counts"]["broken_files"], 2);
    assert_eq!(report["counts"]["broken_repositories"], 1);

    // A missing bundle; the table names it.
    std::fs::remove_file(&second_bundle).unwrap();
    let run = verify(&env, &[]);
    run.assert_code(BROKEN);
    let row = run
        .stdout
        .lines()
        .find(|line| line.contains("002.bundle"))
        .unwrap_or_else(|| panic!("no row names the bundle:\n{}", run.stdout));
    assert!(row.contains(SECOND) && row.contains("missing"), "{row}");
    assert!(row.contains(&format!("{}:", repo.storage_name)), "{row}");
}

#[test]
fn an_increment_whose_base_step_is_gone_is_a_broken_chain() {
    let env = TestEnv::new();
    let repo = chain(&env);
    // The base backup removed by hand, manifest and files.
    std::fs::remove_file(env.backup_file(&repo.manifest_key(FIRST))).unwrap();
    let base = env.backup_file(&repo.step_key(FIRST, "001.bundle"));
    std::fs::remove_dir_all(base.parent().unwrap()).unwrap();
    let report = broken(&env, &[]);
    assert_eq!(
        problems(&report),
        [
            problem("broken_chain", "001.bundle", 1),
            problem("broken_chain", "001.refs", 1),
        ]
    );
    // --deep does not restore what the plain checks found broken.
    let report = broken(&env, &["--deep"]);
    assert_eq!(report["backups"][0]["restored"], false);
}

/// gitaly-backup's full backup of `REPOSITORY` (no digests recorded).
fn gitaly_backup(env: &TestEnv) -> (Repo, PathBuf) {
    let repo = env.fixture_at("default", "branches-and-tags", REPOSITORY, &[]);
    let step = |ext: &str| env.backup_file(&repo.step_key(FULL_ID, &format!("001.{ext}")));
    let files = StepFiles {
        bundle: step("bundle"),
        refs: step("refs"),
        custom_hooks: step("custom_hooks.tar"),
    };
    write_gitaly_files(env, &repo.path(), &files, None);
    write_gitaly_manifest(env, FULL_ID, &golden_manifest("gitaly-19.0-full.toml"));
    let bundle = step("bundle");
    (repo, bundle)
}

#[test]
fn a_changed_byte_in_a_gitaly_backup_takes_deep() {
    let env = TestEnv::new();
    let (_, bundle) = gitaly_backup(&env);
    verify(&env, &["--deep"]).assert_success();
    // A byte in the middle of the pack: the size stays, and no digest is
    // recorded, so only a restore can tell.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let middle = bytes.len() - 30;
    bytes[middle] ^= 0xff;
    std::fs::write(&bundle, &bytes).unwrap();
    verify(&env, &[]).assert_success();
    let report = broken(&env, &["--deep"]);
    assert_eq!(report["backups"][0]["restored"], true);
    let found = &report["backups"][0]["problems"][0];
    assert_eq!(found["kind"], "deep_restore");
    let detail = found["detail"].as_str().unwrap();
    assert!(detail.contains("001.bundle"), "{detail}");
    assert!(detail.contains("index-pack"), "{detail}");
    assert!(!detail.contains('\n'), "{detail}");
    // A missing one is found without --deep.
    std::fs::remove_file(&bundle).unwrap();
    let report = broken(&env, &[]);
    assert_eq!(problems(&report), [problem("missing", "001.bundle", 1)]);
}

#[test]
fn deep_names_a_refs_file_the_restore_cannot_honour() {
    let env = TestEnv::new();
    let (repo, _) = gitaly_backup(&env);
    // The refs file points main at a commit the bundle lacks: a restore
    // takes the bundle's main instead (with a warning), so the restored
    // repository is not the one recorded.
    let refs = env.backup_file(&repo.step_key(FULL_ID, "001.refs"));
    let text = std::fs::read_to_string(&refs).unwrap();
    let main = text
        .lines()
        .find(|line| line.ends_with(" refs/heads/main"))
        .unwrap();
    let absent = "1".repeat(40);
    let changed = text.replace(main, &format!("{absent} refs/heads/main"));
    std::fs::write(&refs, changed).unwrap();
    verify(&env, &[]).assert_success();
    let report = broken(&env, &["--deep"]);
    assert_eq!(problems(&report), [problem("refs_mismatch", "001.refs", 1)]);
    let detail = report["backups"][0]["problems"][0]["detail"]
        .as_str()
        .unwrap();
    assert!(
        detail.starts_with("refs/heads/main restored at ") && detail.ends_with(&absent),
        "{detail}"
    );
}

#[test]
fn an_interrupted_deep_verify_leaves_no_scratch_directory() {
    let env = TestEnv::new();
    chain(&env);
    let run = env
        .gitbak(["verify", "--deep"])
        .backup_path()
        .env("TMPDIR", scratch(&env).to_str().unwrap())
        .env("GITBAK_FAILPOINTS", "restore-after-init=term+sleep300")
        .run();
    run.assert_code(130);
    assert!(
        files_under(&scratch(&env)).is_empty(),
        "{:?}",
        files_under(&scratch(&env))
    );
    assert_eq!(
        std::fs::read_dir(scratch(&env).join("gitbak-verify"))
            .unwrap()
            .count(),
        0,
        "a scratch directory is left"
    );
}

#[test]
fn a_killed_deep_verify_is_cleaned_up_by_the_next() {
    let env = TestEnv::new();
    chain(&env);
    let leftovers = || {
        std::fs::read_dir(scratch(&env).join("gitbak-verify"))
            .map(|entries| entries.count())
            .unwrap_or(0)
    };
    let run = env
        .gitbak(["verify", "--deep"])
        .backup_path()
        .env("TMPDIR", scratch(&env).to_str().unwrap())
        .env("GITBAK_FAILPOINTS", "restore-after-init=kill")
        .run();
    assert_ne!(run.code, 0, "{}", run.description);
    assert_eq!(leftovers(), 1, "SIGKILL skips the removal");
    verify(&env, &["--deep"]).assert_success();
    assert_eq!(leftovers(), 0, "the next --deep run removed it");
}

/// Three repositories, `a` with two backups, `b` and `c` with one.
fn three(env: &TestEnv) -> Vec<Repo> {
    let repos: Vec<Repo> = ["a", "b", "c"]
        .iter()
        .map(|name| env.fixture_at("default", "linear", &format!("g/{name}.git"), &[]))
        .collect();
    let all: Vec<&Repo> = repos.iter().collect();
    // Each backup's refs read at its id's time (its `created_at`).
    let create = |id: &str, now: &str, repos: &[&Repo]| {
        env.gitbak(["create", "--incremental", "--id", id])
            .backup_path()
            .storages_of(repos)
            .jobs(repos)
            .env("GITBAK_NOW", now)
            .run()
            .assert_success();
    };
    create(FIRST, "2026-01-01T00:00:00Z", &all);
    env.add_commit(&repos[0].path(), "refs/heads/main", "later.txt");
    create(SECOND, "2026-01-02T00:00:00Z", &all[..1]);
    repos
}

fn checked(report: &Value) -> Vec<String> {
    report["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|backup| {
            format!(
                "{} {}",
                backup["relative_path"].as_str().unwrap(),
                backup["backup_id"].as_str().unwrap()
            )
        })
        .collect()
}

fn sound(env: &TestEnv, extra: &[&str]) -> Value {
    let run = verify(env, &[extra, &["--json"]].concat());
    run.assert_success();
    json(&run)
}

#[test]
fn selection_by_id_time_repository_and_sample() {
    let env = TestEnv::new();
    three(&env);
    let latest = format!("g/a.git {SECOND}");
    let (b, c) = (format!("g/b.git {FIRST}"), format!("g/c.git {FIRST}"));
    let all = [latest.clone(), b.clone(), c.clone()];
    assert_eq!(checked(&sound(&env, &[])), all);
    assert_eq!(
        checked(&sound(&env, &["--id", FIRST])),
        [format!("g/a.git {FIRST}"), b.clone(), c.clone()]
    );
    assert_eq!(checked(&sound(&env, &["--id", SECOND])), all[..1]);
    assert_eq!(
        checked(&sound(&env, &["--at", "2026-01-01T12:00:00Z"])),
        [format!("g/a.git {FIRST}"), b.clone(), c.clone()]
    );
    assert_eq!(
        checked(&sound(&env, &["--at", "2099-01-01T00:00:00Z"])),
        all
    );
    assert_eq!(
        checked(&sound(&env, &["--repository", "default:g/b.git"])),
        all[1..2]
    );
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        let picked = checked(&sound(&env, &["--sample", "2"]));
        assert_eq!(picked.len(), 2, "{picked:?}");
        assert!(picked.iter().all(|one| all.contains(one)));
        seen.extend(picked);
    }
    assert!(seen.len() >= 2, "{seen:?}");
    assert_eq!(checked(&sound(&env, &["--sample", "9"])).len(), 3);

    // Nothing selected is an error, not a pass.
    let run = verify(&env, &["--id", "20990101000000"]);
    run.assert_code(1);
    assert!(run.stderr.contains("no backup to verify"), "{}", run.stderr);
    let run = verify(&env, &["--repository", "default:g/zzz.git"]);
    run.assert_code(1);
    assert!(run.stderr.contains("g/zzz.git"), "{}", run.stderr);
    verify(&env, &["--id", FIRST, "--at", "2099-01-01T00:00:00Z"]).assert_code(2);
}

#[test]
fn the_json_schema_is_stable() {
    let env = TestEnv::new();
    let repo = chain(&env);
    std::fs::remove_file(env.backup_file(&repo.step_key(SECOND, "002.refs"))).unwrap();
    let report = broken(&env, &[]);
    let keys =
        |value: &Value| -> Vec<String> { value.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&report), ["backups", "counts", "sound"]);
    assert_eq!(
        keys(&report["counts"]),
        [
            "backups",
            "broken_backups",
            "broken_files",
            "broken_repositories",
            "bytes",
            "bytes_hashed",
            "deep_restores",
            "files",
            "repositories",
        ]
    );
    let backup = &report["backups"][0];
    assert_eq!(
        keys(backup),
        [
            "backup_id",
            "bytes",
            "bytes_hashed",
            "files",
            "kind",
            "manifest",
            "problems",
            "relative_path",
            "restored",
            "steps",
            "storage",
        ]
    );
    assert_eq!(backup["manifest"], repo.manifest_key(SECOND));
    assert_eq!(backup["storage"], repo.storage_name.as_str());
    let problem = &backup["problems"][0];
    assert_eq!(keys(problem), ["detail", "file", "kind", "step"]);
    assert_eq!(problem["kind"], "missing");
    assert_eq!(problem["file"], repo.step_key(SECOND, "002.refs"));
    assert_eq!(problem["step"], 2);
}

mod s3 {
    use gitbak::storage::{Key, Location, Tuning};

    use super::*;
    use crate::storage::s3::{Moto, CREDENTIALS};

    #[tokio::test(flavor = "multi_thread")]
    async fn a_bucket_is_verified_like_a_directory() {
        let moto = Moto::start();
        moto.create_bucket("verified", false);
        let url = moto.url("verified");
        let env = TestEnv::new();
        let repo = env.fixture("branches-and-tags");
        let gitbak = |args: &[&str]| {
            env.gitbak(args)
                .args(["--path", &url])
                .env("TMPDIR", scratch(&env).to_str().unwrap())
                .envs(CREDENTIALS)
        };
        let to_bucket = |id: &str| {
            gitbak(&["create", "--incremental", "--id", id])
                .storages_of(&[&repo])
                .jobs(&[&repo])
                .run()
                .assert_success();
        };
        to_bucket(FIRST);
        env.add_commit(&repo.path(), "refs/heads/main", "second.txt");
        to_bucket(SECOND);
        let run = gitbak(&["verify", "--deep", "--json"]).run();
        run.assert_success();
        assert_eq!(json(&run)["counts"]["deep_restores"], 1);
        assert!(files_under(&scratch(&env)).is_empty());

        let bucket = gitbak::storage::open(&Location::parse(&url).unwrap(), Tuning::default())
            .await
            .unwrap();
        let base = Key::new(repo.step_key(FIRST, "001.bundle")).unwrap();
        bucket.delete(&base).await.unwrap();
        let run = gitbak(&["verify", "--json"]).run();
        run.assert_code(BROKEN);
        assert_eq!(
            problems(&json(&run)),
            [problem("broken_chain", "001.bundle", 1)]
        );
    }
}
