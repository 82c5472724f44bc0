//! The sandbox's HTTP surface: the v3 endpoints our client calls, the
//! cashier page and a small admin API.

use std::io::Write as _;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRef, FromRequest, OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

use super::{BILL_TOKEN_TTL_S, BillFile, NotifyPlan, Order, RefundRecord, Sandbox, cashier};
use crate::bill::{BILL_HEADER, SUMMARY_HEADER, format_yuan, format_yuan5, sha1_hex};
use crate::model::{
    JsapiPrepayRequest, PrepayResponse, Refund, RefundAmount, RefundRequest, RefundStatus,
    TradeBillResponse, TradeState, Transaction,
};
use crate::notify::ALGORITHM;
use crate::sign::{self, Authorization, MAX_CLOCK_SKEW_S, request_message};
use crate::time::{format_beijing, format_beijing_bill, parse_bill_date, parse_rfc3339};

/// Request bodies WeChat accepts are small; so do we.
const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The sandbox's routes, relative to wherever they are mounted:
///
/// - v3 API: `POST /v3/pay/transactions/jsapi`,
///   `GET /v3/pay/transactions/out-trade-no/{no}`, `POST …/{no}/close`,
///   `GET /v3/pay/transactions/id/{transaction_id}`,
///   `POST /v3/refund/domestic/refunds`, `GET /v3/refund/domestic/refunds/{no}`,
///   `GET /v3/bill/tradebill` (plain or `tar_type=GZIP`), `GET /v3/billdownload/file`,
///   `GET /v3/certificates`; any other path answers WeChat's signed JSON
///   error (404 `NOT_FOUND`);
/// - cashier: `GET /cashier?prepay_id=…&return_url=/path`,
///   `POST /cashier/confirm`, `POST /cashier/cancel`;
/// - admin (tests, demo tooling): `POST /admin/pay` with JSON
///   `{"out_trade_no", "copies"?, "delay_ms"?, "not_before_unix_s"?, "signtest_probe"?}`,
///   `GET /admin/deliveries`.
///
/// Serve it at the root of a listener of its own ([`Sandbox::serve`]): the
/// admin routes pay orders without money, so it never shares the
/// application's listener. Nested under a prefix it still works (tests):
/// signatures are checked over the path below the prefix, which is what
/// an SDK whose gateway is `http://host/prefix` signs.
pub fn sandbox_router<S>(sandbox: Sandbox) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/v3/pay/transactions/jsapi", post(prepay))
        .route(
            "/v3/pay/transactions/id/{transaction_id}",
            get(query_by_transaction_id),
        )
        .route("/v3/certificates", get(certificates))
        .route(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}",
            get(query),
        )
        .route(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            post(close),
        )
        .route("/v3/refund/domestic/refunds", post(create_refund))
        .route(
            "/v3/refund/domestic/refunds/{out_refund_no}",
            get(query_refund),
        )
        .route("/v3/bill/tradebill", get(trade_bill))
        .route("/v3/billdownload/file", get(download_bill))
        .route("/cashier", get(cashier::page))
        .route("/cashier/confirm", post(cashier::confirm))
        .route("/cashier/cancel", post(cashier::cancel))
        .route("/admin/pay", post(admin_pay))
        .route("/admin/deliveries", get(admin_deliveries))
        .fallback(unknown_route)
        .method_not_allowed_fallback(unknown_route)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(sandbox)
}

/// An error answer in WeChat's shape.
pub(super) struct ApiFailure {
    status: StatusCode,
    code: &'static str,
    message: String,
    detail: Option<serde_json::Value>,
}

impl ApiFailure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
        }
    }

    fn param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "PARAM_ERROR", message)
    }
}

/// Query parameter lookup with `%XX`/`+` decoding (values are plain ids and dates).
pub(super) fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How the sandbox answers one caller: signed with the platform key under
/// the serial WeChat would use for that caller — the `PUB_KEY_ID_…` when
/// the request named it in its own `Wechatpay-Serial` (public-key mode, what
/// our client sends), else the platform certificate's serial (certificate
/// mode, what SDKs without a public key send), else the `PUB_KEY_ID_…`.
#[derive(Clone)]
pub(super) struct Reply {
    sb: Sandbox,
    serial: String,
}

