//! Official and self-made test vectors (wechat-notes §4), as tables.

use pay::keys::{ApiV3Key, MerchantKey, PlatformCertificate, RsaPublicKey, WechatPayKeys};
use pay::notify::{self, NotificationError};
use pay::sign::{self, Authorization, JsapiPayParams, SignedHeaders, VerifyError};
use pay::{RefundStatus, TradeState, parse_trade_bill};

const DOC_KEY: &str = include_str!("../testdata/doc_test_private_key.pem");
const DOC_PUB: &str = include_str!("../testdata/doc_test_public_key.pem");
const GO_KEY: &str = include_str!("../testdata/go_sdk_test_private_key.pem");
const GO_CERT: &str = include_str!("../testdata/go_sdk_test_cert_D7CE59D1F522D701.pem");
const GO_PUB: &str = include_str!("../testdata/go_sdk_test_public_key.pem");
const OFFICIAL_PUB_4_2: &str = include_str!("../testdata/official_wechatpay_public_key_4_2.pem");
const SELFMADE: &str = include_str!("../testdata/selfmade_vectors.json");
const BILL: &str = include_str!("../testdata/wechatpay_php_bill.ALL.csv");
const JAVA_API_V3_KEY: &[u8] = b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";

const TS: i64 = 1_554_208_460;
const NONCE: &str = "593BEC0C930BF1AFEB40B4A08C8FB242";
const APPID: &str = "wx2421b1c4370ec43b";
const PREPAY_ID: &str = "wx201410272009395522657a690389285100";

const V1_PAY_SIGN: &str = "mI35pfNEQV6777ke/1T+LJLQDNTm7yeoUJH+j/adPGhmCCi0PbgkvYQTRcXH0uibcLVtvFLdGLpmoYO9FV6lBBsTAjuhh5YOvQi0e2g3e0yytitiNET9FEuqM0pjnKfRW4K6LIZDdbWJv9KhZUx3DrJa5TL7OJ7VdADVivxVySIlPVKjGwuCXzuXSJes0UcILgWQUMyha5/3nYofuHtS7r+KYyMuxD+oJ9VM1Qdxk4UIG59CP5Y3wtYIFybyF3bdu1caHTRRX+DLyMXyYA/IrTmiW01c4RPjpHBX5Dk1sZyY1zVsWNsvMHr2e1NTWtBxKJ+qk5N61J7caYoepHFaxw==";
const V2_APP_SIGN: &str = "gXx9KhTP6IooKV1SuG3OCGlBIgZbKtubCZvnau6khw1iffvNT28IzLbKmztq2xA/RCNbZa1XOsoiuVmAEeTZQicWfhv4P+O4oBRIrx0X9f3cnWFkMBU9alTWs0nyQ1N9fcILOTe0f4kxOhVh+/Xhn5hOiUK7Sz3XA1mcpa3R2NCWf/e+0ow/RDf15iTymOHgDrEkT/gedg/3E0iXfDX3mFicSZhrHESZDOTXcl9RzELREBUFznd/o2NQM99WcL86m23HY0cTy+QGWU4QDmNrbQ9ihmLW71qPb0Cx/d7EQvw/Kyx0A6s64ZQp3hHdcmiRcLnjVXrKCk7LShaCK+lS3Q==";
const V3_POST_SIGNATURE: &str = "jnks4dlrPw3ZX+ozVvSK39oa0t7OMBsg83BHAwd8BRdUFiVaQNTLTvci+wURgP1OQBbKYhFGvt7iqYpDSTQkp7Uq1sltaQKyncCyrA1g88m5bsKERQfPyT0ahSwKTYJ1CAn9QiJuSJRq1QsQs07eehbU/k9BCS51jTyc1Jpsi2H77HF9f/BnjXAOP3/sPObg6V5Ee4EzwLox684hhuMuIwHo7D8KFk3LIHOKDcNI4It1aCXydFWNpNK+SG86VUDe5kwoDpw4Ulqfu9z8OFDGbDs9TCxEv8iqQzbpxOlEVoOe2kalSYM5kApQb3nZcxdUtoE0liJGW3RGUNE0t4v01A==";
const V3_GET_SIGNATURE: &str = "JNEITrKv8DWEtBJGZtxG9ARa+eIZDIn1Ht3MQM5j9jP77TtHdfCqLjpwevfWftBuaGMfEdiu2sWYtLvnZIoLW3FH10OVCBzKncid5xClTwav8JX+uDeGBBX8w64iHvFyuQj8ukZT+F1AFJii8hmXLD8Os90thnL0bfJYLo/4K237TH4dEd44NTH9ElFb/ykrvv9RBs+mCNpy5IUe2Qxhba3d3RiMqhWK2sSr3tsVzQihJ0TPMnjWqoU2W5Y/v3rBFDmLhqe0ZW6A4vyvjmiR0v/8XEI25Py4PNyZXszsdl4j0zLqelUJxGEMUBhYg1LIoDPjYMlA9HV1yKD6+JYZJA==";
const V3_BODY: &str = r#"{"appid":"wxd678efh567hg6787","mchid":"1900007291","description":"Image形象店-深圳腾大-QQ公仔","out_trade_no":"1217752501201407033233368018","notify_url":"https://www.weixin.qq.com/wxpay/pay.php","amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}"#;

