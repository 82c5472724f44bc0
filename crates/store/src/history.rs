//! Plausible daily-usage history for the demo and the benchmarks
//! (`dormwatt seed --history-days N`): dorm load shapes with term-time
//! weekdays, busier weekends, hot and cold months, near-idle holidays and a
//! few days that could not be read (S4: stored as missing, never as zero).

use crate::{Db, Result, on_db, on_tx};
use domain::MeterId;
use domain::time::{date_of_day_number, day_number, local_date};
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

/// Rows per insert statement (4 binds each stays far below both backends' limits).
const BATCH_ROWS: usize = 2000;

/// A deterministic 64-bit mix (splitmix64), so the same meter and day always
/// get the same figure without storing an RNG.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    // Top 53 bits → [0, 1).
    #[expect(
        clippy::cast_precision_loss,
        reason = "53 bits fit an f64 mantissa exactly"
    )]
    let v = (x >> 11) as f64;
    v / (1u64 << 53) as f64
}

/// Usage of one room on one day in 0.01 kWh, or `None` when the day was not read.
pub fn daily_usage(meter_id: MeterId, date: Date) -> Option<i64> {
    let seed = mix(u64::try_from(meter_id.get()).unwrap_or(0));
    let day = u64::try_from(day_number(date)).unwrap_or(0);
    let h = mix(seed ^ day.wrapping_mul(0x2545_F491_4F6C_DD1D));
    // About three days in a thousand could not be collected.
    if h % 1000 < 3 {
        return None;
    }
    let room_base_kwh = 2.0 + 5.0 * unit(seed); // 2–7 kWh a day in term time
    let (m, d) = (date.month(), date.day());
    let holiday = (m == 1 && d >= 15)
        || (m == 2 && d <= 25)
        || m == 8
        || (m == 7 && d >= 5)
        || (m == 10 && d <= 7);
    let season = match m {
        6 | 9 => 1.6, // hot: fans and air conditioning
        12 | 1 | 2 => 1.3,
        _ => 1.0,
    };
    let weekday = match date.weekday() {
        Weekday::Saturday | Weekday::Sunday => 1.2,
        Weekday::Friday => 1.1,
        _ => 1.0,
    };
    let noise = 0.75 + 0.5 * unit(mix(h));
    let kwh = if holiday {
        0.1 + 0.4 * unit(h)
    } else {
        room_base_kwh * season * weekday * noise
    };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a day's usage is far below i64::MAX"
    )]
    Some((kwh * 100.0).round() as i64)
}

/// Generates `days` days of history ending yesterday (campus time) for every
/// meter, skipping days that already have a row. Returns rows written.
pub async fn generate(db: &Db, days: u32, tz: &TimeZone, now_ms: i64) -> Result<u64> {
    let meters: Vec<i64> = on_db!(db, |p| sqlx::query_scalar(
        "select id from meter order by id"
    )
    .fetch_all(p)
    .await?);
    let today = day_number(local_date(now_ms, tz));
    let first = today - i64::from(days);
    let mut rows: Vec<(i64, i64, Option<i64>, Option<i64>)> = Vec::with_capacity(BATCH_ROWS);
    let mut written = 0;
    let mut totals = Vec::with_capacity(meters.len());
    for &meter in &meters {
        // Cumulative register reading at the end of each day.
        let mut total =
            100_000 + i64::try_from(mix(u64::try_from(meter).unwrap_or(0)) % 500_000).unwrap_or(0);
        for day in first..today {
            let usage = daily_usage(MeterId::new(meter), date_of_day_number(day));
            if let Some(u) = usage {
                total += u;
            } else {
                // The register still advanced; only our reading is missing.
                total +=
                    daily_usage(MeterId::new(meter), date_of_day_number(day - 1)).unwrap_or(300);
            }
            rows.push((meter, day, usage, usage.map(|_| total)));
            if rows.len() == BATCH_ROWS {
                written += flush(db, &rows, now_ms).await?;
                rows.clear();
            }
        }
        totals.push((meter, total));
    }
    if !rows.is_empty() {
        written += flush(db, &rows, now_ms).await?;
    }
    // The registers' readings at the end of the history, in one transaction.
    let mut tx = db.begin().await?;
    for (meter, total) in totals {
        on_tx!(&mut tx, |c| {
            sqlx::query(
            "update meter_state set total_centikwh = coalesce(total_centikwh, $2), updated_at_ms = $3
             where meter_id = $1"
        )
        .bind(meter)
        .bind(total)
        .bind(now_ms)
        .execute(c)
        .await?
        .rows_affected()
        });
    }
    tx.commit().await?;
    Ok(written)
}

async fn flush(db: &Db, rows: &[(i64, i64, Option<i64>, Option<i64>)], now_ms: i64) -> Result<u64> {
    macro_rules! insert {
        ($pool:expr, $db:ty) => {{
            let mut qb = sqlx::QueryBuilder::<$db>::new(
                "insert into daily_usage (meter_id, day, usage_centikwh, total_end_centikwh, status, updated_at_ms) ",
            );
            qb.push_values(rows, |mut b, r| {
                b.push_bind(r.0)
                    .push_bind(r.1)
                    .push_bind(r.2)
                    .push_bind(r.3)
                    .push_bind(if r.2.is_some() { "ok" } else { "missing" })
                    .push_bind(now_ms);
            });
            qb.push(" on conflict (meter_id, day) do nothing");
            let mut tx = $pool.begin().await?;
            let n = qb.build().execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            n
        }};
    }
    Ok(match db {
        Db::Sqlite(p) => insert!(p, sqlx::Sqlite),
        Db::Postgres(p) => insert!(p, sqlx::Postgres),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holidays_are_quiet_and_term_days_are_not() {
        let term: i64 = (1..=28)
            .filter_map(|d| daily_usage(MeterId::new(5), Date::constant(2026, 11, d)))
            .sum();
        let holiday: i64 = (1..=28)
            .filter_map(|d| daily_usage(MeterId::new(5), Date::constant(2026, 8, d)))
            .sum();
        assert!(term > 5 * holiday, "term {term} holiday {holiday}");
        // Deterministic.
        assert_eq!(
            daily_usage(MeterId::new(9), Date::constant(2026, 3, 3)),
            daily_usage(MeterId::new(9), Date::constant(2026, 3, 3))
        );
    }

    #[test]
    fn some_days_are_missing_but_few() {
        let mut missing = 0;
        for m in 1..200 {
            for d in 1..=28 {
                if daily_usage(MeterId::new(m), Date::constant(2026, 3, d)).is_none() {
                    missing += 1;
                }
            }
        }
        assert!(missing > 0 && missing < 60, "{missing}");
    }
}
