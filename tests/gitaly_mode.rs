//! Gitaly mode: gitbak driven exactly as GitLab's backup.rake drives
//! gitaly-backup (spec §8.1, §8.5). Every argument vector Rails has sent,
//! fed as Rails feeds it: job lines written one by one while gitbak runs,
//! `GITALY_SERVERS`, `SSL_CERT_*` and the `GITBAK_*` settings in the
//! environment, stdout read as JSON lines, stderr empty, the exit status,
//! and then the files on storage and the restored repositories. Each
//! vector runs both ways gitaly mode starts: through a program named
//! `gitaly-backup`, and as `gitbak` with one-dash flags. `log_lines` pins
//! the log lines byte for byte.

mod log_lines;

use std::path::{Path, PathBuf};

use base64::Engine;

use crate::support::{Repo, RepoState, Run, TestEnv};

const ID: &str = "1700000000_2026_01_01_17.0.0";
const HASH: &str = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b";
const SNIPPET_HASH: &str = "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35";

/// The two ways into gitaly mode.
#[derive(Debug, Clone, Copy)]
enum Invoked {
    /// `backup_gitaly_backup_path` (or a symlink) naming gitbak `gitaly-backup`.
    AsGitalyBackup,
    /// `gitbak create -path …`: a one-dash gitaly-backup flag.
    WithOneDashFlags,
}

const BOTH: [Invoked; 2] = [Invoked::AsGitalyBackup, Invoked::WithOneDashFlags];

/// A repository as Rails enqueues it.
struct RailsRepo {
    repo: Repo,
    gl_project_path: &'static str,
    always_create: bool,
}

impl RailsRepo {
    /// The line `Backup::GitalyBackup#enqueue` writes (spec §2.2).
    fn job_line(&self) -> String {
        serde_json::json!({
            "storage_name": self.repo.storage_name,
            "relative_path": self.repo.relative_path,
            "gl_project_path": self.gl_project_path,
            "always_create": self.always_create,
        })
        .to_string()
    }
}

/// A GitLab instance's repositories on storage `default`: a hashed
/// project with its wiki and design repository, a snippet, and a project
/// on legacy (non-hashed) storage, in the order Rails enqueues them.
fn instance(env: &TestEnv) -> Vec<RailsRepo> {
    let repo = |fixture: &str, path: String, gl_project_path, always_create| RailsRepo {
        repo: env.fixture_at("default", fixture, &path, &[]),
        gl_project_path,
        always_create,
    };
    vec![
        repo(
            "branches-and-tags",
            format!("@hashed/6b/86/{HASH}.git"),
            "group/project",
            true,
        ),
        repo(
            "custom-hooks",
            format!("@hashed/6b/86/{HASH}.wiki.git"),
            "group/project.wiki",
            false,
        ),
        repo(
            "sha256",
            format!("@hashed/6b/86/{HASH}.design.git"),
            "group/project",
            false,
        ),
        repo(
            "reftable",
            format!("@snippets/d4/73/{SNIPPET_HASH}.git"),
            "snippets/2",
            false,
        ),
        repo(
            "branches-and-tags",
            "group/legacy-project.git".into(),
            "group/legacy-project",
            true,
        ),
    ]
}

/// `GITALY_SERVERS` as Rails builds it: every storage of the instance.
fn gitaly_servers(storages: &[(&str, &str)]) -> String {
    let servers: serde_json::Map<String, serde_json::Value> = storages
        .iter()
        .map(|(name, address)| {
            (
                (*name).to_owned(),
                serde_json::json!({"address": address, "token": "secret-token"}),
            )
        })
        .collect();
    base64::engine::general_purpose::STANDARD.encode(serde_json::Value::Object(servers).to_string())
}

const LOCAL_GITALY: &str = "unix:/var/opt/gitlab/gitaly/gitaly.socket";