fn doc_key() -> MerchantKey {
    MerchantKey::from_pkcs8_pem(DOC_KEY).expect("doc key parses")
}

#[test]
fn doc_key_public_half_matches_published_public_key() {
    let derived = doc_key().public_key();
    let published = RsaPublicKey::from_pem(DOC_PUB).expect("pub parses");
    assert_eq!(derived, published);
}

#[test]
fn merchant_signatures_match_official_vectors() {
    let key = doc_key();
    // (name, message, expected signature): V1 JSAPI paySign, V2 APP sign,
    // V3 request signature (POST with body, GET without).
    let v3_post = sign::request_message(
        "POST",
        "/v3/pay/transactions/jsapi",
        TS,
        NONCE,
        V3_BODY.as_bytes(),
    );
    let v3_get = sign::request_message("GET", "/v3/certificates", TS, NONCE, b"");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "V1 paySign",
            format!("{APPID}\n{TS}\n{NONCE}\nprepay_id={PREPAY_ID}\n").into_bytes(),
            V1_PAY_SIGN,
        ),
        (
            "V2 APP sign",
            format!("{APPID}\n{TS}\n{NONCE}\n{PREPAY_ID}\n").into_bytes(),
            V2_APP_SIGN,
        ),
        ("V3 POST", v3_post, V3_POST_SIGNATURE),
        ("V3 GET", v3_get, V3_GET_SIGNATURE),
    ];
    let public = key.public_key();
    for (name, message, expected) in cases {
        let got = key.sign_base64(&message).expect("signs");
        assert_eq!(got, expected, "{name}");
        let raw = base64_decode(expected);
        assert!(public.verify(&message, &raw), "{name} verifies");
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

#[test]
fn jsapi_pay_params_reproduce_v1_and_not_v2() {
    let params = JsapiPayParams::sign(&doc_key(), APPID, PREPAY_ID, TS, NONCE).expect("signs");
    assert_eq!(params.pay_sign, V1_PAY_SIGN);
    // The APP flavour signs the bare prepay_id; JSAPI must not produce it.
    assert_ne!(params.pay_sign, V2_APP_SIGN);
    assert_eq!(params.package, format!("prepay_id={PREPAY_ID}"));
    assert_eq!(params.sign_type, "RSA");
    let json = serde_json::to_value(&params).expect("json");
    for field in [
        "appId",
        "timeStamp",
        "nonceStr",
        "package",
        "signType",
        "paySign",
    ] {
        assert!(json.get(field).is_some(), "bridge field {field}");
    }
    assert_eq!(json["timeStamp"], serde_json::json!("1554208460"));
}

#[test]
fn authorization_header_carries_v3_signature() {
    let auth = Authorization::sign(
        &doc_key(),
        "1900007291",
        "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB",
        "POST",
        "/v3/pay/transactions/jsapi",
        TS,
        NONCE,
        V3_BODY.as_bytes(),
    )
    .expect("signs");
    let header = auth.header_value();
    assert!(header.starts_with("WECHATPAY2-SHA256-RSA2048 mchid=\"1900007291\",nonce_str=\""));
    assert!(header.contains(&format!("signature=\"{V3_POST_SIGNATURE}\"")));
    assert!(header.contains("timestamp=\"1554208460\""));
    assert_eq!(Authorization::parse(&header), Some(auth));
    assert_eq!(Authorization::parse("Basic abc"), None);
    assert_eq!(
        Authorization::parse("WECHATPAY2-SHA256-RSA2048 mchid=\"1\""),
        None
    );
}

const OFFICIAL_4_2_BODY: &str = r#"{"code_url":"weixin://wxpay/bizpayurl?pr=JyC91EIz1"}"#;
const OFFICIAL_4_2_SIGNATURE: &str = "mfI1CPqvBrgcXfgXMFjdNIhBf27ACE2YyeWsWV9ZI7T7RU0vHvbQpu9Z32ogzc+k8ZC5n3kz7h70eWKjgqNdKQF0eRp8mVKlmfzMLBVHbssB9jEZEDXThOX1XFqX7s7ymia1hoHQxQagPGzkdWxtlZPZ4ZPvr1RiqkgAu6Is8MZgXXrRoBKqjmSdrP1N7uxzJ/cjfSiis9FiLjuADoqmQ1P7p2N876YPAol7Rn0+GswwAwxldbdLrmVSjfytfSBJFqTMHn4itojgxSWWN1byuckQt8hSTEv/Lg97QoeGniYP17T80pJeQyL3b+295FPHSO2AtvCgyIbKMZ0BALilAA==";
const OFFICIAL_4_2_SERIAL: &str = "PUB_KEY_ID_0000000000000024101100397200000006";

/// (name, headers, body, our clock, expected outcome).
type VerifyCase<'a> = (
    &'a str,
    SignedHeaders,
    &'a [u8],
    i64,
    Result<(), VerifyError>,
);

