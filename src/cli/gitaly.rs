//! Gitaly mode: gitaly-backup's command line and environment, as GitLab's
//! backup.rake passes them (spec §1, §8.1), translated into gitbak's own
//! clap types so both front ends run the very same commands.
//!
//! gitaly-backup parses flags the Go way: one or two dashes, `-flag value`
//! or `-flag=value`, booleans bare or as `-flag=true|false`. Its flags that
//! gitbak spells alike (`-path`, `-id`) become gitbak's; the ones gitbak has
//! no flag for (`-layout`, `-server-side`, `-remove-all-repositories`),
//! `-incremental` (whose meaning depends on `-layout`, see `run`) and
//! `-parallel`/`-parallel-storage`, whose zero means something else here
//! (spec §6.1), land in `GitalyFlags`.
//! gitbak's own long flags work in either spelling too; everything Rails
//! cannot put on the command line comes from `GITBAK_*` variables, which
//! clap reads. This module only translates; `run` hands the result to the
//! same code `gitbak create`/`restore` use.

mod run;
mod servers;

use std::ffi::OsString;

use clap::{CommandFactory, Parser};

use super::Cli;
use crate::exit::UsageError;
use crate::job::progress::CommandName;
use crate::job::scheduler::Limits;

pub use run::run;
pub use servers::{GitalyServers, ServersError};

/// The name GitLab gives the binary: invoked under it, gitbak is in
/// gitaly mode whatever the flags.
pub const GITALY_BACKUP: &str = "gitaly-backup";

/// gitaly-backup's flags (spec §1.2, §1.3): any of them with one dash
/// switches to gitaly mode.
const GITALY_FLAGS: &[&str] = &[
    "path",
    "id",
    "layout",
    "parallel",
    "parallel-storage",
    "incremental",
    "server-side",
    "remove-all-repositories",
];

/// `-parallel` ≤ 0 with `-parallel-storage` > 0 means no global cap
/// (spec §6.1); the scheduler needs a number, and per-storage slots
/// already bound the jobs to storages × `-parallel-storage`.
const NO_GLOBAL_CAP: usize = 1 << 16;

/// Whether this command line is gitaly-backup's: the program is named
/// `gitaly-backup`, or one of its flags is given with a single dash.
/// gitbak's own one-letter flags (`-h`, `-V`) never count.
pub fn is_gitaly_mode(args: &[OsString]) -> bool {
    let invoked_as_gitaly = args.first().is_some_and(|program| {
        std::path::Path::new(program)
            .file_name()
            .is_some_and(|name| name == GITALY_BACKUP)
    });
    invoked_as_gitaly
        || args
            .iter()
            .skip(1)
            .take_while(|arg| *arg != "--")
            .filter_map(|arg| arg.to_str())
            .filter_map(|arg| arg.strip_prefix('-'))
            .filter(|rest| !rest.starts_with('-'))
            .any(|rest| GITALY_FLAGS.contains(&rest.split('=').next().unwrap_or_default()))
}

/// `-layout`: only the manifest layout is written; the others are
/// accepted so older Rails versions keep working (spec §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Manifest,
    Pointer,
    Legacy,
}

/// What gitaly-backup's flags ask for beyond gitbak's own options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitalyFlags {
    /// `-parallel`; `None`: the number of CPUs.
    pub parallel: Option<i64>,
    /// `-parallel-storage`; `None`: 2.
    pub parallel_storage: Option<i64>,
    pub layout: Option<Layout>,
    pub incremental: bool,
    pub server_side: bool,
    /// `-remove-all-repositories`, every occurrence merged.
    pub remove_all_repositories: Vec<String>,
}

