//! The six-digit meter verification password ("验证密码").
//!
//! A meter whose password was never changed stores no hash: it still has the
//! factory default `000000`. Changed passwords are stored as salted,
//! iterated SHA-256 (`pbkdf2-sha256`); a six-digit secret has only 20 bits,
//! so the real protection is the throttling of binding attempts, and the hash
//! only keeps a leaked database from listing passwords outright.

use sha2::{Digest, Sha256};

/// The factory default every meter leaves the factory with.
pub const DEFAULT_PASSWORD: &str = "000000";
const ITERATIONS: u32 = 20_000;

/// Why a new password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Not exactly six digits.
    #[error("the verification password is exactly 6 digits")]
    Format,
    /// The factory default cannot be chosen as a new password.
    #[error("choose a password other than 000000")]
    Default,
}

/// Checks the format of a password a student typed.
pub fn check_format(pw: &str) -> Result<(), PasswordError> {
    if pw.len() == 6 && pw.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(PasswordError::Format)
    }
}

/// Hashes a new password with a caller-supplied random salt (no RNG here:
/// the domain reads no randomness). Stored form: `pbkdf2-sha256$iter$salthex$hashhex`.
pub fn hash(pw: &str, salt: [u8; 16]) -> Result<String, PasswordError> {
    check_format(pw)?;
    if pw == DEFAULT_PASSWORD {
        return Err(PasswordError::Default);
    }
    Ok(format!(
        "pbkdf2-sha256${ITERATIONS}${}${}",
        hex(&salt),
        hex(&derive(pw, &salt, ITERATIONS))
    ))
}

/// Whether `pw` matches the stored hash (`None` = factory default).
/// Compares in constant time so timing does not leak how much matched.
pub fn verify(pw: &str, stored: Option<&str>) -> bool {
    let Some(stored) = stored else {
        return constant_eq(pw.as_bytes(), DEFAULT_PASSWORD.as_bytes());
    };
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(iter), Some(salt), Some(want), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(iter), Some(salt)) = (iter.parse::<u32>(), unhex(salt)) else {
        return false;
    };
    constant_eq(hex(&derive(pw, &salt, iter)).as_bytes(), want.as_bytes())
}

fn derive(pw: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    // PBKDF2 with one output block, HMAC replaced by a keyed hash chain: the
    // goal is cost and salt, not interoperability.
    let mut h: [u8; 32] = Sha256::new()
        .chain_update(salt)
        .chain_update(pw.as_bytes())
        .finalize()
        .into();
    for _ in 0..iterations {
        h = Sha256::new()
            .chain_update(h)
            .chain_update(salt)
            .chain_update(pw.as_bytes())
            .finalize()
            .into();
    }
    h
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_changed_passwords() {
        assert!(verify("000000", None));
        assert!(!verify("000001", None));
        let h = hash("482913", [7; 16]).unwrap();
        assert!(verify("482913", Some(&h)));
        assert!(!verify("000000", Some(&h)));
        assert!(!verify("482914", Some(&h)));
        assert!(!verify("482913", Some("garbage")));
        assert_eq!(hash("000000", [0; 16]), Err(PasswordError::Default));
        assert_eq!(hash("12345", [0; 16]), Err(PasswordError::Format));
        assert_eq!(hash("12345a", [0; 16]), Err(PasswordError::Format));
        // Different salts give different hashes.
        assert_ne!(
            hash("482913", [1; 16]).unwrap(),
            hash("482913", [2; 16]).unwrap()
        );
    }
}