#[test]
fn official_response_verification_vector() {
    let keys = WechatPayKeys::with_public_key(
        OFFICIAL_4_2_SERIAL,
        RsaPublicKey::from_pem(OFFICIAL_PUB_4_2).expect("pub parses"),
    );
    let headers = SignedHeaders {
        timestamp: "1722850421".to_owned(),
        nonce: "d824f2e086d3c1df967785d13fcd22ef".to_owned(),
        signature: OFFICIAL_4_2_SIGNATURE.to_owned(),
        serial: OFFICIAL_4_2_SERIAL.to_owned(),
    };
    let body = OFFICIAL_4_2_BODY.as_bytes();
    let now = 1_722_850_421;
    let mut tampered_body = body.to_vec();
    tampered_body[3] ^= 1;
    let cases: Vec<VerifyCase<'_>> = vec![
        ("genuine", headers.clone(), body, now, Ok(())),
        (
            "clock 299 s ahead",
            headers.clone(),
            body,
            now + 299,
            Ok(()),
        ),
        (
            "clock 300 s ahead",
            headers.clone(),
            body,
            now + 300,
            Err(VerifyError::StaleTimestamp {
                timestamp: now,
                now: now + 300,
            }),
        ),
        (
            "clock 10 min behind",
            headers.clone(),
            body,
            now - 600,
            Err(VerifyError::StaleTimestamp {
                timestamp: now,
                now: now - 600,
            }),
        ),
        (
            "tampered body",
            headers.clone(),
            &tampered_body,
            now,
            Err(VerifyError::BadSignature),
        ),
        (
            "unknown serial",
            SignedHeaders {
                serial: "PUB_KEY_ID_OTHER".to_owned(),
                ..headers.clone()
            },
            body,
            now,
            Err(VerifyError::UnknownSerial("PUB_KEY_ID_OTHER".to_owned())),
        ),
        (
            "signtest probe",
            SignedHeaders {
                signature: format!("WECHATPAY/SIGNTEST/{OFFICIAL_4_2_SIGNATURE}"),
                ..headers.clone()
            },
            body,
            now,
            Err(VerifyError::SignatureProbe),
        ),
        (
            "changed nonce",
            SignedHeaders {
                nonce: "d824f2e086d3c1df967785d13fcd22ee".to_owned(),
                ..headers.clone()
            },
            body,
            now,
            Err(VerifyError::BadSignature),
        ),
        (
            "non-numeric timestamp",
            SignedHeaders {
                timestamp: "soon".to_owned(),
                ..headers.clone()
            },
            body,
            now,
            Err(VerifyError::MalformedTimestamp),
        ),
    ];
    for (name, headers, body, now, expected) in cases {
        assert_eq!(headers.verify(&keys, body, now), expected, "{name}");
    }
}