impl Reply {
    fn for_request(sb: &Sandbox, headers: &HeaderMap) -> Self {
        let public_key_id = &sb.inner.config.public_key_id;
        let named_public_key = headers
            .get(sign::header::SERIAL)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == public_key_id);
        let serial = match &sb.inner.certificate {
            Some(c) if !named_public_key => c.parsed.serial_no.clone(),
            _ => public_key_id.clone(),
        };
        Self {
            sb: sb.clone(),
            serial,
        }
    }

    /// A JSON (or, for 204, empty) answer signed like every WeChat API
    /// answer. A 204 carries no body and so no `Content-Type`.
    fn signed(&self, status: StatusCode, body: Vec<u8>) -> Response {
        let sb = &self.sb;
        let nonce = sign::new_nonce();
        let headers = sb.sign_headers_as(&self.serial, sb.now(), &nonce, &body);
        let mut response = (status, body).into_response();
        let h = response.headers_mut();
        for (name, value) in headers.to_pairs() {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&sign::new_nonce()) {
            h.insert(sign::header::REQUEST_ID, v);
        }
        if status == StatusCode::NO_CONTENT {
            // `Vec<u8>` answers are typed application/octet-stream by axum.
            h.remove(header::CONTENT_TYPE);
        } else {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        response
    }

    fn json(&self, status: StatusCode, value: &impl serde::Serialize) -> Response {
        self.signed(status, serde_json::to_vec(value).unwrap_or_default())
    }

    fn no_content(&self) -> Response {
        self.signed(StatusCode::NO_CONTENT, Vec::new())
    }

    fn failure(&self, f: ApiFailure) -> Response {
        let mut body = json!({"code": f.code, "message": f.message});
        if let Some(detail) = f.detail {
            body["detail"] = detail;
        }
        self.json(f.status, &body)
    }
}

/// A merchant API request that passed WeChat's checks
/// ([`Sandbox::authenticate`]); the extractor every v3 handler opens with.
/// Its rejection is WeChat's signed error answer.
pub(super) struct Authed {
    sb: Sandbox,
    /// The URI below the sandbox's root: what the merchant signed.
    uri: Uri,
    /// The URI as the listener saw it (with any prefix), for links back.
    original_uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    reply: Reply,
}

impl<S> FromRequest<S> for Authed
where
    S: Send + Sync,
    Sandbox: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let sb = Sandbox::from_ref(state);
        let (parts, body) = req.into_parts();
        let reply = Reply::for_request(&sb, &parts.headers);
        let original_uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT_BYTES).await else {
            return Err(reply.failure(ApiFailure::new(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "请求体过大或不完整",
            )));
        };
        if let Err(f) = sb.authenticate(&parts.method, &parts.uri, &parts.headers, &body) {
            return Err(reply.failure(f));
        }
        Ok(Self {
            sb,
            uri: parts.uri,
            original_uri,
            headers: parts.headers,
            body,
            reply,
        })
    }
}

/// An [`Authed`] request and its JSON body: the opening of every v3
/// handler that takes one. A body that does not parse is WeChat's signed
/// PARAM_ERROR.
pub(super) struct AuthedJson<T>(Authed, T);

impl<S, T> FromRequest<S> for AuthedJson<T>
where
    S: Send + Sync,
    Sandbox: FromRef<S>,
    T: serde::de::DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let authed = Authed::from_request(req, state).await?;
        match authed.json() {
            Ok(body) => Ok(Self(authed, body)),
            Err(f) => Err(authed.reply.failure(f)),
        }
    }
}

impl Authed {
    /// The body as JSON, or WeChat's PARAM_ERROR.
    fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiFailure> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiFailure::param(format!("请求体格式错误: {e}")))
    }

    /// Whether the `mchid` query parameter names our merchant.
    fn mchid_query_ok(&self) -> bool {
        query_param(&self.uri, "mchid").as_deref() == Some(self.sb.inner.config.mchid.as_str())
    }
}

