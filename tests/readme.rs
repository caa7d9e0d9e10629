//! The README is the user manual: its first command works in a fresh
//! clone whatever `CARGO_TARGET_DIR` is, it shows every command, and its
//! options table has a row for every option.

use std::path::Path;

use crate::support::{files_under, gitbak_binary, TestEnv};

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The text of the `## heading` section, up to the next `## `.
fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has no ## {heading}"));
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |end| end + 3);
    &rest[..end]
}

/// The ```sh blocks of `text`.
fn shell_blocks(text: &str) -> Vec<String> {
    text.split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().trim().to_owned())
        .collect()
}

#[test]
fn fresh_machine_commands_are_two_and_name_no_target_directory() {
    let readme = readme();
    let blocks = shell_blocks(section(&readme, "Try it on a fresh machine"));
    assert_eq!(blocks.len(), 2, "{blocks:#?}");
    let (first, test) = (&blocks[0], &blocks[1]);
    assert_eq!(test, ".ci/run");
    // `cargo run` finds the binary wherever CARGO_TARGET_DIR puts it.
    assert!(first.contains("cargo run --release --"), "{first}");
    assert!(
        !first.contains("target/"),
        "hard-codes a target path: {first}"
    );
    assert!(
        first.contains(" create ") && first.contains(" restore "),
        "{first}"
    );
}

/// The quick start's command itself, in a fresh clone of this checkout,
/// with the binary under test standing in for `cargo run --release --`
/// (a release build in every test run would take minutes) and `/tmp`
/// moved into the test's directory: the restored repository has the
/// clone's refs.
#[test]
fn quick_start_backs_up_and_restores_a_fresh_clone() {
    let env = TestEnv::new();
    let readme = readme();
    let command = shell_blocks(section(&readme, "Try it on a fresh machine")).remove(0);
    let scratch = env.root().join("tmp");
    std::fs::create_dir(&scratch).unwrap();
    let command = command
        .replace(
            "cargo run --release --",
            &format!("'{}'", gitbak_binary().display()),
        )
        .replace("/tmp/", &format!("{}/", scratch.display()));
    let clone = env.root().join("clone");
    env.program(
        "git",
        [
            "clone",
            "-q",
            env!("CARGO_MANIFEST_DIR"),
            clone.to_str().unwrap(),
        ],
    )
    .assert_success();
    let script = format!("cd '{}' && {command}", clone.display());
    env.program("bash", ["-c", &script]).assert_success();
    assert!(!files_under(&scratch.join("gitbak-demo")).is_empty());
    let restored = scratch.join("gitbak-restored/.git");
    assert_eq!(
        env.git(&restored, ["for-each-ref"]),
        env.git(&clone.join(".git"), ["for-each-ref"])
    );
}

#[test]
fn options_table_names_every_option() {
    let env = TestEnv::new();
    let readme = readme();
    let commands = env.gitbak(["--help"]).run().stdout.clone();
    let commands: Vec<&str> = commands
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|command| *command != "help")
        .collect();
    assert!(commands.contains(&"create"), "{commands:?}");
    for command in commands {
        assert!(
            readme.contains(&format!("gitbak {command}")),
            "README never shows gitbak {command}"
        );
        let help = env.gitbak([command, "--help"]).run().stdout.clone();
        let options = help
            .split_whitespace()
            .filter(|word| word.starts_with("--") && word.len() > 2)
            .map(|word| word.trim_end_matches([',', '.', ':', ')']))
            .filter(|option| !["--help", "--version"].contains(option));
        for option in options {
            // Named in the first cell of a table row (a row may name
            // several, as `--keep-hourly N`, `--keep-daily N`, ...), and
            // `--git` must not count as `--gitaly-config`'s row.
            let named = |end: char| format!("`{option}{end}");
            let has_row = readme.lines().any(|line| {
                let first_cell = line
                    .strip_prefix("| ")
                    .and_then(|rest| rest.split(" | ").next())
                    .unwrap_or("");
                first_cell.contains(&named(' ')) || first_cell.contains(&named('`'))
            });
            assert!(
                has_row,
                "README's options table has no row for {option} of gitbak {command}"
            );
        }
    }
}
