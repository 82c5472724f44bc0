//! The daily trade bill (wechat-notes §3.9): a CSV-like text where every
//! data field is prefixed with a backtick (to stop spreadsheets turning long
//! ids into scientific notation). Layout:
//!
//! ```text
//! 交易时间,公众账号ID,…            <- detail header
//! `2019-02-19 05:01:46,`wx…,…      <- one row per payment or refund
//! 总交易单数,应结订单总金额,…      <- summary header
//! `45.0,`0.47,…                    <- summary row
//! ```
//!
//! Columns are found by header name, because the exact column set differs
//! between bill versions. Amounts are yuan with 2 decimals (fees 5) and are
//! converted to integers exactly; no floating point touches money.

use std::collections::HashMap;

/// Why a bill could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BillError {
    /// The text is empty or has no header line.
    #[error("bill has no header")]
    MissingHeader,
    /// A column we need is not in the header.
    #[error("bill header lacks column {0}")]
    MissingColumn(&'static str),
    /// A detail row has a different number of fields than the header.
    #[error("line {line}: expected {expected} fields, found {found}")]
    FieldCount {
        /// 1-based line number.
        line: usize,
        /// Header width.
        expected: usize,
        /// Fields in the row.
        found: usize,
    },
    /// An amount or count is not a decimal we can represent exactly.
    #[error("line {line}: bad number {value:?} in column {column}")]
    BadNumber {
        /// 1-based line number.
        line: usize,
        /// Column name.
        column: &'static str,
        /// Raw text.
        value: String,
    },
    /// The summary block is missing or malformed.
    #[error("bill summary missing or malformed")]
    MissingSummary,
    /// The downloaded bytes do not match the announced SHA-1.
    #[error("bill hash mismatch")]
    HashMismatch,
    /// The bill is not UTF-8.
    #[error("bill is not UTF-8")]
    NotUtf8,
}

/// One detail row. Amount units are in the names: `_fen` = 0.01 yuan,
/// `_millifen` = 0.00001 yuan (fees are given to 5 decimals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    /// 交易时间, Beijing time `YYYY-MM-DD HH:MM:SS`.
    pub trade_time: String,
    /// 公众账号ID.
    pub appid: String,
    /// 商户号.
    pub mchid: String,
    /// 微信订单号.
    pub transaction_id: String,
    /// 商户订单号.
    pub out_trade_no: String,
    /// 用户标识 (openid).
    pub openid: String,
    /// 交易类型 (JSAPI, NATIVE, …).
    pub trade_type: String,
    /// 交易状态 (SUCCESS, REFUND, …).
    pub trade_state: String,
    /// 货币种类.
    pub currency: String,
    /// 应结订单金额: order amount minus non-settled coupons.
    pub settlement_total_fen: i64,
    /// 代金券金额.
    pub coupon_fen: i64,
    /// 微信退款单号; `None` where the bill writes `0` (not a refund row).
    pub refund_id: Option<String>,
    /// 商户退款单号; `None` where the bill writes `0`.
    pub out_refund_no: Option<String>,
    /// 退款金额.
    pub refund_fen: i64,
    /// 充值券退款金额.
    pub coupon_refund_fen: i64,
    /// 退款类型.
    pub refund_type: String,
    /// 退款状态.
    pub refund_status: String,
    /// 商品名称.
    pub description: String,
    /// 商户数据包 (attach).
    pub attach: String,
    /// 手续费, in 0.00001 yuan.
    pub fee_millifen: i64,
    /// 费率, as printed (e.g. `0.60%`).
    pub fee_rate: String,
    /// 订单金额.
    pub order_total_fen: i64,
    /// 申请退款金额.
    pub requested_refund_fen: i64,
}

/// The summary block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillSummary {
    /// 总交易单数.
    pub trade_count: i64,
    /// 应结订单总金额.
    pub settlement_total_fen: i64,
    /// 退款总金额.
    pub refund_total_fen: i64,
    /// 充值券退款总金额.
    pub coupon_refund_total_fen: i64,
    /// 手续费总金额, in 0.00001 yuan.
    pub fee_total_millifen: i64,
    /// 订单总金额.
    pub order_total_fen: i64,
    /// 申请退款总金额.
    pub requested_refund_total_fen: i64,
}