impl Sandbox {
    /// Checks a merchant request the way WeChat does: headers present,
    /// Authorization well-formed, our mchid and serial, fresh timestamp, and
    /// a signature over METHOD, the URL exactly as sent (path below the
    /// sandbox's root, and query), ts, nonce and body.
    fn authenticate(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), ApiFailure> {
        if !headers.contains_key(header::USER_AGENT) || !headers.contains_key(header::ACCEPT) {
            return Err(ApiFailure::new(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "Http头缺少Accept或User-Agent",
            ));
        }
        let sign_error = |message: &str| {
            ApiFailure::new(StatusCode::UNAUTHORIZED, "SIGN_ERROR", message.to_owned())
        };
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(Authorization::parse)
            .ok_or_else(|| sign_error("Authorization 格式错误"))?;
        let cfg = &self.inner.config;
        if auth.mchid != cfg.mchid {
            return Err(sign_error("商户号与 Authorization 不符"));
        }
        if auth.serial_no != cfg.merchant_serial_no {
            return Err(sign_error("商户证书序列号有误"));
        }
        let ts: i64 = auth
            .timestamp
            .parse()
            .map_err(|_| sign_error("timestamp 格式错误"))?;
        if (self.now() - ts).abs() > MAX_CLOCK_SKEW_S {
            return Err(sign_error(
                "Authorization中的timestamp与发起请求的时间不得超过5分钟",
            ));
        }
        let url = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
        let message = request_message(method.as_str(), url, ts, &auth.nonce_str, body);
        let valid = STANDARD
            .decode(&auth.signature)
            .is_ok_and(|sig| cfg.merchant_public_key.verify(&message, &sig));
        if valid {
            Ok(())
        } else {
            let truncated: String = String::from_utf8_lossy(&message)
                .chars()
                .take(120)
                .collect();
            let mut failure = sign_error("签名错误");
            failure.detail = Some(json!({
                "detail": {"issue": "sign not match"},
                "field": "signature",
                "location": "authorization",
                "sign_information": {
                    "method": method.as_str(),
                    "url": url,
                    "truncated_sign_message": truncated,
                    "sign_message_length": message.len(),
                },
            }));
            Err(failure)
        }
    }
}

fn valid_out_trade_no(s: &str) -> bool {
    (6..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'*' | b'|'))
}

fn has_four_byte_char(s: &str) -> bool {
    s.chars().any(|c| c.len_utf8() == 4)
}

fn valid_notify_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://")) && !s.contains('?') && s.len() <= 255
}

fn validate_prepay(sb: &Sandbox, req: &JsapiPrepayRequest) -> Result<Option<i64>, ApiFailure> {
    let cfg = &sb.inner.config;
    if req.appid != cfg.appid || req.mchid != cfg.mchid {
        return Err(ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "APPID_MCHID_NOT_MATCH",
            "appid和mch_id不匹配",
        ));
    }
    if !valid_out_trade_no(&req.out_trade_no) {
        return Err(ApiFailure::param("out_trade_no 须为6-32位字母、数字、_-*|"));
    }
    if req.description.is_empty() || req.description.len() > 127 {
        return Err(ApiFailure::param("description 长度须为1-127字节"));
    }
    if has_four_byte_char(&req.description) || req.attach.as_deref().is_some_and(has_four_byte_char)
    {
        return Err(ApiFailure::param("字符串中不能包含4字节UTF-8字符"));
    }
    if req.attach.as_ref().is_some_and(|a| a.len() > 128) {
        return Err(ApiFailure::param("attach 超过128字节"));
    }
    if req.amount.total < 1 {
        return Err(ApiFailure::param("/amount/total 值低于最小值 1"));
    }
    if req.amount.currency != "CNY" {
        return Err(ApiFailure::param("/amount/currency 仅支持 CNY"));
    }
    if !valid_notify_url(&req.notify_url) {
        return Err(ApiFailure::param("notify_url 须为不带参数的绝对地址"));
    }
    if req.payer.openid.is_empty() {
        return Err(ApiFailure::param("/payer/openid 不能为空"));
    }
    req.time_expire
        .as_deref()
        .map(|t| parse_rfc3339(t).ok_or_else(|| ApiFailure::param("time_expire 格式错误")))
        .transpose()
}

