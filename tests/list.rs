//! `gitbak list` over real backups: gitbak's full, incremental and
//! unchanged backups, a backup gitaly-backup wrote (no `[gitbak]` table,
//! its time from its id), a run whose time only its manifests record
//! (stamped through `GITBAK_NOW`), and one whose time is unknown; as a
//! table and as JSON, per run and for one repository.

use serde_json::Value;

use crate::regression::{
    golden_manifest, write_gitaly_files, write_gitaly_manifest, StepFiles, FULL_ID, REPOSITORY,
};
use crate::support::{Repo, TestEnv};

const FIRST: &str = "20260101000000";
const SECOND: &str = "20260102000000";

fn size(env: &TestEnv, key: &str) -> u64 {
    std::fs::metadata(env.backup_file(key)).unwrap().len()
}

fn incremental(env: &TestEnv, id: &str, repo: &Repo, vars: &[(&str, &str)]) {
    env.gitbak(["create", "--incremental", "--id", id])
        .backup_path()
        .storages_of(&[repo])
        .jobs(&[repo])
        .envs(vars)
        .run()
        .assert_success();
}

/// `a`: full, incremental, unchanged (`nightly`, stamped by GITBAK_NOW),
/// and a hand-written `mystery` manifest; `b`: gitaly-backup's backup.
fn location(env: &TestEnv) -> (Repo, Repo) {
    let a = env.fixture("branches-and-tags");
    incremental(env, FIRST, &a, &[]);
    env.add_commit(&a.path(), "refs/heads/main", "second.txt");
    incremental(env, SECOND, &a, &[]);
    incremental(
        env,
        "nightly",
        &a,
        &[("GITBAK_NOW", "2026-01-03T00:00:00Z")],
    );
    std::fs::write(
        env.backup_file(&a.manifest_key("mystery")),
        "object_format = 'sha1'\n",
    )
    .unwrap();
    let b = env.fixture_at("default", "custom-hooks", REPOSITORY, &[]);
    let step = |ext: &str| env.backup_file(&b.step_key(FULL_ID, &format!("001.{ext}")));
    let files = StepFiles {
        bundle: step("bundle"),
        refs: step("refs"),
        custom_hooks: step("custom_hooks.tar"),
    };
    write_gitaly_files(env, &b.path(), &files, None);
    write_gitaly_manifest(env, FULL_ID, &golden_manifest("gitaly-19.0-full.toml"));
    (a, b)
}

fn list(env: &TestEnv, extra: &[&str]) -> String {
    let run = env.gitbak(["list"]).args(extra).backup_path().run();
    run.assert_success();
    assert_eq!(run.stderr, "", "list wrote to stderr");
    run.stdout.clone()
}

#[test]
fn runs_are_listed_with_their_repositories_kinds_and_bytes() {
    let env = TestEnv::new();
    let (a, b) = location(&env);
    let report: Value = serde_json::from_str(&list(&env, &["--json"])).unwrap();
    let rows = report["backups"].as_array().unwrap();
    let summary: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "{} {} {} {} full={} incremental={} unchanged={}",
                row["id"].as_str().unwrap(),
                row["time"].as_str().unwrap_or("null"),
                row["time_source"].as_str().unwrap_or("null"),
                row["finished"],
                row["full"],
                row["incremental"],
                row["unchanged"],
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            format!("{FULL_ID} 2021-09-30T06:54:13Z id true full=1 incremental=0 unchanged=0"),
            format!("{FIRST} 2026-01-01T00:00:00Z id true full=1 incremental=0 unchanged=0"),
            format!("{SECOND} 2026-01-02T00:00:00Z id true full=0 incremental=1 unchanged=0"),
            "nightly 2026-01-03T00:00:00Z manifest true full=0 incremental=0 unchanged=1".into(),
            // Written by hand: no marker, no time in its id or manifest.
            "mystery null null false full=1 incremental=0 unchanged=0".into(),
        ]
    );
    // Bytes: each backup's manifest and the files no earlier backup names.
    let gitaly_bytes = ["bundle", "refs", "custom_hooks.tar"]
        .iter()
        .map(|ext| size(&env, &b.step_key(FULL_ID, &format!("001.{ext}"))))
        .sum::<u64>()
        + size(&env, &b.manifest_key(FULL_ID));
    let step_bytes = |id: &str, step: &str| {
        ["bundle", "refs"]
            .iter()
            .map(|ext| size(&env, &a.step_key(id, &format!("{step}.{ext}"))))
            .sum::<u64>()
            + size(&env, &a.manifest_key(id))
    };
    let bytes: Vec<u64> = rows
        .iter()
        .map(|row| row["bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(
        bytes,
        [
            gitaly_bytes,
            step_bytes(FIRST, "001"),
            step_bytes(SECOND, "002"),
            size(&env, &a.manifest_key("nightly")),
            size(&env, &a.manifest_key("mystery")),
        ]
    );
    assert_eq!(rows[0]["repositories"], 1);
    assert!(report["read_only"].as_array().unwrap().is_empty());
    assert!(report.get("repository").is_none());

    let table = list(&env, &[]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID  ") && lines[0].contains("INCREMENTAL"),
        "{table}"
    );
    assert!(
        lines[3].starts_with(SECOND) && lines[3].contains("2026-01-02T00:00:00Z"),
        "{table}"
    );
    let mystery: Vec<&str> = lines[5].split_whitespace().collect();
    assert_eq!(
        mystery[..5],
        ["mystery", "time", "unknown", "no", "1"],
        "{table}"
    );
    assert!(lines[6].starts_with("5 backups, "), "{table}");
}

