//! Inbox messages as a kind and typed arguments (issue 11 item 6): the
//! store keeps *what happened* (which meter, how much), never finished
//! text, so a message renders in the reader's language when it is read
//! (`web` formats `msg-<kind>-title` / `msg-<kind>-body` from its Fluent
//! catalogs) and WeChat template messages can reuse the same arguments.
//!
//! [`MessageArgs`] is the one typed argument set; [`MessageArgs::encode`]
//! and [`MessageArgs::decode`] are the one place that maps it to and from
//! the `message.kind` and `message.args` columns. Rows written before
//! migration 0007 have no `args` and keep their stored bilingual
//! title/body ([`MessageContent::Text`]).

use crate::row::BadValue;
use crate::{Result, Tx, on_tx};
use domain::MeterId;
use serde::{Deserialize, Serialize};

/// The meter a message is about, as every message names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// Building name (zh).
    pub building_zh: String,
    /// Building name (en).
    pub building_en: String,
    /// Room number.
    pub room: String,
    /// The meter's 12-digit nameplate number.
    pub meter: String,
}

/// What a typed message says: one variant per kind, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "args", rename_all = "snake_case")]
pub enum MessageArgs {
    /// A purchase reached the meter.
    Delivered {
        /// The meter.
        place: Place,
        /// Whole kWh of the order.
        kwh: i64,
        /// The order's merchant number (what the student sees in records).
        out_trade_no: String,
    },
    /// The remaining energy fell below the meter's low-balance mark.
    LowBalance {
        /// The meter.
        place: Place,
        /// Remaining energy as read, 0.01 kWh.
        remaining_centikwh: i64,
    },
    /// Another student bound a meter the reader is bound to.
    BinderAdded {
        /// The meter.
        place: Place,
    },
    /// Another binder changed the meter's password; the reader was unbound.
    UnboundByPasswordChange {
        /// The meter.
        place: Place,
    },
    /// Staff reset the meter's password; every binder was unbound.
    PasswordResetByStaff {
        /// The meter.
        place: Place,
    },
    /// The meter cut the power: the balance was used up (issue 15).
    PowerCut {
        /// The meter.
        place: Place,
    },
}

impl MessageArgs {
    /// The `message.kind` and `message.args` (JSON) of these arguments.
    #[cfg_attr(
        not(test),
        expect(
            clippy::expect_used,
            reason = "plain strings and integers always serialize"
        )
    )]
    pub fn encode(&self) -> (String, String) {
        let mut v = serde_json::to_value(self).expect("message arguments serialize");
        let kind = v["kind"].as_str().unwrap_or_default().to_owned();
        (kind, v["args"].take().to_string())
    }

    /// The arguments stored as `kind` and `args`; `Err` names the column
    /// when they are not a message this build knows.
    pub fn decode(kind: &str, args: &str) -> std::result::Result<Self, String> {
        let args: serde_json::Value =
            serde_json::from_str(args).map_err(|e| format!("message.args = {args}: {e}"))?;
        serde_json::from_value(serde_json::json!({ "kind": kind, "args": args }))
            .map_err(|e| format!("message.kind/args = {kind} {args}: {e}"))
    }

    /// The kind, as stored (`delivered`, `low_balance`, …).
    pub fn kind(&self) -> String {
        self.encode().0
    }

    /// The meter the message is about.
    pub fn place(&self) -> &Place {
        match self {
            MessageArgs::Delivered { place, .. }
            | MessageArgs::LowBalance { place, .. }
            | MessageArgs::BinderAdded { place }
            | MessageArgs::UnboundByPasswordChange { place }
            | MessageArgs::PasswordResetByStaff { place }
            | MessageArgs::PowerCut { place } => place,
        }
    }
}

/// What a stored message holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum MessageContent {
    /// Kind and arguments, rendered in the reader's language.
    Typed(MessageArgs),
    /// Finished text: rows from before migration 0007, and plain messages
    /// whose sender wrote the text ([`crate::students::send_message`]).
    Text {
        /// Title as stored.
        title: String,
        /// Body as stored.
        body: String,
    },
}

impl MessageContent {
    /// Decodes the stored columns: with `args`, a typed message.
    pub(crate) fn from_columns(
        kind: &str,
        title: String,
        body: String,
        args: Option<&str>,
    ) -> std::result::Result<Self, BadValue> {
        match args {
            Some(a) => MessageArgs::decode(kind, a)
                .map(MessageContent::Typed)
                .map_err(BadValue),
            None => Ok(MessageContent::Text { title, body }),
        }
    }
}

/// The place of a meter (building, room, number).
pub(crate) async fn place_in(tx: &mut Tx, meter_id: MeterId) -> Result<Place> {
    let (building_zh, building_en, room, meter): (String, String, String, String) =
        on_tx!(tx, |c| sqlx::query_as(
            "select b.name_zh, b.name_en, r.number, m.address from meter m
             join room r on r.id = m.room_id
             join building b on b.id = r.building_id
             where m.id = $1"
        )
        .bind(meter_id.get())
        .fetch_one(c)
        .await?);
    Ok(Place {
        building_zh,
        building_en,
        room,
        meter,
    })
}

/// Adds a typed message to a student's inbox in `tx`; a repeated
/// `dedup_key` is ignored (I9). Returns whether a row was written.
pub(crate) async fn insert_in(
    tx: &mut Tx,
    student_id: i64,
    args: &MessageArgs,
    dedup_key: Option<&str>,
    now_ms: i64,
) -> Result<bool> {
    let (kind, json) = args.encode();
    let n = on_tx!(tx, |c| sqlx::query(
        "insert into message (student_id, kind, title, body, args, dedup_key, created_at_ms)
         values ($1, $2, '', '', $3, $4, $5) on conflict (dedup_key) do nothing"
    )
    .bind(student_id)
    .bind(&kind)
    .bind(&json)
    .bind(dedup_key)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place() -> Place {
        Place {
            building_zh: "A区".to_owned(),
            building_en: "Zone A".to_owned(),
            room: "101".to_owned(),
            meter: "201701010001".to_owned(),
        }
    }

    #[test]
    fn every_kind_round_trips_through_its_columns() {
        for m in [
            MessageArgs::Delivered {
                place: place(),
                kwh: 20,
                out_trade_no: "DW1".to_owned(),
            },
            MessageArgs::LowBalance {
                place: place(),
                remaining_centikwh: 150,
            },
            MessageArgs::BinderAdded { place: place() },
            MessageArgs::UnboundByPasswordChange { place: place() },
            MessageArgs::PasswordResetByStaff { place: place() },
            MessageArgs::PowerCut { place: place() },
        ] {
            let (kind, args) = m.encode();
            assert!(!args.contains("\"kind\""), "{args}");
            assert_eq!(MessageArgs::decode(&kind, &args), Ok(m.clone()));
            assert_eq!(m.kind(), kind);
            assert_eq!(m.place(), &place());
        }
        assert_eq!(
            MessageArgs::BinderAdded { place: place() }.kind(),
            "binder_added"
        );
        assert!(MessageArgs::decode("no_such_kind", "{}").is_err());
        assert!(MessageArgs::decode("low_balance", "not json").is_err());
    }
}