async fn prepay(AuthedJson(request, req): AuthedJson<JsapiPrepayRequest>) -> Response {
    let (sb, reply) = (&request.sb, &request.reply);
    let expire_unix_s = match validate_prepay(sb, &req) {
        Ok(e) => e,
        Err(f) => return reply.failure(f),
    };
    let now = sb.now();
    let mut s = sb.state();
    if let Some(existing) = s.orders.get(&req.out_trade_no) {
        let failure = match existing.state {
            TradeState::Success | TradeState::Refund => Some(ApiFailure::new(
                StatusCode::BAD_REQUEST,
                "ORDERPAID",
                "该订单已支付",
            )),
            TradeState::Closed => Some(ApiFailure::new(
                StatusCode::BAD_REQUEST,
                "ORDER_CLOSED",
                "订单已关闭",
            )),
            // Identical parameters give back the current prepay_id (idempotent re-prepay).
            _ if existing.request == req => None,
            _ => Some(ApiFailure::new(
                StatusCode::FORBIDDEN,
                "OUT_TRADE_NO_USED",
                "商户订单号重复",
            )),
        };
        let prepay_id = existing.prepay_id.clone();
        drop(s);
        return match failure {
            Some(f) => reply.failure(f),
            None => reply.json(StatusCode::OK, &PrepayResponse { prepay_id }),
        };
    }
    if s.orders.len() >= super::ORDERS_MAX {
        drop(s);
        return reply.failure(ApiFailure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "FREQUENCY_LIMITED",
            "沙箱订单数已达上限",
        ));
    }
    let seq = s.next_seq();
    let prepay_id = format!(
        "wx{}{}{seq:06}",
        format_beijing_bill(now).replace(['-', ' ', ':'], ""),
        &sign::new_nonce()[..10].to_ascii_lowercase()
    );
    let otn = req.out_trade_no.clone();
    s.by_prepay_id.insert(prepay_id.clone(), otn.clone());
    s.orders.insert(
        otn.clone(),
        Order {
            request: req,
            prepay_id: prepay_id.clone(),
            created_unix_s: now,
            expire_unix_s,
            state: TradeState::Notpay,
            transaction_id: None,
            success_unix_s: None,
            refunded_fen: 0,
        },
    );
    drop(s);
    tracing::info!(out_trade_no = %otn, "sandbox: prepay created");
    reply.json(StatusCode::OK, &PrepayResponse { prepay_id })
}

