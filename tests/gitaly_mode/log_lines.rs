//! Gitaly mode's stdout, byte for byte (spec §6.2, §6.3): Rails copies it
//! into its progress output and log pipelines parse it, so every field
//! name, `msg` text, level, the key order, Go's HTML escaping and the
//! failure summary's final newline are pinned. Only `time` and `pid` are
//! masked, after checking their form. `-parallel 1` makes the order fixed.

use super::{argv, gitaly_servers, run_as_rails, Invoked, RailsRepo, LOCAL_GITALY};
use crate::support::{Repo, Run, TestEnv};

/// stdout with `"pid":N` and `"time":"…"` masked, once checked: one pid
/// throughout, times in Go's `2006-01-02T15:04:05.000Z` form.
fn masked(run: &Run) -> String {
    let mut pids = std::collections::BTreeSet::new();
    let mut out = String::new();
    for line in run.stdout.split_inclusive('\n') {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        pids.insert(value["pid"].as_u64().unwrap());
        let time = value["time"].as_str().unwrap();
        let bytes = time.as_bytes();
        assert!(
            time.len() == 24
                && bytes[4] == b'-'
                && bytes[10] == b'T'
                && bytes[19] == b'.'
                && time.ends_with('Z')
                && time[20..23].bytes().all(|byte| byte.is_ascii_digit()),
            "{time}"
        );
        let line = line.replace(&format!("\"time\":\"{time}\""), "\"time\":\"TIME\"");
        let pid = value["pid"].as_u64().unwrap();
        out.push_str(&line.replace(&format!("\"pid\":{pid},"), "\"pid\":PID,"));
    }
    assert!(pids.len() <= 1, "{pids:?}");
    assert!(run.stdout.is_empty() || run.stdout.ends_with('\n'));
    out
}

#[test]
fn create_restore_and_usage_error_lines() {
    let env = TestEnv::new();
    let root = env.storage_root("default");
    let project = RailsRepo {
        repo: env.fixture_at("default", "branches-and-tags", "@hashed/6b/86/p.git", &[]),
        gl_project_path: "group/a&b <c>",
        always_create: true,
    };
    let far = RailsRepo {
        repo: Repo::new("nfs-2", env.root().join("nowhere"), "@hashed/aa/bb/far.git"),
        gl_project_path: "group/far",
        always_create: true,
    };
    let escape = RailsRepo {
        repo: Repo::new("default", root.clone(), "../escape.git"),
        gl_project_path: "",
        always_create: false,
    };
    let servers = gitaly_servers(&[
        ("default", LOCAL_GITALY),
        ("nfs-2", "tcp://gitaly-2.internal:8075"),
    ]);
    let vars = [("GITALY_SERVERS", servers.as_str())];
    let create = argv(
        &env,
        "create -path <backups> -layout pointer -parallel 1 -parallel-storage 1 -id 1",
    );
    let run = run_as_rails(
        &env,
        Invoked::AsGitalyBackup,
        &create,
        Some(&root),
        &[&project, &far, &escape],
        &vars,
    );
    run.assert_code(1);
    assert_eq!(run.stderr, "");
    assert_eq!(masked(&run), CREATE);

    // The same id again: done already, so skipped (without a reason).
    let run = run_as_rails(
        &env,
        Invoked::AsGitalyBackup,
        &create,
        Some(&root),
        &[&project],
        &vars,
    );
    run.assert_success();
    assert_eq!(run.stderr, "");
    assert_eq!(masked(&run), CREATE_AGAIN);

    let restore = argv(
        &env,
        "restore -path <backups> -layout manifest -parallel 1 -id 1",
    );
    let run = run_as_rails(
        &env,
        Invoked::WithOneDashFlags,
        &restore,
        Some(&root),
        &[&project],
        &vars,
    );
    run.assert_success();
    assert_eq!(run.stderr, "");
    assert_eq!(masked(&run), RESTORE);

    let bogus = argv(&env, "create -path <backups> -layout bogus");
    let run = run_as_rails(
        &env,
        Invoked::WithOneDashFlags,
        &bogus,
        Some(&root),
        &[&project],
        &vars,
    );
    run.assert_code(1);
    assert_eq!(run.stderr, "");
    assert_eq!(masked(&run), USAGE);
}

