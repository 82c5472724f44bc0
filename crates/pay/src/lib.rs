//! WeChat Pay API v3 (JSAPI, direct merchant) and the built-in payment sandbox.
//!
//! Layers, bottom up:
//! - [`keys`], [`sign`], [`aead`]: the protocol's cryptography, with time
//!   passed in as an argument (no hidden clock), built on `ring`.
//! - [`model`], [`notify`], [`bill`]: wire types, notification opening
//!   (verify raw bytes → decrypt → parse) and the trade-bill parser.
//! - [`client`]: [`WechatPayClient`], the HTTP client, behind the
//!   [`PaymentProvider`] trait that the web crate holds as `Arc<dyn PaymentProvider>`.
//! - [`sandbox`]: an in-process emulation of WeChat Pay's server side (API,
//!   cashier page, signed + encrypted notifications with retries) for
//!   `dormwatt demo` and for tests.
//!
//! Invariant: nothing this crate returns as a payment fact (transaction,
//! refund, bill) has skipped signature verification, except bill downloads,
//! which WeChat does not sign and which are checked against their SHA-1 instead.

// Outside tests a panic is a bug we chose to keep: an `expect` with its
// reason under a local `allow`, or a type that makes the case impossible
// (crates/dormwatt/tests/workspace_lints.rs checks every crate says so).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod aead;
pub mod bill;
pub mod client;
pub mod config;
mod der;
pub mod keys;
pub mod model;
pub mod notify;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod sign;
pub mod time;

pub use bill::{BillError, BillRow, BillSummary, TradeBill, parse_trade_bill};
pub use client::{
    Clock, JsapiPayment, OffsetClock, PayError, PayFuture, PaymentProvider, SystemClock,
    WechatPayClient,
};
pub use config::{ConfigError, PRODUCTION_API_BASE_URL, WechatPayConfig};
pub use der::DerError;
pub use keys::{ApiV3Key, KeyError, MerchantKey, PlatformCertificate, RsaPublicKey, WechatPayKeys};
pub use model::{
    BillType, JsapiOrder, MerchantMismatch, Refund, RefundOrder, RefundResult, RefundStatus,
    TradeState, Transaction,
};
pub use notify::{Notification, NotificationError, PaymentNotification, RefundNotification};
#[cfg(feature = "sandbox")]
pub use sandbox::{NotifyPlan, Sandbox, SandboxConfig, sandbox_router};
pub use sign::{JsapiPayParams, SignedHeaders, VerifyError};