#[test]
fn one_repository_shows_its_chain() {
    let env = TestEnv::new();
    let (a, _) = location(&env);
    let target = format!("default:{}", a.relative_path);
    let report: Value =
        serde_json::from_str(&list(&env, &["--repository", &target, "--json"])).unwrap();
    assert_eq!(report["backups"], Value::Array(Vec::new()));
    let history = &report["repository"];
    assert_eq!(history["relative_path"], a.relative_path.as_str());
    let rows: Vec<(String, String, u64)> = history["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["id"].as_str().unwrap().to_owned(),
                row["kind"].as_str().unwrap().to_owned(),
                row["chain_length"].as_u64().unwrap(),
            )
        })
        .collect();
    let row = |id: &str, kind: &str, chain| (id.to_owned(), kind.to_owned(), chain);
    assert_eq!(
        rows,
        [
            row(FIRST, "full", 1),
            row(SECOND, "incremental", 2),
            row("nightly", "unchanged", 2),
            row("mystery", "full", 0),
        ]
    );
    // Restoring the unchanged backup reads both steps' files.
    let restore_bytes = ["bundle", "refs"]
        .iter()
        .map(|ext| {
            size(&env, &a.step_key(FIRST, &format!("001.{ext}")))
                + size(&env, &a.step_key(SECOND, &format!("002.{ext}")))
        })
        .sum::<u64>();
    assert_eq!(history["backups"][2]["restore_bytes"], restore_bytes);
    let table = list(&env, &["--repository", &target]);
    assert!(table.starts_with(&format!("{target}\nID ")), "{table}");
    let nightly = table
        .lines()
        .find(|line| line.starts_with("nightly"))
        .unwrap();
    let fields: Vec<&str> = nightly.split_whitespace().collect();
    assert_eq!(
        fields[..5],
        ["nightly", "2026-01-03T00:00:00Z", "yes", "unchanged", "2"]
    );
}

#[test]
fn unreadable_manifests_and_unknown_repositories_are_reported() {
    let env = TestEnv::new();
    let (a, _) = location(&env);
    let broken = a.manifest_key("20260105000000");
    std::fs::write(env.backup_file(&broken), "steps = [[").unwrap();
    let table = list(&env, &[]);
    assert!(table.contains("Unreadable manifests"), "{table}");
    assert!(table.contains(&broken), "{table}");
    let report: Value = serde_json::from_str(&list(&env, &["--json"])).unwrap();
    assert_eq!(report["unreadable"][0]["manifest"], broken.as_str());
    let run = env
        .gitbak(["list", "--repository", "default:nope.git"])
        .backup_path()
        .run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("no manifest of default:nope.git"),
        "{}",
        run.stderr
    );
    let run = env
        .gitbak(["list", "--repository", "nope.git"])
        .backup_path()
        .run();
    run.assert_code(2);
    assert!(run.stderr.contains("STORAGE:PATH"), "{}", run.stderr);
}
