//! The JSON API of orders: counter sales (S16) and staff order views and
//! refunds, behind a named API key (created in the staff console at
//! `/staff/apikeys`; the configured operator token still works), and the
//! order view the student pages poll. Documented in
//! docs/openapi.yaml.

use super::ApiError;
use crate::AppState;
use crate::session::CurrentStudent;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use service::counter::{SaleError, SaleOutcome};
use service::refund::RefundError;
use store::orders::Order;

/// Longest out_trade_no we look up (ours are 23 characters; WeChat's max is 32).
const OUT_TRADE_NO_CHARS_MAX: usize = 32;

/// docs/openapi.yaml, compiled in so that what is served is what this
/// build answers (a test checks both directions).
const OPENAPI_YAML: &str = include_str!("../../../../docs/openapi.yaml");

/// `GET /api/openapi.yaml`: the API's description, for integrators' tools.
async fn openapi() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/yaml; charset=utf-8",
        )],
        OPENAPI_YAML,
    )
        .into_response()
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.yaml", get(openapi))
        .route("/api/counter/sales", post(counter_sale))
        .route("/api/staff/orders/{out_trade_no}", get(staff_order))
        .route(
            "/api/staff/orders/{out_trade_no}/refund",
            post(staff_refund),
        )
        .route("/api/orders", get(student_orders).post(student_create))
        .route("/api/orders/{out_trade_no}", get(student_order))
        .route("/api/orders/{out_trade_no}/pay", post(student_pay))
        // As docs/openapi.yaml says: a state change a browser marks
        // cross-site, or whose Origin is another host, is refused (the
        // same check as the pages; bearer-token tools send no Origin).
        .route_layer(axum::middleware::from_fn(crate::session::same_origin_posts))
}

/// An order as the API shows it (no buyer identity, no internal ids beyond
/// the meter's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// Our order number (WeChat's `out_trade_no`).
    pub out_trade_no: String,
    /// `unpaid`, `charging`, `delayed`, `completed`, `closed`, `refunding`, `refunded`.
    pub state: String,
    /// `wechat` or `counter`.
    pub channel: String,
    /// Area id.
    pub area_id: i64,
    /// Meter row id.
    pub meter_id: i64,
    /// Whole kWh bought.
    pub kwh: i64,
    /// Price frozen at creation, 0.0001 元 per kWh.
    pub unit_price_centifen_per_kwh: i64,
    /// Amount, fen.
    pub amount_fen: i64,
    /// Amount as yuan text, e.g. `"12.30"`.
    pub amount_yuan: String,
    /// Created (unix ms).
    pub created_at_ms: i64,
    /// An unpaid order closes at this instant (unix ms).
    pub expires_at_ms: i64,
    /// Paid (unix ms).
    pub paid_at_ms: Option<i64>,
    /// Confirmed by the meter (unix ms).
    pub completed_at_ms: Option<i64>,
    /// Marked delayed (unix ms).
    pub delayed_at_ms: Option<i64>,
    /// Closed (unix ms).
    pub closed_at_ms: Option<i64>,
    /// Refunded (unix ms).
    pub refunded_at_ms: Option<i64>,
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> Self {
        Self {
            out_trade_no: o.out_trade_no.clone(),
            state: o.state.as_str().to_owned(),
            channel: o.channel.as_str().to_owned(),
            area_id: o.area_id.get(),
            meter_id: o.meter_id.get(),
            kwh: i64::from(o.kwh.get()),
            unit_price_centifen_per_kwh: o.unit_price_centifen_per_kwh.centifen_per_kwh(),
            amount_fen: o.amount_fen.get(),
            amount_yuan: o.amount_fen.to_string(),
            created_at_ms: o.created_at_ms,
            expires_at_ms: o.expires_at_ms,
            paid_at_ms: o.paid_at_ms,
            completed_at_ms: o.completed_at_ms,
            delayed_at_ms: o.delayed_at_ms,
            closed_at_ms: o.closed_at_ms,
            refunded_at_ms: o.refunded_at_ms,
        }
    }
}

/// The receipt of a counter sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The order, already paid (`charging`: the energy is on its way).
    pub order: OrderView,
    /// The meter number the energy goes to.
    pub meter_address: String,
    /// Who took the money.
    pub operator: String,
    /// Always `queued`: the head-end delivers it like any paid order.
    pub delivery: String,
}

/// A counter sale request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CounterSale {
    area_id: i64,
    meter_address: String,
    /// A JSON number or the text the operator typed; whole kWh only.
    kwh: serde_json::Value,
    operator: String,
}

