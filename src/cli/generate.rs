//! Shell completions and man pages, rendered from the clap definition so
//! they cannot drift from it. Reads no configuration and no secrets.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Writes `completions/gitbak.{bash,zsh,fish}` and `man/gitbak*.1` under `out_dir`.
pub fn write_all(out_dir: &Path) -> std::io::Result<()> {
    let completions = out_dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), "gitbak", &completions)?;
    }
    let man = out_dir.join("man");
    std::fs::create_dir_all(&man)?;
    clap_mangen::generate_to(Cli::command(), &man)?;
    Ok(())
}
