//! The declarative JSON reshaping of a proxy's response ([`JsonTransform`]).
//!
//! Applies to the top-level object, or to each object of a top-level array (other array
//! elements pass through unchanged). For one object, in this order:
//! 1. `select`: keep only the listed fields (all fields when `select` is empty);
//! 2. `rename`: every `old -> new` at once, so `{a->b, b->a}` swaps. A renamed field
//!    replaces an untouched field of the same new name; if two renames target one name
//!    (config validation refuses that), the later field in the document wins;
//! 3. `drop`: remove the listed fields, by their names after renaming.
//!
//! So `select` and `rename` keys use upstream names, `drop` uses output names.
//! Field values are moved byte for byte (`serde_json`'s `RawValue`): numbers keep every
//! digit, nested values are not touched. Field order follows the upstream document. A
//! repeated name in the upstream object keeps its first position and its last value, as
//! `JSON.parse` does. Output is compact JSON. The body size is capped by the caller; nesting
//! depth is not limited, as nested values are scanned (without recursion) but not rebuilt.

use claw_durable::problem::Code;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use claw_durable::tenant::JsonTransform;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransformError {
    #[error("the upstream body is not JSON")]
    NotJson,
    #[error("the upstream JSON is neither an object nor an array")]
    NotObjectOrArray,
}

impl TransformError {
    pub fn code(&self) -> Code {
        match self {
            TransformError::NotJson => Code::UpstreamNotJson,
            TransformError::NotObjectOrArray => Code::UpstreamJsonShape,
        }
    }

    /// The upstream answered something the tenant's transform cannot read: 502.
    pub fn status(&self) -> u16 {
        self.code().status()
    }
}

/// Whether a transform runs on an upstream response of this status: successes with a body
/// (200..=299 except 204, 205 and 206). Other responses go back as the upstream sent them.
pub fn transform_applies(status: u16) -> bool {
    (200..300).contains(&status) && !(204..=206).contains(&status)
}

/// Reshapes `body` by `t`; returns compact JSON.
pub fn apply_transform(body: &[u8], t: &JsonTransform) -> Result<Vec<u8>, TransformError> {
    let doc: &RawValue = serde_json::from_slice(body).map_err(|_| TransformError::NotJson)?;
    let text = doc.get();
    let mut out = Vec::with_capacity(text.len());
    match text.as_bytes().first() {
        Some(b'{') => transform_object(text, t, &mut out)?,
        Some(b'[') => {
            let items: Vec<&RawValue> =
                serde_json::from_str(text).map_err(|_| TransformError::NotJson)?;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if item.get().starts_with('{') {
                    transform_object(item.get(), t, &mut out)?;
                } else {
                    out.extend_from_slice(item.get().as_bytes());
                }
            }
            out.push(b']');
        }
        _ => return Err(TransformError::NotObjectOrArray),
    }
    Ok(out)
}

/// An object's fields in document order, values left as raw JSON text.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'a>, A::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'a RawValue>()? {
                    fields.push((k, v));
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

