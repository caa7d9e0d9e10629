//! Man pages: one per visible command (`gitbak.1`, `gitbak-create.1`, …),
//! from clap_mangen's sections plus three of gitbak's own: a synopsis that
//! shows each option's value (`[--path <LOCATION>]`; clap_mangen's leaves
//! values out), the text after `--help`'s options as man sections (the
//! rules in `cli/help.rs`; literal lines unfilled, so a long command never
//! breaks troff's line adjusting), and SEE ALSO.

use std::io;

use clap::{Arg, Command};
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;

/// `(file name, page)` for `command` and each of its visible subcommands.
pub fn pages(command: Command) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let source = format!(
        "{} {}",
        command.get_name(),
        command.get_version().unwrap_or_default()
    );
    let mut pages = Vec::new();
    collect(&command, &source, None, &mut pages)?;
    Ok(pages)
}

fn collect(
    command: &Command,
    source: &str,
    parent: Option<&str>,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> io::Result<()> {
    let man = Man::new(command.clone()).source(source.to_owned());
    pages.push((man.get_filename(), render(command, &man, parent)?));
    let name = page_name(command);
    for subcommand in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        collect(subcommand, source, Some(&name), pages)?;
    }
    Ok(())
}

/// `gitbak-create` for `gitbak create`, as clap_mangen names the file.
fn page_name(command: &Command) -> String {
    command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_owned()
}

fn render(command: &Command, man: &Man, parent: Option<&str>) -> io::Result<Vec<u8>> {
    // Each of clap_mangen's sections starts with the same two-line preamble
    // (it defines `\*(Aq`); the page needs it once, at the top.
    let mut preamble = Vec::new();
    Roff::default().to_writer(&mut preamble)?;
    let mut page = Vec::new();
    let mut section = |render: &dyn Fn(&mut Vec<u8>) -> io::Result<()>| -> io::Result<()> {
        let mut text = Vec::new();
        render(&mut text)?;
        let body = text.strip_prefix(preamble.as_slice()).unwrap_or(&text);
        page.extend_from_slice(if page.is_empty() { &text } else { body });
        Ok(())
    };
    section(&|out| man.render_title(out))?;
    section(&|out| man.render_name_section(out))?;
    section(&|out| synopsis(command).to_writer(out))?;
    section(&|out| man.render_description_section(out))?;
    if command.get_arguments().any(|arg| !arg.is_hide_set()) {
        section(&|out| man.render_options_section(out))?;
    }
    if command.get_subcommands().any(|sub| !sub.is_hide_set()) {
        section(&|out| man.render_subcommands_section(out))?;
    }
    if let Some(text) = command.get_after_help() {
        section(&|out| after_help(&text.to_string()).to_writer(out))?;
    }
    if let Some(parent) = parent {
        section(&|out| see_also(parent).to_writer(out))?;
    }
    if command.get_version().is_some() {
        section(&|out| man.render_version_section(out))?;
    }
    Ok(page)
}

/// `gitbak create [--path <LOCATION>] …`, an option and its value kept
/// together on one line (groff's `SY`/`OP`, which mandoc reads too).
fn synopsis(command: &Command) -> Roff {
    let mut roff = Roff::default();
    roff.control("SH", ["SYNOPSIS"]);
    let name = command.get_bin_name().unwrap_or_else(|| command.get_name());
    roff.control("SY", [name]);
    for arg in command.get_arguments().filter(|arg| !arg.is_hide_set()) {
        if arg.is_positional() {
            continue;
        }
        let flag = match (arg.get_short(), arg.get_long()) {
            (Some(short), Some(long)) => format!("-{short}|--{long}"),
            (Some(short), None) => format!("-{short}"),
            (None, Some(long)) => format!("--{long}"),
            (None, None) => continue,
        };
        let value = value_name(arg);
        if arg.is_required_set() {
            let mut line = vec![bold(flag)];
            line.extend(value.map(|value| italic(format!(" {value}"))));
            roff.text(line);
        } else {
            let flag = escape(&flag);
            roff.control("OP", std::iter::once(flag.as_str()).chain(value.as_deref()));
        }
    }
    for arg in command.get_positionals().filter(|arg| !arg.is_hide_set()) {
        let value = value_name(arg).unwrap_or_else(|| format!("<{}>", arg.get_id()));
        roff.text([italic(if arg.is_required_set() {
            value
        } else {
            format!("[{value}]")
        })]);
    }
    if command.get_subcommands().any(|sub| !sub.is_hide_set()) {
        roff.text([italic("<COMMAND>")]);
    }
    roff.control("YS", []);
    roff
}

/// `<LOCATION>` for an option that takes a value, as `--help` shows it.
fn value_name(arg: &Arg) -> Option<String> {
    if !arg.get_num_args().is_some_and(|range| range.takes_values()) {
        return None;
    }
    let names = match arg.get_value_names() {
        Some(names) => names.iter().map(ToString::to_string).collect(),
        None => vec![arg.get_id().as_str().to_uppercase()],
    };
    Some(
        names
            .iter()
            .map(|name| format!("<{name}>"))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// A macro argument, which roff writes as it is: minus signs, not hyphens.
fn escape(text: &str) -> String {
    text.replace('\\', r"\\").replace('-', r"\-")
}

/// The text after `--help`'s options as man sections, by the rules in
/// `cli/help.rs`.
fn after_help(text: &str) -> Roff {
    let mut roff = Roff::default();
    for paragraph in text.split("\n\n") {
        let mut lines = paragraph.lines().peekable();
        match lines.peek() {
            Some(first) if !first.starts_with(' ') && first.ends_with(':') => {
                let heading = first.trim_end_matches(':').to_uppercase();
                roff.control("SH", [heading.as_str()]);
                lines.next();
            }
            _ => {
                roff.control("PP", []);
            }
        }
        let mut literal = false;
        for line in lines {
            match line.strip_prefix("  ") {
                Some(code) => {
                    if !literal {
                        roff.control("RS", ["4"]).control("nf", []);
                        literal = true;
                    }
                    roff.text([roman(code)]);
                }
                None => {
                    if literal {
                        roff.control("fi", []).control("RE", []);
                        literal = false;
                    }
                    roff.text([roman(line)]);
                }
            }
        }
        if literal {
            roff.control("fi", []).control("RE", []);
        }
    }
    roff
}

fn see_also(parent: &str) -> Roff {
    let mut roff = Roff::default();
    roff.control("SH", ["SEE ALSO"]);
    roff.text([bold(parent), roman("(1)")]);
    roff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_text_becomes_sections() {
        let text = "Examples:\n  gitbak create --path /b\n  # it's\n\nPlain text.\nNo heading: here\n\nExit status:\n0 done.";
        let roff = after_help(text).to_roff();
        assert_eq!(
            roff,
            ".SH EXAMPLES\n.RS 4\n.nf\ngitbak create \\-\\-path /b\n# it's\n.fi\n.RE\n\
             .PP\nPlain text.\nNo heading: here\n.SH \"EXIT STATUS\"\n0 done.\n"
        );
    }
}