/// Runs gitaly mode as `Open3.popen2(env, bin, *args)` does: the job lines
/// written one at a time while gitbak already works, then stdin closed.
/// `storage_root` becomes `GITBAK_STORAGE=default=DIR`; `vars` adds to
/// (and overrides) the environment Rails passes.
fn run_as_rails(
    env: &TestEnv,
    invoked: Invoked,
    args: &[String],
    storage_root: Option<&Path>,
    repos: &[&RailsRepo],
    vars: &[(&str, &str)],
) -> Run {
    let mut gitbak = match invoked {
        Invoked::AsGitalyBackup => env.gitaly_backup(args),
        Invoked::WithOneDashFlags => env.gitbak(args),
    };
    // What an administrator sets through Omnibus' gitlab_rails['env'].
    if let Some(root) = storage_root {
        gitbak = gitbak.env("GITBAK_STORAGE", &format!("default={}", root.display()));
    }
    let lines: Vec<String> = repos.iter().map(|repo| repo.job_line()).collect();
    let (run, _) = gitbak
        .env(
            "GITALY_SERVERS",
            &gitaly_servers(&[("default", LOCAL_GITALY)]),
        )
        .env("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
        .env("SSL_CERT_DIR", "/etc/ssl/certs")
        .envs(vars)
        .run_fed(move |stdin| {
            for line in lines {
                // A write error means gitbak stopped reading; its exit status says why.
                if writeln!(stdin, "{line}")
                    .and_then(|()| stdin.flush())
                    .is_err()
                {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
    run
}

/// Splits a command line of the spec into arguments, naming the backup
/// directory `<backups>`.
fn argv(env: &TestEnv, line: &str) -> Vec<String> {
    let backups = env.backups().join("repositories");
    line.split(' ')
        .map(|arg| arg.replace("<backups>", backups.to_str().unwrap()))
        .collect()
}

/// What every successful gitaly-mode run shows: exit 0, nothing on
/// stderr, only JSON lines on stdout, a started and a completed line per
/// repository and no failure.
fn assert_all_done(run: &Run, command: &str, repos: &[&RailsRepo]) {
    run.assert_success();
    assert_eq!(run.stderr, "", "{}", run.description);
    let log = run.log();
    for line in &log {
        assert!(line.get("reason").is_none(), "{line}");
        assert_ne!(line["level"], "error", "{line}");
    }
    let paths = |msg: &str| run.paths_with_msg(msg);
    let want: std::collections::BTreeSet<String> = repos
        .iter()
        .map(|repo| repo.repo.relative_path.clone())
        .collect();
    assert_eq!(paths(&format!("started {command}")), want, "{}", run.stdout);
    assert_eq!(
        paths(&format!("completed {command}")),
        want,
        "{}",
        run.stdout
    );
}

/// The files Rails' contract test looks for (spec §8.5), and the bundle
/// and refs file beside them.
fn assert_backed_up(location: &Path, repos: &[&RailsRepo], id: &str) {
    for rails in repos {
        let repo = &rails.repo;
        for key in [
            repo.manifest_key(id),
            repo.manifest_key("+latest"),
            repo.step_key(id, "001.bundle"),
            repo.step_key(id, "001.refs"),
        ] {
            assert!(location.join(&key).is_file(), "{key} missing");
        }
    }
}

/// Each repository, restored on `restored_root`, is the one backed up.
fn assert_restored(
    env: &TestEnv,
    repos: &[&RailsRepo],
    states: &[RepoState],
    restored_root: &Path,
) {
    for (rails, want) in repos.iter().zip(states) {
        let restored = rails.repo.on_root(restored_root.to_path_buf());
        let state = RepoState::capture(env, &restored.path());
        want.assert_same(&state, &rails.repo.relative_path);
        env.git(&restored.path(), ["fsck", "--strict", "--no-progress"]);
    }
}

fn capture(env: &TestEnv, repos: &[&RailsRepo]) -> Vec<RepoState> {
    repos
        .iter()
        .map(|rails| RepoState::capture(env, &rails.repo.path()))
        .collect()
}

fn fresh_root(env: &TestEnv, name: &str) -> PathBuf {
    env.storage_root(name)
}

#[test]
fn current_rails_create_and_restore() {
    // ≈16.10–18.10, with and without the concurrency flags, and the
    // backup-cli gem's (no concurrency flags), both ways into gitaly mode.
    let vectors = [
        (
            "create -path <backups> -layout manifest -id {ID}",
            "restore -path <backups> -layout manifest -remove-all-repositories default -id {ID}",
        ),
        (
            "create -path <backups> -layout manifest -parallel 2 -parallel-storage 1 -id {ID}",
            "restore -path <backups> -layout manifest -parallel 2 -parallel-storage 1 -remove-all-repositories default -id {ID}",
        ),
    ];
    for invoked in BOTH {
        for (index, (create, restore)) in vectors.iter().enumerate() {
            let env = TestEnv::new();
            let instance = instance(&env);
            let repos: Vec<&RailsRepo> = instance.iter().collect();
            let states = capture(&env, &repos);
            let root = env.storage_root("default");
            let create = argv(&env, &create.replace("{ID}", ID));
            let run = run_as_rails(&env, invoked, &create, Some(&root), &repos, &[]);
            assert_all_done(&run, "create", &repos);
            assert_backed_up(&env.backups().join("repositories"), &repos, ID);
            assert!(env
                .backup_file(&format!("repositories/backup_ids/{ID}"))
                .is_file());
            // A fresh node: the restore creates every repository.
            let restored_root = fresh_root(&env, &format!("restored-{index}"));
            let restore = argv(&env, &restore.replace("{ID}", ID));
            let run = run_as_rails(&env, invoked, &restore, Some(&restored_root), &repos, &[]);
            assert_all_done(&run, "restore", &repos);
            assert_restored(&env, &repos, &states, &restored_root);
        }
    }
}

#[test]
fn restore_without_an_id_takes_the_latest_backup() {
    // Rails before 16.6 sent no -id on restore.
    for invoked in BOTH {
        let env = TestEnv::new();
        let instance = instance(&env);
        let repos: Vec<&RailsRepo> = instance.iter().take(2).collect();
        let root = env.storage_root("default");
        let create = argv(&env, "create -path <backups> -layout manifest -id 1");
        run_as_rails(&env, invoked, &create, Some(&root), &repos, &[]).assert_success();
        let project = &repos[0].repo;
        let added = env.add_commit(&project.path(), "refs/heads/main", "later.txt");
        let states = capture(&env, &repos);
        let create = argv(&env, "create -path <backups> -layout manifest -id 2");
        run_as_rails(&env, invoked, &create, Some(&root), &repos, &[]).assert_success();
        // Back to the state of backup 2 in place: the commit after it goes.
        env.add_commit(&project.path(), "refs/heads/main", "after.txt");
        let restore = argv(&env, "restore -path <backups> -layout manifest");
        let run = run_as_rails(&env, invoked, &restore, Some(&root), &repos, &[]);
        assert_all_done(&run, "restore", &repos);
        assert_restored(&env, &repos, &states, &root);
        assert_eq!(
            env.git(&project.path(), ["rev-parse", "refs/heads/main"])
                .trim(),
            added
        );
    }
}

#[test]
fn older_rails_argument_shapes() {
    for invoked in BOTH {
        let env = TestEnv::new();
        let instance = instance(&env);
        let repos: Vec<&RailsRepo> = instance.iter().take(2).collect();
        let states = capture(&env, &repos);
        let root = env.storage_root("default");
        // ≤ 14.9: no -layout, no -id; the id is the UTC time.
        let run = run_as_rails(
            &env,
            invoked,
            &argv(
                &env,
                "create -path <backups> -parallel 2 -parallel-storage 2",
            ),
            Some(&root),
            &repos,
            &[],
        );
        assert_all_done(&run, "create", &repos);
        let ids = std::fs::read_dir(env.backup_file("repositories/backup_ids")).unwrap();
        let ids: Vec<String> = ids
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].len(), "YYYYMMDDhhmmss".len(), "{ids:?}");
        assert_backed_up(&env.backups().join("repositories"), &repos, &ids[0]);
        // 14.10–16.9: -layout pointer, one warning, the manifest layout.
        let run = run_as_rails(
            &env,
            invoked,
            &argv(&env, "create -path <backups> -layout pointer -id 16.0"),
            Some(&root),
            &repos,
            &[],
        );
        assert_all_done(&run, "create", &repos);
        let warnings =
            run.lines_with_msg("-layout pointer ignored: gitbak writes the manifest layout");
        assert_eq!(warnings.len(), 1, "{}", run.stdout);
        assert_eq!(warnings[0]["level"], "warning");
        assert_backed_up(&env.backups().join("repositories"), &repos, "16.0");
        let restored_root = fresh_root(&env, "restored");
        let run = run_as_rails(
            &env,
            invoked,
            &argv(
                &env,
                "restore -path <backups> -layout pointer -parallel 1 -id 16.0",
            ),
            Some(&restored_root),
            &repos,
            &[],
        );
        assert_all_done(&run, "restore", &repos);
        assert_restored(&env, &repos, &states, &restored_root);
    }
}

/// A Gitaly config as Omnibus writes it, with `[backup] go_cloud_url`.
fn gitaly_config(env: &TestEnv, storage_root: &Path, location: &Path) -> PathBuf {
    let path = env.root().join("gitaly-config.toml");
    std::fs::write(
        &path,
        format!(
            "socket_path = \"/var/opt/gitlab/gitaly/gitaly.socket\"\n\
             [[storage]]\nname = \"default\"\npath = \"{}\"\n\
             [backup]\ngo_cloud_url = \"file://{}\"\n",
            storage_root.display(),
            location.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn server_side_backups_go_to_gitalys_go_cloud_url() {
    for invoked in BOTH {
        let env = TestEnv::new();
        let instance = instance(&env);
        let repos: Vec<&RailsRepo> = instance.iter().collect();
        let states = capture(&env, &repos);
        let root = env.storage_root("default");
        let location = env.root().join("server-side");
        let config = gitaly_config(&env, &root, &location);
        let config = config.to_str().unwrap();
        // The storages come from Gitaly's config alone.
        let run = run_as_rails(
            &env,
            invoked,
            &argv(
                &env,
                &format!("create -server-side -parallel 2 -parallel-storage 1 -id {ID}"),
            ),
            None,
            &repos,
            &[("GITBAK_GITALY_CONFIG", config)],
        );
        assert_all_done(&run, "create", &repos);
        assert_backed_up(&location, &repos, ID);
        assert!(!env.backups().exists());
        let restored_root = fresh_root(&env, "restored");
        let run = run_as_rails(
            &env,
            invoked,
            &argv(
                &env,
                &format!(
                    "restore -server-side -parallel 2 -parallel-storage 1 -remove-all-repositories default -id {ID}"
                ),
            ),
            Some(&restored_root),
            &repos,
            // GITBAK_STORAGE wins over the config's [[storage]].
            &[("GITBAK_GITALY_CONFIG", config)],
        );
        assert_all_done(&run, "restore", &repos);
        assert_restored(&env, &repos, &states, &restored_root);
    }
}

/// A run that ends before any job: gitaly-backup's single JSON error line
/// on stdout, exit 1, stderr empty, nothing written.
fn assert_refused(run: &Run, msg: &str) {
    run.assert_code(1);
    assert_eq!(run.stderr, "", "{}", run.description);
    let log = run.log();
    assert_eq!(log.len(), 1, "{}", run.stdout);
    assert_eq!(log[0]["level"], "error");
    assert_eq!(log[0]["msg"], msg);
}

#[test]
fn incremental_continues_the_latest_backup() {
    // Rails ≥ 16.5 (`INCREMENTAL=yes`): `-incremental` with a new id
    // continues each repository's latest backup; the restore of the new id
    // gives the repositories as they are now.
    for invoked in BOTH {
        let env = TestEnv::new();
        let instance = instance(&env);
        let repos: Vec<&RailsRepo> = instance.iter().collect();
        let root = env.storage_root("default");
        let full = argv(
            &env,
            &format!("create -path <backups> -layout manifest -id {ID}"),
        );
        assert_all_done(
            &run_as_rails(&env, invoked, &full, Some(&root), &repos, &[]),
            "create",
            &repos,
        );
        let changed = &repos[0].repo;
        env.add_commit(&changed.path(), "refs/heads/main", "incremental.txt");
        let states = capture(&env, &repos);
        let id = "1700000100_2026_01_02_17.0.0";
        let line = format!("create -path <backups> -layout manifest -incremental -id {id}");
        let run = run_as_rails(&env, invoked, &argv(&env, &line), Some(&root), &repos, &[]);
        assert_all_done(&run, "create", &repos);
        let location = env.backups().join("repositories");
        let steps = |repo: &Repo| {
            let text = std::fs::read_to_string(location.join(repo.manifest_key(id))).unwrap();
            let manifest: toml::Table = text.parse().unwrap();
            manifest["steps"].as_array().unwrap().len()
        };
        assert_eq!(steps(changed), 2);
        assert!(location.join(changed.step_key(id, "002.bundle")).is_file());
        assert_eq!(steps(&repos[1].repo), 1, "unchanged: no new step");
        let restored_root = fresh_root(&env, "restored");
        let restore = argv(
            &env,
            &format!("restore -path <backups> -layout manifest -id {id}"),
        );
        let run = run_as_rails(&env, invoked, &restore, Some(&restored_root), &repos, &[]);
        assert_all_done(&run, "restore", &repos);
        assert_restored(&env, &repos, &states, &restored_root);
    }
}

#[test]
fn rails_16_4_increments_fail_per_job() {
    for invoked in BOTH {
        let env = TestEnv::new();
        let instance = instance(&env);
        let repos: Vec<&RailsRepo> = instance.iter().take(2).collect();
        let root = env.storage_root("default");
        // Rails ≤ 16.4 passes the full backup's id: each job fails saying
        // why, and the full backup is left alone.
        let full = argv(&env, "create -path <backups> -layout pointer -id 100_full");
        run_as_rails(&env, invoked, &full, Some(&root), &repos, &[]).assert_success();
        let before = crate::support::snapshot(&env.backups());
        let line = "create -path <backups> -layout pointer -incremental -id 100_full";
        let run = run_as_rails(&env, invoked, &argv(&env, line), Some(&root), &repos, &[]);
        run.assert_code(1);
        assert_eq!(run.stderr, "");
        for rails in &repos {
            let error = run.job_error("create", &rails.repo.relative_path);
            assert!(
                error.starts_with(
                    "incremental backups from this Rails version (GitLab 16.4 and older"
                ),
                "{error}"
            );
        }
        assert!(run
            .failure_summary()
            .starts_with("create: pipeline: 2 failures encountered:\n"));
        assert_eq!(crate::support::snapshot(&env.backups()), before);
    }
}

#[test]
fn configuration_errors_are_one_json_line_and_exit_1() {
    let env = TestEnv::new();
    let instance = instance(&env);
    let repos: Vec<&RailsRepo> = instance.iter().take(1).collect();
    let root = env.storage_root("default");
    for invoked in BOTH {
        for (line, vars, msg) in [
            (
                "create -path <backups> -layout bogus -id 1",
                vec![],
                "create: resolve locator: unknown layout: \"bogus\"; use manifest, pointer or legacy",
            ),
            (
                "create -server-side -path <backups> -id 1",
                vec![],
                "create: path cannot be used with server-side backups",
            ),
            (
                "restore -path <backups> -server-side",
                vec![],
                "restore: path cannot be used with server-side backups",
            ),
            (
                "create -path <backups> -id 1",
                vec![("GITALY_SERVERS", "definitely*not*base64")],
                "injecting GITALY_SERVERS: failed decoding base64: illegal base64 data at input byte 10",
            ),
            (
                "restore -path <backups> -id 1",
                // base64 of "definitely not JSON", gitaly's own test case.
                vec![("GITALY_SERVERS", "ZGVmaW5pdGVseSBub3QgSlNPTg==")],
                "injecting GITALY_SERVERS: failed unmarshalling json: invalid character 'd' looking for beginning of value",
            ),
            (
                // Server-side needs Gitaly's [backup] go_cloud_url; the test's config is empty.
                "create -server-side -id 1",
                vec![],
                "create: no backup location: pass --path DIR, or set [backup] go_cloud_url \
                 in Gitaly's config (--gitaly-config, GITBAK_GITALY_CONFIG)",
            ),
            (
                "create -path <backups> -parallel many",
                vec![],
                "invalid value \"many\" for flag -parallel: parse error",
            ),
            (
                "create -path <backups> -frobnicate",
                vec![],
                "flag provided but not defined: -frobnicate",
            ),
        ] {
            let run = run_as_rails(&env, invoked, &argv(&env, line), Some(&root), &repos, &vars);
            assert_refused(&run, msg);
            assert!(!env.backups().exists(), "{line}");
        }
    }
    // Without any gitaly-backup flag and under its own name, gitbak keeps
    // its own usage errors: stderr and exit 2.
    let run = env.gitbak(["create", "--layout", "manifest"]).run();
    run.assert_code(2);
    assert_eq!(run.stdout, "");
}

#[test]
fn a_storage_on_another_gitaly_node_says_where_to_run_gitbak() {
    let env = TestEnv::new();
    let instance = instance(&env);
    let project = &instance[0];
    let far = RailsRepo {
        repo: Repo::new("nfs-2", env.root().join("nowhere"), "@hashed/aa/bb/far.git"),
        gl_project_path: "group/far",
        always_create: true,
    };
    let near = RailsRepo {
        repo: Repo::new(
            "nfs-3",
            env.root().join("nowhere"),
            "@hashed/aa/bb/near.git",
        ),
        gl_project_path: "group/near",
        always_create: true,
    };
    let servers = gitaly_servers(&[
        ("default", LOCAL_GITALY),
        ("nfs-2", "tcp://gitaly-2.internal:8075"),
        ("nfs-3", "tcp://127.0.0.1:8075"),
    ]);
    let root = env.storage_root("default");
    let line = argv(&env, "create -path <backups> -layout manifest -id 1");
    let run = run_as_rails(
        &env,
        Invoked::AsGitalyBackup,
        &line,
        Some(&root),
        &[project, &far, &near],
        &[("GITALY_SERVERS", &servers)],
    );
    run.assert_code(1);
    assert_eq!(run.stderr, "");
    run.job_line("completed create", &project.repo.relative_path);
    let error = run.job_error("create", &far.repo.relative_path);
    assert!(
        error.contains("storage \"nfs-2\" is served by the Gitaly at tcp://gitaly-2.internal:8075"),
        "{error}"
    );
    assert!(
        error.contains("run gitbak on that Gitaly node with --local-storages-only"),
        "{error}"
    );
    let error = run.job_error("create", &near.repo.relative_path);
    assert!(
        error.contains("pass --storage nfs-3=DIR (or GITBAK_STORAGE=nfs-3=DIR)"),
        "{error}"
    );
    assert!(!error.contains("--local-storages-only"), "{error}");
    // With GITBAK_LOCAL_STORAGES_ONLY, the other nodes' jobs are skipped.
    let line = argv(&env, "create -path <backups> -layout manifest -id 2");
    let run = run_as_rails(
        &env,
        Invoked::AsGitalyBackup,
        &line,
        Some(&root),
        &[project, &far],
        &[
            ("GITALY_SERVERS", &servers),
            ("GITBAK_LOCAL_STORAGES_ONLY", "true"),
        ],
    );
    run.assert_success();
    assert_eq!(
        run.paths_with_msg("skipped create"),
        [far.repo.relative_path.clone()].into()
    );
}

/// `-remove-all-repositories` end to end, as backup.rake runs it over a
/// node that has more than the backup holds: the repositories not in the
/// backup go (and the summary counts them), object pools stay; with a
/// failed job nothing goes. A repository the latest lookup finds no backup
/// of is removed and its job fails, as gitaly-backup 19.0 does.
#[test]
fn restore_removes_what_the_backup_does_not_hold_and_keeps_pools() {
    let env = TestEnv::new();
    let instance = instance(&env);
    let repos: Vec<&RailsRepo> = instance.iter().take(2).collect();
    let root = env.storage_root("default");
    let create = argv(
        &env,
        &format!("create -path <backups> -layout manifest -id {ID}"),
    );
    run_as_rails(
        &env,
        Invoked::AsGitalyBackup,
        &create,
        Some(&root),
        &repos,
        &[],
    )
    .assert_success();
    let states = capture(&env, &repos);
    // Created after the backup: a project and an object pool.
    let extra = env.fixture_at("default", "linear", "@hashed/aa/bb/extra.git", &[]);
    let pool = env.fixture_at("default", "linear", "@pools/11/22/pool.git", &[]);

    // A job that fails (a path outside the storage) keeps everything.
    let bad = RailsRepo {
        repo: crate::support::Repo::new("default", root.clone(), "../escape.git"),
        gl_project_path: "group/escape",
        always_create: false,
    };
    let restore = argv(
        &env,
        &format!(
            "restore -path <backups> -layout manifest -remove-all-repositories default -id {ID}"
        ),
    );
    let mut with_failure = repos.clone();
    with_failure.push(&bad);
    let run = run_as_rails(
        &env,
        Invoked::AsGitalyBackup,
        &restore,
        Some(&root),
        &with_failure,
        &[],
    );
    run.assert_code(1);
    assert!(extra.path().is_dir(), "removed although a job failed");
    assert!(!run.stdout.contains("restore: removed"), "{}", run.stdout);

    let run = run_as_rails(
        &env,
        Invoked::AsGitalyBackup,
        &restore,
        Some(&root),
        &repos,
        &[],
    );
    assert_all_done(&run, "restore", &repos);
    // Not in the backup: `extra` and the instance's other repositories.
    let mut gone: Vec<String> = instance[2..]
        .iter()
        .map(|rails| rails.repo.relative_path.clone())
        .chain([extra.relative_path.clone()])
        .collect();
    gone.sort();
    for path in &gone {
        assert!(
            !root.join(path).exists(),
            "{path}, not in the backup, stayed"
        );
    }
    assert!(pool.path().is_dir(), "an object pool was removed");
    assert_restored(&env, &repos, &states, &root);
    let mut summary = format!("restore: removed {} repositories:", gone.len());
    for path in &gone {
        summary.push_str(&format!(
            "\n - {path} (storage default): not in this restore (-remove-all-repositories)"
        ));
    }
    assert_eq!(run.lines_with_msg(&summary).len(), 1, "{}", run.stdout);
    crate::support::assert_no_temp_dirs(&root);

    // No -id: the latest lookup works, finds nothing for `extra`, so
    // gitaly-backup's rule removes it and fails its job.
    let extra = env.fixture_at("default", "linear", "@hashed/aa/bb/extra.git", &[]);
    let unbacked = RailsRepo {
        repo: extra.clone(),
        gl_project_path: "group/extra",
        always_create: true,
    };
    let mut with_unbacked = repos.clone();
    with_unbacked.push(&unbacked);
    let restore = argv(&env, "restore -path <backups> -layout manifest");
    let run = run_as_rails(
        &env,
        Invoked::AsGitalyBackup,
        &restore,
        Some(&root),
        &with_unbacked,
        &[],
    );
    run.assert_code(1);
    let error = run.job_error("restore", &extra.relative_path);
    assert!(error.contains("no backup"), "{error}");
    assert!(
        !extra.path().exists(),
        "gitaly's rule keeps no repository without a backup"
    );
    assert_restored(&env, &repos, &states, &root);

    // A wrong -path finds no backup at all: nothing is removed.
    let extra = env.fixture_at("default", "linear", "@hashed/aa/bb/extra.git", &[]);
    let wrong = vec![
        "restore".to_owned(),
        "-path".into(),
        env.root().join("nowhere").display().to_string(),
    ];
    let mut everything = repos.clone();
    let unbacked = RailsRepo {
        repo: extra.clone(),
        gl_project_path: "group/extra",
        always_create: true,
    };
    everything.push(&unbacked);
    let run = run_as_rails(
        &env,
        Invoked::AsGitalyBackup,
        &wrong,
        Some(&root),
        &everything,
        &[],
    );
    run.assert_code(1);
    for rails in &everything {
        assert!(
            rails.repo.path().is_dir(),
            "{} removed by a wrong -path",
            rails.repo.relative_path
        );
    }
}
