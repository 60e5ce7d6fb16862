//! RFC 9457 problem details: the one error shape the platform answers with.
//!
//! `code` is the stable, machine-readable part clients act on; `title` is fixed per code;
//! `detail` explains this occurrence and never carries secrets.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

pub const CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Problem {
    pub status: u16,
    pub code: Cow<'static, str>,
    pub title: Cow<'static, str>,
    #[serde(default)]
    pub detail: Option<String>,
    /// The offending input field, for validation errors (`price.payTo`).
    #[serde(default)]
    pub field: Option<String>,
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(
            "type",
            &format!("https://402claw.dev/problems/{}", self.code),
        )?;
        m.serialize_entry("title", &self.title)?;
        m.serialize_entry("status", &self.status)?;
        m.serialize_entry("code", &self.code)?;
        if let Some(d) = &self.detail {
            m.serialize_entry("detail", d)?;
        }
        if let Some(f) = &self.field {
            m.serialize_entry("field", f)?;
        }
        m.end()
    }
}

impl Problem {
    pub fn new(status: u16, code: &'static str, title: &'static str) -> Self {
        Problem {
            status,
            code: Cow::Borrowed(code),
            title: Cow::Borrowed(title),
            detail: None,
            field: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn to_json(&self) -> String {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    pub fn invalid_field(field: &str, detail: impl Into<String>) -> Self {
        Problem::new(400, "invalid_field", "A field is invalid")
            .field(field)
            .detail(detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Problem::new(500, "internal_error", "Internal error").detail(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_rfc9457_fields_and_round_trips() {
        let p = Problem::invalid_field("price.payTo", "must be 0x followed by 40 hex digits");
        let v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(v["type"], "https://402claw.dev/problems/invalid_field");
        assert_eq!(v["status"], 400);
        assert_eq!(v["code"], "invalid_field");
        assert_eq!(v["field"], "price.payTo");
        let back: Problem = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }
}