fn order_not_exist() -> ApiFailure {
    ApiFailure::new(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在")
}

async fn query(Path(out_trade_no): Path<String>, request: Authed) -> Response {
    answer_query(&request, request.sb.order(&out_trade_no))
}

async fn query_by_transaction_id(Path(transaction_id): Path<String>, request: Authed) -> Response {
    let sb = &request.sb;
    let out_trade_no = sb.state().by_transaction_id.get(&transaction_id).cloned();
    answer_query(&request, out_trade_no.and_then(|no| sb.order(&no)))
}

/// Both order queries: `mchid` in the query string, then the order or
/// ORDER_NOT_EXIST.
fn answer_query(request: &Authed, transaction: Option<Transaction>) -> Response {
    if !request.mchid_query_ok() {
        return request
            .reply
            .failure(ApiFailure::param("mchid 参数缺失或不匹配"));
    }
    match transaction {
        Some(t) => request.reply.json(StatusCode::OK, &t),
        None => request.reply.failure(order_not_exist()),
    }
}

/// `GET /v3/certificates`: the platform certificate, encrypted with
/// AEAD_AES_256_GCM under the merchant's APIv3 key (associated data
/// `certificate`), as WeChat serves it to merchants in certificate mode.
async fn certificates(request: Authed) -> Response {
    let (sb, reply) = (&request.sb, &request.reply);
    let Some(cert) = &sb.inner.certificate else {
        return reply.failure(ApiFailure::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_EXISTS",
            "无可用的平台证书，请使用微信支付公钥",
        ));
    };
    let nonce: String = sign::new_nonce().chars().take(12).collect();
    let aad = "certificate";
    let Ok(ciphertext) = crate::aead::encrypt(
        &sb.inner.config.api_v3_key,
        &nonce,
        aad,
        cert.pem.as_bytes(),
    ) else {
        return reply.failure(ApiFailure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SYSTEM_ERROR",
            "系统错误",
        ));
    };
    reply.json(
        StatusCode::OK,
        &json!({"data": [{
            "serial_no": cert.parsed.serial_no,
            "effective_time": format_beijing(cert.parsed.effective_unix_s),
            "expire_time": format_beijing(cert.parsed.expire_unix_s),
            "encrypt_certificate": {
                "algorithm": ALGORITHM,
                "nonce": nonce,
                "associated_data": aad,
                "ciphertext": ciphertext,
            },
        }]}),
    )
}

/// Any path or method the API does not have: WeChat's JSON error, signed.
async fn unknown_route(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    Reply::for_request(&sb, &headers).failure(ApiFailure::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "请求的资源不存在",
    ))
}

async fn close(Path(out_trade_no): Path<String>, request: Authed) -> Response {
    let (sb, reply) = (&request.sb, &request.reply);
    let mchid_ok = serde_json::from_slice::<serde_json::Value>(&request.body)
        .ok()
        .and_then(|v| v.get("mchid").and_then(|m| m.as_str()).map(str::to_owned))
        .is_some_and(|m| m == sb.inner.config.mchid);
    if !mchid_ok {
        return reply.failure(ApiFailure::param("mchid 缺失或不匹配"));
    }
    let failure = {
        let mut s = sb.state();
        match s.orders.get_mut(&out_trade_no) {
            // Reported behaviour: an unknown out_trade_no also gets 204,
            // which is why callers must re-query after closing.
            None => None,
            Some(o) => match o.state {
                TradeState::Notpay | TradeState::Userpaying | TradeState::Payerror => {
                    o.state = TradeState::Closed;
                    None
                }
                TradeState::Closed => Some(ApiFailure::new(
                    StatusCode::BAD_REQUEST,
                    "ORDER_CLOSED",
                    "订单已关闭",
                )),
                _ => Some(ApiFailure::new(
                    StatusCode::BAD_REQUEST,
                    "ORDERPAID",
                    "订单已支付",
                )),
            },
        }
    };
    match failure {
        Some(f) => reply.failure(f),
        None => reply.no_content(),
    }
}