fn transform_object(
    text: &str,
    t: &JsonTransform,
    out: &mut Vec<u8>,
) -> Result<(), TransformError> {
    let Fields(raw) = serde_json::from_str(text).map_err(|_| TransformError::NotJson)?;

    // Repeated names: first position, last value.
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(raw.len());
    let mut fields: Vec<(&str, &RawValue)> = Vec::with_capacity(raw.len());
    for (k, v) in &raw {
        match position.get(k.as_str()) {
            Some(&i) => fields[i].1 = v,
            None => {
                position.insert(k, fields.len());
                fields.push((k, v));
            }
        }
    }

    // 1. select
    if !t.select.is_empty() {
        let keep: BTreeSet<&str> = t.select.iter().map(String::as_str).collect();
        fields.retain(|(k, _)| keep.contains(k));
    }

    // 2. rename, all at once; (name, renamed, value).
    let renamed: Vec<(&str, bool, &RawValue)> = fields
        .iter()
        .map(|(k, v)| match t.rename.get(*k) {
            Some(new) => (new.as_str(), true, *v),
            None => (*k, false, *v),
        })
        .collect();
    // The winner for each output name: renamed beats untouched, then the later field.
    let mut winner: HashMap<&str, usize> = HashMap::with_capacity(renamed.len());
    for (i, (name, was_renamed, _)) in renamed.iter().enumerate() {
        match winner.get(name) {
            Some(&j) if renamed[j].1 && !was_renamed => {}
            _ => {
                winner.insert(name, i);
            }
        }
    }

    // 3. drop, by output name.
    let dropped: BTreeSet<&str> = t.drop.iter().map(String::as_str).collect();
    out.push(b'{');
    let mut first = true;
    for (i, (name, _, value)) in renamed.iter().enumerate() {
        if winner.get(name) != Some(&i) || dropped.contains(name) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, name).map_err(|_| TransformError::NotJson)?;
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
    }
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn t(select: &[&str], rename: &[(&str, &str)], drop: &[&str]) -> JsonTransform {
        JsonTransform {
            select: select.iter().map(|s| s.to_string()).collect(),
            rename: rename
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            drop: drop.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn run(body: &str, tr: &JsonTransform) -> Result<String, TransformError> {
        apply_transform(body.as_bytes(), tr).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn select_then_rename_then_drop() {
        let body = r#"{"id":1,"name":"x","secret":"s","temp":{"c":20,"f":68},"extra":[1,2]}"#;
        assert_eq!(
            run(
                body,
                &t(&["id", "name", "temp"], &[("temp", "temperature")], &["id"])
            )
            .as_deref(),
            Ok(r#"{"name":"x","temperature":{"c":20,"f":68}}"#)
        );
        // Empty select keeps all fields; drop uses output names.
        assert_eq!(
            run(
                body,
                &t(&[], &[("secret", "hidden")], &["hidden", "extra", "secret"])
            )
            .as_deref(),
            Ok(r#"{"id":1,"name":"x","temp":{"c":20,"f":68}}"#)
        );
        // Dropping the upstream name of a renamed field does nothing.
        assert_eq!(
            run(r#"{"a":1}"#, &t(&[], &[("a", "b")], &["a"])).as_deref(),
            Ok(r#"{"b":1}"#)
        );
        // select names upstream fields, before renaming.
        assert_eq!(
            run(r#"{"a":1,"b":2}"#, &t(&["a"], &[("a", "b")], &[])).as_deref(),
            Ok(r#"{"b":1}"#)
        );
        // No rules: compact copy.
        assert_eq!(
            run(" { \"a\" : [ 1 , 2 ] } ", &t(&[], &[], &[])).as_deref(),
            Ok(r#"{"a":[ 1 , 2 ]}"#)
        );
    }

    #[test]
    fn renames_apply_at_once_and_win_collisions() {
        assert_eq!(
            run(
                r#"{"a":1,"b":2,"c":3}"#,
                &t(&[], &[("a", "b"), ("b", "a")], &[])
            )
            .as_deref(),
            Ok(r#"{"b":1,"a":2,"c":3}"#)
        );
        // Renamed a -> c replaces the untouched c, wherever it sits.
        assert_eq!(
            run(r#"{"c":3,"a":1}"#, &t(&[], &[("a", "c")], &[])).as_deref(),
            Ok(r#"{"c":1}"#)
        );
        assert_eq!(
            run(r#"{"a":1,"c":3}"#, &t(&[], &[("a", "c")], &[])).as_deref(),
            Ok(r#"{"c":1}"#)
        );
        // Two renames onto one name: the later field wins.
        assert_eq!(
            run(r#"{"a":1,"b":2}"#, &t(&[], &[("a", "x"), ("b", "x")], &[])).as_deref(),
            Ok(r#"{"x":2}"#)
        );
    }

    #[test]
    fn values_and_keys_are_exact() {
        let body = r#"{"big":123456789012345678901234567890,"f":1.000000000000000000001,"s":"\u00e9\n\"","k\"ey":true,"n":null}"#;
        assert_eq!(
            run(body, &t(&[], &[("k\"ey", "caf\u{e9}")], &[])).as_deref(),
            Ok(
                r#"{"big":123456789012345678901234567890,"f":1.000000000000000000001,"s":"\u00e9\n\"","café":true,"n":null}"#
            )
        );
        // Repeated names: first position, last value.
        assert_eq!(
            run(r#"{"a":1,"b":2,"a":3}"#, &t(&[], &[], &[])).as_deref(),
            Ok(r#"{"a":3,"b":2}"#)
        );
    }

    #[test]
    fn arrays_transform_each_object() {
        let body = r#"[{"a":1,"b":2},{"b":3},7,"x",null,[{"a":1}],{}]"#;
        assert_eq!(
            run(body, &t(&["a"], &[("a", "z")], &[])).as_deref(),
            Ok(r#"[{"z":1},{},7,"x",null,[{"a":1}],{}]"#)
        );
        assert_eq!(run("[]", &t(&["a"], &[], &[])).as_deref(), Ok("[]"));
    }

    #[test]
    fn non_json_and_scalars_are_errors() {
        let tr = t(&["a"], &[], &[]);
        for body in [
            "",
            "not json",
            "{",
            r#"{"a":1} x"#,
            "{\"a\":1,}",
            "\u{feff}{}",
            "{'a':1}",
        ] {
            assert_eq!(run(body, &tr), Err(TransformError::NotJson), "{body:?}");
        }
        assert_eq!(
            apply_transform(&[0xff, b'{', b'}'], &tr),
            Err(TransformError::NotJson)
        );
        for body in ["1", "\"s\"", "null", "true", " 3.5 "] {
            assert_eq!(
                run(body, &tr),
                Err(TransformError::NotObjectOrArray),
                "{body}"
            );
        }
        // Depth is not limited: nested values are only scanned, never rebuilt.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(run(&deep, &tr).map(|s| s.len()), Ok(200_000));
        let deep_obj = format!(
            "{{\"a\":{}1{},\"b\":2}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            run(&deep_obj, &t(&["b"], &[], &[])).as_deref(),
            Ok(r#"{"b":2}"#)
        );
        assert_eq!(
            (
                TransformError::NotJson.code().as_str(),
                TransformError::NotJson.status()
            ),
            ("upstream_not_json", 502)
        );
    }

    #[test]
    fn which_statuses_transform() {
        for s in [200, 201, 203, 299] {
            assert!(transform_applies(s), "{s}");
        }
        for s in [100, 204, 205, 206, 301, 304, 400, 404, 500] {
            assert!(!transform_applies(s), "{s}");
        }
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("c".to_owned()),
            Just("d".to_owned()),
            "[a-e\"\\\\é]{1,3}"
        ]
    }

    /// Any JSON value, a few levels deep, with the keys the transform under test names.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("a|b|c|d|\\PC{0,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The transform agrees with a model written over `serde_json::Value`.
        #[test]
        fn matches_a_model(
            fields in proptest::collection::vec((key(), any::<i64>()), 0..8),
            select in proptest::collection::vec(key(), 0..3),
            rename in proptest::collection::btree_map(key(), key(), 0..3),
            drop in proptest::collection::vec(key(), 0..3),
        ) {
            // Distinct rename targets, as config validation guarantees.
            let targets: BTreeSet<&String> = rename.values().collect();
            prop_assume!(targets.len() == rename.len());
            let tr = JsonTransform { select: select.clone(), rename: rename.clone(), drop: drop.clone() };
            let mut obj = serde_json::Map::new();
            for (k, v) in &fields { obj.insert(k.clone(), json!(v)); }
            let body = serde_json::to_vec(&Value::Object(obj.clone())).unwrap();
            let got: Value = serde_json::from_slice(&apply_transform(&body, &tr).unwrap()).unwrap();

            let mut model = serde_json::Map::new();
            let selected: Vec<(String, Value)> = obj.into_iter().filter(|(k, _)| select.is_empty() || select.contains(k)).collect();
            for (k, v) in &selected {
                if !rename.contains_key(k) { model.insert(k.clone(), v.clone()); }
            }
            for (k, v) in &selected {
                if let Some(new) = rename.get(k) { model.insert(new.clone(), v.clone()); }
            }
            for d in &drop { model.remove(d); }
            prop_assert_eq!(got, Value::Object(model));
        }

        /// JSON documents of any shape, valid or with a few bytes flipped, dropped or
        /// inserted: a transformed document or a typed error, never a panic; an object or
        /// an array of objects always transforms.
        #[test]
        fn never_panics(
            doc in json_value(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..3),
        ) {
            let mut body = serde_json::to_vec(&doc).unwrap();
            for (at, byte, op) in &edits {
                let i = at.index(body.len() + 1);
                match op {
                    0 if i < body.len() => body[i] = *byte,
                    1 if i < body.len() => { body.remove(i); }
                    _ => body.insert(i.min(body.len()), *byte),
                }
            }
            let got = apply_transform(&body, &t(&["a"], &[("a", "b")], &["c"]));
            let objects = match &doc {
                Value::Object(_) => true,
                Value::Array(items) => items.iter().all(Value::is_object),
                _ => false,
            };
            if edits.is_empty() && objects {
                prop_assert!(got.is_ok(), "{:?}", got);
            }
        }
    }
}
