//! Dataset files: a CSV or JSON upload read, bounded and typed at upload time, and written
//! as the JSON module the fixed query Worker (`dataset_worker.js`) serves.
//!
//! Why here and not in the generated Worker: every rule (the CSV grammar, the bounds, the
//! type of each column) is decided once, natively tested, and a bad file is a 400 naming the
//! line at upload time, never a Worker that fails on its first call; the Worker starts from
//! typed rows (one `JSON.parse` of the module) and only queries.
//!
//! - CSV: RFC 4180 (a header row; fields separated by `,`; `"` quotes fields holding `,`,
//!   `"` (doubled) or line breaks; CRLF or LF), UTF-8 (a BOM is dropped), every row as many
//!   fields as the header, blank lines skipped. An empty field is null.
//! - JSON: an array of flat objects (string, number, boolean or null values); the columns
//!   are the keys in order of first appearance, a missing key is null.
//! - Types, per column, over its non-null values: `integer` (all whole numbers within
//!   +-(2^53 - 1), exact in JavaScript), else `number` (all finite numbers), else `boolean`
//!   (`true`/`false`, any case in CSV), else `string`. In JSON files a string stays a string.
//! - Column names: 1 to 64 characters, no `.` (the query syntax's operator separator), no
//!   control characters, unique, not a query word (`fields`, `sort`, `limit`, `cursor`,
//!   `format`).
//! - Bounds: the file size is the caller's ([`super::MAX_DATASET_BYTES`]); at most
//!   [`MAX_ROWS`] rows and [`MAX_COLUMNS`] columns.

use serde_json::{Number, Value};

pub const MAX_ROWS: usize = 200_000;
pub const MAX_COLUMNS: usize = 64;
pub const MAX_COLUMN_NAME: usize = 64;
/// Query parameters of the dataset Worker: no column may be named like one.
pub const QUERY_WORDS: &[&str] = &["fields", "sort", "limit", "cursor", "format"];
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Integer,
    Number,
    Boolean,
    String,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Integer => "integer",
            ColumnType::Number => "number",
            ColumnType::Boolean => "boolean",
            ColumnType::String => "string",
        }
    }
}

/// A cell as read, before typing.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    /// CSV text: its type is inferred.
    Raw(String),
    /// A JSON string: always a string.
    Str(String),
    Num(Number),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<(String, ColumnType)>,
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatasetError {
    #[error("the file is not UTF-8")]
    NotUtf8,
    #[error("the file has no header row")]
    NoHeader,
    #[error("line {line}: {found} fields, the header has {expected}")]
    FieldCount {
        line: usize,
        found: usize,
        expected: usize,
    },
    #[error("line {line}: a quote inside an unquoted field, or text after a closing quote")]
    StrayQuote { line: usize },
    #[error("line {line}: a quoted field is never closed")]
    UnclosedQuote { line: usize },
    #[error("column {0:?}: {1}")]
    BadColumn(String, String),
    #[error("at most {MAX_COLUMNS} columns")]
    TooManyColumns,
    #[error("at most {MAX_ROWS} rows")]
    TooManyRows,
    #[error("not a JSON array of objects: {0}")]
    BadJson(String),
    #[error("row {row}, key {key:?}: values are strings, numbers, booleans or null")]
    NestedValue { row: usize, key: String },
}

fn check_column(name: &str, seen: &[(String, ColumnType)]) -> Result<(), DatasetError> {
    let bad = |why: &str| Err(DatasetError::BadColumn(name.to_owned(), why.to_owned()));
    if name.is_empty() || name.chars().count() > MAX_COLUMN_NAME {
        return bad("column names are 1 to 64 characters");
    }
    if name.contains('.') || name.chars().any(char::is_control) {
        return bad("column names have no '.' and no control characters");
    }
    if QUERY_WORDS.contains(&name) {
        return bad("this name is a query parameter of the dataset API");
    }
    if seen.iter().any(|(n, _)| n == name) {
        return bad("appears twice");
    }
    Ok(())
}

