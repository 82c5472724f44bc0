//! Key material: the merchant's signing key, WeChat Pay's verification keys and
//! the APIv3 symmetric key. Every type here redacts itself in `Debug`, so a
//! config struct holding them can derive `Debug` without leaking secrets.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair};

use crate::der::{self, DerError};

/// Why key material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM/DER wrapping is broken.
    #[error("malformed key: {0}")]
    Der(#[from] DerError),
    /// ring refused the private key (wrong algorithm, size or encoding).
    #[error("private key rejected: {0}")]
    Rejected(String),
    /// The APIv3 key must be exactly 32 bytes.
    #[error("APIv3 key must be 32 bytes, got {0}")]
    ApiV3KeyLength(usize),
}

/// Why signing failed (in practice only on RNG failure inside ring's blinding).
#[derive(Debug, thiserror::Error)]
#[error("RSA signing failed")]
pub struct SignError;

/// The merchant API private key (`apiclient_key.pem`, PKCS#8), used for
/// request signatures and the JSAPI `paySign`. The sandbox also uses this type
/// for its platform key, since both sides sign with SHA256withRSA.
pub struct MerchantKey {
    key_pair: RsaKeyPair,
}

impl MerchantKey {
    /// Parses a PKCS#8 `-----BEGIN PRIVATE KEY-----` PEM. Text around the
    /// block (such as a warning comment) is ignored.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let (_, der) = der::pem_decode(pem, &["PRIVATE KEY"])?;
        Self::from_pkcs8_der(&der)
    }

    /// Parses a PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let key_pair =
            RsaKeyPair::from_pkcs8(der).map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Self { key_pair })
    }

    /// Signs `message` with RSASSA-PKCS1-v1_5 / SHA-256 and returns base64.
    pub fn sign_base64(&self, message: &[u8]) -> Result<String, SignError> {
        let mut signature = vec![0u8; self.key_pair.public().modulus_len()];
        self.key_pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| SignError)?;
        Ok(STANDARD.encode(signature))
    }

    /// The matching public key (for the sandbox, which must verify what the
    /// merchant signs, and for tests).
    pub fn public_key(&self) -> RsaPublicKey {
        RsaPublicKey {
            pkcs1_der: self.key_pair.public().as_ref().to_vec(),
        }
    }
}

impl fmt::Debug for MerchantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerchantKey")
            .field("modulus_bits", &(self.key_pair.public().modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

/// An RSA public key held as PKCS#1 `RSAPublicKey` DER, the form ring verifies with.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    pkcs1_der: Vec<u8>,
}

impl RsaPublicKey {
    /// Parses `-----BEGIN PUBLIC KEY-----` (SPKI, what WeChat's `wxp_pub.pem`
    /// holds) or `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = der::pem_decode(pem, &["PUBLIC KEY", "RSA PUBLIC KEY"])?;
        let pkcs1_der = if label == "PUBLIC KEY" {
            der::rsa_pkcs1_from_spki(&der)?
        } else {
            der::expect_tlv(&der, der::TAG_SEQUENCE)?;
            der
        };
        Ok(Self { pkcs1_der })
    }

    /// SHA-256 of the PKCS#1 `RSAPublicKey` DER, lower-case hex: a name for
    /// the key that can be compared without holding the key itself.
    pub fn fingerprint_sha256(&self) -> String {
        ring::digest::digest(&ring::digest::SHA256, &self.pkcs1_der)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Verifies a RSASSA-PKCS1-v1_5 / SHA-256 signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &self.pkcs1_der)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Public keys are not secret, but their bytes are noise in logs.
        f.debug_struct("RsaPublicKey")
            .field("der_len", &self.pkcs1_der.len())
            .finish()
    }
}