#[test]
fn java_sdk_aead_vector() {
    let key = ApiV3Key::new(JAVA_API_V3_KEY).expect("32 bytes");
    let ciphertext = "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI=";
    assert_eq!(
        pay::aead::encrypt(&key, "uluk4a9R25RW", "associatedData", b"message").expect("enc"),
        ciphertext
    );
    assert_eq!(
        pay::aead::decrypt(&key, "uluk4a9R25RW", "associatedData", ciphertext).expect("dec"),
        b"message"
    );
    assert_eq!(
        pay::aead::decrypt(&key, "uluk4a9R25RW", "otherData", ciphertext),
        Err(pay::aead::AeadError::Authentication)
    );
    assert_eq!(
        pay::aead::decrypt(&key, "short", "associatedData", ciphertext),
        Err(pay::aead::AeadError::NonceLength(5))
    );
    assert!(ApiV3Key::new(b"too short").is_err());
}

#[test]
fn go_sdk_certificate_serial_and_key() {
    let cert = PlatformCertificate::from_pem(GO_CERT).expect("cert parses");
    assert_eq!(cert.serial_no, "D7CE59D1F522D701");
    assert_eq!(
        cert.public_key,
        RsaPublicKey::from_pem(GO_PUB).expect("pub")
    );
    assert_eq!(
        cert.public_key,
        MerchantKey::from_pkcs8_pem(GO_KEY)
            .expect("key")
            .public_key()
    );
}

#[derive(serde::Deserialize)]
struct Vector {
    headers: std::collections::HashMap<String, String>,
    body: String,
    plaintext: String,
}

fn selfmade() -> std::collections::HashMap<String, Vector> {
    serde_json::from_str(SELFMADE).expect("vectors parse")
}

fn headers_of(v: &Vector) -> SignedHeaders {
    SignedHeaders::from_lookup(|name| v.headers.get(name).map(String::as_str)).expect("headers")
}

/// Both key modes: platform certificate by serial, and the same key
/// registered as a public key under that id.
fn selfmade_keysets() -> Vec<(&'static str, WechatPayKeys)> {
    let mut cert_mode = WechatPayKeys::default();
    cert_mode.add_certificate(PlatformCertificate::from_pem(GO_CERT).expect("cert"));
    let pub_mode = WechatPayKeys::with_public_key(
        "D7CE59D1F522D701",
        RsaPublicKey::from_pem(GO_PUB).expect("pub"),
    );
    vec![
        ("certificate mode", cert_mode),
        ("public-key mode", pub_mode),
    ]
}

