//! CSV text (RFC 4180 quoting) from a header and string cells.

/// Quotes a field when it holds a comma, quote or line break.
fn field(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

/// The CSV document: the header line, then one line per row, `\n`-terminated.
pub fn to_csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let line = |cells: Vec<String>| cells.join(",") + "\n";
    let mut out = line(header.iter().map(|h| field(h)).collect());
    for row in rows {
        out.push_str(&line(row.iter().map(|c| field(c)).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_csv;

    #[test]
    fn quotes_only_fields_that_need_it() {
        let rows = vec![vec![
            "a,b".to_string(),
            "say \"hi\"".to_string(),
            "2:4".to_string(),
        ]];
        assert_eq!(
            to_csv(&["x", "y", "z"], &rows),
            "x,y,z\n\"a,b\",\"say \"\"hi\"\"\",2:4\n"
        );
    }
}
