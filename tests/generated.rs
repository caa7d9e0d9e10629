//! The committed completions and man pages are what the binary renders
//! from its clap definition: a flag change must regenerate them
//! (`gitbak generate .`). Every page renders without a warning from man,
//! and every command's `--help` has examples. Subcommands are found in what
//! the binary renders, so commands added later are covered as they come.

use std::path::{Path, PathBuf};

use crate::support::{files_under, TestEnv};

fn repository_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `gitbak generate` into a fresh directory, which it returns.
fn generate(env: &TestEnv) -> PathBuf {
    let out = env.root().join("generated");
    env.gitbak(["generate".as_ref(), out.as_os_str()])
        .run()
        .assert_success();
    out
}

/// Every visible command: `[]` for gitbak itself, `["create"]`, … (one
/// man page each, `gitbak-create.1`).
fn commands(env: &TestEnv) -> Vec<Vec<String>> {
    let pages = files_under(&generate(env).join("man"));
    assert!(pages.contains(&"gitbak.1".to_owned()), "{pages:?}");
    pages
        .iter()
        .map(|page| {
            // Subcommands are one level deep, and a name may hold a hyphen.
            let name = page.strip_suffix(".1").unwrap();
            name.strip_prefix("gitbak-")
                .map(|command| vec![command.to_owned()])
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn completions_and_man_pages_match_the_cli() {
    let env = TestEnv::new();
    let out = generate(&env);
    let root = repository_root();
    for dir in ["completions", "man"] {
        let generated = files_under(&out.join(dir));
        assert_eq!(
            generated,
            files_under(&root.join(dir)),
            "{dir}/ lists other files; run `gitbak generate .`"
        );
        for file in generated {
            let want = std::fs::read(out.join(dir).join(&file)).unwrap();
            let have = std::fs::read(root.join(dir).join(&file)).unwrap();
            assert!(
                want == have,
                "{dir}/{file} is stale; run `gitbak generate .` and commit the result"
            );
        }
    }
}

#[test]
fn completions_command_prints_the_committed_scripts() {
    let env = TestEnv::new();
    let commands = commands(&env);
    for (shell, file) in [
        ("bash", "gitbak.bash"),
        ("zsh", "_gitbak"),
        ("fish", "gitbak.fish"),
        ("powershell", "_gitbak.ps1"),
        ("elvish", "gitbak.elv"),
    ] {
        let run = env.gitbak(["completions", shell]).run();
        run.assert_success();
        let committed = std::fs::read(repository_root().join("completions").join(file)).unwrap();
        assert!(
            run.stdout_bytes == committed,
            "`gitbak completions {shell}` differs from completions/{file}"
        );
        for command in commands.iter().filter_map(|words| words.first()) {
            assert!(run.stdout.contains(command.as_str()), "{shell}: {command}");
        }
        assert!(
            !run.stdout.contains("generate"),
            "{shell} completions offer the hidden generate"
        );
    }
    env.gitbak(["completions", "tcsh"]).run().assert_code(2);
}

/// man and groff, which the test needs: installed by `.ci/run`.
const MAN_MISSING: &str = "man is not installed: run `apt-get install man-db groff-base` \
                           (.ci/run installs them)";

#[test]
fn man_pages_render_without_warnings() {
    let man_dir = repository_root().join("man");
    let pages = files_under(&man_dir);
    assert!(!pages.is_empty());
    for page in pages {
        let path = man_dir.join(&page);
        // A server's C locale as well as UTF-8, at a usual terminal width
        // and a narrow one.
        for (locale, width) in [("C", "80"), ("C.UTF-8", "80"), ("C.UTF-8", "60")] {
            let mut command = std::process::Command::new("man");
            command
                .env("LC_ALL", locale)
                .env("MANWIDTH", width)
                .args(["--warnings=w", "-l"])
                .arg(&path);
            let output = command.output().unwrap_or_else(|error| {
                panic!("cannot run man ({error}); {MAN_MISSING}");
            });
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                output.status.success() && stderr.is_empty(),
                "man/{page} ({locale}, {width} columns) warns:\n{stderr}"
            );
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(text.contains("EXAMPLES"), "man/{page} has no examples");
            // clap_mangen's own synopsis leaves option values out.
            if page == "gitbak-create.1" {
                assert!(text.contains("[--path <LOCATION>]"), "{text}");
            }
        }
    }
}

#[test]
fn every_command_help_has_examples() {
    let env = TestEnv::new();
    for command in commands(&env) {
        let mut args = command.clone();
        args.push("--help".to_owned());
        let run = env.gitbak(&args).run();
        run.assert_success();
        let examples = run
            .stdout
            .split("\nExamples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("gitbak {args:?} has no Examples section"));
        assert!(
            examples.lines().any(|line| line.starts_with("  ")
                && (line.contains("gitbak ") || line.contains("gitlab-backup "))),
            "gitbak {args:?}: no example command"
        );
    }
}

#[test]
fn each_command_shows_only_its_own_options() {
    let env = TestEnv::new();
    let help = |command: &str| {
        let run = env.gitbak([command, "--help"]).run();
        run.assert_success();
        run.stdout.clone()
    };
    let (create, restore) = (help("create"), help("restore"));
    for create_only in [
        "--discover",
        "--incremental",
        "--max-chain",
        "--part-size",
        "--upload-concurrency",
        "--immutable",
    ] {
        assert!(create.contains(create_only), "create lacks {create_only}");
        assert!(
            !restore.contains(create_only),
            "restore shows {create_only}"
        );
    }
    assert!(restore.contains("--at <TIME>"));
    assert!(!create.contains("--at"), "create shows --at");
    for shared in ["--path <LOCATION>", "--git <PATH>", "--storage <NAME=DIR>"] {
        assert!(
            create.contains(shared) && restore.contains(shared),
            "{shared}"
        );
    }
}