impl GitalyFlags {
    /// gitaly-backup's scheduling model (spec §6.1) as the scheduler's caps:
    /// a value ≤ 0 removes that kind of cap; with both ≤ 0, one job at a time.
    pub fn limits(&self, cpus: usize) -> Limits {
        let parallel = self.parallel.unwrap_or(cpus as i64);
        let parallel_storage = self.parallel_storage.unwrap_or(2);
        let count = |value: i64| {
            usize::try_from(value)
                .unwrap_or(NO_GLOBAL_CAP)
                .min(NO_GLOBAL_CAP)
        };
        match (parallel > 0, parallel_storage > 0) {
            (true, true) => Limits {
                parallel: count(parallel),
                parallel_storage: count(parallel_storage),
            },
            // One pool of `-parallel` workers, whatever the storage.
            (true, false) => Limits {
                parallel: count(parallel),
                parallel_storage: count(parallel),
            },
            (false, true) => Limits {
                parallel: NO_GLOBAL_CAP,
                parallel_storage: count(parallel_storage),
            },
            (false, false) => Limits {
                parallel: 1,
                parallel_storage: 1,
            },
        }
    }
}

/// A gitaly-mode command line, translated.
#[derive(Debug)]
pub struct GitalyArgs {
    /// `create` or `restore` with gitbak's options.
    pub cli: Cli,
    pub flags: GitalyFlags,
}

/// What reading a gitaly-mode command line gave.
#[derive(Debug)]
pub enum Translation {
    Run(Box<GitalyArgs>),
    /// `--help` or `--version`: clap prints it and exits 0.
    Display(clap::Error),
    /// Reported as gitaly-backup reports errors: a JSON line, exit 1.
    Usage(UsageError),
}

/// Translates gitaly-backup's argv (`args[0]` is the program) into gitbak's
/// clap types. `--help` shows gitbak's help, in gitbak's spelling.
pub fn translate(args: &[OsString]) -> Translation {
    let mut rest = args.iter().skip(1);
    let Some(subcommand) = rest.next() else {
        return Translation::Usage(UsageError(
            "missing subcommand: use create or restore".into(),
        ));
    };
    let Some(subcommand) = subcommand.to_str() else {
        return Translation::Usage(UsageError(format!("unknown subcommand: {subcommand:?}")));
    };
    let command = match subcommand {
        "create" => CommandName::Create,
        "restore" => CommandName::Restore,
        "-h" | "-help" | "--help" | "help" => return display(&["--help"]),
        "-v" | "-V" | "-version" | "--version" => return display(&["--version"]),
        other => {
            return Translation::Usage(UsageError(format!(
                "unknown subcommand: {other:?}; gitaly mode runs create or restore"
            )))
        }
    };
    let rest: Vec<OsString> = rest.cloned().collect();
    let (flags, gitbak_args) = match read_flags(command, &rest) {
        Ok(read) => read,
        Err(error) => return Translation::Usage(error),
    };
    let mut argv: Vec<OsString> = vec!["gitbak".into(), command.as_str().into()];
    argv.extend(gitbak_args);
    match Cli::try_parse_from(argv) {
        Ok(cli) => Translation::Run(Box::new(GitalyArgs { cli, flags })),
        Err(error) => clap_failure(error),
    }
}

fn display(args: &[&str]) -> Translation {
    let argv = std::iter::once("gitbak").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Err(error) => clap_failure(error),
        Ok(_) => Translation::Usage(UsageError(
            "missing subcommand: use create or restore".into(),
        )),
    }
}

fn clap_failure(error: clap::Error) -> Translation {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Translation::Display(error),
        _ => {
            // clap's first line, without its "error: " and the usage after it.
            let text = error.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            Translation::Usage(UsageError(first.trim_start_matches("error: ").to_owned()))
        }
    }
}

/// How one flag of the command line is spelled: its name and the value
/// after `=`, if any.
fn split_flag(arg: &str) -> Option<(&str, Option<&str>)> {
    let body = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    if body.is_empty() || body.starts_with('-') {
        return None;
    }
    Some(match body.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (body, None),
    })
}

