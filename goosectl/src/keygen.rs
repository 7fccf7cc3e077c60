//! `keygen`: a new cluster key, 32 random bytes from the operating system as
//! 64 lowercase hex characters (design.md §5). Needs no daemon.

use crate::error::CtlError;
use crate::output::{self, EXIT_SUCCESS};
use crate::Context;
use serde::Serialize;

/// A fresh key in its file form (without the newline).
pub fn generate_key() -> Result<String, CtlError> {
    let key = goose_common::datagram::ClusterKey::generate()
        .map_err(|error| CtlError::Random(error.to_string()))?;
    Ok(key.to_string())
}

/// The JSON form: `{"key": "..."}`.
#[derive(Serialize)]
struct KeyJson<'a> {
    key: &'a str,
}

/// Prints a new key: exactly the content of a key file, or with `--json`
/// an object holding it.
pub fn keygen(context: &Context) -> Result<u8, CtlError> {
    let key = generate_key()?;
    if context.json {
        output::json(&KeyJson { key: &key })?;
    } else {
        output::line(&key)?;
    }
    Ok(EXIT_SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_64_lowercase_hex_characters_and_differ() {
        let first = generate_key().unwrap();
        let second = generate_key().unwrap();
        assert_eq!(first.len(), 64);
        assert!(first
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert_ne!(first, second);
    }
}
