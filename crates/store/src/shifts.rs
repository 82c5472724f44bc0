//! Counter shifts (issue 13 item 3): a cashier opens a shift, every counter
//! sale of the console is attributed to it (`shift_sale`, with its
//! tender), and the cashier closes it with the cash counted; an
//! administrator signs a closed shift off.
//!
//! Every state change is guarded in its statement and its row count
//! checked, so two requests at once have one winner on PostgreSQL at READ
//! COMMITTED as on SQLite:
//! - one open shift per cashier: the partial unique index `shift_one_open`
//!   and `insert … on conflict do nothing`;
//! - a sale bumps `sales_count … where closed_at_ms is null` in the sale's
//!   transaction, so a sale and a close of the same shift serialise on the
//!   row, and a sale into a closed shift is refused;
//! - a close sets `closed_at_ms … where closed_at_ms is null`, then reads
//!   the totals under that row lock, so the expected cash it stores is of
//!   every sale the shift will ever have;
//! - a sign-off sets `signed_off_at_ms … where closed_at_ms is not null and
//!   signed_off_at_ms is null`.
//!
//! Open, close and sign-off write their audit row in the same transaction.

use crate::audit::{self, Actor, Entry};
use crate::{Db, Error, Result, Tx, on_db, on_tx};
use domain::counter::Tender;
use domain::{CentiKwh, Fen, OrderId};

/// A shift as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shift {
    /// Row id.
    pub id: i64,
    /// The cashier's operator id.
    pub operator_id: i64,
    /// The cashier's name.
    pub operator_name: String,
    /// Opened (unix ms).
    pub opened_at_ms: i64,
    /// Sales made in it.
    pub sales_count: i64,
    /// Closed (unix ms); a closed shift is read-only.
    pub closed_at_ms: Option<i64>,
    /// Cash the cashier counted at the close.
    pub counted_cash_fen: Option<Fen>,
    /// Cash the till should hold (cash sales less cash refunds), fixed at the close.
    pub expected_cash_fen: Option<Fen>,
    /// The administrator who signed it off.
    pub signed_off_by: Option<String>,
    /// When it was signed off (unix ms).
    pub signed_off_at_ms: Option<i64>,
}

impl Shift {
    /// Whether the shift is still open.
    pub fn is_open(&self) -> bool {
        self.closed_at_ms.is_none()
    }

    /// Counted minus expected cash (negative: cash missing), once closed.
    pub fn difference_fen(&self) -> Option<Fen> {
        Some(Fen::new(
            self.counted_cash_fen?.get() - self.expected_cash_fen?.get(),
        ))
    }