const CREATE: &str = r#"{"level":"warning","msg":"-layout pointer ignored: gitbak writes the manifest layout","pid":PID,"time":"TIME"}
{"command.name":"create","gl_project_path":"group/a\u0026b \u003cc\u003e","level":"info","msg":"started create","pid":PID,"relative_path":"@hashed/6b/86/p.git","storage_name":"default","time":"TIME"}
{"command.name":"create","gl_project_path":"group/a\u0026b \u003cc\u003e","level":"info","msg":"completed create","pid":PID,"relative_path":"@hashed/6b/86/p.git","storage_name":"default","time":"TIME"}
{"command.name":"create","gl_project_path":"group/far","level":"info","msg":"started create","pid":PID,"relative_path":"@hashed/aa/bb/far.git","storage_name":"nfs-2","time":"TIME"}
{"command.name":"create","error":"storage \"nfs-2\" is served by the Gitaly at tcp://gitaly-2.internal:8075, not from this node's disk (configured here: default); gitbak reads repositories from local disk: run gitbak on that Gitaly node with --local-storages-only (GITBAK_LOCAL_STORAGES_ONLY=true), or pass --storage nfs-2=DIR (GITBAK_STORAGE) if its repositories are mounted here","gl_project_path":"group/far","level":"error","msg":"create failed","pid":PID,"relative_path":"@hashed/aa/bb/far.git","storage_name":"nfs-2","time":"TIME"}
{"command.name":"create","gl_project_path":"","level":"info","msg":"started create","pid":PID,"relative_path":"../escape.git","storage_name":"default","time":"TIME"}
{"command.name":"create","error":"relative_path \"../escape.git\" is not allowed: it contains '.' or '..' segments","gl_project_path":"","level":"error","msg":"create failed","pid":PID,"relative_path":"../escape.git","storage_name":"default","time":"TIME"}
{"level":"error","msg":"create: pipeline: 2 failures encountered:\n - @hashed/aa/bb/far.git (group/far): storage \"nfs-2\" is served by the Gitaly at tcp://gitaly-2.internal:8075, not from this node's disk (configured here: default); gitbak reads repositories from local disk: run gitbak on that Gitaly node with --local-storages-only (GITBAK_LOCAL_STORAGES_ONLY=true), or pass --storage nfs-2=DIR (GITBAK_STORAGE) if its repositories are mounted here\n - ../escape.git: relative_path \"../escape.git\" is not allowed: it contains '.' or '..' segments\n","pid":PID,"time":"TIME"}
"#;
const CREATE_AGAIN: &str = r#"{"level":"warning","msg":"-layout pointer ignored: gitbak writes the manifest layout","pid":PID,"time":"TIME"}
{"command.name":"create","gl_project_path":"group/a\u0026b \u003cc\u003e","level":"info","msg":"started create","pid":PID,"relative_path":"@hashed/6b/86/p.git","storage_name":"default","time":"TIME"}
{"command.name":"create","gl_project_path":"group/a\u0026b \u003cc\u003e","level":"warning","msg":"skipped create","pid":PID,"relative_path":"@hashed/6b/86/p.git","storage_name":"default","time":"TIME"}
"#;
const RESTORE: &str = r#"{"command.name":"restore","gl_project_path":"group/a\u0026b \u003cc\u003e","level":"info","msg":"started restore","pid":PID,"relative_path":"@hashed/6b/86/p.git","storage_name":"default","time":"TIME"}
{"command.name":"restore","gl_project_path":"group/a\u0026b \u003cc\u003e","level":"info","msg":"completed restore","pid":PID,"relative_path":"@hashed/6b/86/p.git","storage_name":"default","time":"TIME"}
"#;
const USAGE: &str = r#"{"level":"error","msg":"create: resolve locator: unknown layout: \"bogus\"; use manifest, pointer or legacy","pid":PID,"time":"TIME"}
"#;
