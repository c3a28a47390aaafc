//! Tables as kubectl prints them: upper-case headers, columns left-aligned, three spaces apart.

/// Renders `rows` (the first is the header), each line ending in a newline. Each cell is made
/// one line of plain text first ([`super::output::one_line`]): a value cannot start a row of
/// its own, and the columns line up on what is printed.
pub fn render(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| super::output::one_line(cell))
                .collect()
        })
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                let pad = widths[c] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_three_spaces_apart() {
        let rows = vec![
            vec!["NAME".to_string(), "LEVEL".into(), "DAYS".into()],
            vec!["contoso".to_string(), "Trial".into(), "14d".into()],
            vec!["a".to_string(), "Production".into(), "".into()],
        ];
        assert_eq!(
            super::render(&rows),
            "NAME      LEVEL        DAYS\ncontoso   Trial        14d\na         Production\n"
        );
    }

    #[test]
    fn a_cell_is_one_line_of_plain_text() {
        let rows = vec![
            vec!["NAME".to_string(), "ORGANIZATION".into()],
            vec!["evil".to_string(), "E\u{1b}[2J\nfake   row".into()],
        ];
        assert_eq!(
            super::render(&rows),
            "NAME   ORGANIZATION\nevil   E\\x1b[2J\\nfake   row\n"
        );
    }
}
