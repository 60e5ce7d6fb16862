//! RFC 9457 problem details: the one error shape the platform answers with.
//!
//! `code` is the stable, machine-readable part clients act on; `title` is fixed per code;
//! `detail` explains this occurrence and never carries secrets.

use serde::{Deserialize, Serialize};

pub const CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The offending input field, for validation errors (`price.payTo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: u16, code: &str, title: &str) -> Self {
        Problem {
            type_uri: format!("https://402claw.dev/problems/{code}"),
            title: title.to_owned(),
            status,
            code: code.to_owned(),
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
