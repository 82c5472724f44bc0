//! Percent-encoding of query-string components and cookie values, through
//! the `percent-encoding` crate (the one `url` and reqwest use), so the
//! pages keep no encoder of their own.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters is escaped, so an
/// encoded value is safe in a query component, a path segment and a
/// cookie value alike.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes `s` as one URL component (UTF-8, RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// Decodes a percent-encoded component; `None` when the bytes are not
/// UTF-8. A `%` not followed by two hex digits is kept as it is.
pub fn decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_characters_stay_and_the_rest_is_escaped() {
        assert_eq!(encode("/a b?c=1&d"), "%2Fa%20b%3Fc%3D1%26d");
        assert_eq!(encode("Az09-_.~"), "Az09-_.~");
        assert_eq!(encode("中"), "%E4%B8%AD");
    }

    #[test]
    fn decoding_round_trips_and_keeps_a_stray_percent() {
        let s = "/bill?month=2026-11&x=中";
        assert_eq!(decode(&encode(s)).as_deref(), Some(s));
        assert_eq!(decode("%2").as_deref(), Some("%2"));
        assert_eq!(decode("%FF"), None);
    }
}
