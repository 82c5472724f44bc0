//! Just enough DER and PEM to unwrap RSA keys and X.509 certificates.
//!
//! `ring` takes PKCS#8 private keys and PKCS#1 `RSAPublicKey` DER, while WeChat
//! hands out PEM files holding SPKI public keys and X.509 certificates. Rather
//! than pull in an ASN.1 stack for three fixed shapes, we walk the few TLVs we
//! need; anything unexpected is rejected, never guessed around.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Why a PEM or DER input could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DerError {
    /// No `-----BEGIN <label>-----` … `-----END <label>-----` block with an expected label.
    #[error("no PEM block labelled {0}")]
    MissingPemBlock(&'static str),
    /// The PEM body is not valid base64.
    #[error("PEM body is not valid base64")]
    Base64,
    /// The DER structure ended early or had a length we do not accept.
    #[error("truncated or oversized DER")]
    Truncated,
    /// A tag other than the one the structure requires was found.
    #[error("unexpected DER tag 0x{found:02x}, expected 0x{expected:02x}")]
    UnexpectedTag {
        /// The tag required at this position.
        expected: u8,
        /// The tag actually present.
        found: u8,
    },
    /// The key is not an `rsaEncryption` key.
    #[error("not an RSA key")]
    NotRsa,
}

pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
pub(crate) const TAG_CONTEXT_0: u8 = 0xa0;

/// OID 1.2.840.113549.1.1.1 (rsaEncryption), DER content bytes.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// One decoded TLV: its tag, its contents and the whole encoding (tag+len+value).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
    pub whole: &'a [u8],
}

/// Reads one TLV from the front of `input`, returning it and the rest.
pub(crate) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), DerError> {
    let (&tag, rest) = input.split_first().ok_or(DerError::Truncated)?;
    // High-tag-number form never occurs in the structures we read.
    if tag & 0x1f == 0x1f {
        return Err(DerError::Truncated);
    }
    let (&first, mut rest) = rest.split_first().ok_or(DerError::Truncated)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        // Three length bytes cover 16 MiB, far beyond any key or certificate.
        if count == 0 || count > 3 || rest.len() < count {
            return Err(DerError::Truncated);
        }
        let mut len = 0usize;
        for &b in &rest[..count] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[count..];
        len
    };
    if rest.len() < len {
        return Err(DerError::Truncated);
    }
    let header_len = input.len() - rest.len();
    let tlv = Tlv {
        tag,
        value: &rest[..len],
        whole: &input[..header_len + len],
    };
    Ok((tlv, &rest[len..]))
}

/// Reads one TLV and insists on its tag.
pub(crate) fn expect_tlv(input: &[u8], expected: u8) -> Result<(Tlv<'_>, &[u8]), DerError> {
    let (tlv, rest) = read_tlv(input)?;
    if tlv.tag != expected {
        return Err(DerError::UnexpectedTag {
            expected,
            found: tlv.tag,
        });
    }
    Ok((tlv, rest))
}

/// Decodes the first PEM block whose label is one of `labels`, returning the
/// label found and the DER bytes. Text outside the block (comments) is ignored.
pub(crate) fn pem_decode(
    text: &str,
    labels: &[&'static str],
) -> Result<(&'static str, Vec<u8>), DerError> {
    for &label in labels {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let Some(start) = text.find(&begin) else {
            continue;
        };
        let body_start = start + begin.len();
        let Some(body_len) = text[body_start..].find(&end) else {
            continue;
        };
        let body: String = text[body_start..body_start + body_len]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = STANDARD.decode(body).map_err(|_| DerError::Base64)?;
        return Ok((label, der));
    }
    Err(DerError::MissingPemBlock(
        labels.first().copied().unwrap_or("PEM"),
    ))
}

/// Takes an SPKI (`SubjectPublicKeyInfo`) DER and returns the PKCS#1
/// `RSAPublicKey` DER inside it, after checking the algorithm is RSA.
pub(crate) fn rsa_pkcs1_from_spki(spki: &[u8]) -> Result<Vec<u8>, DerError> {
    let (outer, _) = expect_tlv(spki, TAG_SEQUENCE)?;
    let (alg, rest) = expect_tlv(outer.value, TAG_SEQUENCE)?;
    let (oid, _) = expect_tlv(alg.value, TAG_OID)?;
    if oid.value != OID_RSA_ENCRYPTION {
        return Err(DerError::NotRsa);
    }
    let (bits, _) = expect_tlv(rest, TAG_BIT_STRING)?;
    // The first content byte counts unused bits; a key is always whole bytes.
    match bits.value.split_first() {
        Some((0, key)) => {
            // Make sure what we hand to ring is at least a SEQUENCE.
            expect_tlv(key, TAG_SEQUENCE)?;
            Ok(key.to_vec())
        }
        _ => Err(DerError::Truncated),
    }
}

/// The pieces of an X.509 certificate the verifier needs.
pub(crate) struct CertificateParts<'a> {
    /// Serial number content bytes (may carry a leading 0x00 sign byte).
    pub serial: &'a [u8],
    /// The whole `SubjectPublicKeyInfo` TLV.
    pub spki: &'a [u8],
    /// `notBefore`, unix seconds.
    pub not_before_unix_s: i64,
    /// `notAfter`, unix seconds.
    pub not_after_unix_s: i64,
}