/// A parsed trade bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeBill {
    /// Detail rows in file order.
    pub rows: Vec<BillRow>,
    /// The summary.
    pub summary: BillSummary,
}

impl TradeBill {
    /// Whether the summary agrees with the rows (count and every total).
    /// Reconciliation should refuse a bill that does not add up.
    pub fn totals_match(&self) -> bool {
        let sum = |f: fn(&BillRow) -> i64| self.rows.iter().map(f).sum::<i64>();
        let s = &self.summary;
        usize::try_from(s.trade_count).is_ok_and(|n| n == self.rows.len())
            && s.settlement_total_fen == sum(|r| r.settlement_total_fen)
            && s.refund_total_fen == sum(|r| r.refund_fen)
            && s.coupon_refund_total_fen == sum(|r| r.coupon_refund_fen)
            && s.fee_total_millifen == sum(|r| r.fee_millifen)
            && s.order_total_fen == sum(|r| r.order_total_fen)
            && s.requested_refund_total_fen == sum(|r| r.requested_refund_fen)
    }
}

/// Fen per yuan, and fee units (0.00001 yuan) per yuan.
const FEN_DECIMALS: u32 = 2;
const MILLIFEN_DECIMALS: u32 = 5;

/// Parses a non-negative-or-negative decimal with at most `decimals`
/// fractional digits into an integer count of 10^-decimals units.
pub(crate) fn parse_scaled(text: &str, decimals: u32) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() || int_part.len() > 15 || frac_part.len() > decimals as usize {
        return None;
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int: i64 = int_part.parse().ok()?;
    let mut frac: i64 = if frac_part.is_empty() {
        0
    } else {
        frac_part.parse().ok()?
    };
    for _ in frac_part.len()..decimals as usize {
        frac *= 10;
    }
    let value = int.checked_mul(10i64.pow(decimals))?.checked_add(frac)?;
    Some(if negative { -value } else { value })
}

/// Formats fen as yuan with 2 decimals (bill style).
#[cfg_attr(
    not(any(feature = "sandbox", test)),
    expect(dead_code, reason = "only the sandbox uses it")
)]
pub(crate) fn format_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

/// Formats 0.00001-yuan units with 5 decimals.
#[cfg_attr(
    not(any(feature = "sandbox", test)),
    expect(dead_code, reason = "only the sandbox uses it")
)]
pub(crate) fn format_yuan5(millifen: i64) -> String {
    let sign = if millifen < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:05}",
        millifen.abs() / 100_000,
        millifen.abs() % 100_000
    )
}

/// Splits a data line into fields. Every field starts with a backtick, so
/// the separator is really ",`" — which keeps a comma inside a product name
/// from splitting the field.
fn split_fields(line: &str) -> Vec<&str> {
    let line = line.strip_prefix('`').unwrap_or(line);
    line.split(",`").collect()
}

const SUMMARY_FIRST_COLUMN: &str = "总交易单数";

