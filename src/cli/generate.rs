//! Shell completions and man pages, rendered from the clap definition so
//! they cannot drift from it: every visible subcommand gets its
//! completions and a man page, a hidden one (`generate`) neither. Reads no
//! configuration and no secrets.

mod man;

use std::io::Write;
use std::path::Path;

use clap::{CommandFactory, ValueEnum};
use clap_complete::{Generator, Shell};

use super::Cli;

/// The command tree completions offer: gitbak's without hidden
/// subcommands. clap_complete offers every subcommand it is given and clap
/// cannot remove one, so a command with hidden subcommands is rebuilt from
/// what completions use (name, arguments, about, version, visible
/// subcommands); the others are gitbak's own.
fn visible_command() -> clap::Command {
    without_hidden(&Cli::command())
}

fn without_hidden(command: &clap::Command) -> clap::Command {
    if !command.get_subcommands().any(clap::Command::is_hide_set) {
        return command.clone();
    }
    let mut visible = clap::Command::new(command.get_name().to_owned())
        .args(command.get_arguments().cloned())
        .subcommands(
            command
                .get_subcommands()
                .filter(|subcommand| !subcommand.is_hide_set())
                .map(without_hidden),
        )
        .subcommand_required(command.is_subcommand_required_set());
    if let Some(about) = command.get_about() {
        visible = visible.about(about.clone());
    }
    if let Some(version) = command.get_version() {
        visible = visible.version(version.to_owned());
    }
    visible
}

/// The completion script for `shell`, as `gitbak completions SHELL` prints it.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut visible_command(), "gitbak", &mut script);
    script
}

/// `gitbak completions SHELL`. Rendered first, then written: clap_complete
/// panics on a write error, and a closed pipe must end the run quietly.
pub fn print_completions(shell: Shell) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&completions(shell))?;
    stdout.flush()
}

/// Writes `completions/` (one file per shell clap_complete knows, named as
/// the shell looks for it) and `man/` (`gitbak.1`, `gitbak-SUBCOMMAND.1`)
/// under `out_dir`.
pub fn write_all(out_dir: &Path) -> std::io::Result<()> {
    let completions_dir = out_dir.join("completions");
    std::fs::create_dir_all(&completions_dir)?;
    for shell in Shell::value_variants() {
        let name = shell.file_name("gitbak");
        std::fs::write(completions_dir.join(name), completions(*shell))?;
    }
    let man_dir = out_dir.join("man");
    std::fs::create_dir_all(&man_dir)?;
    for (name, page) in man::pages(Cli::command())? {
        std::fs::write(man_dir.join(name), page)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_subcommands_are_never_offered() {
        for shell in Shell::value_variants() {
            let script = String::from_utf8(completions(*shell)).unwrap();
            assert!(script.contains("restore"), "{shell}");
            assert!(!script.contains("generate"), "{shell} offers generate");
        }
    }
}
