//! The translator against the command lines of spec §8.1 and Go's flag
//! syntax.

use super::run::rails_16_4_increment;
use super::*;
use crate::cli::{Command, CreateArgs, RestoreArgs};

fn args(line: &str) -> Vec<OsString> {
    line.split(' ').map(OsString::from).collect()
}

fn translated(line: &str) -> GitalyArgs {
    match translate(&args(line)) {
        Translation::Run(args) => *args,
        other => panic!("{line}: {other:?}"),
    }
}

fn usage_error(line: &str) -> String {
    match translate(&args(line)) {
        Translation::Usage(error) => error.0,
        other => panic!("{line}: expected a usage error, got {other:?}"),
    }
}

fn create(line: &str) -> (CreateArgs, GitalyFlags) {
    let GitalyArgs { cli, flags } = translated(line);
    match cli.command {
        Command::Create(args) => (args, flags),
        other => panic!("{line}: {other:?}"),
    }
}

fn restore(line: &str) -> (RestoreArgs, GitalyFlags) {
    let GitalyArgs { cli, flags } = translated(line);
    match cli.command {
        Command::Restore(args) => (args, flags),
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn gitaly_mode_is_the_name_or_a_one_dash_gitaly_flag() {
    for (line, gitaly) in [
        ("/opt/gitlab/embedded/bin/gitaly-backup create", true),
        ("gitaly-backup restore --path /b", true),
        ("gitbak create -path /b", true),
        ("gitbak create -path=/b", true),
        (
            "gitbak restore --path /b -remove-all-repositories default",
            true,
        ),
        ("gitbak create -parallel-storage 2", true),
        ("gitbak create -incremental", true),
        ("gitbak create --path /b --id 1", false),
        ("gitbak create -h", false),
        ("gitbak -V", false),
        ("gitbak create --path /b -- -path", false),
        ("/usr/bin/gitbak restore --storage default=/s", false),
        ("gitaly-backup-wrapper create", false),
    ] {
        assert_eq!(is_gitaly_mode(&args(line)), gitaly, "{line}");
    }
}

#[test]
fn rails_argument_vectors_translate() {
    // Current Rails (spec §8.1).
    let (create_args, flags) = create(
        "gitaly-backup create -path /b/repositories -layout manifest -parallel 3 -parallel-storage 1 -id 1700000000_2026_01_01_17.0.0",
    );
    assert_eq!(create_args.common.path.as_deref(), Some("/b/repositories"));
    assert_eq!(
        create_args.id.as_deref(),
        Some("1700000000_2026_01_01_17.0.0")
    );
    assert_eq!(
        flags,
        GitalyFlags {
            parallel: Some(3),
            parallel_storage: Some(1),
            layout: Some(Layout::Manifest),
            ..GitalyFlags::default()
        }
    );
    let (_, flags) = create("gitaly-backup create -server-side -incremental -id 5");
    assert!(flags.server_side && flags.incremental);
    let (restore_args, flags) = restore(
        "gitaly-backup restore -path /b/repositories -layout manifest -remove-all-repositories default,nfs -remove-all-repositories=other -id 5",
    );
    assert_eq!(restore_args.common.path.as_deref(), Some("/b/repositories"));
    assert_eq!(restore_args.id.as_deref(), Some("5"));
    assert_eq!(flags.remove_all_repositories, ["default", "nfs", "other"]);
    let (restore_args, flags) = restore("gitaly-backup restore -server-side -parallel=0");
    assert_eq!(restore_args.common.path, None);
    assert!(flags.server_side);
    assert_eq!(flags.parallel, Some(0));
    // Older shapes: ≤14.9 without -layout; 14.10–16.9 with -layout pointer.
    let (create_args, flags) =
        create("gitaly-backup create -path /b -parallel 2 -parallel-storage 2");
    assert_eq!(create_args.id, None);
    assert_eq!(flags.layout, None);
    let (_, flags) = create("gitaly-backup create -path /b -layout pointer -incremental -id 9");
    assert_eq!(flags.layout, Some(Layout::Pointer));
    assert!(flags.incremental);
    // The upstream tests' double-dash spelling, and booleans with values.
    let (create_args, flags) = create(
        "gitaly-backup create --path=/b --layout=legacy --incremental=false --server-side=0",
    );
    assert_eq!(create_args.common.path.as_deref(), Some("/b"));
    assert!(!flags.incremental && !flags.server_side);
}

#[test]
fn gitbak_flags_work_in_gitaly_mode() {
    let (create_args, _) = create(
        "gitaly-backup create -path /b -storage default=/s --local-storages-only -part-size=8MiB --discover=true",
    );
    assert_eq!(
        create_args.common.storages,
        [("default".to_owned(), PathBuf::from("/s"))]
    );
    assert!(create_args.common.local_storages_only && create_args.discover);
    assert_eq!(create_args.upload.part_size, Some(8 << 20));
    // A value starting with a dash is still the value, as for Go.
    let (create_args, _) = create("gitaly-backup create -path -odd -id -1");
    assert_eq!(create_args.common.path.as_deref(), Some("-odd"));
    assert_eq!(create_args.id.as_deref(), Some("-1"));
    // Given twice, the last one counts, as with Go's flag package.
    let (create_args, _) = create("gitaly-backup create -path /a -id 1 --path=/b -id=2");
    assert_eq!(create_args.common.path.as_deref(), Some("/b"));
    assert_eq!(create_args.id.as_deref(), Some("2"));
}

use std::path::PathBuf;

#[test]
fn usage_errors_read_like_gitaly_backups() {
    for (line, want) in [
        ("gitaly-backup", "missing subcommand: use create or restore"),
        (
            "gitaly-backup create -layout bogus",
            "create: resolve locator: unknown layout: \"bogus\"; use manifest, pointer or legacy",
        ),
        (
            "gitaly-backup create -server-side -path /b",
            "create: path cannot be used with server-side backups",
        ),
        (
            "gitaly-backup restore -path=/b -server-side",
            "restore: path cannot be used with server-side backups",
        ),
        (
            "gitaly-backup create -path",
            "flag needs an argument: -path",
        ),
        (
            "gitaly-backup create -parallel x",
            "invalid value \"x\" for flag -parallel: parse error",
        ),
        (
            "gitaly-backup create -incremental=maybe",
            "invalid boolean value \"maybe\" for -incremental: parse error",
        ),
        (
            "gitaly-backup create -bogus",
            "flag provided but not defined: -bogus",
        ),
        (
            "gitaly-backup create -remove-all-repositories default",
            "flag provided but not defined: -remove-all-repositories",
        ),
        (
            "gitaly-backup restore -incremental",
            "flag provided but not defined: -incremental",
        ),
        (
            "gitaly-backup create -path /b extra",
            "unexpected argument \"extra\"",
        ),
    ] {
        assert_eq!(usage_error(line), want, "{line}");
    }
    assert!(
        usage_error("gitaly-backup frobnicate").starts_with("unknown subcommand: \"frobnicate\"")
    );
    // clap's own checks on gitbak's options, first line only.
    let error = usage_error("gitaly-backup create -path /b -part-size 1");
    assert!(error.contains("5 MiB minimum"), "{error}");
    assert!(!error.contains('\n'));
}

#[test]
fn help_is_gitbaks() {
    for (line, want) in [
        ("gitaly-backup create -h", "--path <LOCATION>"),
        ("gitaly-backup restore --help", "--path <LOCATION>"),
        ("gitaly-backup -help", "restore"),
    ] {
        match translate(&args(line)) {
            Translation::Display(display) => {
                let text = display.to_string();
                assert!(text.contains(want), "{line}: {text}");
                assert!(!text.contains("-layout"), "{line}");
            }
            other => panic!("{line}: {other:?}"),
        }
    }
}

#[test]
fn parallelism_follows_gitaly_backup() {
    // (parallel, parallel-storage) → (global cap, per-storage cap), spec §6.1.
    for (parallel, parallel_storage, want) in [
        (None, None, (8, 2)),
        (Some(2), Some(3), (2, 3)),
        (Some(2), Some(0), (2, 2)),
        (Some(4), Some(-1), (4, 4)),
        (Some(0), Some(3), (NO_GLOBAL_CAP, 3)),
        (Some(-5), None, (NO_GLOBAL_CAP, 2)),
        (Some(0), Some(0), (1, 1)),
        (Some(-1), Some(-1), (1, 1)),
    ] {
        let flags = GitalyFlags {
            parallel,
            parallel_storage,
            ..GitalyFlags::default()
        };
        let limits = flags.limits(8);
        assert_eq!(
            (limits.parallel, limits.parallel_storage),
            want,
            "{parallel:?} {parallel_storage:?}"
        );
    }
}

#[test]
fn only_rails_16_4_increments_fail_on_an_existing_id() {
    let flags = |layout, incremental| GitalyFlags {
        layout,
        incremental,
        ..GitalyFlags::default()
    };
    assert!(!rails_16_4_increment(&flags(None, false), true));
    assert!(!rails_16_4_increment(
        &flags(Some(Layout::Manifest), true),
        true
    ));
    assert!(!rails_16_4_increment(&flags(None, true), true));
    assert!(!rails_16_4_increment(
        &flags(Some(Layout::Pointer), true),
        false
    ));
    assert!(!rails_16_4_increment(
        &flags(Some(Layout::Pointer), false),
        true
    ));
    assert!(rails_16_4_increment(
        &flags(Some(Layout::Pointer), true),
        true
    ));
}
