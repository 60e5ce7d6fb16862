//! Bearer tokens for the platform's operator APIs.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether an `Authorization` header carries `expected` as a bearer token.
///
/// `expected == None` (no secret configured) means the API is closed: nothing matches.
/// Both sides are hashed first, so the comparison takes the same time whatever the
/// lengths, and it is constant-time over the digests.
pub fn bearer_matches(authorization: Option<&str>, expected: Option<&str>) -> bool {
    let Some(expected) = expected.filter(|e| !e.is_empty()) else {
        return false;
    };
    let Some(given) = bearer(authorization) else {
        return false;
    };
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(bearer_matches(Some("Bearer s3cret"), Some("s3cret")));
        assert!(bearer_matches(Some("bearer  s3cret "), Some("s3cret")));
        assert!(!bearer_matches(Some("Bearer s3cre"), Some("s3cret")));
        assert!(!bearer_matches(Some("Basic s3cret"), Some("s3cret")));
        assert!(!bearer_matches(Some("s3cret"), Some("s3cret")));
        assert!(!bearer_matches(None, Some("s3cret")));
        // No token configured: closed, even for an empty bearer.
        assert!(!bearer_matches(Some("Bearer "), None));
        assert!(!bearer_matches(Some("Bearer "), Some("")));
        assert_eq!(bearer(Some(" Bearer  claw_ck_1 ")), Some("claw_ck_1"));
        assert_eq!(bearer(Some("Basic claw_ck_1")), None);
        assert_eq!(bearer(None), None);
    }
}
