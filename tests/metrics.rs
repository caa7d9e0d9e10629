//! `--metrics-file`: the file node_exporter's textfile collector reads,
//! parsed with a real Prometheus text-format parser (`prometheus-parse`)
//! after a successful create, a failed one (the last success survives),
//! a start-up error, an interrupt, and verify of sound and broken backups
//! sharing the same file.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use prometheus_parse::{Scrape, Value};

use crate::support::{Repo, Run, TestEnv};

/// Samples by metric name and sorted labels.
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

/// The file's samples as `(name, labels) -> value`; panics unless every
/// sample line parses, with HELP and TYPE for each metric.
fn read(path: &Path) -> Samples {
    let text = std::fs::read_to_string(path).unwrap();
    let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).unwrap();
    let sample_lines = text.lines().filter(|line| !line.starts_with('#')).count();
    assert_eq!(
        scrape.samples.len(),
        sample_lines,
        "unparsed lines in\n{text}"
    );
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "node_exporter must be able to read it");
    scrape
        .samples
        .into_iter()
        .map(|sample| {
            assert!(
                scrape.docs.contains_key(&sample.metric),
                "{} has no HELP",
                sample.metric
            );
            assert!(
                text.contains(&format!("# TYPE {} gauge\n", sample.metric)),
                "{} has no TYPE",
                sample.metric
            );
            let Value::Gauge(value) = sample.value else {
                panic!("{} is not a gauge", sample.metric)
            };
            let mut labels: Vec<(String, String)> = sample
                .labels
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            labels.sort();
            ((sample.metric, labels), value)
        })
        .collect()
}

/// The value of `name` for `command` with the extra `labels`, if any.
fn value(samples: &Samples, name: &str, command: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<(String, String)> = labels
        .iter()
        .chain(&[("command", command)])
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    wanted.sort();
    samples.get(&(name.to_owned(), wanted)).copied()
}

fn metrics_file(env: &TestEnv) -> PathBuf {
    let dir = env.root().join("textfile");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("gitbak.prom")
}

fn create(env: &TestEnv, id: &str, repos: &[&Repo], jobs: &str, vars: &[(&str, &str)]) -> Run {
    env.gitbak(["create", "--id", id])
        .backup_path()
        .storages_of(repos)
        .env("GITBAK_METRICS_FILE", metrics_file(env).to_str().unwrap())
        .envs(vars)
        .stdin(jobs)
        .run()
}

fn job_line(repo: &Repo) -> String {
    format!(
        "{{\"storage_name\":\"{}\",\"relative_path\":\"{}\"}}\n",
        repo.storage_name, repo.relative_path
    )
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn a_failed_create_keeps_the_last_success() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let path = metrics_file(&env);

    let before = now();
    create(&env, "20260101000000", &[&repo], &job_line(&repo), &[]).assert_success();
    let samples = read(&path);
    let success = value(
        &samples,
        "gitbak_last_success_timestamp_seconds",
        "create",
        &[],
    )
    .unwrap();
    assert!(success >= before.floor() && success <= now(), "{success}");
    assert_eq!(
        value(&samples, "gitbak_last_run_success", "create", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "gitbak_last_run_exit_code", "create", &[]),
        Some(0.0)
    );
    assert!(value(&samples, "gitbak_last_run_duration_seconds", "create", &[]).unwrap() >= 0.0);
    let completed = [("storage", "default"), ("result", "completed")];
    assert_eq!(
        value(
            &samples,
            "gitbak_last_run_repositories",
            "create",
            &completed
        ),
        Some(1.0)
    );

    // Every file of the step: the bundle, the refs file (and hooks, if any).
    let step_dir = env.backup_file(&format!(
        "{}/{}/20260101000000",
        repo.storage_name, repo.relative_path
    ));
    let written: u64 = std::fs::read_dir(step_dir)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    assert!(written > 0);
    assert_eq!(
        value(&samples, "gitbak_last_run_bytes_written", "create", &[]),
        Some(written as f64)
    );

    // The same id again: done already (skipped), and a job that cannot be
    // backed up (its path leaves the storage).
    let jobs = format!(
        "{}{{\"storage_name\":\"default\",\"relative_path\":\"../escape.git\"}}\n",
        job_line(&repo)
    );
    let run = create(&env, "20260101000000", &[&repo], &jobs, &[]);
    let samples = read(&path);
    let code = f64::from(run.code);
    assert_ne!(code, 0.0, "{}", run.stdout);
    assert_eq!(
        value(&samples, "gitbak_last_run_exit_code", "create", &[]),
        Some(code)
    );
    assert_eq!(
        value(&samples, "gitbak_last_run_success", "create", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &samples,
            "gitbak_last_success_timestamp_seconds",
            "create",
            &[]
        ),
        Some(success),
        "the last success must survive a failed run"
    );
    assert!(
        value(&samples, "gitbak_last_run_timestamp_seconds", "create", &[]).unwrap()
            >= success.floor()
    );
    let by_result = |result| {
        value(
            &samples,
            "gitbak_last_run_repositories",
            "create",
            &[("storage", "default"), ("result", result)],
        )
    };
    assert_eq!(by_result("skipped"), Some(1.0));
    assert_eq!(by_result("failed"), Some(1.0));
    assert_eq!(
        by_result("completed"),
        None,
        "the previous run's counts are replaced"
    );
}