/// Reads the flags after the subcommand: gitaly-backup's into
/// `GitalyFlags`, gitbak's passed on in gitbak's spelling.
fn read_flags(
    command: CommandName,
    args: &[OsString],
) -> Result<(GitalyFlags, Vec<OsString>), UsageError> {
    let clap_command = Cli::command();
    let subcommand = clap_command
        .find_subcommand(command.as_str())
        .ok_or_else(|| UsageError(format!("unknown subcommand: {:?}", command.as_str())))?;
    let mut flags = GitalyFlags::default();
    let mut gitbak = Vec::new();
    // Given twice, the last one counts, as in Go; clap would refuse the repeat.
    let (mut path, mut id) = (None, None);
    let mut index = 0;
    while index < args.len() {
        let raw = &args[index];
        index += 1;
        let Some(arg) = raw.to_str() else {
            return Err(UsageError(format!("unexpected argument {raw:?}")));
        };
        if arg == "--" {
            if let Some(extra) = args.get(index) {
                return Err(UsageError(format!("unexpected argument {extra:?}")));
            }
            break;
        }
        let Some((name, inline)) = split_flag(arg) else {
            return Err(UsageError(format!("unexpected argument {arg:?}")));
        };
        // The value of a flag that takes one: after `=`, or the next argument
        // (even one starting with a dash, as Go's flag package reads it).
        let value = |index: &mut usize| -> Result<OsString, UsageError> {
            if let Some(inline) = inline {
                return Ok(inline.into());
            }
            let next = args
                .get(*index)
                .cloned()
                .ok_or_else(|| UsageError(format!("flag needs an argument: -{name}")))?;
            *index += 1;
            Ok(next)
        };
        match name {
            "h" | "help" => gitbak.push("--help".into()),
            "path" => path = Some(value(&mut index)?),
            "id" => id = Some(value(&mut index)?),
            "parallel" => flags.parallel = Some(go_int(name, &value(&mut index)?)?),
            "parallel-storage" => flags.parallel_storage = Some(go_int(name, &value(&mut index)?)?),
            "layout" => flags.layout = Some(layout(command, &value(&mut index)?)?),
            "server-side" => flags.server_side = go_bool(name, inline)?,
            "incremental" if command == CommandName::Create => {
                flags.incremental = go_bool(name, inline)?;
            }
            "remove-all-repositories" if command == CommandName::Restore => {
                let list = value(&mut index)?;
                let list = list.to_string_lossy();
                flags.remove_all_repositories.extend(
                    list.split(',')
                        .filter(|name| !name.is_empty())
                        .map(str::to_owned),
                );
            }
            _ => {
                let Some(argument) = subcommand
                    .get_arguments()
                    .find(|argument| argument.get_long() == Some(name))
                else {
                    return Err(UsageError(format!(
                        "flag provided but not defined: -{name}"
                    )));
                };
                let long = format!("--{name}");
                if argument.get_action().takes_values() {
                    gitbak.push(joined(&long, value(&mut index)?));
                } else if go_bool(name, inline)? {
                    gitbak.push(long.into());
                }
            }
        }
    }
    if flags.server_side && path.is_some() {
        return Err(UsageError(format!(
            "{}: path cannot be used with server-side backups",
            command.as_str()
        )));
    }
    gitbak.extend(path.map(|path| joined("--path", path)));
    gitbak.extend(id.map(|id| joined("--id", id)));
    Ok((flags, gitbak))
}

/// `--flag=value`: one argument, so a value starting with a dash stays a value.
fn joined(flag: &str, value: OsString) -> OsString {
    let mut text = OsString::from(flag);
    text.push("=");
    text.push(value);
    text
}

/// Go's `strconv.ParseBool`, for a boolean flag given bare or with `=`.
fn go_bool(name: &str, value: Option<&str>) -> Result<bool, UsageError> {
    match value {
        None => Ok(true),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(other) => Err(UsageError(format!(
            "invalid boolean value {other:?} for -{name}: parse error"
        ))),
    }
}

fn go_int(name: &str, value: &OsString) -> Result<i64, UsageError> {
    let text = value.to_string_lossy();
    text.parse().map_err(|_| {
        UsageError(format!(
            "invalid value {text:?} for flag -{name}: parse error"
        ))
    })
}

fn layout(command: CommandName, value: &OsString) -> Result<Layout, UsageError> {
    match value.to_str() {
        Some("manifest") => Ok(Layout::Manifest),
        Some("pointer") => Ok(Layout::Pointer),
        Some("legacy") => Ok(Layout::Legacy),
        _ => Err(UsageError(format!(
            "{}: resolve locator: unknown layout: {:?}; use manifest, pointer or legacy",
            command.as_str(),
            value.to_string_lossy()
        ))),
    }
}

#[cfg(test)]
mod tests;