    fn audit_json(&self) -> serde_json::Value {
        serde_json::json!({
            "shift": self.id,
            "operator": self.operator_name,
            "open": self.is_open(),
            "sales": self.sales_count,
            "counted_cash_fen": self.counted_cash_fen.map(Fen::get),
            "expected_cash_fen": self.expected_cash_fen.map(Fen::get),
            "signed_off_by": self.signed_off_by,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ShiftRow {
    id: i64,
    operator_id: i64,
    operator_name: String,
    opened_at_ms: i64,
    sales_count: i64,
    closed_at_ms: Option<i64>,
    counted_cash_fen: Option<i64>,
    expected_cash_fen: Option<i64>,
    signed_off_by: Option<String>,
    signed_off_at_ms: Option<i64>,
}

impl From<ShiftRow> for Shift {
    fn from(r: ShiftRow) -> Self {
        Shift {
            id: r.id,
            operator_id: r.operator_id,
            operator_name: r.operator_name,
            opened_at_ms: r.opened_at_ms,
            sales_count: r.sales_count,
            closed_at_ms: r.closed_at_ms,
            counted_cash_fen: r.counted_cash_fen.map(Fen::new),
            expected_cash_fen: r.expected_cash_fen.map(Fen::new),
            signed_off_by: r.signed_off_by,
            signed_off_at_ms: r.signed_off_at_ms,
        }
    }
}

/// The shift select list, followed by a literal `where` clause.
macro_rules! select_shift {
    ($tail:literal) => {
        concat!(
            "select s.id, s.operator_id, o.name as operator_name, s.opened_at_ms, s.sales_count,
        s.closed_at_ms, s.counted_cash_fen, s.expected_cash_fen, so.name as signed_off_by, s.signed_off_at_ms
    from shift s join operator o on o.id = s.operator_id left join operator so on so.id = s.signed_off_by ",
            $tail
        )
    };
}

/// Most shifts one [`list`] returns.
pub const LIST_ROWS_MAX: i64 = 500;

async fn load_tx(tx: &mut Tx, id: i64) -> Result<Shift> {
    const SQL: &str = select_shift!("where s.id = $1");
    let r: Option<ShiftRow> = on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(c)
        .await?);
    r.map(Shift::from).ok_or(Error::NotFound("shift"))
}

/// Shift `id`.
pub async fn get(db: &Db, id: i64) -> Result<Option<Shift>> {
    const SQL: &str = select_shift!("where s.id = $1");
    let r: Option<ShiftRow> = on_db!(db, |p| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(p)
        .await?);
    Ok(r.map(Shift::from))
}

/// The open shift of cashier `operator_id`, if any.
pub async fn open_for(db: &Db, operator_id: i64) -> Result<Option<Shift>> {
    const SQL: &str = select_shift!("where s.operator_id = $1 and s.closed_at_ms is null");
    let r: Option<ShiftRow> = on_db!(db, |p| sqlx::query_as(SQL)
        .bind(operator_id)
        .fetch_optional(p)
        .await?);
    Ok(r.map(Shift::from))
}

/// The newest shifts (at most `limit`, capped at [`LIST_ROWS_MAX`]), of one
/// cashier or of everyone.
pub async fn list(db: &Db, operator_id: Option<i64>, limit: i64) -> Result<Vec<Shift>> {
    const SQL: &str = select_shift!(
        "where ($1 is null or s.operator_id = $1) order by s.opened_at_ms desc, s.id desc limit $2"
    );
    let limit = limit.clamp(1, LIST_ROWS_MAX);
    let rows: Vec<ShiftRow> = on_db!(db, |p| sqlx::query_as(SQL)
        .bind(operator_id)
        .bind(limit)
        .fetch_all(p)
        .await?);
    Ok(rows.into_iter().map(Shift::from).collect())
}

/// Opens a shift for `operator_id` and writes `shift_opened`. A cashier
/// with an open shift already: `Conflict` (nothing written).
pub async fn open(db: &Db, operator_id: i64, actor: &Actor, now_ms: i64) -> Result<Shift> {
    let mut tx = db.begin().await?;
    let id: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "insert into shift (operator_id, opened_at_ms) values ($1, $2)
         on conflict (operator_id) where closed_at_ms is null do nothing
         returning id"
    )
    .bind(operator_id)
    .bind(now_ms)
    .fetch_optional(c)
    .await?);
    let Some(id) = id else {
        return Err(Error::Conflict(
            "this cashier already has an open shift".to_owned(),
        ));
    };
    let shift = load_tx(&mut tx, id).await?;
    audit::append_tx(
        &mut tx,
        &Entry {
            actor,
            action: "shift_opened",
            subject: &format!("shift:{id}"),
            before: None,
            after: Some(shift.audit_json()),
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(shift)
}

/// Attributes counter order `order_id`, paid by `tender`, to open shift
/// `shift_id` of `operator_id`, in the sale's transaction. A shift that is
/// closed, unknown or another cashier's: `Conflict` (the caller rolls the
/// sale back).
pub async fn record_sale_in(
    tx: &mut Tx,
    shift_id: i64,
    operator_id: i64,
    order_id: OrderId,
    tender: Tender,
) -> Result<()> {
    let n = on_tx!(tx, |c| sqlx::query(
        "update shift set sales_count = sales_count + 1
         where id = $1 and operator_id = $2 and closed_at_ms is null"
    )
    .bind(shift_id)
    .bind(operator_id)
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        return Err(Error::Conflict(
            "the shift is closed; open a new shift to sell".to_owned(),
        ));
    }
    on_tx!(tx, |c| sqlx::query(
        "insert into shift_sale (order_id, shift_id, tender) values ($1, $2, $3)"
    )
    .bind(order_id.get())
    .bind(shift_id)
    .bind(tender.as_str())
    .execute(c)
    .await?
    .rows_affected());
    Ok(())
}

/// One tender's line of a cash-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TenderTotal {
    /// Cash or card.
    pub tender: Tender,
    /// Sales.
    pub count: i64,
    /// Energy sold.
    pub energy: CentiKwh,
    /// Money taken.
    pub amount: Fen,
}

/// A shift's totals by tender, cash first (every tender listed, zero or not),
/// and the cash paid back from its till.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// One line per tender, in [`Tender::ALL`] order.
    pub by_tender: Vec<TenderTotal>,
    /// Counter refunds paid out of the shift's till (`staff_refund.shift_id`).
    pub refunds: i64,
    /// Their amount.
    pub cash_refunded: Fen,
}

impl Totals {
    /// The line of `tender`.
    pub fn of(&self, tender: Tender) -> TenderTotal {
        self.by_tender
            .iter()
            .copied()
            .find(|t| t.tender == tender)
            .unwrap_or(TenderTotal {
                tender,
                count: 0,
                energy: CentiKwh::new(0),
                amount: Fen::new(0),
            })
    }