#[test]
fn a_start_up_error_and_an_interrupt_are_recorded_as_failures() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let path = metrics_file(&env);

    // A storage directory that does not exist: caught at start, exit 2.
    let run = env
        .gitbak(["create", "--storage", "default=/nonexistent/storage"])
        .backup_path()
        .args(["--metrics-file", path.to_str().unwrap()])
        .stdin(job_line(&repo))
        .run();
    run.assert_code(2);
    let samples = read(&path);
    assert_eq!(
        value(&samples, "gitbak_last_run_exit_code", "create", &[]),
        Some(2.0)
    );
    assert_eq!(
        value(&samples, "gitbak_last_run_success", "create", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &samples,
            "gitbak_last_success_timestamp_seconds",
            "create",
            &[]
        ),
        Some(0.0),
        "no success known yet"
    );

    // SIGTERM as the job starts: exit 130.
    let run = create(
        &env,
        "20260101000000",
        &[&repo],
        &job_line(&repo),
        &[("GITBAK_FAILPOINTS", "job-start=term")],
    );
    run.assert_code(130);
    let samples = read(&path);
    assert_eq!(
        value(&samples, "gitbak_last_run_exit_code", "create", &[]),
        Some(130.0)
    );
    assert_eq!(
        value(&samples, "gitbak_last_run_success", "create", &[]),
        Some(0.0)
    );
}

#[test]
fn verify_shares_the_file_and_reports_what_it_found_broken() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let path = metrics_file(&env);
    create(&env, "20260101000000", &[&repo], &job_line(&repo), &[]).assert_success();
    let created = read(&path);

    let verify = || {
        env.gitbak(["verify", "--metrics-file", path.to_str().unwrap()])
            .backup_path()
            .run()
    };
    verify().assert_success();
    let samples = read(&path);
    for (name, expected) in [
        ("gitbak_last_run_checked_repositories", 1.0),
        ("gitbak_last_run_checked_backups", 1.0),
        ("gitbak_last_run_broken_repositories", 0.0),
        ("gitbak_last_run_broken_files", 0.0),
        ("gitbak_last_run_success", 1.0),
    ] {
        assert_eq!(
            value(&samples, name, "verify", &[]),
            Some(expected),
            "{name}"
        );
    }
    let bundle = env.backup_file(&repo.step_key("20260101000000", "001.bundle"));
    let bytes = std::fs::metadata(&bundle).unwrap().len() as f64;
    assert!(value(&samples, "gitbak_last_run_checked_bytes", "verify", &[]).unwrap() >= bytes);
    let verified = value(
        &samples,
        "gitbak_last_success_timestamp_seconds",
        "verify",
        &[],
    )
    .unwrap();
    // create's series are kept as they were.
    for (key, value) in created
        .iter()
        .filter(|((_, labels), _)| labels.contains(&("command".to_owned(), "create".to_owned())))
    {
        assert_eq!(samples.get(key), Some(value), "{key:?}");
    }

    std::fs::remove_file(&bundle).unwrap();
    verify().assert_code(3);
    let samples = read(&path);
    assert_eq!(
        value(&samples, "gitbak_last_run_exit_code", "verify", &[]),
        Some(3.0)
    );
    assert_eq!(
        value(&samples, "gitbak_last_run_success", "verify", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &samples,
            "gitbak_last_run_broken_repositories",
            "verify",
            &[]
        ),
        Some(1.0)
    );
    assert!(value(&samples, "gitbak_last_run_broken_files", "verify", &[]).unwrap() >= 1.0);
    let default = [("storage", "default")];
    for name in [
        "gitbak_last_run_checked_repositories_by_storage",
        "gitbak_last_run_broken_repositories_by_storage",
    ] {
        assert_eq!(
            value(&samples, name, "verify", &default),
            Some(1.0),
            "{name}"
        );
    }
    assert_eq!(
        value(
            &samples,
            "gitbak_last_success_timestamp_seconds",
            "verify",
            &[]
        ),
        Some(verified)
    );
    assert_eq!(
        value(&samples, "gitbak_last_run_success", "create", &[]),
        Some(1.0)
    );
}

/// GitLab's backup.rake cannot pass gitbak's flags: gitaly mode reads
/// `GITBAK_METRICS_FILE`, and records gitaly mode's exit status (1, not 2,
/// for a configuration error).
#[test]
fn gitaly_mode_writes_the_file_named_in_the_environment() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let path = metrics_file(&env);
    let gitaly = |storage: &str| {
        env.gitaly_backup(["create", "-path"])
            .args([env.backups()])
            .env("GITBAK_STORAGE", storage)
            .env("GITBAK_METRICS_FILE", path.to_str().unwrap())
            .stdin(job_line(&repo))
            .run()
    };
    gitaly(&repo.storage_arg()).assert_success();
    let samples = read(&path);
    assert_eq!(
        value(&samples, "gitbak_last_run_success", "create", &[]),
        Some(1.0)
    );
    let completed = [("storage", "default"), ("result", "completed")];
    assert_eq!(
        value(
            &samples,
            "gitbak_last_run_repositories",
            "create",
            &completed
        ),
        Some(1.0)
    );

    let run = gitaly("default=/nonexistent/storage");
    run.assert_code(1);
    assert_eq!(run.stderr, "", "gitaly mode's stderr stays empty");
    let samples = read(&path);
    assert_eq!(
        value(&samples, "gitbak_last_run_exit_code", "create", &[]),
        Some(1.0)
    );
    assert!(
        value(
            &samples,
            "gitbak_last_success_timestamp_seconds",
            "create",
            &[]
        )
        .unwrap()
            > 0.0
    );
}
