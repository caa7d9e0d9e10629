//! Plain-text tables and byte counts for `list` and `prune`'s human
//! output. Does no work.

/// Columns padded to their widest cell, two spaces apart; numeric
/// columns right-aligned.
pub struct Table {
    headers: Vec<&'static str>,
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// `headers` ending in `#` are numeric (the `#` is not shown).
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.trim_end_matches('#')).collect(),
            numeric: headers.iter().map(|h| h.ends_with('#')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self, indent: &str) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let headers: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        let mut out = String::new();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::from(indent);
            for (column, cell) in row.iter().enumerate() {
                let pad = widths[column].saturating_sub(cell.chars().count());
                if column > 0 {
                    line.push_str("  ");
                }
                if self.numeric[column] {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `512 B`, `1.5 KiB`, `12.3 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Prints a report to stdout: pretty JSON for `--json`, else `render`'s
/// text (tables).
pub fn print_report<T: serde::Serialize>(
    report: &T,
    json: bool,
    render: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    use std::io::Write;
    let text = if json {
        let mut json = serde_json::to_string_pretty(report)?;
        json.push('\n');
        json
    } else {
        render(report)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_bytes_read_well() {
        let mut table = Table::new(&["ID", "BYTES#", "NOTE"]);
        table.row(vec!["a".into(), "5".into(), "x".into()]);
        table.row(vec!["long-id".into(), "12345".into(), String::new()]);
        assert_eq!(
            table.render(""),
            "ID       BYTES  NOTE\na            5  x\nlong-id  12345\n"
        );
        for (bytes, want) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1536, "1.5 KiB"),
            (5 << 30, "5.0 GiB"),
        ] {
            assert_eq!(human_bytes(bytes), want);
        }
    }
}
