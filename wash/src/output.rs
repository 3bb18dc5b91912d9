//! How results reach the user: aligned `key: value` tables for people, and
//! JSON for scripts. Every command builds one serialisable value and hands
//! it here, so both formats always carry the same facts.

use serde::Serialize;

/// The output format chosen with `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// One JSON document on stdout.
    Json,
}

/// The `-o/--output` flag shared by every command that prints a result.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// Prints `value` as JSON, or `rows` as an aligned two-column table.
pub fn print<T: Serialize>(
    format: Format,
    value: &T,
    rows: &[(&str, String)],
) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Text => print!("{}", table(rows)),
    }
    Ok(())
}

/// Renders rows as `label   value` lines with the values aligned.
pub fn table(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(label, value)| {
            // Padded by hand: format!'s width is capped at u16::MAX.
            let pad = " ".repeat(width - label.chars().count());
            format!("{label}{pad}  {value}\n")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_values() {
        let text = table(&[("a", "1".into()), ("long", "2".into())]);
        assert_eq!(text, "a     1\nlong  2\n");
    }
}