/// Parses the bill text (UTF-8, optional BOM, `\n` or `\r\n` line ends).
pub fn parse_trade_bill(text: &str) -> Result<TradeBill, BillError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or(BillError::MissingHeader)?;
    let columns: HashMap<&str, usize> = header
        .split(',')
        .enumerate()
        .map(|(i, name)| (name.trim(), i))
        .collect();
    let width = header.split(',').count();
    let col = |name: &'static str| {
        columns
            .get(name)
            .copied()
            .ok_or(BillError::MissingColumn(name))
    };
    let idx = BillColumns {
        trade_time: col("交易时间")?,
        appid: col("公众账号ID")?,
        mchid: col("商户号")?,
        transaction_id: col("微信订单号")?,
        out_trade_no: col("商户订单号")?,
        openid: col("用户标识")?,
        trade_type: col("交易类型")?,
        trade_state: col("交易状态")?,
        currency: col("货币种类")?,
        settlement_total: col("应结订单金额")?,
        coupon: col("代金券金额")?,
        refund_id: col("微信退款单号")?,
        out_refund_no: col("商户退款单号")?,
        refund: col("退款金额")?,
        coupon_refund: col("充值券退款金额")?,
        refund_type: col("退款类型")?,
        refund_status: col("退款状态")?,
        description: col("商品名称")?,
        attach: col("商户数据包")?,
        fee: col("手续费")?,
        fee_rate: col("费率")?,
        order_total: columns.get("订单金额").copied(),
        requested_refund: columns.get("申请退款金额").copied(),
    };

    let mut rows = Vec::new();
    let mut summary = None;
    while let Some((line_no, line)) = lines.next() {
        if line.starts_with(SUMMARY_FIRST_COLUMN) {
            let (sum_line_no, sum_line) = lines.next().ok_or(BillError::MissingSummary)?;
            summary = Some(parse_summary(line, sum_line_no, sum_line)?);
            break;
        }
        let fields = split_fields(line);
        if fields.len() != width {
            return Err(BillError::FieldCount {
                line: line_no,
                expected: width,
                found: fields.len(),
            });
        }
        rows.push(idx.row(&fields, line_no)?);
    }
    Ok(TradeBill {
        rows,
        summary: summary.ok_or(BillError::MissingSummary)?,
    })
}

struct BillColumns {
    trade_time: usize,
    appid: usize,
    mchid: usize,
    transaction_id: usize,
    out_trade_no: usize,
    openid: usize,
    trade_type: usize,
    trade_state: usize,
    currency: usize,
    settlement_total: usize,
    coupon: usize,
    refund_id: usize,
    out_refund_no: usize,
    refund: usize,
    coupon_refund: usize,
    refund_type: usize,
    refund_status: usize,
    description: usize,
    attach: usize,
    fee: usize,
    fee_rate: usize,
    order_total: Option<usize>,
    requested_refund: Option<usize>,
}

impl BillColumns {
    fn row(&self, f: &[&str], line: usize) -> Result<BillRow, BillError> {
        let s = |i: usize| f[i].to_owned();
        let num = |i: usize, column: &'static str, decimals: u32| {
            parse_scaled(f[i], decimals).ok_or_else(|| BillError::BadNumber {
                line,
                column,
                value: f[i].to_owned(),
            })
        };
        // "0" is how the bill says "no refund" in the refund id columns.
        let opt_id = |i: usize| match f[i] {
            "" | "0" => None,
            v => Some(v.to_owned()),
        };
        let settlement_total_fen = num(self.settlement_total, "应结订单金额", FEN_DECIMALS)?;
        Ok(BillRow {
            trade_time: s(self.trade_time),
            appid: s(self.appid),
            mchid: s(self.mchid),
            transaction_id: s(self.transaction_id),
            out_trade_no: s(self.out_trade_no),
            openid: s(self.openid),
            trade_type: s(self.trade_type),
            trade_state: s(self.trade_state),
            currency: s(self.currency),
            settlement_total_fen,
            coupon_fen: num(self.coupon, "代金券金额", FEN_DECIMALS)?,
            refund_id: opt_id(self.refund_id),
            out_refund_no: opt_id(self.out_refund_no),
            refund_fen: num(self.refund, "退款金额", FEN_DECIMALS)?,
            coupon_refund_fen: num(self.coupon_refund, "充值券退款金额", FEN_DECIMALS)?,
            refund_type: s(self.refund_type),
            refund_status: s(self.refund_status),
            description: s(self.description),
            attach: s(self.attach),
            fee_millifen: num(self.fee, "手续费", MILLIFEN_DECIMALS)?,
            fee_rate: s(self.fee_rate),
            // Older bills lack these two; fall back to the settled amounts.
            order_total_fen: match self.order_total {
                Some(i) => num(i, "订单金额", FEN_DECIMALS)?,
                None => settlement_total_fen,
            },
            requested_refund_fen: match self.requested_refund {
                Some(i) => num(i, "申请退款金额", FEN_DECIMALS)?,
                None => num(self.refund, "退款金额", FEN_DECIMALS)?,
            },
        })
    }
}

