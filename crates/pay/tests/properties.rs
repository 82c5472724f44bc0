//! Property round-trips and no-panic checks for the parsers that face the network.

use pay::keys::{ApiV3Key, MerchantKey, WechatPayKeys};
use pay::sign::SignedHeaders;
use proptest::prelude::*;

proptest! {
    #[test]
    fn rfc3339_round_trips(unix_s in -2_000_000_000i64..8_000_000_000) {
        let text = pay::time::format_beijing(unix_s);
        prop_assert_eq!(pay::time::parse_rfc3339(&text), Some(unix_s));
    }

    #[test]
    fn rfc3339_parser_never_panics(text in "\\PC{0,40}") {
        let _ = pay::time::parse_rfc3339(&text);
        let _ = pay::time::parse_bill_date(&text);
    }

    #[test]
    fn bill_parser_never_panics(text in "(\\PC|[,`\\n]){0,400}") {
        let _ = pay::parse_trade_bill(&text);
    }

    #[test]
    fn aead_round_trips(
        plain in proptest::collection::vec(any::<u8>(), 0..512),
        aad in "[ -~]{0,20}",
        nonce in "[0-9A-Za-z]{12}",
    ) {
        let key = ApiV3Key::new(&[7u8; 32]).expect("32 bytes");
        let ct = pay::aead::encrypt(&key, &nonce, &aad, &plain).expect("enc");
        prop_assert_eq!(pay::aead::decrypt(&key, &nonce, &aad, &ct).expect("dec"), plain);
    }

    #[test]
    fn pem_parsers_never_panic(text in "(-----BEGIN (PRIVATE|PUBLIC) KEY-----)?[A-Za-z0-9+/=\\n]{0,300}(-----END (PRIVATE|PUBLIC) KEY-----)?") {
        let _ = MerchantKey::from_pkcs8_pem(&text);
        let _ = pay::RsaPublicKey::from_pem(&text);
        let _ = pay::PlatformCertificate::from_pem(&text);
    }
}

proptest! {
    // RSA signing is slow in debug builds; a few cases show the property.
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn signed_bodies_verify_and_any_flip_fails(
        body in proptest::collection::vec(any::<u8>(), 1..200),
        flip in any::<prop::sample::Index>(),
        ts in 1_600_000_000i64..2_000_000_000,
    ) {
        let key = pay::sandbox::demo_merchant_key();
        let keys = WechatPayKeys::with_public_key("PUB_KEY_ID_TEST", key.public_key());
        let headers = SignedHeaders::sign(&key, "PUB_KEY_ID_TEST", ts, "NONCE", &body).expect("sign");
        prop_assert_eq!(headers.verify(&keys, &body, ts), Ok(()));
        let mut tampered = body.clone();
        tampered[flip.index(body.len())] ^= 0x01;
        prop_assert!(headers.verify(&keys, &tampered, ts).is_err());
    }
}