async fn create_refund(AuthedJson(request, mut req): AuthedJson<RefundRequest>) -> Response {
    let (sb, reply) = (&request.sb, &request.reply);
    if req
        .notify_url
        .as_deref()
        .is_some_and(|u| !valid_notify_url(u))
    {
        return reply.failure(ApiFailure::param("notify_url 须为不带参数的绝对地址"));
    }
    // The order is named by out_trade_no or by WeChat's transaction_id.
    if req.out_trade_no.is_empty() {
        let by_id = req
            .transaction_id
            .as_ref()
            .and_then(|id| sb.state().by_transaction_id.get(id).cloned());
        match (by_id, &req.transaction_id) {
            (Some(no), _) => req.out_trade_no = no,
            (None, Some(_)) => return reply.failure(order_not_exist()),
            (None, None) => {
                return reply.failure(ApiFailure::param("out_trade_no 与 transaction_id 须填其一"));
            }
        }
    }
    let now = sb.now();
    let result = {
        let mut s = sb.state();
        if let Some(existing) = s.refunds.get(&req.out_refund_no) {
            // Re-submitting the same out_refund_no refunds only once.
            Ok(existing.refund.clone())
        } else {
            // Never reused across sandbox restarts (see `State::fresh_id`).
            let refund_id = s.fresh_id("5030", now, 16);
            match s.orders.get_mut(&req.out_trade_no) {
                None => Err(order_not_exist()),
                Some(o) if !matches!(o.state, TradeState::Success | TradeState::Refund) => Err(
                    ApiFailure::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "订单未支付"),
                ),
                Some(o) if req.amount.total != o.request.amount.total => {
                    Err(ApiFailure::param("/amount/total 与原订单金额不符"))
                }
                Some(o)
                    if req.amount.refund < 1
                        || req.amount.refund > o.request.amount.total - o.refunded_fen =>
                {
                    Err(ApiFailure::new(
                        StatusCode::FORBIDDEN,
                        "NOT_ENOUGH",
                        "退款金额超过可退金额",
                    ))
                }
                Some(o) => {
                    o.refunded_fen += req.amount.refund;
                    o.state = TradeState::Refund;
                    let refund = Refund {
                        refund_id: refund_id.clone(),
                        out_refund_no: req.out_refund_no.clone(),
                        transaction_id: o.transaction_id.clone().unwrap_or_default(),
                        out_trade_no: req.out_trade_no.clone(),
                        channel: Some("ORIGINAL".to_owned()),
                        user_received_account: Some("支付用户零钱".to_owned()),
                        success_time: None,
                        create_time: Some(format_beijing(now)),
                        status: RefundStatus::Processing,
                        funds_account: Some("AVAILABLE".to_owned()),
                        amount: RefundAmount {
                            total: req.amount.total,
                            refund: req.amount.refund,
                            payer_total: Some(req.amount.total),
                            payer_refund: Some(req.amount.refund),
                            settlement_refund: Some(req.amount.refund),
                            settlement_total: Some(req.amount.total),
                            discount_refund: Some(0),
                            currency: Some("CNY".to_owned()),
                        },
                    };
                    s.refunds.insert(
                        req.out_refund_no.clone(),
                        RefundRecord {
                            refund: refund.clone(),
                            notify_url: req.notify_url.clone(),
                            success_unix_s: None,
                        },
                    );
                    let sandbox = sb.clone();
                    let delay = sb.inner.config.refund_delay;
                    let out_refund_no = req.out_refund_no.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        sandbox.complete_refund(&out_refund_no);
                    });
                    Ok(refund)
                }
            }
        }
    };
    match result {
        Ok(refund) => reply.json(StatusCode::OK, &refund),
        Err(f) => reply.failure(f),
    }
}

async fn query_refund(Path(out_refund_no): Path<String>, request: Authed) -> Response {
    let (sb, reply) = (&request.sb, &request.reply);
    let refund = sb
        .state()
        .refunds
        .get(&out_refund_no)
        .map(|r| r.refund.clone());
    match refund {
        Some(r) => reply.json(StatusCode::OK, &r),
        None => reply.failure(ApiFailure::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_EXISTS",
            "退款单不存在",
        )),
    }
}

