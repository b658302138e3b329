//! Tables from a header and string cells: aligned plain text for the terminal and GitHub
//! markdown for reports. Cells that parse as numbers are right-aligned.

/// Whether a cell reads as a number (right-aligned in tables).
fn numeric(cell: &str) -> bool {
    let trimmed = cell.trim_end_matches(['×', '%', 'x']);
    !trimmed.is_empty() && trimmed.parse::<f64>().is_ok()
}

/// Column widths: the widest cell (in characters) of each column, header included.
fn widths(header: &[&str], rows: &[Vec<String>]) -> Vec<usize> {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(w.len()) {
            w[i] = w[i].max(cell.chars().count());
        }
    }
    w
}

/// Which columns are numeric, judged by the first row.
fn numeric_columns(n: usize, rows: &[Vec<String>]) -> Vec<bool> {
    (0..n)
        .map(|i| {
            rows.first()
                .and_then(|r| r.get(i))
                .is_some_and(|c| numeric(c))
        })
        .collect()
}

/// Pads `cell` to `width` characters, right-aligned in numeric columns.
fn pad(cell: &str, width: usize, right: bool) -> String {
    if right {
        format!("{cell:>width$}")
    } else {
        format!("{cell:<width$}")
    }
}

/// An aligned plain-text table: header, a rule, then one line per row. Numeric columns
/// (judged by the first row) are right-aligned, header included.
pub fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let w = widths(header, rows);
    let right = numeric_columns(header.len(), rows);
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(w.iter().zip(&right))
            .map(|(c, (&n, &r))| pad(c, n, r))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    let rules: Vec<String> = w.iter().map(|&n| "-".repeat(n)).collect();
    out.push_str(&line(&mut rules.iter().map(String::as_str)));
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// A GitHub markdown table; numeric columns (judged by the first row) are right-aligned.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let escape = |s: &str| s.replace('|', "\\|");
    let mut out = format!(
        "| {} |\n",
        header
            .iter()
            .map(|h| escape(h))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let align: Vec<&str> = numeric_columns(header.len(), rows)
        .into_iter()
        .map(|right| if right { "---:" } else { "---" })
        .collect();
    out.push_str(&format!("| {} |\n", align.join(" | ")));
    for row in rows {
        out.push_str(&format!(
            "| {} |\n",
            row.iter()
                .map(|c| escape(c))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_table_aligns_numbers_right_and_words_left() {
        let rows = vec![
            vec!["csr".to_string(), "1.5".to_string()],
            vec!["bsr32".to_string(), "12.25".to_string()],
        ];
        let t = text_table(&["format", "ms"], &rows);
        assert_eq!(
            t,
            "format     ms\n------  -----\ncsr       1.5\nbsr32   12.25\n"
        );
    }

    #[test]
    fn markdown_table_escapes_pipes_and_marks_numeric_columns() {
        let rows = vec![vec!["a|b".to_string(), "3×".to_string()]];
        let t = markdown_table(&["name", "speedup"], &rows);
        assert_eq!(t, "| name | speedup |\n| --- | ---: |\n| a\\|b | 3× |\n");
    }
}
