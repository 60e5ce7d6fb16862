//! Human output: aligned tables, times, and amounts in whole units beside their atomic value.

use serde_json::Value;

use crate::amount;

/// Left-aligned columns separated by two spaces; widths in characters.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                for _ in c.chars().count()..widths[i] + 2 {
                    s.push(' ');
                }
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// A JSON value as a cell: strings bare, absent as `-`.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| cell(Some(x)))
            .collect::<Vec<_>>()
            .join(","),
        Some(v) => v.to_string(),
    }
}

/// An atomic amount as `0.001 (1000)`: whole units, then the atomic value the API gave.
pub fn money(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => {
            format!("{} ({s})", amount::to_whole(s, amount::DEFAULT_DECIMALS))
        }
        other => cell(other),
    }
}

/// Whole units only (for tables with an atomic column elsewhere, or where space is short).
pub fn whole(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => amount::to_whole(s, amount::DEFAULT_DECIMALS),
        other => cell(other),
    }
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SSZ` (UTC), by civil-from-days arithmetic.
pub fn time_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn time_cell(v: Option<&Value>, unit_ms: i64) -> String {
    match v.and_then(Value::as_i64) {
        Some(t) => time_ms(t * unit_ms),
        None => cell(v),
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_aligned_columns() {
        let t = render(
            &["SLUG", "PLAN"],
            &[
                vec!["weather".into(), "pro".into()],
                vec!["a".into(), "free".into()],
            ],
        );
        assert_eq!(t, "SLUG     PLAN\nweather  pro\na        free\n");
    }

    #[test]
    fn money_shows_whole_and_atomic() {
        assert_eq!(money(Some(&json!("1000"))), "0.001 (1000)");
        assert_eq!(money(Some(&json!("0"))), "0 (0)");
        assert_eq!(money(None), "-");
        assert_eq!(whole(Some(&json!("2500000"))), "2.5");
    }

    #[test]
    fn times_in_utc() {
        assert_eq!(time_ms(0), "1970-01-01 00:00:00Z");
        assert_eq!(time_ms(1_795_308_901_327), "2026-11-22 00:55:01Z");
        assert_eq!(time_ms(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(
            time_cell(Some(&json!(86_400)), 1000),
            "1970-01-02 00:00:00Z"
        );
        assert_eq!(time_cell(None, 1000), "-");
    }
}
