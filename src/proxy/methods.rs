//! The method allowlist.
//!
//! Methods are case-sensitive (RFC 9110 9.1); config validation uppercases the list, and a
//! caller's `get` is not `GET`. `HEAD` is not implied by `GET`: the list is what is allowed.

use claw_durable::problem::Code;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("method {method} is not allowed; allowed: {allow}")]
pub struct MethodNotAllowed {
    pub method: String,
    /// The value of the 405's `Allow` header.
    pub allow: String,
}

impl MethodNotAllowed {
    pub fn code(&self) -> Code {
        Code::MethodNotAllowed
    }
    pub fn status(&self) -> u16 {
        self.code().status()
    }
}

/// `Ok` when `method` is in `allowed`; otherwise the 405 with its `Allow` value.
pub fn check_method(method: &str, allowed: &[String]) -> Result<(), MethodNotAllowed> {
    if allowed.iter().any(|m| m == method) {
        return Ok(());
    }
    Err(MethodNotAllowed {
        method: method.chars().take(32).collect(),
        allow: allow_header(allowed),
    })
}

/// `GET, POST`: the allowed methods in config order, without repeats.
pub fn allow_header(allowed: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::with_capacity(allowed.len());
    for m in allowed {
        if !seen.contains(&m.as_str()) {
            seen.push(m);
        }
    }
    seen.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ms: &[&str]) -> Vec<String> {
        ms.iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn allowlist() {
        let allowed = list(&["GET", "POST", "GET"]);
        assert_eq!(check_method("GET", &allowed), Ok(()));
        assert_eq!(check_method("POST", &allowed), Ok(()));
        for m in ["HEAD", "get", "DELETE", "", "GET "] {
            let e = check_method(m, &allowed).unwrap_err();
            assert_eq!(e.allow, "GET, POST", "{m}");
            assert_eq!((e.code().as_str(), e.status()), ("method_not_allowed", 405));
        }
        assert_eq!(allow_header(&list(&["GET"])), "GET");
        let long = "X".repeat(1000);
        assert_eq!(check_method(&long, &allowed).unwrap_err().method.len(), 32);
    }
}