fn parse_summary(header: &str, line_no: usize, line: &str) -> Result<BillSummary, BillError> {
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let values = split_fields(line);
    if values.len() != names.len() {
        return Err(BillError::MissingSummary);
    }
    let get = |column: &'static str, decimals: u32| -> Result<i64, BillError> {
        let i = names
            .iter()
            .position(|n| *n == column)
            .ok_or(BillError::MissingColumn(column))?;
        parse_scaled(values[i], decimals).ok_or_else(|| BillError::BadNumber {
            line: line_no,
            column,
            value: values[i].to_owned(),
        })
    };
    let optional = |column: &'static str, fallback: i64| -> Result<i64, BillError> {
        if names.contains(&column) {
            get(column, FEN_DECIMALS)
        } else {
            Ok(fallback)
        }
    };
    // The count is printed as "45.0"; accept one decimal and insist it is whole.
    let count_tenths = get(SUMMARY_FIRST_COLUMN, 1)?;
    if count_tenths % 10 != 0 {
        return Err(BillError::BadNumber {
            line: line_no,
            column: SUMMARY_FIRST_COLUMN,
            value: values[0].to_owned(),
        });
    }
    let settlement_total_fen = get("应结订单总金额", FEN_DECIMALS)?;
    let refund_total_fen = get("退款总金额", FEN_DECIMALS)?;
    Ok(BillSummary {
        trade_count: count_tenths / 10,
        settlement_total_fen,
        refund_total_fen,
        coupon_refund_total_fen: get("充值券退款总金额", FEN_DECIMALS)?,
        fee_total_millifen: get("手续费总金额", MILLIFEN_DECIMALS)?,
        order_total_fen: optional("订单总金额", settlement_total_fen)?,
        requested_refund_total_fen: optional("申请退款总金额", refund_total_fen)?,
    })
}

/// Checks downloaded bill bytes against the announced hash (SHA-1 of the
/// uncompressed file, lower- or upper-case hex).
pub fn check_bill_hash(bytes: &[u8], hash_type: &str, hash_value: &str) -> Result<(), BillError> {
    if !hash_type.eq_ignore_ascii_case("SHA1") {
        return Err(BillError::HashMismatch);
    }
    if sha1_hex(bytes).eq_ignore_ascii_case(hash_value) {
        Ok(())
    } else {
        Err(BillError::HashMismatch)
    }
}

/// Lower-case hex SHA-1, the form WeChat announces.
pub(crate) fn sha1_hex(bytes: &[u8]) -> String {
    // SHA-1 is WeChat's choice for this integrity check, not ours.
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Column names in the order we write them (sandbox bills).
#[cfg_attr(
    not(feature = "sandbox"),
    expect(dead_code, reason = "only the sandbox uses it")
)]
pub(crate) const BILL_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
/// Summary header in the order we write it.
#[cfg_attr(
    not(feature = "sandbox"),
    expect(dead_code, reason = "only the sandbox uses it")
)]
pub(crate) const SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_decimals_are_exact() {
        assert_eq!(parse_scaled("0.47", 2), Some(47));
        assert_eq!(parse_scaled("12", 2), Some(1200));
        assert_eq!(parse_scaled("0.1", 2), Some(10));
        assert_eq!(parse_scaled("0.01000", 5), Some(1000));
        assert_eq!(parse_scaled("-1.50", 2), Some(-150));
        assert_eq!(parse_scaled("0.001", 2), None);
        assert_eq!(parse_scaled("", 2), None);
        assert_eq!(parse_scaled("1e3", 2), None);
        assert_eq!(parse_scaled(".5", 2), None);
        assert_eq!(format_yuan(1234), "12.34");
        assert_eq!(format_yuan(5), "0.05");
        assert_eq!(format_yuan5(1000), "0.01000");
    }

    #[test]
    fn comma_inside_field_survives() {
        assert_eq!(split_fields("`a,b,`,`c"), vec!["a,b", "", "c"]);
    }
}
