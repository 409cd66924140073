//! Aligned text tables and relative times, for people.

use chrono::{DateTime, Utc};

/// `header` and `rows` as lines, columns padded to their widest cell (three spaces apart).
pub fn render(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut out = String::new();
        for (i, (c, w)) in cells.into_iter().zip(&widths).enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(w - c.chars().count() + 3));
            }
        }
        out
    };
    let mut lines = vec![line(header.to_vec())];
    lines.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    lines
}

/// Prints `rows` under `header` ([`render`]).
pub fn print(header: &[&str], rows: &[Vec<String>]) {
    for l in render(header, rows) {
        println!("{l}");
    }
}

/// The time since `time`, like `5 seconds ago` (`now - time` at whole units).
pub fn ago_at(time: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - time).num_seconds().max(0);
    let (n, unit) = match secs {
        0..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "minute"),
        3600..=86399 => (secs / 3600, "hour"),
        _ => (secs / 86400, "day"),
    };
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{s} ago")
}

/// The time since `time`, from now.
pub fn ago(time: DateTime<Utc>) -> String {
    ago_at(time, Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_on_the_widest_cell() {
        let rows = vec![
            vec!["a".to_string(), "x".to_string()],
            vec!["longer".to_string(), "é".to_string()],
        ];
        assert_eq!(
            render(&["ID", "STATE"], &rows),
            ["ID       STATE", "a        x", "longer   é"]
        );
    }

    #[test]
    fn relative_times_use_the_largest_whole_unit() {
        let now = Utc::now();
        let at = |s: i64| ago_at(now - chrono::Duration::seconds(s), now);
        assert_eq!(at(0), "0 seconds ago");
        assert_eq!(at(1), "1 second ago");
        assert_eq!(at(61), "1 minute ago");
        assert_eq!(at(7300), "2 hours ago");
        assert_eq!(at(3 * 86400), "3 days ago");
        assert_eq!(at(-5), "0 seconds ago", "a clock ahead of ours");
    }
}