    /// The cash the till should hold: cash sales less cash paid back.
    pub fn expected_cash(&self) -> Fen {
        Fen::new(self.of(Tender::Cash).amount.get() - self.cash_refunded.get())
    }

    /// Every tender together.
    pub fn all(&self) -> (i64, CentiKwh, Fen) {
        self.by_tender
            .iter()
            .fold((0, CentiKwh::new(0), Fen::new(0)), |(n, e, a), t| {
                (
                    n + t.count,
                    CentiKwh::new(e.get() + t.energy.get()),
                    Fen::new(a.get() + t.amount.get()),
                )
            })
    }
}

type TotalRow = (String, i64, i64, i64);

const TOTALS_SQL: &str = "select ss.tender, count(*), cast(coalesce(sum(o.kwh), 0) * 100 as bigint), cast(coalesce(sum(o.amount_fen), 0) as bigint)
    from shift_sale ss join orders o on o.id = ss.order_id
    where ss.shift_id = $1 group by ss.tender";

const REFUNDS_SQL: &str = "select count(*), cast(coalesce(sum(amount_fen), 0) as bigint)
    from staff_refund where shift_id = $1 and channel = 'counter'";

fn totals_of(rows: Vec<TotalRow>, (refunds, refunded): (i64, i64)) -> Result<Totals> {
    let mut by_tender: Vec<TenderTotal> = Tender::ALL
        .into_iter()
        .map(|tender| TenderTotal {
            tender,
            count: 0,
            energy: CentiKwh::new(0),
            amount: Fen::new(0),
        })
        .collect();
    for (t, count, centikwh, fen) in rows {
        let tender =
            Tender::parse(&t).ok_or_else(|| Error::Corrupt(format!("shift_sale.tender {t:?}")))?;
        if let Some(line) = by_tender.iter_mut().find(|l| l.tender == tender) {
            *line = TenderTotal {
                tender,
                count,
                energy: CentiKwh::new(centikwh),
                amount: Fen::new(fen),
            };
        }
    }
    Ok(Totals {
        by_tender,
        refunds,
        cash_refunded: Fen::new(refunded),
    })
}

/// Shift `shift_id`'s totals by tender.
pub async fn totals(db: &Db, shift_id: i64) -> Result<Totals> {
    let rows: Vec<TotalRow> = on_db!(db, |p| sqlx::query_as(TOTALS_SQL)
        .bind(shift_id)
        .fetch_all(p)
        .await?);
    let refunds: (i64, i64) = on_db!(db, |p| sqlx::query_as(REFUNDS_SQL)
        .bind(shift_id)
        .fetch_one(p)
        .await?);
    totals_of(rows, refunds)
}

/// One sale of a shift.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct SaleLine {
    /// Order row id.
    pub order_id: i64,
    /// Order number.
    pub out_trade_no: String,
    /// Cash or card (stored name).
    pub tender: String,
    /// Whole kWh.
    pub kwh: i64,
    /// Amount, fen.
    pub amount_fen: i64,
    /// Order state (stored name).
    pub state: String,
    /// Sold at (unix ms).
    pub created_at_ms: i64,
}

/// The sales of shift `shift_id`, oldest first.
pub async fn sales(db: &Db, shift_id: i64) -> Result<Vec<SaleLine>> {
    Ok(on_db!(db, |p| {
        sqlx::query_as(
        "select o.id as order_id, o.out_trade_no, ss.tender, o.kwh, o.amount_fen, o.state, o.created_at_ms
         from shift_sale ss join orders o on o.id = ss.order_id
         where ss.shift_id = $1 order by o.id"
    )
    .bind(shift_id)
    .fetch_all(p)
    .await?
    }))
}