/// Checks the bearer of an integration call that does `action`: a named
/// API key (`store::api_keys`) whose role holds the action — the use is
/// audited under the key's name — or, for deployments that have not moved
/// to keys yet, the configured `counter_token` (compared in constant time).
/// A revoked or unknown key is 401; a key whose role lacks the action is
/// 403 (audited as `forbidden`). Without keys or a configured token
/// everything is refused, so an unconfigured node sells nothing.
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    action: domain::staff::Action,
    what: &str,
) -> Result<(), ApiError> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "a valid API key (or operator token) is required",
        )
    };
    let now = state.settings().staff.clock.now_ms();
    if given.starts_with(store::api_keys::SECRET_PREFIX) {
        let key = match store::api_keys::verify(state.db(), given, now).await {
            Ok(store::api_keys::Verified::Live(k)) => k,
            Ok(_) => return Err(unauthorized()),
            Err(e) => return Err(internal(&e)),
        };
        let allowed = domain::staff::can(
            key.role,
            action,
            &domain::staff::Scope::everywhere(),
            domain::staff::Place::Console,
        );
        let actor = store::audit::Actor {
            operator_id: None,
            name: format!("api-key:{}", key.name),
            client_ip: "api".to_owned(),
        };
        let entry = store::audit::Entry {
            actor: &actor,
            action: if allowed { "api_key_used" } else { "forbidden" },
            subject: what,
            before: None,
            after: Some(serde_json::json!({
                "action": action.as_str(),
                "role": key.role.as_str(),
            })),
        };
        store::audit::append(state.db(), &entry, now)
            .await
            .map_err(|e| internal(&e))?;
        return if allowed {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "this API key's role does not allow that",
            ))
        };
    }
    let expected = state.service().counter_token().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "COUNTER_DISABLED",
            "counter sales are not enabled on this server (no API key given, no [payment] counter_token_file)",
        )
    })?;
    // Comparing digests keeps the time independent of where the strings differ.
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    let (a, b) = (digest(expected), digest(given));
    let diff = a
        .as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    if diff == 0 && !given.is_empty() {
        Ok(())
    } else {
        Err(unauthorized())
    }
}

fn bad_json(e: &JsonRejection) -> ApiError {
    ApiError::new(e.status(), "BAD_REQUEST", e.body_text())
}

/// The kWh the operator entered, as text for [`domain::WholeKwh::parse`],
/// which gives the same clear messages as the student pages.
fn kwh_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.chars().take(32).collect(),
        serde_json::Value::Number(n) => n.to_string(),
        // Anything else (null, bool, array…) is not a whole number.
        _ => "?".to_owned(),
    }
}

/// Header a cashier's till sends so that a retried sale sells once.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set to `true` on an answer repeated for a retried request.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";

/// The `Idempotency-Key` of a request, if it has one.
fn idempotency_key(
    headers: &HeaderMap,
) -> Result<Option<store::idempotency::IdempotencyKey>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_IDEMPOTENCY_KEY", m);
    let text = value
        .to_str()
        .map_err(|_| bad(store::idempotency::KeyError::BadCharacter.to_string()))?;
    store::idempotency::IdempotencyKey::parse(text)
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}

fn json_answer(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut r = (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if replayed {
        r.headers_mut().insert(
            IDEMPOTENT_REPLAYED_HEADER,
            axum::http::HeaderValue::from_static("true"),
        );
    }
    r
}

async fn counter_sale(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CounterSale>, JsonRejection>,
) -> Response {
    let what = "POST /api/counter/sales";
    if let Err(e) = authorize(&state, &headers, domain::staff::Action::SellAtCounter, what).await {
        return e.into_response();
    }
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let Json(sale) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(&e).into_response(),
    };
    let kwh = kwh_text(&sale.kwh);
    let req = service::counter::SaleRequest {
        area_id: sale.area_id,
        meter_address: &sale.meter_address,
        kwh_text: &kwh,
        operator: &sale.operator,
    };
    let render = |order: &Order, address: &str, operator: &str| {
        let receipt = Receipt {
            order: OrderView::from(order),
            meter_address: address.to_owned(),
            operator: operator.to_owned(),
            delivery: "queued".to_owned(),
        };
        serde_json::to_string(&receipt)
            .map(|body| store::idempotency::StoredResponse {
                status_code: StatusCode::CREATED.as_u16(),
                body,
            })
            .map_err(|e| e.to_string())
    };
    match service::counter::sell(state.service(), req, key.as_ref(), render).await {
        Ok(SaleOutcome::Sold { answer, .. }) => {
            json_answer(StatusCode::CREATED, answer.body, false)
        }
        Ok(SaleOutcome::Replay(stored)) => {
            let status = StatusCode::from_u16(stored.status_code)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            json_answer(status, stored.body, true)
        }
        Err(e @ SaleError::InvalidOperator) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_OPERATOR",
            e.to_string(),
        )
        .into_response(),
        Err(SaleError::Order(e)) => super::order_input_response(&e),
        // The API sells without a till; kept for completeness of the match.
        Err(e @ SaleError::ShiftClosed) => {
            ApiError::new(StatusCode::CONFLICT, "SHIFT_CLOSED", e.to_string()).into_response()
        }
        Err(e @ SaleError::KeyReused) => ApiError::new(
            StatusCode::CONFLICT,
            "IDEMPOTENCY_KEY_REUSED",
            e.to_string(),
        )
        .into_response(),
        Err(SaleError::Render(m)) => internal(&store::Error::Corrupt(m)).into_response(),
        Err(SaleError::Store(e)) => internal(&e).into_response(),
    }
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such order")
}