#[test]
fn selfmade_notifications_verify_decrypt_and_parse() {
    let vectors = selfmade();
    let key = ApiV3Key::new(JAVA_API_V3_KEY).expect("32 bytes");
    for (mode, keys) in selfmade_keysets() {
        let v = &vectors["transaction_success"];
        let h = headers_of(v);
        let now: i64 = h.timestamp.parse().expect("ts");
        let n = notify::parse_payment_notification(&keys, &key, &h, v.body.as_bytes(), now + 10)
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
        let t = &n.transaction;
        assert_eq!(t.trade_state, TradeState::Success);
        assert_eq!(t.out_trade_no, "E20260101000000000001");
        assert_eq!(
            t.transaction_id.as_deref(),
            Some("4200000000202601010000000001")
        );
        assert_eq!(t.appid, "wxd678efh567hg6787");
        assert_eq!(t.mchid, "1230000109");
        assert_eq!(t.total_fen(), Some(1000));
        assert_eq!(t.payer_total_fen(), Some(1000));
        assert_eq!(t.payer_openid(), Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"));
        assert_eq!(t.success_time_unix_s(), Some(1_767_240_005));
        let (_, plain) =
            notify::open_notification(&keys, &key, &h, v.body.as_bytes(), now).expect("opens");
        assert_eq!(plain, v.plaintext.as_bytes());

        // A payment parser must not accept a refund event, and vice versa.
        let r = &vectors["refund_success"];
        let rh = headers_of(r);
        let rnow: i64 = rh.timestamp.parse().expect("ts");
        let refund = notify::parse_refund_notification(&keys, &key, &rh, r.body.as_bytes(), rnow)
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(refund.refund.refund_status, RefundStatus::Success);
        assert_eq!(refund.refund.out_refund_no, "R20260102000000000001");
        assert_eq!(refund.refund.amount.refund, 1000);
        assert!(matches!(
            notify::parse_payment_notification(&keys, &key, &rh, r.body.as_bytes(), rnow),
            Err(NotificationError::UnexpectedEventType(_))
        ));
    }
}

#[test]
fn selfmade_notifications_are_reproduced_by_our_signer_and_encryptor() {
    // PKCS#1 v1.5 and GCM with a fixed nonce are deterministic, so the
    // sandbox-side primitives must reproduce the golden bytes exactly.
    let signer = MerchantKey::from_pkcs8_pem(GO_KEY).expect("key");
    let key = ApiV3Key::new(JAVA_API_V3_KEY).expect("32 bytes");
    for (name, v) in selfmade() {
        let h = headers_of(&v);
        let ts: i64 = h.timestamp.parse().expect("ts");
        let ours = SignedHeaders::sign(&signer, &h.serial, ts, &h.nonce, v.body.as_bytes())
            .expect("signs");
        assert_eq!(ours.signature, h.signature, "{name} signature");
        let envelope: notify::NotificationEnvelope =
            serde_json::from_str(&v.body).expect("envelope");
        let r = &envelope.resource;
        let ct = pay::aead::encrypt(&key, &r.nonce, &r.associated_data, v.plaintext.as_bytes())
            .expect("enc");
        assert_eq!(ct, r.ciphertext, "{name} ciphertext");
    }
}

#[test]
fn tampered_selfmade_notifications_are_rejected_distinctly() {
    let v = &selfmade()["transaction_success"];
    let key = ApiV3Key::new(JAVA_API_V3_KEY).expect("32 bytes");
    let (_, keys) = selfmade_keysets().remove(0);
    let h = headers_of(v);
    let now: i64 = h.timestamp.parse().expect("ts");
    // Re-serialized JSON (whitespace) breaks the signature: raw bytes only.
    let reserialized = serde_json::to_vec_pretty(
        &serde_json::from_str::<serde_json::Value>(&v.body).expect("json"),
    )
    .expect("json");
    let err = notify::parse_payment_notification(&keys, &key, &h, &reserialized, now)
        .expect_err("must fail");
    assert!(matches!(
        err,
        NotificationError::Verify(VerifyError::BadSignature)
    ));
    // A wrong APIv3 key shows up as a decryption failure, after verification.
    let wrong = ApiV3Key::new(&[b'x'; 32]).expect("32 bytes");
    let err = notify::parse_payment_notification(&keys, &wrong, &h, v.body.as_bytes(), now)
        .expect_err("must fail");
    assert!(matches!(
        err,
        NotificationError::Decrypt(pay::aead::AeadError::Authentication)
    ));
    let missing =
        SignedHeaders::from_lookup(|name| (name != sign::header::SIGNATURE).then_some("x"));
    assert_eq!(
        missing,
        Err(VerifyError::MissingHeader("Wechatpay-Signature"))
    );
}

#[test]
fn php_sdk_bill_fixture_parses_and_adds_up() {
    let bill = parse_trade_bill(BILL).expect("bill parses");
    assert_eq!(bill.rows.len(), 45);
    assert!(bill.totals_match(), "summary agrees with rows");
    let s = bill.summary;
    assert_eq!(s.trade_count, 45);
    assert_eq!(s.settlement_total_fen, 47);
    assert_eq!(s.refund_total_fen, 14);
    assert_eq!(s.fee_total_millifen, 8_000);
    assert_eq!(s.order_total_fen, 47);
    assert_eq!(s.requested_refund_total_fen, 14);

    let first = &bill.rows[0];
    assert_eq!(first.trade_time, "2019-02-19 05:01:46");
    assert_eq!(first.appid, "wxab8acd895ab1638a");
    assert_eq!(first.mchid, "1921000401");
    assert_eq!(first.transaction_id, "4200000263201902167700134212");
    assert_eq!(first.out_trade_no, "autotest_20190216081946_82335");
    assert_eq!(first.trade_state, "REFUND");
    assert_eq!(
        first.refund_id.as_deref(),
        Some("50000709672019011908420787722")
    );
    assert_eq!(first.refund_fen, 1);
    assert_eq!(first.fee_rate, "39.00%");
    assert_eq!(first.description, "系统拨测-cheeryin-test_micropay_succ");

    let native = &bill.rows[2];
    assert_eq!(native.trade_type, "NATIVE");
    assert_eq!(native.settlement_total_fen, 3);
    assert_eq!(native.fee_millifen, 1_000);
    assert_eq!(native.refund_id, None, "`0` means no refund");
    assert_eq!(native.out_refund_no, None);

    // The same bill with a BOM and CRLF line ends parses identically.
    let crlf = format!("\u{feff}{}", BILL.replace('\n', "\r\n"));
    assert_eq!(parse_trade_bill(&crlf).expect("parses"), bill);
}

#[test]
fn malformed_bills_are_rejected() {
    use pay::BillError;
    let header = BILL.lines().next().expect("header");
    let cases: Vec<(&str, String, BillError)> = vec![
        ("empty", String::new(), BillError::MissingHeader),
        (
            "no summary",
            format!("{header}\n"),
            BillError::MissingSummary,
        ),
        (
            "missing column",
            "交易时间,公众账号ID\n".to_owned(),
            BillError::MissingColumn("商户号"),
        ),
        (
            "short row",
            format!("{header}\n`a,`b\n"),
            BillError::FieldCount {
                line: 2,
                expected: 27,
                found: 2,
            },
        ),
    ];
    for (name, text, expected) in cases {
        assert_eq!(parse_trade_bill(&text).expect_err(name), expected, "{name}");
    }
    let bad_amount = BILL.replacen("`0.03,`0.00,`0,`0", "`0.031,`0.00,`0,`0", 1);
    assert!(matches!(
        parse_trade_bill(&bad_amount),
        Err(BillError::BadNumber {
            column: "应结订单金额",
            ..
        })
    ));
    assert!(
        pay::bill::check_bill_hash(b"abc", "SHA1", "a9993e364706816aba3e25717850c26c9cd0d89d")
            .is_ok()
    );
    assert!(
        pay::bill::check_bill_hash(b"abd", "SHA1", "a9993e364706816aba3e25717850c26c9cd0d89d")
            .is_err()
    );
}

#[test]
fn secrets_do_not_appear_in_debug_output() {
    let key = doc_key();
    let api_v3 = ApiV3Key::new(JAVA_API_V3_KEY).expect("32 bytes");
    let debug = format!("{key:?} {api_v3:?}");
    assert!(!debug.contains("a7cde1"), "{debug}");
    assert!(debug.contains("redacted"));
    let config = pay::sandbox::demo_merchant_config(
        "http://127.0.0.1:1/sandbox/wxpay",
        "http://127.0.0.1:1/notify",
    );
    let debug = format!("{config:?}");
    assert!(!debug.contains("SandboxOnlyApiV3Key"), "{debug}");
    assert!(!debug.contains("MII"), "{debug}");
}

#[test]
fn sandbox_platform_key_is_refused_against_production() {
    let mut config = pay::sandbox::demo_merchant_config(
        "http://127.0.0.1:1/sandbox/wxpay",
        "https://dorm.example.edu/notify",
    );
    assert_eq!(config.validate(), Ok(()));
    config.api_base_url = pay::PRODUCTION_API_BASE_URL.to_owned();
    assert_eq!(
        config.validate(),
        Err(pay::ConfigError::SandboxKeyInProduction)
    );
    config.api_base_url = "http://127.0.0.1:1".to_owned();
    config.notify_url = "https://dorm.example.edu/notify?x=1".to_owned();
    assert_eq!(
        config.validate(),
        Err(pay::ConfigError::BadUrl("notify_url"))
    );
}

#[test]
fn the_sandbox_key_fingerprint_outside_the_sandbox_names_its_key() {
    // config.rs refuses the sandbox key by this constant, so that builds
    // without the sandbox module refuse it too; it must name that key.
    assert_eq!(
        pay::sandbox::platform_public_key().fingerprint_sha256(),
        pay::config::SANDBOX_PLATFORM_KEY_SHA256
    );
    // Trusted as a platform certificate rather than a public key: refused too.
    let mut config = pay::sandbox::demo_merchant_config(
        pay::PRODUCTION_API_BASE_URL,
        "https://dorm.example.edu/notify",
    );
    let mut keys = pay::WechatPayKeys::default();
    keys.add_certificate(
        pay::PlatformCertificate::from_pem(pay::sandbox::platform_certificate_pem())
            .expect("certificate"),
    );
    config.wechatpay_keys = keys;
    assert_eq!(
        config.validate(),
        Err(pay::ConfigError::SandboxKeyInProduction)
    );
}
