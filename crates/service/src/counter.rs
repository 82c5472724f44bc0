//! A counter sale (S16): a cashier takes cash and sells energy to a meter.
//! With an idempotency key, a retried sale sells once: the key row is
//! claimed in the sale's own transaction and carries its stored answer.

use crate::{OrderInputError, Service};
use store::idempotency::{Claim, IdempotencyKey, StoredResponse};
use store::orders::Order;

/// Longest operator name accepted on a receipt.
pub const OPERATOR_CHARS_MAX: usize = 64;
/// Key space of counter sales in `store::idempotency`.
const COUNTER_SALE_SCOPE: &str = "counter_sale";

/// A sale as the cashier entered it.
#[derive(Debug, Clone, Copy)]
pub struct SaleRequest<'a> {
    /// The area of the meter.
    pub area_id: i64,
    /// The meter's nameplate number as typed.
    pub meter_address: &'a str,
    /// The kWh as typed (whole kWh only).
    pub kwh_text: &'a str,
    /// Who takes the money.
    pub operator: &'a str,
}

/// The console's till: the cashier's open shift the sale is attributed to
/// and how the student paid. The console's sales always carry one; the
/// integrations' JSON API sells without.
#[derive(Debug, Clone, Copy)]
pub struct Till<'a> {
    /// The cashier's open shift (`store::shifts`).
    pub shift_id: i64,
    /// The cashier's operator id (the shift must be theirs).
    pub operator_id: i64,
    /// Cash or card.
    pub tender: domain::counter::Tender,
    /// The cashier as the audit log records them: the sale's `counter_sale`
    /// row is written in the sale's transaction.
    pub actor: &'a store::audit::Actor,
}

/// What a sale became.
#[derive(Debug)]
pub enum SaleOutcome {
    /// Sold now; `answer` is what was stored with the key (if any).
    Sold {
        /// The paid order (`charging`: the energy is on its way).
        order: Box<Order>,
        /// The answer rendered for this sale.
        answer: StoredResponse,
    },
    /// A retry of a sale already made: its stored answer, unchanged.
    Replay(StoredResponse),
}

/// Why a sale was not made (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum SaleError {
    /// The operator name is empty or too long.
    #[error("operator must be 1 to {OPERATOR_CHARS_MAX} characters")]
    InvalidOperator,
    /// The kWh or the meter were refused.
    #[error(transparent)]
    Order(#[from] OrderInputError),
    /// The shift is closed (or not the cashier's): nothing sold.
    #[error("the shift is closed; open a new shift to sell")]
    ShiftClosed,
    /// The key was already used for a different sale.
    #[error(
        "this Idempotency-Key was already used for a different sale; use a new key for a new sale"
    )]
    KeyReused,
    /// The answer could not be rendered.
    #[error("cannot render the receipt: {0}")]
    Render(String),
    /// The database failed.
    #[error("something went wrong on our side; please try again")]
    Store(#[from] store::Error),
}

/// SHA-256 (hex) of the sale as understood (trimmed texts, parsed kWh), so
/// a retry that differs only in spacing or key order is the same sale.
fn sale_fingerprint(
    area_id: i64,
    address: &str,
    kwh: domain::WholeKwh,
    operator: &str,
    till: Option<Till<'_>>,
) -> String {
    let canonical = match till {
        None => serde_json::json!([area_id, address, kwh.get(), operator]),
        Some(t) => serde_json::json!([
            area_id,
            address,
            kwh.get(),
            operator,
            t.shift_id,
            t.tender.as_str()
        ]),
    }
    .to_string();
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ))
}

/// Sells: claims `key` (if given), creates the paid counter order, renders
/// its answer with `render` and stores it with the key, all in one
/// transaction. A twin request waits on the key and then replays the
/// answer; a refused sale rolls back, key included, and changes nothing.
pub async fn sell(
    svc: &Service,
    req: SaleRequest<'_>,
    key: Option<&IdempotencyKey>,
    render: impl FnOnce(&Order, &str, &str) -> Result<StoredResponse, String>,
) -> Result<SaleOutcome, SaleError> {
    sell_at_till(svc, req, None, key, render).await
}

/// [`sell`] at the console's till: the order is attributed to the
/// cashier's open shift with its tender in the same transaction, and a
/// shift closed meanwhile refuses the sale (rolled back, key included).
pub async fn sell_at_till(
    svc: &Service,
    req: SaleRequest<'_>,
    till: Option<Till<'_>>,
    key: Option<&IdempotencyKey>,
    render: impl FnOnce(&Order, &str, &str) -> Result<StoredResponse, String>,
) -> Result<SaleOutcome, SaleError> {
    let operator = req.operator.trim();
    if operator.is_empty() || operator.chars().count() > OPERATOR_CHARS_MAX {
        return Err(SaleError::InvalidOperator);
    }
    let kwh = domain::WholeKwh::parse(req.kwh_text, svc.order_kwh_max())
        .map_err(OrderInputError::from)?;
    let address = req.meter_address.trim();
    let now_ms = store::now_ms();
    let mut tx = svc.db().begin().await?;
    if let Some(key) = key {
        let fingerprint = sale_fingerprint(req.area_id, address, kwh, operator, till);
        match store::idempotency::claim(&mut tx, COUNTER_SALE_SCOPE, key, &fingerprint, now_ms)
            .await?
        {
            Claim::New => {}
            Claim::Replay(stored) => return Ok(SaleOutcome::Replay(stored)),
            Claim::Mismatch => return Err(SaleError::KeyReused),
        }
    }
    let order =
        store::orders::create_counter_sale_in(&mut tx, req.area_id, address, kwh, operator, now_ms)
            .await
            .map_err(OrderInputError::from)?;
    if let Some(t) = till {
        match store::shifts::record_sale_in(&mut tx, t.shift_id, t.operator_id, order.id, t.tender)
            .await
        {
            Ok(()) => {}
            Err(store::Error::Conflict(_)) => return Err(SaleError::ShiftClosed),
            Err(e) => return Err(e.into()),
        }
        store::audit::append_tx(
            &mut tx,
            &store::audit::Entry {
                actor: t.actor,
                action: "counter_sale",
                subject: &format!("order:{}", order.out_trade_no),
                before: None,
                after: Some(serde_json::json!({
                    "order": order.out_trade_no,
                    "meter": address,
                    "kwh": order.kwh.get(),
                    "amount_fen": order.amount_fen.get(),
                    "channel": order.channel.as_str(),
                    "tender": t.tender.as_str(),
                    "shift": t.shift_id,
                    "state": order.state,
                })),
            },
            now_ms,
        )
        .await?;
    }
    let answer = render(&order, address, operator).map_err(SaleError::Render)?;
    if let Some(key) = key {
        store::idempotency::complete(&mut tx, COUNTER_SALE_SCOPE, key, &answer).await?;
    }
    tx.commit().await?;
    tracing::info!(
        order.id = order.id.get(),
        amount_fen = order.amount_fen.get(),
        idempotency_key = key.is_some(),
        "counter sale"
    );
    Ok(SaleOutcome::Sold {
        order: Box::new(order),
        answer,
    })
}
