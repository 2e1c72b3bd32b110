//! A plain-text table, aligned for a terminal and readable as Markdown.

/// Rows of cells under a header, printed with aligned columns.
#[derive(Debug, Default)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn print(&self) {
        print!("{self}");
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut std::fmt::Formatter<'_>, cells: &[String]| -> std::fmt::Result {
            write!(f, "|")?;
            for (i, w) in widths.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                write!(f, " {cell:<w$} |")?;
            }
            writeln!(f)
        };
        line(f, &self.header)?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(f, &rule)?;
        for row in &self.rows {
            line(f, &row[..row.len().min(columns)])?;
        }
        Ok(())
    }
}

/// One row's figure over its runs: the best of them, how many there were and how far apart
/// they lay, so a reader can tell a real difference from noise.
#[derive(Debug, Clone, Default)]
pub(crate) struct Runs {
    values: Vec<f64>,
}

impl Runs {
    pub(crate) fn push(&mut self, value: f64) {
        self.values.push(value);
    }

    /// How many runs: the `runs` column.
    pub(crate) fn count(&self) -> String {
        self.values.len().to_string()
    }

    /// The median of the runs, if any.
    pub(crate) fn median(&self) -> Option<f64> {
        median(&self.values)
    }

    /// (max − min) / max of the runs, in percent: the `spread` column; `–` for fewer than
    /// two runs.
    pub(crate) fn spread(&self) -> String {
        if self.values.len() < 2 {
            return "–".to_owned();
        }
        let max = self.values.iter().copied().fold(f64::MIN, f64::max);
        let min = self.values.iter().copied().fold(f64::MAX, f64::min);
        if max > 0.0 {
            format!("{:.0} %", (max - min) / max * 100.0)
        } else {
            "0 %".to_owned()
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count), if any.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// What the `spread` column means, for the text under a table.
pub(crate) const SPREAD_NOTE: &str =
    "runs: how often the row was measured; spread: (max − min) / max of its runs.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_spread() {
        let mut r = Runs::default();
        assert_eq!((r.count().as_str(), r.spread().as_str()), ("0", "–"));
        r.push(100.0);
        assert_eq!((r.count().as_str(), r.spread().as_str()), ("1", "–"));
        r.push(80.0);
        r.push(90.0);
        assert_eq!((r.count().as_str(), r.spread().as_str()), ("3", "20 %"));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        let mut r = Runs::default();
        r.push(5.0);
        r.push(1.0);
        r.push(4.0);
        assert_eq!(r.median(), Some(4.0));
    }

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(&["case", "msg/s"]);
        t.row(vec!["qos2".into(), "24000".into()]);
        assert_eq!(
            t.to_string(),
            "| case | msg/s |\n| ---- | ----- |\n| qos2 | 24000 |\n"
        );
    }
}