impl Sandbox {
    /// Renders the bill for a Beijing day in WeChat's format (UTF-8 BOM,
    /// backtick-prefixed fields, summary block).
    fn render_bill(&self, day_start_unix_s: i64, bill_type: &str) -> Vec<u8> {
        let day = day_start_unix_s..day_start_unix_s + 86_400;
        let s = self.state();
        let mut rows: Vec<(i64, Vec<String>)> = Vec::new();
        let cfg = &self.inner.config;
        if bill_type != "REFUND" {
            for o in s.orders.values() {
                let Some(t) = o.success_unix_s.filter(|t| day.contains(t)) else {
                    continue;
                };
                let total = o.request.amount.total;
                rows.push((
                    t,
                    vec![
                        format_beijing_bill(t),
                        cfg.appid.clone(),
                        cfg.mchid.clone(),
                        "0".to_owned(),
                        String::new(),
                        o.transaction_id.clone().unwrap_or_default(),
                        o.request.out_trade_no.clone(),
                        o.request.payer.openid.clone(),
                        "JSAPI".to_owned(),
                        "SUCCESS".to_owned(),
                        "OTHERS".to_owned(),
                        "CNY".to_owned(),
                        format_yuan(total),
                        format_yuan(0),
                        "0".to_owned(),
                        "0".to_owned(),
                        format_yuan(0),
                        format_yuan(0),
                        String::new(),
                        String::new(),
                        o.request.description.clone(),
                        o.request.attach.clone().unwrap_or_default(),
                        // 0.6 % fee, rounded half-up to the fen per order, so the
                        // 2-decimal summary total stays exact.
                        format_yuan5((total * 6 + 500) / 1000 * 1000),
                        "0.60%".to_owned(),
                        format_yuan(total),
                        format_yuan(0),
                        String::new(),
                    ],
                ));
            }
        }
        if bill_type != "SUCCESS" {
            for r in s.refunds.values() {
                let Some(t) = r.success_unix_s.filter(|t| day.contains(t)) else {
                    continue;
                };
                let order = s.orders.get(&r.refund.out_trade_no);
                rows.push((
                    t,
                    vec![
                        format_beijing_bill(t),
                        cfg.appid.clone(),
                        cfg.mchid.clone(),
                        "0".to_owned(),
                        String::new(),
                        r.refund.transaction_id.clone(),
                        r.refund.out_trade_no.clone(),
                        order
                            .map(|o| o.request.payer.openid.clone())
                            .unwrap_or_default(),
                        "JSAPI".to_owned(),
                        "REFUND".to_owned(),
                        "OTHERS".to_owned(),
                        "CNY".to_owned(),
                        format_yuan(0),
                        format_yuan(0),
                        r.refund.refund_id.clone(),
                        r.refund.out_refund_no.clone(),
                        format_yuan(r.refund.amount.refund),
                        format_yuan(0),
                        "ORIGINAL".to_owned(),
                        "SUCCESS".to_owned(),
                        order
                            .map(|o| o.request.description.clone())
                            .unwrap_or_default(),
                        String::new(),
                        format_yuan5(0),
                        "0.60%".to_owned(),
                        format_yuan(0),
                        format_yuan(r.refund.amount.refund),
                        String::new(),
                    ],
                ));
            }
        }
        drop(s);
        rows.sort_by_key(|(t, _)| *t);
        let amount = |row: &[String], i: usize, decimals| {
            crate::bill::parse_scaled(&row[i], decimals).unwrap_or(0)
        };
        let (mut settle, mut refund, mut fee, mut order_total, mut requested) = (0, 0, 0, 0, 0);
        let mut out = String::from("\u{feff}");
        out.push_str(BILL_HEADER);
        out.push('\n');
        for (_, row) in &rows {
            settle += amount(row, 12, 2);
            refund += amount(row, 16, 2);
            fee += amount(row, 22, 5);
            order_total += amount(row, 24, 2);
            requested += amount(row, 25, 2);
            let line: Vec<String> = row.iter().map(|f| format!("`{f}")).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out.push_str(SUMMARY_HEADER);
        out.push('\n');
        out.push_str(&format!(
            "`{}.0,`{},`{},`{},`{},`{},`{}\n",
            rows.len(),
            format_yuan(settle),
            format_yuan(refund),
            format_yuan(0),
            // Row fees are whole fen, so the 2-decimal total is exact.
            format_yuan(fee / 1000),
            format_yuan(order_total),
            format_yuan(requested),
        ));
        out.into_bytes()
    }
}

async fn trade_bill(request: Authed) -> Response {
    let (sb, reply, uri) = (&request.sb, &request.reply, &request.uri);
    let Some(day_start) = query_param(uri, "bill_date")
        .as_deref()
        .and_then(parse_bill_date)
    else {
        return reply.failure(ApiFailure::param("bill_date 格式须为 yyyy-MM-DD"));
    };
    if day_start > sb.now() {
        return reply.failure(ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "NO_STATEMENT_EXIST",
            "账单日期不能晚于今天",
        ));
    }
    let bill_type = query_param(uri, "bill_type").unwrap_or_else(|| "ALL".to_owned());
    if !matches!(bill_type.as_str(), "ALL" | "SUCCESS" | "REFUND") {
        return reply.failure(ApiFailure::param("bill_type 取值错误"));
    }
    let gzip = match query_param(uri, "tar_type").as_deref() {
        None => false,
        Some("GZIP") => true,
        Some(_) => return reply.failure(ApiFailure::param("tar_type 仅支持 GZIP")),
    };
    let bill = sb.render_bill(day_start, &bill_type);
    // The hash is the SHA-1 of the uncompressed bill, compressed or not.
    let hash_value = sha1_hex(&bill);
    let bytes = if gzip {
        match gzip_bytes(&bill) {
            Ok(b) => b,
            Err(_) => {
                return reply.failure(ApiFailure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "SYSTEM_ERROR",
                    "系统错误",
                ));
            }
        }
    } else {
        bill
    };
    let token = sign::new_nonce();
    let now = sb.now();
    {
        let mut s = sb.state();
        s.bills
            .retain(|_, b| now - b.created_unix_s <= BILL_TOKEN_TTL_S);
        s.bills.insert(
            token.clone(),
            BillFile {
                created_unix_s: now,
                bytes,
            },
        );
    }
    // The download URL must point back at wherever we are reached.
    let prefix = request
        .original_uri
        .path()
        .strip_suffix("/v3/bill/tradebill")
        .unwrap_or_default();
    let host = request
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = request
        .headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    let response = TradeBillResponse {
        hash_type: "SHA1".to_owned(),
        hash_value,
        download_url: format!("{scheme}://{host}{prefix}/v3/billdownload/file?token={token}"),
    };
    reply.json(StatusCode::OK, &response)
}

