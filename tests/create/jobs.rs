//! Which repositories `gitbak create` works on and how bad jobs are
//! reported (spec §2.3, §6.2, §6.3): stdin errors, unknown storages, paths
//! outside a storage, usage errors, `--discover`, and parallel runs.

use std::collections::BTreeSet;

use super::ID;
use crate::support::{files_under, snapshot, Repo, RepoState, TestEnv};

#[test]
fn malformed_json_stops_the_run_at_its_line() {
    let env = TestEnv::new();
    let (first, second, after) = (
        env.fixture("custom-hooks"),
        env.fixture("empty"),
        env.fixture("unborn-head"),
    );
    let stdin = format!(
        "{}\n{}\n{{\"storage_name\": oops\n{}\n",
        first.job_line(),
        second.job_line(),
        after.job_line()
    );
    let run = env
        .gitbak(["create", "--id", ID])
        .backup_path()
        .storages_of(&[&first])
        .stdin(stdin)
        .run();
    run.assert_code(1);
    // "line 3", not "line 30".
    let names_line_3 = |msg: &str| {
        msg.match_indices("line 3")
            .any(|(at, _)| !msg[at + 6..].starts_with(|c: char| c.is_ascii_digit()))
    };
    let errors: Vec<String> = run
        .log()
        .into_iter()
        .filter(|line| line["level"] == "error")
        .map(|line| line["msg"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        errors.iter().any(|msg| names_line_3(msg)),
        "no error names line 3: {errors:?}"
    );
    let done = BTreeSet::from([first.relative_path.clone(), second.relative_path.clone()]);
    assert_eq!(run.paths_with_msg("completed create"), done);
    assert_eq!(
        run.paths_with_msg("started create"),
        done,
        "a job after the bad line ran"
    );
    assert!(env.backup_file(&first.manifest_key(ID)).is_file());
    assert!(
        !env.backup_file("backup_ids").exists(),
        "marker written for a run with bad input"
    );
}

#[test]
fn unknown_storage_fails_only_that_job() {
    let env = TestEnv::new();
    let (good, also_good) = (env.fixture("custom-hooks"), env.fixture("empty"));
    let unknown = Repo::new("nowhere", env.root().join("nowhere"), "fixtures/x.git");
    let run = env
        .gitbak(["create", "--id", ID])
        .backup_path()
        .storages_of(&[&good])
        .jobs(&[&good, &unknown, &also_good])
        .run();
    run.assert_code(1);
    let error = run.job_error("create", "fixtures/x.git");
    assert!(
        error.contains("\"nowhere\"") && error.contains("--storage"),
        "{error}"
    );
    run.job_line("completed create", &good.relative_path);
    run.job_line("completed create", &also_good.relative_path);
    assert_eq!(
        run.failure_summary(),
        format!("create: pipeline: 1 failures encountered:\n - fixtures/x.git (group/x): {error}")
    );
    // The repositories that succeeded are findable (spec §3.5).
    assert!(env.backup_file(&format!("backup_ids/{ID}")).is_file());
}

#[test]
fn local_storages_only_skips_unknown_storage() {
    let env = TestEnv::new();
    let good = env.fixture("custom-hooks");
    let unknown = Repo::new("nowhere", env.root().join("nowhere"), "fixtures/x.git");
    let run = env
        .gitbak(["create", "--local-storages-only", "--id", ID])
        .backup_path()
        .storages_of(&[&good])
        .jobs(&[&unknown, &good])
        .run();
    run.assert_success();
    let skipped = run.job_line("skipped create", "fixtures/x.git");
    assert_eq!(skipped["level"], "warning");
    assert_eq!(skipped["storage_name"], "nowhere");
    run.job_line("completed create", &good.relative_path);
    assert!(!env.backup_file("manifests/nowhere").exists());
}

#[test]
fn paths_outside_the_storage_are_refused() {
    let env = TestEnv::new();
    let good = env.fixture("custom-hooks");
    let outside = env.fixture_at("outside", "custom-hooks", "x.git", &[]);
    std::os::unix::fs::symlink(&outside.storage_root, good.storage_root.join("evil")).unwrap();
    let before = snapshot(&outside.storage_root);
    let escapes: Vec<Repo> = [
        "../x.git".to_owned(),
        outside.path().to_str().unwrap().to_owned(),
        "evil/x.git".to_owned(),
    ]
    .iter()
    .map(|path| Repo {
        relative_path: path.clone(),
        ..good.clone()
    })
    .collect();

    let mut jobs: Vec<&Repo> = escapes.iter().collect();
    jobs.push(&good);
    let run = env.create(ID, &jobs);
    run.assert_code(1);
    for repo in &escapes {
        let error = run.job_error("create", &repo.relative_path);
        assert!(
            error.contains(&repo.relative_path),
            "error does not name the path: {error}"
        );
    }
    run.job_line("completed create", &good.relative_path);
    assert!(run
        .failure_summary()
        .starts_with("create: pipeline: 3 failures encountered:\n"));
    let written: Vec<String> = files_under(&env.backups());
    assert!(
        written
            .iter()
            .all(|file| file.contains(&good.relative_path) || file.starts_with("backup_ids/")),
        "files written for refused paths: {written:?}"
    );
    assert_eq!(snapshot(&outside.storage_root), before);
}

#[test]
fn negative_parallelism_is_a_usage_error() {
    let env = TestEnv::new();
    let root = env.storage_root("default");
    let storage = format!("default={}", root.display());
    for args in [
        ["create", "--parallel", "-1"],
        ["create", "--parallel-storage", "-1"],
        ["restore", "--parallel", "-2"],
        ["restore", "--parallel-storage", "-2"],
    ] {
        let run = env
            .gitbak(args)
            .backup_path()
            .args(["--storage", &storage])
            .run();
        run.assert_code(2);
        assert!(run.stderr.contains(args[1]), "{args:?}: {}", run.stderr);
    }
    assert!(!env.backups().exists(), "a usage error touched storage");
}

#[test]
fn discover_backs_up_every_repository_but_object_pools() {
    let env = TestEnv::new();
    let repos = [
        env.fixture_at("a", "custom-hooks", "@hashed/aa/bb/one.git", &[]),
        env.fixture_at("a", "fork-alternates", "@hashed/cc/dd/fork.git", &[]),
        env.fixture_at("a", "empty", "group/empty.git", &[]),
        env.fixture_at("b", "sha256", "@hashed/ee/ff/two.git", &[]),
        env.fixture_at("b", "reftable", "group/sub/reftable.git", &[]),
        env.fixture_at("b", "unborn-head", "x.git", &[]),
    ];
    assert!(env
        .storage_root("a")
        .join("@pools/11/22/1122aabb.git")
        .is_dir());
    let refs: Vec<&Repo> = repos.iter().collect();
    // stdin is not read with --discover: garbage there changes nothing.
    let run = env
        .gitbak(["create", "--discover", "--id", ID])
        .backup_path()
        .storages_of(&refs)
        .stdin("not json")
        .run();
    run.assert_success();
    let expected: BTreeSet<String> = repos
        .iter()
        .map(|repo| format!("{}/{}", repo.storage_name, repo.relative_path))
        .collect();
    let completed: BTreeSet<String> = run
        .lines_with_msg("completed create")
        .iter()
        .map(|line| {
            format!(
                "{}/{}",
                line["storage_name"].as_str().unwrap(),
                line["relative_path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(completed, expected);
    let manifests: BTreeSet<String> = files_under(&env.backup_file("manifests"))
        .into_iter()
        .filter_map(|file| file.strip_suffix(&format!("/{ID}.toml")).map(str::to_owned))
        .collect();
    assert_eq!(manifests, expected);
    assert!(
        !files_under(&env.backups())
            .iter()
            .any(|file| file.contains("@pools")),
        "the pool was backed up"
    );
}

#[test]
fn parallel_jobs_over_two_storages_all_succeed() {
    let env = TestEnv::new();
    let templates: Vec<Repo> = ["custom-hooks", "unborn-head", "sha256", "reftable", "empty"]
        .iter()
        .map(|name| env.fixture_at("templates", name, &format!("{name}.git"), &[]))
        .collect();
    let mut repos = Vec::new();
    for index in 0..20 {
        let storage = if index % 2 == 0 { "a" } else { "b" };
        let repo = Repo::new(
            storage,
            env.storage_root(storage),
            &format!("group/p{index}.git"),
        );
        std::fs::create_dir_all(repo.path().parent().unwrap()).unwrap();
        let template = templates[index % templates.len()].path();
        env.program(
            "cp",
            [
                "-a",
                template.to_str().unwrap(),
                repo.path().to_str().unwrap(),
            ],
        )
        .assert_success();
        repos.push(repo);
    }
    let refs: Vec<&Repo> = repos.iter().collect();
    let limits = ["--parallel", "4", "--parallel-storage", "2"];
    let run = env
        .gitbak(["create", "--id", ID])
        .args(limits)
        .backup_path()
        .storages_of(&refs)
        .jobs(&refs)
        .run();
    run.assert_success();
    assert_eq!(
        run.lines_with_msg("completed create").len(),
        20,
        "{}",
        run.stdout
    );

    let restored: Vec<Repo> = repos
        .iter()
        .map(|repo| repo.on_root(env.storage_root(&format!("{}-restored", repo.storage_name))))
        .collect();
    let refs: Vec<&Repo> = restored.iter().collect();
    let run = env
        .gitbak(["restore"])
        .args(limits)
        .backup_path()
        .storages_of(&refs)
        .jobs(&refs)
        .run();
    run.assert_success();
    assert_eq!(
        run.lines_with_msg("completed restore").len(),
        20,
        "{}",
        run.stdout
    );
    for (original, restored) in repos.iter().zip(&restored) {
        RepoState::capture(&env, &original.path()).assert_same(
            &RepoState::capture(&env, &restored.path()),
            &original.relative_path,
        );
    }
}