/// Splits CSV text into records (each with its first line number).
fn csv_records(text: &str) -> Result<Vec<(usize, Vec<String>)>, DatasetError> {
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut start_line = 1usize;
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut quoted = false; // the current field was quoted (and closed)
    let mut any = false; // the current record has content
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    in_quotes = false;
                    quoted = true;
                }
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !quoted => {
                in_quotes = true;
                any = true;
            }
            '"' => return Err(DatasetError::StrayQuote { line }),
            ',' => {
                fields.push(std::mem::take(&mut field));
                quoted = false;
                any = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if any || !field.is_empty() {
                    fields.push(std::mem::take(&mut field));
                    records.push((start_line, std::mem::take(&mut fields)));
                }
                quoted = false;
                any = false;
                line += 1;
                start_line = line;
            }
            c if quoted => {
                let _ = c;
                return Err(DatasetError::StrayQuote { line });
            }
            c => {
                field.push(c);
                any = true;
            }
        }
    }
    if in_quotes {
        return Err(DatasetError::UnclosedQuote { line: start_line });
    }
    if any || !field.is_empty() {
        fields.push(field);
        records.push((start_line, fields));
    }
    Ok(records)
}

pub fn parse_csv(bytes: &[u8]) -> Result<Table, DatasetError> {
    let text = std::str::from_utf8(bytes).map_err(|_| DatasetError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = csv_records(text)?.into_iter();
    let (_, header) = records.next().ok_or(DatasetError::NoHeader)?;
    if header.len() > MAX_COLUMNS {
        return Err(DatasetError::TooManyColumns);
    }
    let mut columns: Vec<(String, ColumnType)> = Vec::new();
    for h in header {
        let name = h.trim().to_owned();
        check_column(&name, &columns)?;
        columns.push((name, ColumnType::String));
    }
    let mut rows = Vec::new();
    for (line, fields) in records {
        if fields.len() != columns.len() {
            return Err(DatasetError::FieldCount {
                line,
                found: fields.len(),
                expected: columns.len(),
            });
        }
        if rows.len() == MAX_ROWS {
            return Err(DatasetError::TooManyRows);
        }
        rows.push(
            fields
                .into_iter()
                .map(|f| {
                    if f.is_empty() {
                        Cell::Null
                    } else {
                        Cell::Raw(f)
                    }
                })
                .collect(),
        );
    }
    Ok(typed(columns, rows))
}

pub fn parse_json(bytes: &[u8]) -> Result<Table, DatasetError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| DatasetError::BadJson(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(DatasetError::BadJson(
            "the top level is not an array".into(),
        ));
    };
    if items.len() > MAX_ROWS {
        return Err(DatasetError::TooManyRows);
    }
    let mut columns: Vec<(String, ColumnType)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            return Err(DatasetError::BadJson(format!("row {i} is not an object")));
        };
        for key in obj.keys() {
            if !columns.iter().any(|(n, _)| n == key) {
                check_column(key, &columns)?;
                if columns.len() == MAX_COLUMNS {
                    return Err(DatasetError::TooManyColumns);
                }
                columns.push((key.clone(), ColumnType::String));
            }
        }
    }
    if columns.is_empty() {
        return Err(DatasetError::NoHeader);
    }
    let mut rows = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(mut obj) = item else {
            return Err(DatasetError::BadJson(format!("row {i} is not an object")));
        };
        let mut row = Vec::with_capacity(columns.len());
        for (name, _) in &columns {
            row.push(match obj.remove(name) {
                None | Some(Value::Null) => Cell::Null,
                Some(Value::String(s)) => Cell::Str(s),
                Some(Value::Number(n)) => Cell::Num(n),
                Some(Value::Bool(b)) => Cell::Bool(b),
                Some(_) => {
                    return Err(DatasetError::NestedValue {
                        row: i,
                        key: name.clone(),
                    })
                }
            });
        }
        rows.push(row);
    }
    Ok(typed(columns, rows))
}

fn as_integer(c: &Cell) -> Option<i64> {
    let v = match c {
        Cell::Raw(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse::<i64>().ok()?
        }
        Cell::Num(n) => n.as_i64()?,
        _ => return None,
    };
    (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER)
        .contains(&v)
        .then_some(v)
}

fn as_number(c: &Cell) -> Option<f64> {
    let v = match c {
        // Rust also reads "inf", "NaN", "+5" and ".5": only plain decimal notation counts.
        Cell::Raw(s) => {
            let plain = s.bytes().any(|b| b.is_ascii_digit())
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'e' | b'E' | b'+'))
                && !s.starts_with('+');
            if !plain {
                return None;
            }
            s.parse::<f64>().ok()?
        }
        Cell::Num(n) => n.as_f64()?,
        _ => return None,
    };
    v.is_finite().then_some(v)
}