fn internal(e: &store::Error) -> ApiError {
    tracing::error!(error = %e, "orders API failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL",
        "something went wrong on our side; please try again",
    )
}

async fn find(state: &AppState, out_trade_no: &str) -> Result<Order, ApiError> {
    if out_trade_no.len() > OUT_TRADE_NO_CHARS_MAX {
        return Err(not_found());
    }
    match store::orders::by_out_trade_no(state.db(), out_trade_no).await {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Err(not_found()),
        Err(e) => Err(internal(&e)),
    }
}

async fn staff_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(out_trade_no): Path<String>,
) -> Response {
    let what = format!(
        "GET /api/staff/orders/{}",
        out_trade_no.chars().take(32).collect::<String>()
    );
    if let Err(e) = authorize(&state, &headers, domain::staff::Action::ViewOrders, &what).await {
        return e.into_response();
    }
    match find(&state, &out_trade_no).await {
        Ok(o) => Json(OrderView::from(&o)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Staff refund of a delayed order (the energy could not be delivered): the
/// order moves to `refunding` and the refund worker asks WeChat.
async fn staff_refund(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(out_trade_no): Path<String>,
) -> Response {
    let what = format!(
        "POST /api/staff/orders/{}/refund",
        out_trade_no.chars().take(32).collect::<String>()
    );
    if let Err(e) = authorize(
        &state,
        &headers,
        domain::staff::Action::ResolveOrders,
        &what,
    )
    .await
    {
        return e.into_response();
    }
    let order = match find(&state, &out_trade_no).await {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    match service::refund::request_refund(state.service(), &order).await {
        Ok(o) => (StatusCode::ACCEPTED, Json(OrderView::from(&o))).into_response(),
        Err(RefundError::NotRefundable(m)) => {
            ApiError::new(StatusCode::CONFLICT, "NOT_REFUNDABLE", m).into_response()
        }
        Err(RefundError::Store(e)) => internal(&e).into_response(),
    }
}

/// Most orders a student's list returns.
const STUDENT_ORDERS_MAX: i64 = 50;
/// Header carrying the session's anti-CSRF token on JSON state changes.
pub const CSRF_HEADER: &str = "x-csrf-token";

fn check_csrf(student: &CurrentStudent, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    student.check_csrf(given).map_err(|_| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "CSRF",
            "missing or wrong X-CSRF-Token",
        )
    })?;
    if student.may_act() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "SNAPSHOT_USER",
            "open this page in WeChat to buy electricity",
        ))
    }
}

/// The student's own order; someone else's is "not found" (no IDOR oracle).
async fn own_order(
    state: &AppState,
    student: &CurrentStudent,
    out_trade_no: &str,
) -> Result<Order, ApiError> {
    let order = find(state, out_trade_no).await?;
    if order.student_id == Some(domain::StudentId::new(student.id)) {
        Ok(order)
    } else {
        Err(not_found())
    }
}

async fn student_orders(State(state): State<AppState>, student: CurrentStudent) -> Response {
    match store::orders::for_student(state.db(), student.id, STUDENT_ORDERS_MAX).await {
        Ok(orders) => Json(orders.iter().map(OrderView::from).collect::<Vec<_>>()).into_response(),
        Err(e) => internal(&e).into_response(),
    }
}

async fn student_order(
    State(state): State<AppState>,
    student: CurrentStudent,
    Path(out_trade_no): Path<String>,
) -> Response {
    match own_order(&state, &student, &out_trade_no).await {
        Ok(o) => Json(OrderView::from(&o)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A student's order request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStudentOrder {
    area_id: i64,
    meter_address: String,
    /// A JSON number or the typed text; whole kWh only.
    kwh: serde_json::Value,
}

async fn student_create(
    State(state): State<AppState>,
    student: CurrentStudent,
    headers: HeaderMap,
    body: Result<Json<NewStudentOrder>, JsonRejection>,
) -> Response {
    if let Err(e) = check_csrf(&student, &headers) {
        return e.into_response();
    }
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(&e).into_response(),
    };
    match super::create_student_order(
        &state,
        student.id,
        req.area_id,
        &req.meter_address,
        &kwh_text(&req.kwh),
    )
    .await
    {
        Ok(o) => (StatusCode::CREATED, Json(OrderView::from(&o))).into_response(),
        Err(e) => super::order_input_response(&e),
    }
}

async fn student_pay(
    State(state): State<AppState>,
    student: CurrentStudent,
    headers: HeaderMap,
    Path(out_trade_no): Path<String>,
) -> Response {
    if let Err(e) = check_csrf(&student, &headers) {
        return e.into_response();
    }
    let order = match own_order(&state, &student, &out_trade_no).await {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    match super::start_wechat_payment(&state, &order, &student.openid).await {
        Ok(p) => Json(p).into_response(),
        Err(e) => super::payment_error_response(&e),
    }
}