/// The shift an order was sold in and its tender, if it was sold in one.
pub async fn of_order(db: &Db, order_id: OrderId) -> Result<Option<(i64, Tender)>> {
    let r: Option<(i64, String)> = on_db!(db, |p| sqlx::query_as(
        "select shift_id, tender from shift_sale where order_id = $1"
    )
    .bind(order_id.get())
    .fetch_optional(p)
    .await?);
    match r {
        None => Ok(None),
        Some((id, t)) => Tender::parse(&t)
            .map(|t| Some((id, t)))
            .ok_or_else(|| Error::Corrupt(format!("shift_sale.tender {t:?}"))),
    }
}

/// Closes open shift `shift_id` of `operator_id` with `counted` cash, fixes
/// its expected cash (its cash sales less the counter refunds paid from it) and writes `shift_closed`
/// with the totals. Already closed (or not that cashier's): `Conflict`,
/// nothing changed.
pub async fn close(
    db: &Db,
    shift_id: i64,
    operator_id: i64,
    counted: Fen,
    actor: &Actor,
    now_ms: i64,
) -> Result<(Shift, Totals)> {
    if counted.get() < 0 {
        return Err(Error::Conflict(
            "the cash counted cannot be negative".to_owned(),
        ));
    }
    let mut tx = db.begin().await?;
    let before = load_tx(&mut tx, shift_id).await?;
    let n = on_tx!(&mut tx, |c| sqlx::query(
        "update shift set closed_at_ms = $3, counted_cash_fen = $4
         where id = $1 and operator_id = $2 and closed_at_ms is null"
    )
    .bind(shift_id)
    .bind(operator_id)
    .bind(now_ms)
    .bind(counted.get())
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        return Err(Error::Conflict("the shift is already closed".to_owned()));
    }
    // Read under the row lock the close holds: no sale can join any more.
    let rows: Vec<TotalRow> = on_tx!(&mut tx, |c| sqlx::query_as(TOTALS_SQL)
        .bind(shift_id)
        .fetch_all(c)
        .await?);
    let refunds: (i64, i64) = on_tx!(&mut tx, |c| sqlx::query_as(REFUNDS_SQL)
        .bind(shift_id)
        .fetch_one(c)
        .await?);
    let totals = totals_of(rows, refunds)?;
    let expected = totals.expected_cash();
    on_tx!(&mut tx, |c| sqlx::query(
        "update shift set expected_cash_fen = $2 where id = $1"
    )
    .bind(shift_id)
    .bind(expected.get())
    .execute(c)
    .await?
    .rows_affected());
    let after = load_tx(&mut tx, shift_id).await?;
    let mut after_json = after.audit_json();
    after_json["totals"] =
        serde_json::to_value(&totals.by_tender).map_err(|e| Error::Corrupt(e.to_string()))?;
    after_json["cash_refunded_fen"] = serde_json::json!(totals.cash_refunded.get());
    after_json["difference_fen"] = serde_json::json!(after.difference_fen().map(Fen::get));
    audit::append_tx(
        &mut tx,
        &Entry {
            actor,
            action: "shift_closed",
            subject: &format!("shift:{shift_id}"),
            before: Some(before.audit_json()),
            after: Some(after_json),
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok((after, totals))
}

/// Signs closed shift `shift_id` off by administrator `by_operator_id` and
/// writes `shift_signed_off`. Open, or signed off already: `Conflict`.
pub async fn sign_off(
    db: &Db,
    shift_id: i64,
    by_operator_id: i64,
    actor: &Actor,
    now_ms: i64,
) -> Result<Shift> {
    let mut tx = db.begin().await?;
    let before = load_tx(&mut tx, shift_id).await?;
    let n = on_tx!(&mut tx, |c| sqlx::query(
        "update shift set signed_off_by = $2, signed_off_at_ms = $3
         where id = $1 and closed_at_ms is not null and signed_off_at_ms is null"
    )
    .bind(shift_id)
    .bind(by_operator_id)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        return Err(Error::Conflict(if before.is_open() {
            "an open shift cannot be signed off; the cashier closes it first".to_owned()
        } else {
            "the shift is already signed off".to_owned()
        }));
    }
    let after = load_tx(&mut tx, shift_id).await?;
    audit::append_tx(
        &mut tx,
        &Entry {
            actor,
            action: "shift_signed_off",
            subject: &format!("shift:{shift_id}"),
            before: Some(before.audit_json()),
            after: Some(after.audit_json()),
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}