/// `tar_type=GZIP`: the bill as one gzip member (flate2).
fn gzip_bytes(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

async fn download_bill(request: Authed) -> Response {
    let (sb, reply) = (&request.sb, &request.reply);
    let now = sb.now();
    let bill = query_param(&request.uri, "token").and_then(|t| {
        sb.state()
            .bills
            .get(&t)
            .filter(|b| now - b.created_unix_s <= BILL_TOKEN_TTL_S)
            .map(|b| b.bytes.clone())
    });
    match bill {
        // Bill downloads are not signed by WeChat; the SHA-1 protects them.
        Some(b) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            b,
        )
            .into_response(),
        None => reply.failure(ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "下载链接已失效",
        )),
    }
}

/// Body of `POST /admin/pay`.
#[derive(Debug, Deserialize)]
struct AdminPay {
    out_trade_no: String,
    copies: Option<u32>,
    delay_ms: Option<u64>,
    not_before_unix_s: Option<i64>,
    #[serde(default)]
    signtest_probe: bool,
}

async fn admin_pay(State(sb): State<Sandbox>, axum::Json(req): axum::Json<AdminPay>) -> Response {
    let plan = NotifyPlan {
        copies: req.copies.unwrap_or(1).min(super::NOTIFY_COPIES_MAX),
        delay: std::time::Duration::from_millis(req.delay_ms.unwrap_or(0)),
        not_before_unix_s: req.not_before_unix_s,
        signtest_probe: req.signtest_probe,
    };
    match sb.pay_with(&req.out_trade_no, plan) {
        Ok(t) => axum::Json(t).into_response(),
        Err(e) => (StatusCode::CONFLICT, e.to_string()).into_response(),
    }
}

async fn admin_deliveries(State(sb): State<Sandbox>) -> Response {
    axum::Json(sb.deliveries()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb+c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        let uri: Uri = "/x?bill_date=2026-11-25&mchid=19".parse().expect("uri");
        assert_eq!(query_param(&uri, "mchid").as_deref(), Some("19"));
        assert_eq!(query_param(&uri, "nope"), None);
    }
}
