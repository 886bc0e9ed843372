//! Tables that fit the terminal: ids are never cut (they must stay copyable), other columns
//! are cut with `…` down to a minimum, and optional columns go first when even that is too
//! wide. No borders: columns are separated by two spaces, as `ls -l`, `kubectl` and `docker` do.

use crate::output::paint;

/// How a column behaves when the table is too wide.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Column {
    pub header: &'static str,
    /// Cut down to this width when needed; `None`: never cut.
    pub min: Option<usize>,
    /// Left out when the table cannot fit otherwise; lower numbers go first.
    pub drop: Option<u8>,
}

impl Column {
    /// Always shown in full (ids, statuses, times).
    pub(crate) const fn fixed(header: &'static str) -> Column {
        Column { header, min: None, drop: None }
    }

    /// Cut with `…` down to `min` characters when needed.
    pub(crate) const fn flexible(header: &'static str, min: usize) -> Column {
        Column { header, min: Some(min), drop: None }
    }

    /// Left out when needed, before any later-ranked optional column.
    pub(crate) const fn optional(self, rank: u8) -> Column {
        Column { drop: Some(rank), ..self }
    }
}

/// A cell: its text and an optional colour (escape sequence).
#[derive(Clone, Debug)]
pub(crate) struct Cell {
    pub text: String,
    pub style: Option<&'static str>,
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell { text, style: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell { text: text.to_owned(), style: None }
    }
}

pub(crate) struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
}

const GAP: usize = 2;

impl Table {
    pub(crate) fn new(columns: Vec<Column>) -> Table {
        Table { columns, rows: Vec::new() }
    }

    pub(crate) fn row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// The lines of the table, fitted to `width` (`None`: no limit).
    pub(crate) fn render(&self, width: Option<usize>, color: bool) -> Vec<String> {
        let natural: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| chars(&one_line(&r[i].text)))
                    .chain([chars(self.columns[i].header)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let widths = fit(&self.columns, &natural, width);
        let mut lines = Vec::with_capacity(self.rows.len() + 1);
        let header: Vec<Cell> = self.columns.iter().map(|c| Cell::from(c.header)).collect();
        for (n, row) in std::iter::once(&header).chain(&self.rows).enumerate() {
            let mut line = String::new();
            let shown: Vec<usize> = (0..self.columns.len()).filter(|i| widths[*i].is_some()).collect();
            for (k, &i) in shown.iter().enumerate() {
                let w = widths[i].unwrap_or(0);
                let text = cut(&one_line(&row[i].text), w);
                let pad = w.saturating_sub(chars(&text));
                let last = k + 1 == shown.len();
                let style = if n == 0 { None } else { row[i].style };
                line.push_str(&paint(color, style, &text));
                if !last {
                    line.push_str(&" ".repeat(pad + GAP));
                }
            }
            lines.push(line);
        }
        lines
    }
}

/// Column widths (`None`: left out) for `natural` widths within `width`.
fn fit(columns: &[Column], natural: &[usize], width: Option<usize>) -> Vec<Option<usize>> {
    let mut shown: Vec<bool> = vec![true; columns.len()];
    let Some(width) = width else {
        return natural.iter().map(|w| Some(*w)).collect();
    };
    // The narrowest the shown columns can get.
    let least = |shown: &[bool]| -> usize {
        let cols: Vec<usize> = (0..columns.len())
            .filter(|i| shown[*i])
            .map(|i| columns[i].min.map_or(natural[i], |m| m.min(natural[i])))
            .collect();
        cols.iter().sum::<usize>() + GAP * cols.len().saturating_sub(1)
    };
    let mut ranks: Vec<(u8, usize)> =
        columns.iter().enumerate().filter_map(|(i, c)| c.drop.map(|r| (r, i))).collect();
    ranks.sort();
    for (_, i) in ranks {
        if least(&shown) <= width {
            break;
        }
        shown[i] = false;
    }
    // Start from the narrowest, then give the room left to cut columns, left to right.
    let mut widths: Vec<Option<usize>> = (0..columns.len())
        .map(|i| shown[i].then(|| columns[i].min.map_or(natural[i], |m| m.min(natural[i]))))
        .collect();
    let mut room = width.saturating_sub(least(&shown));
    for i in 0..columns.len() {
        if let Some(w) = widths[i].as_mut() {
            let more = (natural[i] - *w).min(room);
            *w += more;
            room -= more;
        }
    }
    widths
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Cells are one line: newlines and tabs (in outputs, reasons) become spaces.
fn one_line(text: &str) -> String {
    if text.contains(['\n', '\r', '\t']) { text.replace(['\n', '\r', '\t'], " ") } else { text.to_owned() }
}

/// `text` cut to `width` characters, the last one `…` when something was cut.
pub(crate) fn cut(text: &str, width: usize) -> String {
    if chars(text) <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(vec![
            Column::fixed("INSTANCE"),
            Column::flexible("NAME", 6),
            Column::fixed("STATUS"),
            Column::flexible("OUTPUT", 6).optional(1),
        ]);
        t.row(vec![
            "0123456789abcdef0123456789abcdef".into(),
            "E4_SmsPhoneVerification".into(),
            "Completed".into(),
            "true".into(),
        ]);
        t.row(vec!["short".into(), "X".into(), "Running".into(), "-".into()]);
        t
    }

    #[test]
    fn a_table_that_fits_is_left_alone_without_trailing_spaces() {
        let lines = table().render(Some(200), false);
        assert_eq!(lines[0], "INSTANCE                          NAME                     STATUS     OUTPUT");
        assert_eq!(lines[1], "0123456789abcdef0123456789abcdef  E4_SmsPhoneVerification  Completed  true");
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn ids_stay_whole_while_other_columns_are_cut_or_left_out() {
        let lines = table().render(Some(56), false);
        assert!(lines.iter().all(|l| l.chars().count() <= 56), "{lines:#?}");
        assert!(lines[1].starts_with("0123456789abcdef0123456789abcdef  "));
        assert!(lines[1].contains("E4_Sms") && lines[1].contains('…'), "{lines:#?}");
        assert!(!lines[0].contains("OUTPUT"), "the optional column goes first: {lines:#?}");
        // Too narrow for anything but the fixed columns at their minimum: ids still whole.
        let lines = table().render(Some(10), false);
        assert!(lines[1].starts_with("0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn colour_does_not_count_towards_the_width() {
        let mut t = Table::new(vec![Column::fixed("STATUS"), Column::fixed("X")]);
        t.row(vec![Cell { text: "Failed".into(), style: Some(crate::output::RED) }, "1".into()]);
        let lines = t.render(None, true);
        assert_eq!(lines[1], "\x1b[31mFailed\x1b[0m  1");
    }

    #[test]
    fn cut_marks_what_was_cut() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abcd", 4), "abcd");
        assert_eq!(cut("line\nbreak", 20), "line\nbreak");
        assert_eq!(one_line("line\nbreak"), "line break");
    }
}
