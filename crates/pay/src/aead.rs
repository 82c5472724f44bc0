//! AEAD_AES_256_GCM as used for notification resources (wechat-notes §3.6):
//! key = APIv3 key, nonce = the 12 UTF-8 bytes of `resource.nonce`,
//! AAD = `resource.associated_data` (may be empty), ciphertext = base64(ct ‖ tag).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::keys::ApiV3Key;

/// Why a resource could not be decrypted. Tampering shows up as `Authentication`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AeadError {
    /// The nonce is not 12 bytes.
    #[error("nonce must be 12 bytes, got {0}")]
    NonceLength(usize),
    /// The ciphertext is not valid base64.
    #[error("ciphertext is not valid base64")]
    Base64,
    /// The tag did not verify: wrong key, wrong AAD/nonce or tampered ciphertext.
    #[error("ciphertext failed authentication")]
    Authentication,
}

fn key(api_v3_key: &ApiV3Key) -> LessSafeKey {
    // A 32-byte key is exactly what AES-256 takes; ring cannot refuse it.
    let unbound = UnboundKey::new(&AES_256_GCM, api_v3_key.as_bytes())
        .unwrap_or_else(|_| unreachable!("AES-256 accepts any 32-byte key"));
    LessSafeKey::new(unbound)
}

fn nonce(nonce: &str) -> Result<Nonce, AeadError> {
    Nonce::try_assume_unique_for_key(nonce.as_bytes())
        .map_err(|_| AeadError::NonceLength(nonce.len()))
}

/// Decrypts a notification (or certificate) resource.
pub fn decrypt(
    api_v3_key: &ApiV3Key,
    nonce_str: &str,
    associated_data: &str,
    ciphertext_b64: &str,
) -> Result<Vec<u8>, AeadError> {
    let nonce = nonce(nonce_str)?;
    let mut buf = STANDARD
        .decode(ciphertext_b64)
        .map_err(|_| AeadError::Base64)?;
    let plain = key(api_v3_key)
        .open_in_place(nonce, Aad::from(associated_data.as_bytes()), &mut buf)
        .map_err(|_| AeadError::Authentication)?;
    Ok(plain.to_vec())
}

/// Encrypts a resource the way WeChat does; used by the sandbox.
pub fn encrypt(
    api_v3_key: &ApiV3Key,
    nonce_str: &str,
    associated_data: &str,
    plaintext: &[u8],
) -> Result<String, AeadError> {
    let nonce = nonce(nonce_str)?;
    let mut buf = plaintext.to_vec();
    key(api_v3_key)
        .seal_in_place_append_tag(nonce, Aad::from(associated_data.as_bytes()), &mut buf)
        .map_err(|_| AeadError::Authentication)?;
    Ok(STANDARD.encode(buf))
}
