//! The Prometheus text exposition format, as node_exporter's textfile
//! collector reads it: this run's series rendered, merged into the
//! series other commands left in the same file, and the one value a new
//! run carries over (the last success). Pure: strings in, a string out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One metric family: its help, its type and its samples, each sample a
/// whole line (`name{labels} value`) as it appears in the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Family {
    pub help: String,
    pub kind: String,
    pub samples: Vec<String>,
}

/// A whole file: families by name, written in name order.
pub type Families = BTreeMap<String, Family>;

/// Reads a file this module wrote. Only gitbak's families are kept, and
/// only lines that are HELP, TYPE or a well-formed sample: a damaged file
/// must not stop the next run from writing a good one (node_exporter
/// rejects a whole file for one bad line).
pub fn parse(text: &str) -> Families {
    let mut families = Families::new();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, help)) = rest.split_once(' ') {
                families.entry(name.to_owned()).or_default().help = help.to_owned();
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                families.entry(name.to_owned()).or_default().kind = kind.to_owned();
            }
        } else if let Some(name) = sample_name(line) {
            families
                .entry(name.to_owned())
                .or_default()
                .samples
                .push(line.to_owned());
        }
    }
    families.retain(|name, _| name.starts_with("gitbak_"));
    // A HELP or TYPE line without samples says nothing.
    families.retain(|_, family| !family.samples.is_empty());
    families
}

/// `families` with every sample labelled `command="<command>"` removed
/// and `new` added: one file can hold create's, restore's and verify's
/// series, each run replacing only its own command's.
pub fn merge(mut families: Families, command: &str, new: Families) -> Families {
    let label = format!("command=\"{command}\"");
    for family in families.values_mut() {
        family
            .samples
            .retain(|sample| !labels_of(sample).contains(&label));
    }
    for (name, family) in new {
        let entry = families.entry(name).or_default();
        entry.help = family.help;
        entry.kind = family.kind;
        entry.samples.extend(family.samples);
    }
    families.retain(|_, family| !family.samples.is_empty());
    // The same order every time, whichever command wrote last.
    for family in families.values_mut() {
        family.samples.sort();
    }
    families
}

/// The file's text: each family's HELP, TYPE and samples together, as the
/// format requires.
pub fn render(families: &Families) -> String {
    let mut out = String::new();
    for (name, family) in families {
        if !family.help.is_empty() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
        }
        if !family.kind.is_empty() {
            let _ = writeln!(out, "# TYPE {name} {}", family.kind);
        }
        for sample in &family.samples {
            out.push_str(sample);
            out.push('\n');
        }
    }
    out
}

/// The value of `name`'s sample labelled `command="<command>"`.
pub fn value_of(families: &Families, name: &str, command: &str) -> Option<f64> {
    let label = format!("command=\"{command}\"");
    families
        .get(name)?
        .samples
        .iter()
        .find(|sample| labels_of(sample).contains(&label))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// The metric name of a sample line, if it is one: a valid name, labels
/// in braces or none, and a number.
fn sample_name(line: &str) -> Option<&str> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let valid = name.chars().enumerate().all(|(index, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (index > 0 && c.is_ascii_digit())
    });
    let rest = &line[name_end..];
    let value = match rest.strip_prefix('{') {
        Some(labelled) => labelled.rsplit_once("} ")?.1,
        None => rest.strip_prefix(' ')?,
    };
    (valid && !name.is_empty() && value.trim().parse::<f64>().is_ok()).then_some(name)
}

/// The `{...}` part of a sample line, empty when it has none.
fn labels_of(sample: &str) -> &str {
    match (sample.find('{'), sample.rfind('}')) {
        (Some(open), Some(close)) if open < close => &sample[open..=close],
        _ => "",
    }
}

/// A sample line: `name{key="value",...} value`, label values escaped as
/// the format wants (backslash, double quote, newline).
pub fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> String {
    let mut line = name.to_owned();
    if !labels.is_empty() {
        line.push('{');
        for (index, (key, value)) in labels.iter().enumerate() {
            if index > 0 {
                line.push(',');
            }
            let _ = write!(line, "{key}=\"{}\"", escape(value));
        }
        line.push('}');
    }
    let _ = write!(line, " {}", number(value));
    line
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Whole numbers without a fraction or an exponent (byte counts stay
/// exact and readable); others as Rust prints them, which Go's
/// `strconv.ParseFloat` reads.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(help: &str, samples: &[&str]) -> Family {
        Family {
            help: help.into(),
            kind: "gauge".into(),
            samples: samples.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn samples_escape_label_values_and_print_whole_numbers_plainly() {
        assert_eq!(
            sample("m", &[("a", "x\"y\\z\nw"), ("b", "c")], 3.0),
            "m{a=\"x\\\"y\\\\z\\nw\",b=\"c\"} 3"
        );
        assert_eq!(sample("m", &[], 1.5), "m 1.5");
        assert_eq!(sample("m", &[], 31_000_000_000.0), "m 31000000000");
    }

    #[test]
    fn merging_replaces_only_this_commands_series() {
        let old = parse(
            "# HELP gitbak_x Old help.\n# TYPE gitbak_x gauge\n\
             gitbak_x{command=\"create\"} 1\ngitbak_x{command=\"verify\"} 2\n\
             # HELP gitbak_y Only create has it.\n# TYPE gitbak_y gauge\n\
             gitbak_y{command=\"create\",storage=\"default\"} 7\n\
             garbage that is no sample {\n",
        );
        let mut new = Families::new();
        new.insert(
            "gitbak_x".into(),
            family("New help.", &["gitbak_x{command=\"create\"} 5"]),
        );
        let merged = render(&merge(old, "create", new));
        assert_eq!(
            merged,
            "# HELP gitbak_x New help.\n# TYPE gitbak_x gauge\n\
             gitbak_x{command=\"create\"} 5\ngitbak_x{command=\"verify\"} 2\n"
        );
    }

    #[test]
    fn a_value_is_found_by_name_and_command() {
        let families =
            parse("gitbak_t{command=\"restore\"} 9\ngitbak_t{command=\"create\"} 1700000000.5\n");
        assert_eq!(
            value_of(&families, "gitbak_t", "create"),
            Some(1_700_000_000.5)
        );
        assert_eq!(value_of(&families, "gitbak_t", "verify"), None);
        assert_eq!(value_of(&families, "gitbak_u", "create"), None);
    }
}