/// Finds the serial number and SPKI in a DER X.509 certificate.
pub(crate) fn certificate_parts(der: &[u8]) -> Result<CertificateParts<'_>, DerError> {
    let (cert, _) = expect_tlv(der, TAG_SEQUENCE)?;
    let (tbs, _) = expect_tlv(cert.value, TAG_SEQUENCE)?;
    let mut rest = tbs.value;
    // version [0] EXPLICIT is optional (absent means v1).
    let (first, after) = read_tlv(rest)?;
    if first.tag == TAG_CONTEXT_0 {
        rest = after;
    }
    let (serial, rest) = expect_tlv(rest, TAG_INTEGER)?;
    let (_signature_alg, rest) = expect_tlv(rest, TAG_SEQUENCE)?;
    let (_issuer, rest) = expect_tlv(rest, TAG_SEQUENCE)?;
    let (validity, rest) = expect_tlv(rest, TAG_SEQUENCE)?;
    let (not_before, after) = read_tlv(validity.value)?;
    let (not_after, _) = read_tlv(after)?;
    let (_subject, rest) = expect_tlv(rest, TAG_SEQUENCE)?;
    let (spki, _) = expect_tlv(rest, TAG_SEQUENCE)?;
    Ok(CertificateParts {
        serial: serial.value,
        spki: spki.whole,
        not_before_unix_s: x509_time(not_before)?,
        not_after_unix_s: x509_time(not_after)?,
    })
}

const TAG_UTC_TIME: u8 = 0x17;
const TAG_GENERALIZED_TIME: u8 = 0x18;

/// An X.509 validity time: `UTCTime` `YYMMDDHHMMSSZ` (years 1950–2049, RFC
/// 5280 §4.1.2.5.1) or `GeneralizedTime` `YYYYMMDDHHMMSSZ`, always UTC.
fn x509_time(tlv: Tlv<'_>) -> Result<i64, DerError> {
    let text = std::str::from_utf8(tlv.value).map_err(|_| DerError::Truncated)?;
    let digits = text.strip_suffix('Z').ok_or(DerError::Truncated)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DerError::Truncated);
    }
    let field = |range: std::ops::Range<usize>| -> Result<i64, DerError> {
        digits
            .get(range)
            .and_then(|d| d.parse().ok())
            .ok_or(DerError::Truncated)
    };
    let (year, rest) = match (tlv.tag, digits.len()) {
        (TAG_UTC_TIME, 12) => {
            let yy = field(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        (TAG_GENERALIZED_TIME, 14) => (field(0..4)?, 4),
        (TAG_UTC_TIME | TAG_GENERALIZED_TIME, _) => return Err(DerError::Truncated),
        (found, _) => {
            return Err(DerError::UnexpectedTag {
                expected: TAG_UTC_TIME,
                found,
            });
        }
    };
    let part = |i: usize| field(rest + 2 * i..rest + 2 * i + 2);
    Ok(crate::time::unix_from_utc(
        year,
        part(0)?,
        part(1)?,
        part(2)?,
        part(3)?,
        part(4)?,
    ))
}

/// WeChat's spelling of a certificate serial: upper-case hex with the DER
/// sign byte (leading zeros) stripped — see wechat-notes §4.6.
pub(crate) fn serial_to_hex(serial: &[u8]) -> String {
    let start = serial.iter().position(|&b| b != 0).unwrap_or(serial.len());
    let trimmed = &serial[start..];
    if trimmed.is_empty() {
        return "0".to_owned();
    }
    trimmed.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_form_lengths_are_read() {
        let mut der = vec![0x30, 0x82, 0x01, 0x00];
        der.extend(std::iter::repeat_n(0u8, 256));
        let (tlv, rest) = read_tlv(&der).expect("valid");
        assert_eq!(tlv.value.len(), 256);
        assert!(rest.is_empty());
    }

    #[test]
    fn truncated_input_is_rejected() {
        assert_eq!(
            read_tlv(&[0x30, 0x05, 0x00]).err(),
            Some(DerError::Truncated)
        );
        assert_eq!(
            read_tlv(&[0x30, 0x84, 0, 0, 0, 1]).err(),
            Some(DerError::Truncated)
        );
        assert_eq!(read_tlv(&[]).err(), Some(DerError::Truncated));
    }

    #[test]
    fn serial_hex_strips_sign_byte() {
        assert_eq!(serial_to_hex(&[0x00, 0xd7, 0xce, 0x01]), "D7CE01");
        assert_eq!(serial_to_hex(&[0x00]), "0");
    }
}