fn as_bool(c: &Cell) -> Option<bool> {
    match c {
        Cell::Raw(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Cell::Raw(s) if s.eq_ignore_ascii_case("false") => Some(false),
        Cell::Bool(b) => Some(*b),
        _ => None,
    }
}

/// The column's type over its non-null cells.
fn infer(cells: &mut dyn Iterator<Item = &Cell>) -> ColumnType {
    let mut int = true;
    let mut num = true;
    let mut boolean = true;
    let mut any = false;
    for c in cells.filter(|c| **c != Cell::Null) {
        any = true;
        int = int && as_integer(c).is_some();
        num = num && as_number(c).is_some();
        boolean = boolean && as_bool(c).is_some();
        if !(int || num || boolean) {
            return ColumnType::String;
        }
    }
    match (any, int, num, boolean) {
        (false, ..) => ColumnType::String,
        (_, true, ..) => ColumnType::Integer,
        (_, _, true, _) => ColumnType::Number,
        (_, _, _, true) => ColumnType::Boolean,
        _ => ColumnType::String,
    }
}

fn typed(mut columns: Vec<(String, ColumnType)>, rows: Vec<Vec<Cell>>) -> Table {
    for (i, col) in columns.iter_mut().enumerate() {
        col.1 = infer(&mut rows.iter().map(|r| &r[i]));
    }
    Table { columns, rows }
}

impl Table {
    /// A cell as the query Worker receives it, typed by its column.
    pub fn value(&self, row: usize, col: usize) -> Value {
        let cell = &self.rows[row][col];
        match (self.columns[col].1, cell) {
            (_, Cell::Null) => Value::Null,
            (ColumnType::Integer, c) => as_integer(c).map_or(Value::Null, Value::from),
            (ColumnType::Number, c) => as_number(c)
                .and_then(Number::from_f64)
                .map_or(Value::Null, Value::Number),
            (ColumnType::Boolean, c) => as_bool(c).map_or(Value::Null, Value::Bool),
            (ColumnType::String, Cell::Raw(s) | Cell::Str(s)) => Value::String(s.clone()),
            (ColumnType::String, Cell::Num(n)) => Value::String(n.to_string()),
            (ColumnType::String, Cell::Bool(b)) => Value::String(b.to_string()),
        }
    }

    /// `{"columns":[{"name","type"}],"rows":[[...],...]}`: rows as arrays, in file order.
    pub fn to_module_json(&self) -> Vec<u8> {
        let columns: Vec<Value> = self
            .columns
            .iter()
            .map(|(n, t)| serde_json::json!({ "name": n, "type": t.as_str() }))
            .collect();
        let mut out = Vec::with_capacity(self.rows.len() * 16 * self.columns.len().max(1));
        out.extend_from_slice(b"{\"columns\":");
        out.extend_from_slice(Value::Array(columns).to_string().as_bytes());
        out.extend_from_slice(b",\"rows\":[");
        for r in 0..self.rows.len() {
            if r > 0 {
                out.push(b',');
            }
            out.push(b'[');
            for c in 0..self.columns.len() {
                if c > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(self.value(r, c).to_string().as_bytes());
            }
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn types(t: &Table) -> Vec<(&str, &str)> {
        t.columns
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_str()))
            .collect()
    }

    #[test]
    fn csv_types_are_inferred_per_column() {
        let t = parse_csv(
            "\u{feff}id,name,pop,capital,score\r\n1,Paris,2.1e6,TRUE,\r\n2,\"Lyon, FR\",513275,false,3\r\n\r\n3,\"say \"\"hi\"\"\",,true,x\n"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            types(&t),
            [
                ("id", "integer"),
                ("name", "string"),
                ("pop", "number"),
                ("capital", "boolean"),
                ("score", "string")
            ]
        );
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.value(1, 1), Value::String("Lyon, FR".into()));
        assert_eq!(t.value(2, 1), Value::String("say \"hi\"".into()));
        assert_eq!(t.value(2, 2), Value::Null);
        assert_eq!(t.value(0, 3), Value::Bool(true));
        let json: Value = serde_json::from_slice(&t.to_module_json()).unwrap();
        assert_eq!(
            json["rows"][0],
            serde_json::json!([1, "Paris", 2100000.0, true, null])
        );
        assert_eq!(
            json["columns"][2],
            serde_json::json!({"name": "pop", "type": "number"})
        );
    }

    #[test]
    fn integers_beyond_2_53_and_odd_numbers_are_not_numbers() {
        let t = parse_csv(b"a,b,c,d\n9007199254740992,inf,+5,1\n1,1,1,NaN\n").unwrap();
        assert_eq!(
            types(&t),
            [
                ("a", "number"),
                ("b", "string"),
                ("c", "string"),
                ("d", "string")
            ]
        );
    }

    #[test]
    fn quoted_fields_span_lines_and_errors_name_the_line() {
        let t = parse_csv(b"a,b\n\"x\ny\",2\n3,4\n").unwrap();
        assert_eq!(t.value(0, 0), Value::String("x\ny".into()));
        assert_eq!(
            parse_csv(b"a,b\n1,2\n\n3\n"),
            Err(DatasetError::FieldCount {
                line: 4,
                found: 1,
                expected: 2
            })
        );
        assert_eq!(
            parse_csv(b"a,b\n1,x\"y\n"),
            Err(DatasetError::StrayQuote { line: 2 })
        );
        assert_eq!(
            parse_csv(b"a,b\n\"1,2\n"),
            Err(DatasetError::UnclosedQuote { line: 2 })
        );
        assert_eq!(parse_csv(b""), Err(DatasetError::NoHeader));
        assert!(matches!(
            parse_csv(b"a,a\n1,2\n"),
            Err(DatasetError::BadColumn(..))
        ));
        assert!(matches!(
            parse_csv(b"a,sort\n1,2\n"),
            Err(DatasetError::BadColumn(..))
        ));
        assert!(matches!(
            parse_csv(b"a.b\n1\n"),
            Err(DatasetError::BadColumn(..))
        ));
        assert_eq!(parse_csv(&[0xff, b'\n']), Err(DatasetError::NotUtf8));
    }

    #[test]
    fn row_and_column_bounds() {
        let mut big = String::from("n\n");
        for i in 0..=MAX_ROWS {
            big.push_str(&format!("{i}\n"));
        }
        assert_eq!(parse_csv(big.as_bytes()), Err(DatasetError::TooManyRows));
        let header: Vec<String> = (0..=MAX_COLUMNS).map(|i| format!("c{i}")).collect();
        assert_eq!(
            parse_csv(format!("{}\n", header.join(",")).as_bytes()),
            Err(DatasetError::TooManyColumns)
        );
    }

    #[test]
    fn json_arrays_of_flat_objects() {
        let t = parse_json(
            br#"[{"id":1,"name":"a","ok":true},{"id":2,"name":"12","extra":1.5},{"id":3}]"#,
        )
        .unwrap();
        assert_eq!(
            types(&t),
            [
                ("id", "integer"),
                ("name", "string"),
                ("ok", "boolean"),
                ("extra", "number")
            ]
        );
        assert_eq!(t.value(2, 1), Value::Null);
        assert!(matches!(
            parse_json(br#"{"a":1}"#),
            Err(DatasetError::BadJson(_))
        ));
        assert!(matches!(
            parse_json(br#"[1]"#),
            Err(DatasetError::BadJson(_))
        ));
        assert_eq!(
            parse_json(br#"[{"a":{"b":1}}]"#),
            Err(DatasetError::NestedValue {
                row: 0,
                key: "a".into()
            })
        );
        assert_eq!(parse_json(b"[]"), Err(DatasetError::NoHeader));
    }

    fn csv_field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) || s.is_empty() {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    }

    proptest! {
        /// Any table written as RFC 4180 CSV reads back cell for cell (empty = null).
        #[test]
        fn csv_round_trips(
            rows in proptest::collection::vec(proptest::collection::vec("[a-z0-9 ,\"\n\r-]{0,8}", 3), 0..20)
        ) {
            let mut text = String::from("a,b,c\r\n");
            for r in &rows {
                let line: Vec<String> = r.iter().map(|f| csv_field(f)).collect();
                text.push_str(&line.join(","));
                text.push_str("\r\n");
            }
            let t = parse_csv(text.as_bytes()).unwrap();
            prop_assert_eq!(t.rows.len(), rows.len());
            for (got, want) in t.rows.iter().zip(&rows) {
                for (g, w) in got.iter().zip(want) {
                    let expect = if w.is_empty() { Cell::Null } else { Cell::Raw(w.clone()) };
                    prop_assert_eq!(g, &expect);
                }
            }
        }

        /// Arbitrary bytes are a table or an error, never a panic; a table's module is JSON.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(t) = parse_csv(&bytes) {
                prop_assert!(serde_json::from_slice::<Value>(&t.to_module_json()).is_ok());
            }
            if let Ok(t) = parse_json(&bytes) {
                prop_assert!(serde_json::from_slice::<Value>(&t.to_module_json()).is_ok());
            }
        }
    }
}
