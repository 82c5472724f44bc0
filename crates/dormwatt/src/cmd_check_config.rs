//! `dormwatt check-config`: everything the configuration names, checked
//! at once (files, keys, certificates, URLs, the database), every problem
//! listed. `serve` runs the same [`problems`] before it starts.

use crate::config::{Config, PAYMENT_REFUSED, PaymentProviderKind, PaymentSide, WechatPaySection};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `dormwatt check-config`.
#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// The merchant API certificate (`apiclient_cert.pem`), not needed to
    /// run: when given, the merchant key must match it, its serial must be
    /// `payment.wechat.merchant_serial_no` and it must not be expired.
    #[arg(long)]
    merchant_certificate: Option<PathBuf>,
}

/// Collects problems instead of stopping at the first.
#[derive(Default)]
struct Findings {
    problems: Vec<String>,
    checked: Vec<String>,
}

impl Findings {
    /// Records `what` as checked, or the error as a problem.
    fn check<T>(&mut self, what: &str, r: anyhow::Result<T>) -> Option<T> {
        match r {
            Ok(v) => {
                self.checked.push(what.to_owned());
                Some(v)
            }
            Err(e) => {
                self.problems.push(format!("{e:#}"));
                None
            }
        }
    }
}

/// A well-formed http(s) URL with a host.
fn url(key: &str, value: &str) -> anyhow::Result<()> {
    let u = reqwest::Url::parse(value)
        .map_err(|e| anyhow::anyhow!("{key}: '{value}' is not a URL ({e})"))?;
    anyhow::ensure!(
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()),
        "{key}: '{value}' is not an http(s) URL with a host"
    );
    Ok(())
}

/// A certificate valid now.
fn not_expired(what: &str, c: &pay::PlatformCertificate, now_s: i64) -> anyhow::Result<()> {
    anyhow::ensure!(
        c.expire_unix_s > now_s,
        "{what}: certificate {} expired at {}",
        c.serial_no,
        shown_time(c.expire_unix_s)
    );
    anyhow::ensure!(
        c.effective_unix_s <= now_s,
        "{what}: certificate {} is not valid before {}",
        c.serial_no,
        shown_time(c.effective_unix_s)
    );
    Ok(())
}

fn shown_time(unix_s: i64) -> String {
    jiff::Timestamp::from_second(unix_s).map_or_else(|_| unix_s.to_string(), |t| t.to_string())
}

/// The WeChat Pay merchant's files and keys.
fn wechat(f: &mut Findings, w: &WechatPaySection, merchant_cert: Option<&Path>, now_s: i64) {
    let key = f.check("payment.wechat.merchant_key_file", w.merchant_key());
    f.check("payment.wechat.api_v3_key_file", w.api_v3_key());
    if w.public_key_file.is_some() {
        f.check("payment.wechat.public_key_file", w.public_key());
    }
    for p in &w.platform_certificate_files {
        let what = format!(
            "payment.wechat.platform_certificate_files ({})",
            p.display()
        );
        let cert =
            WechatPaySection::platform_certificate(p).and_then(|c| not_expired(&what, &c, now_s));
        f.check(&what, cert);
    }
    if let Some(path) = merchant_cert {
        let what = format!("--merchant-certificate {}", path.display());
        let r = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{what}: cannot read: {e}"))
            .and_then(|text| {
                pay::PlatformCertificate::from_pem(&text)
                    .map_err(|e| anyhow::anyhow!("{what}: {e}"))
            })
            .and_then(|c| {
                not_expired(&what, &c, now_s)?;
                anyhow::ensure!(
                    c.serial_no.eq_ignore_ascii_case(w.merchant_serial_no.trim()),
                    "payment.wechat.merchant_serial_no: '{}', but the merchant certificate's serial is {}",
                    w.merchant_serial_no,
                    c.serial_no
                );
                if let Some(k) = &key {
                    anyhow::ensure!(
                        k.public_key().fingerprint_sha256() == c.public_key.fingerprint_sha256(),
                        "payment.wechat.merchant_key_file: the key does not match the merchant certificate {}",
                        c.serial_no
                    );
                }
                Ok(())
            });
        f.check(&what, r);
    }
}

/// The database is reachable and at this binary's schema version.
async fn database(cfg: &Config) -> anyhow::Result<()> {
    let db = crate::run::connect(cfg).await?;
    let versions = async {
        let known = db.known_schema_version();
        let applied = db.applied_schema_version().await?;
        anyhow::ensure!(
            applied == Some(known),
            "database: at schema {}, this dormwatt expects v{known}: run `dormwatt migrate`",
            applied.map_or_else(|| "none".to_owned(), |v| format!("v{v}"))
        );
        Ok(())
    }
    .await;
    db.close().await;
    versions
}