/// A WeChat Pay platform certificate reduced to what verification needs.
#[derive(Debug, Clone)]
pub struct PlatformCertificate {
    /// Serial as WeChat spells it in `Wechatpay-Serial` (upper-case hex, no leading zeros).
    pub serial_no: String,
    /// The certified public key.
    pub public_key: RsaPublicKey,
    /// Start of validity (`notBefore`, WeChat's `effective_time`), unix seconds.
    pub effective_unix_s: i64,
    /// End of validity (`notAfter`, WeChat's `expire_time`), unix seconds.
    pub expire_unix_s: i64,
}

impl PlatformCertificate {
    /// Parses a `-----BEGIN CERTIFICATE-----` PEM. Validity dates are not
    /// checked here: WeChat rotates certificates by serial, and an expired one
    /// simply stops being sent.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (_, der) = der::pem_decode(pem, &["CERTIFICATE"])?;
        let parts = der::certificate_parts(&der)?;
        Ok(Self {
            serial_no: der::serial_to_hex(parts.serial),
            public_key: RsaPublicKey {
                pkcs1_der: der::rsa_pkcs1_from_spki(parts.spki)?,
            },
            effective_unix_s: parts.not_before_unix_s,
            expire_unix_s: parts.not_after_unix_s,
        })
    }
}

/// The keys we trust for WeChat Pay's signatures, chosen by `Wechatpay-Serial`.
///
/// New merchants have only the "WeChat Pay public key" (`PUB_KEY_ID_…`);
/// older ones have platform certificates. During a migration WeChat signs with
/// either at random, so both can be held at once (wechat-notes §3.2).
#[derive(Debug, Clone, Default)]
pub struct WechatPayKeys {
    public_key: Option<(String, RsaPublicKey)>,
    certificates: BTreeMap<String, RsaPublicKey>,
}

impl WechatPayKeys {
    /// Keys for public-key mode: the `PUB_KEY_ID_…` and the key itself.
    pub fn with_public_key(public_key_id: impl Into<String>, key: RsaPublicKey) -> Self {
        Self {
            public_key: Some((public_key_id.into(), key)),
            certificates: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a platform certificate.
    pub fn add_certificate(&mut self, certificate: PlatformCertificate) {
        self.certificates
            .insert(certificate.serial_no, certificate.public_key);
    }

    /// Sets the public-key-mode key.
    pub fn set_public_key(&mut self, public_key_id: impl Into<String>, key: RsaPublicKey) {
        self.public_key = Some((public_key_id.into(), key));
    }

    /// The key for a `Wechatpay-Serial` value, if we trust one.
    pub fn key_for_serial(&self, serial: &str) -> Option<&RsaPublicKey> {
        if let Some((id, key)) = &self.public_key
            && id == serial
        {
            return Some(key);
        }
        self.certificates.get(serial)
    }

    /// The `PUB_KEY_ID_…` to announce in our requests' `Wechatpay-Serial`
    /// header, which makes WeChat sign responses with the public-key pair.
    pub fn public_key_id(&self) -> Option<&str> {
        self.public_key.as_ref().map(|(id, _)| id.as_str())
    }

    /// Whether no key at all is configured (such a config can verify nothing).
    pub fn is_empty(&self) -> bool {
        self.public_key.is_none() && self.certificates.is_empty()
    }

    /// Whether a trusted key has this [`RsaPublicKey::fingerprint_sha256`].
    pub(crate) fn contains_fingerprint(&self, fingerprint: &str) -> bool {
        self.public_key
            .iter()
            .map(|(_, k)| k)
            .chain(self.certificates.values())
            .any(|k| k.fingerprint_sha256() == fingerprint)
    }
}

/// The 32-byte APIv3 key, used as the AES-256-GCM key for notification resources.
#[derive(Clone)]
pub struct ApiV3Key([u8; 32]);

impl ApiV3Key {
    /// Takes the key as configured in the merchant platform (32 ASCII bytes).
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::ApiV3KeyLength(bytes.len()))?;
        Ok(Self(key))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ApiV3Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiV3Key(<redacted>)")
    }
}