/// Every problem of `cfg` (empty: good to serve).
async fn findings(cfg: &Config, merchant_cert: Option<&Path>) -> Findings {
    let mut f = Findings::default();
    let now_s = store::now_ms() / 1000;
    let w = &cfg.payment.wechat;
    let urls = [
        ("public_url", cfg.public_url.as_deref()),
        ("payment.notify_url", cfg.payment.notify_url.as_deref()),
        ("payment.wechat.api_base_url", w.api_base_url.as_deref()),
        (
            "web.wechat_api_base_url",
            Some(&cfg.web.wechat_api_base_url),
        ),
        (
            "web.wechat_authorize_url",
            Some(&cfg.web.wechat_authorize_url),
        ),
    ];
    for (key, value) in urls {
        if let Some(v) = value {
            f.check(key, url(key, v));
        }
    }
    if cfg.payment.counter_token_file.is_some() {
        f.check("payment.counter_token_file", cfg.payment.settings());
    }
    if cfg.web.wechat_secret_file.is_some() {
        f.check("web.wechat_secret_file", cfg.web.wechat_oauth());
    }
    if cfg.payment.provider == Some(PaymentProviderKind::Wechat) {
        wechat(&mut f, w, merchant_cert, now_s);
    } else if merchant_cert.is_some() {
        f.problems.push(
            "--merchant-certificate: payment.provider is not \"wechat\", so there is no merchant key to check it against"
                .to_owned(),
        );
    }
    f.check("database", database(cfg).await);
    // Issue 16 item 1: validated at load; say where /metrics answers.
    f.checked.push(cfg.metrics.summary());
    f
}

/// The problems `serve` refuses to start with.
pub async fn problems(cfg: &Config) -> Vec<String> {
    findings(cfg, None).await.problems
}

/// What `serve` runs on the payment side with this configuration.
fn payment_side(cfg: &Config) -> String {
    let w = &cfg.payment.wechat;
    match cfg.payment.resolve(false) {
        PaymentSide::Wechat => format!(
            "payments under serve: WeChat Pay, appid {}, mchid {}",
            w.appid, w.mchid
        ),
        PaymentSide::None => "payments under serve: none (payment.provider = \"none\")".to_owned(),
        PaymentSide::Refused => format!("payments under serve: none: {PAYMENT_REFUSED}"),
        PaymentSide::Sandbox { .. } => {
            "payments under serve: the SANDBOX (public keys, no real money)".to_owned()
        }
    }
}

/// `dormwatt check-config`.
pub async fn run(cfg: &Config, args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let f = findings(cfg, args.merchant_certificate.as_deref()).await;
    let mut shown = serde_json::to_value(cfg)?;
    // Secrets are file paths, never values; only the database URL carries one.
    shown["database_url"] = store::redact_url(&cfg.database_url).into();
    println!("configuration in effect (secrets redacted):");
    println!("{}", serde_json::to_string_pretty(&shown)?);
    println!("{}", payment_side(cfg));
    for c in &f.checked {
        println!("ok       {c}");
    }
    for p in &f.problems {
        println!("PROBLEM  {p}");
    }
    if f.problems.is_empty() {
        println!("configuration OK");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} problem(s) found", f.problems.len());
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::{not_expired, url};

    #[test]
    fn an_expired_or_future_certificate_is_a_problem() {
        let pem = include_str!("../../pay/testdata/go_sdk_test_cert_D7CE59D1F522D701.pem");
        let c = pay::PlatformCertificate::from_pem(pem).unwrap();
        let now = c.effective_unix_s + 1;
        assert!(not_expired("cert", &c, now).is_ok());
        let e = not_expired("cert", &c, c.expire_unix_s + 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cert: certificate D7CE59D1F522D701 expired at 2031-04-25"),
            "{e}"
        );
        let e = not_expired("cert", &c, c.effective_unix_s - 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not valid before 2021-04-27"), "{e}");
    }

    #[test]
    fn urls_need_a_scheme_and_a_host() {
        assert!(url("k", "https://power.example.edu.cn/").is_ok());
        for bad in [
            "power.example.edu.cn",
            "ftp://x.example",
            "http://",
            "mailto:a@b",
        ] {
            assert!(url("k", bad).is_err(), "{bad}");
        }
    }
}
