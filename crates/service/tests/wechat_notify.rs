//! WeChat notifications end to end (issue 15): meter events write inbox
//! messages and outbox rows (store::notify), the sender
//! (service::wechat_notify) pushes them through the real WechatClient to
//! the protocol-true mock official account, on SQLite and PostgreSQL.

use service::wechat_notify::{self, SenderSettings, Templates};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use store::Db;
use store::message::{MessageArgs, MessageContent};
use store::meters::Observation;
use store::wechat_outbox::{self, FollowSource, Follows, OutboxState};
use wechat::mock::MockWechat;
use wechat::{Config, WechatClient};

const APPID: &str = "wxTESTAPPID";
const SECRET: &str = "test-secret";
/// Campus midnight (Asia/Shanghai) of the seeded databases.
const MIDNIGHT: i64 = 1_795_622_400_000;
const HOUR: i64 = 3_600_000;
/// 10:00 campus time: outside the default quiet hours.
const DAY: i64 = MIDNIGHT + 10 * HOUR;
const METER: i64 = 6;
const TPL_LOW: &str = "TPL_LOW_BALANCE";
const TPL_DELIVERED: &str = "TPL_DELIVERED";
const TPL_CUT: &str = "TPL_POWER_CUT";

struct World {
    db: Db,
    mock: MockWechat,
    client: WechatClient,
    now: Arc<AtomicI64>,
    settings: SenderSettings,
    /// (student id, openid): a and b follow, c does not.
    students: Vec<(i64, String)>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl World {
    fn at(&self, ms: i64) -> i64 {
        self.now.store(ms, Ordering::SeqCst);
        ms
    }

    async fn tick(&self, worker: &str, ms: i64) -> wechat_notify::SendReport {
        let now = self.at(ms);
        wechat_notify::tick(&self.db, &self.client, &self.settings, worker, now)
            .await
            .expect("tick")
    }

    async fn low_reading(&self, remaining_centikwh: i64, ms: i64) {
        store::meters::record(
            &self.db,
            &[Observation {
                meter_id: METER,
                at_ms: ms,
                seen: true,
                remaining_centikwh: Some(remaining_centikwh),
                ..Observation::default()
            }],
            &[],
            &[],
            ms,
        )
        .await
        .expect("reading");
    }

    async fn low_balance_inbox(&self, student: i64) -> usize {
        store::students::messages(&self.db, student, 100)
            .await
            .expect("inbox")
            .iter()
            .filter(|m| {
                matches!(
                    &m.content,
                    MessageContent::Typed(MessageArgs::LowBalance { .. })
                )
            })
            .count()
    }

    fn sent_to(&self, openid: &str) -> usize {
        self.mock
            .sent()
            .iter()
            .filter(|m| m["touser"] == openid)
            .count()
    }
}

async fn worlds() -> Vec<World> {
    let mut out = Vec::new();
    for db in store::testing::all_seeded(MIDNIGHT).await.expect("dbs") {
        let now = Arc::new(AtomicI64::new(DAY));
        let n = now.clone();
        let clock: wechat::Clock = Arc::new(move || n.load(Ordering::SeqCst));
        let mock = MockWechat::new(APPID, SECRET, clock.clone());
        mock.add_template(TPL_LOW);
        mock.add_template(TPL_DELIVERED);
        mock.add_template(TPL_CUT);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(mock.clone().serve(listener, async {
            let _ = rx.await;
        }));
        let mut cfg = Config::new(APPID, SECRET);
        cfg.api_base_url = base;
        let client = WechatClient::with_clock(cfg, clock).expect("client");
        let mut students = Vec::new();
        for name in ["o-alice", "o-bob", "o-carol"] {
            let s = store::students::upsert_by_openid(&db, name, false, MIDNIGHT)
                .await
                .expect("student");
            store::students::bind(&db, s.id, METER, true, 5, MIDNIGHT)
                .await
                .expect("bind");
            students.push((s.id, name.to_owned()));
        }
        mock.add_follower("o-alice");
        mock.add_follower("o-bob");
        let templates = Templates {
            delivered: Some(TPL_DELIVERED.to_owned()),
            low_balance: Some(TPL_LOW.to_owned()),
            power_cut: Some(TPL_CUT.to_owned()),
        };
        let settings = SenderSettings::new(templates, domain::time::CampusTz::default());
        out.push(World {
            db,
            mock,
            client,
            now,
            settings,
            students,
            _stop: tx,
        });
    }
    out
}

#[tokio::test]
async fn a_crossing_yields_one_template_message_per_follower_and_one_inbox_message_per_binder() {
    for w in worlds().await {
        w.low_reading(120, DAY).await;
        assert_eq!(
            store::notify::scan_low_balance(&w.db, DAY).await.unwrap(),
            3
        );
        let r = w.tick("w1", DAY).await;
        assert_eq!((r.claimed, r.sent, r.skipped), (3, 2, 1), "{r:?}");
        // Scanning and sending again: nothing new for the same crossing.
        assert_eq!(
            store::notify::scan_low_balance(&w.db, DAY + 60_000)
                .await
                .unwrap(),
            0
        );
        w.low_reading(110, DAY + 120_000).await;
        assert_eq!(
            store::notify::scan_low_balance(&w.db, DAY + 120_000)
                .await
                .unwrap(),
            0
        );
        assert_eq!(w.tick("w1", DAY + 180_000).await.claimed, 0);
        for (id, openid) in &w.students {
            assert_eq!(w.low_balance_inbox(*id).await, 1, "{openid}");
        }
        assert_eq!(w.sent_to("o-alice"), 1);
        assert_eq!(w.sent_to("o-bob"), 1);
        // Carol does not follow: 43004 marks her so, she keeps the inbox only.
        assert_eq!(w.sent_to("o-carol"), 0);
        let carol = w.students[2].0;
        assert_eq!(
            wechat_outbox::follows(&w.db, carol).await.unwrap(),
            Follows::No
        );
        let rows = wechat_outbox::rows_of(&w.db, carol).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, OutboxState::Skipped);
        assert_eq!(rows[0].last_errcode, Some(43004));
        // The text fits WeChat's rules: no first/remark, ≤ 20 characters each.
        let m = &w.mock.sent()[0];
        assert_eq!(m["template_id"], TPL_LOW);
        let data = m["data"].as_object().unwrap();
        assert!(!data.contains_key("first") && !data.contains_key("remark"));
        for (k, v) in data {
            assert!(
                v["value"].as_str().unwrap().chars().count() <= 20,
                "{k}: {v}"
            );
        }
        assert!(
            data["thing2"]["value"]
                .as_str()
                .unwrap()
                .contains("1.20 kWh"),
            "{data:?}"
        );
        // The next crossing after a recharge is told again — but Carol,
        // marked not following, gets no more attempts.
        let before = w.mock.template_requests();
        store::meters::set_purchase_count(&w.db, domain::MeterId::new(METER), 9, DAY + HOUR)
            .await
            .unwrap();
        assert_eq!(
            store::notify::scan_low_balance(&w.db, DAY + HOUR)
                .await
                .unwrap(),
            3
        );
        let r = w.tick("w1", DAY + HOUR).await;
        assert_eq!((r.sent, r.skipped), (2, 1), "{r:?}");
        assert_eq!(w.mock.template_requests() - before, 2);
        let stats = wechat_outbox::stats(&w.db, MIDNIGHT).await.unwrap();
        assert_eq!(
            (stats.pending, stats.sent_today, stats.failed_today),
            (0, 4, 0)
        );
    }
}

#[tokio::test]
async fn nothing_is_pushed_in_quiet_hours_until_morning() {
    for w in worlds().await {
        let night = MIDNIGHT + 23 * HOUR + 30 * 60_000;
        w.low_reading(120, night).await;
        assert_eq!(
            store::notify::scan_low_balance(&w.db, night).await.unwrap(),
            3
        );
        let r = w.tick("w1", night).await;
        // Carol's follow state is not known yet: she waits too.
        assert_eq!((r.sent, r.deferred), (0, 3), "{r:?}");
        let morning = MIDNIGHT + 31 * HOUR; // 07:00 the next day
        assert_eq!(w.tick("w1", morning - 60_000).await.claimed, 0);
        assert!(w.mock.sent().is_empty());
        let r = w.tick("w1", morning).await;
        assert_eq!(r.sent, 2, "{r:?}");
        // The inbox had them at once.
        assert_eq!(w.low_balance_inbox(w.students[0].0).await, 1);
    }
}

#[tokio::test]
async fn an_unsubscribe_stops_pushes_to_that_student() {
    for w in worlds().await {
        let alice = &w.students[0];
        assert!(
            wechat_outbox::set_follow_by_openid(
                &w.db,
                &alice.1,
                Follows::No,
                FollowSource::Event,
                DAY
            )
            .await
            .unwrap()
        );
        w.mock.remove_follower(&alice.1);
        w.low_reading(120, DAY).await;
        store::notify::scan_low_balance(&w.db, DAY).await.unwrap();
        let before = w.mock.template_requests();
        w.tick("w1", DAY).await;
        assert_eq!(w.sent_to(&alice.1), 0);
        // Alice is not even tried; Bob is sent, Carol tried (43004).
        assert_eq!(w.mock.template_requests() - before, 2);
        assert_eq!(w.low_balance_inbox(alice.0).await, 1);
    }
}

#[tokio::test]
async fn the_token_is_fetched_once_for_many_messages_and_again_on_40001() {
    for w in worlds().await {
        w.mock.add_follower("o-carol");
        for k in 0..4 {
            store::meters::set_purchase_count(&w.db, domain::MeterId::new(METER), 20 + k, DAY)
                .await
                .unwrap();
            w.low_reading(120, DAY).await;
            store::notify::scan_low_balance(&w.db, DAY).await.unwrap();
        }
        let r = w.tick("w1", DAY).await;
        assert_eq!(r.sent, 12, "{r:?}");
        assert_eq!(w.mock.token_requests(), 1);
        w.mock.revoke_tokens();
        store::meters::set_purchase_count(&w.db, domain::MeterId::new(METER), 30, DAY)
            .await
            .unwrap();
        store::notify::scan_low_balance(&w.db, DAY + 1)
            .await
            .unwrap();
        let r = w.tick("w1", DAY + 1).await;
        assert_eq!(r.sent, 3, "{r:?}");
        assert_eq!(w.mock.token_requests(), 2);
    }
}

#[tokio::test]
async fn a_crash_between_claim_and_finish_neither_loses_nor_duplicates() {
    for w in worlds().await {
        w.low_reading(120, DAY).await;
        store::notify::scan_low_balance(&w.db, DAY).await.unwrap();
        // Worker 1 claims everything and "crashes" before sending.
        let lease_ms = 60_000;
        let stale = wechat_outbox::claim(&w.db, "w1", DAY, lease_ms, 10)
            .await
            .unwrap();
        assert_eq!(stale.len(), 3);
        // Within the lease nobody else takes them.
        assert_eq!(w.tick("w2", DAY + lease_ms - 1).await.claimed, 0);
        // After it, worker 2 re-claims and sends, once.
        let r = w.tick("w2", DAY + lease_ms + 1).await;
        assert_eq!((r.claimed, r.sent), (3, 2), "{r:?}");
        // Worker 1 wakes up: its late finish is refused by the epoch fence.
        let late = wechat_outbox::finish(
            &w.db,
            &stale[0],
            &wechat_outbox::Outcome::Retry {
                at_ms: DAY,
                errcode: None,
                error: "late".to_owned(),
            },
            DAY + 2 * lease_ms,
        )
        .await;
        assert!(matches!(late, Err(store::Error::LeaseLost(_))), "{late:?}");
        assert_eq!(w.tick("w1", DAY + 3 * lease_ms).await.claimed, 0);
        assert_eq!(w.sent_to("o-alice"), 1);
        assert_eq!(w.sent_to("o-bob"), 1);
    }
}

#[tokio::test]
async fn rate_limits_back_off_and_a_long_outage_fails_visibly() {
    for w in worlds().await {
        w.low_reading(120, DAY).await;
        store::notify::scan_low_balance(&w.db, DAY).await.unwrap();
        // 45009 (quota) on Alice's send, then 43117 on Bob's.
        w.mock.fail_next_sends(45009, 1);
        w.mock.fail_next_sends(43117, 1);
        let r = w.tick("w1", DAY).await;
        assert_eq!((r.sent, r.retried, r.skipped), (0, 2, 1), "{r:?}");
        let alice = wechat_outbox::rows_of(&w.db, w.students[0].0)
            .await
            .unwrap();
        assert_eq!(alice[0].state, OutboxState::Pending);
        assert_eq!(alice[0].next_attempt_at_ms, DAY + 30_000);
        assert_eq!(w.tick("w1", DAY + 29_999).await.claimed, 0);
        assert_eq!(w.tick("w1", DAY + 30_000).await.sent, 2);

        // WeChat down for hours: the row waits (backing off), then fails.
        store::meters::set_purchase_count(&w.db, domain::MeterId::new(METER), 40, DAY)
            .await
            .unwrap();
        store::notify::scan_low_balance(&w.db, DAY + HOUR)
            .await
            .unwrap();
        w.mock.fail_next_sends(-1, 10_000);
        let mut t = DAY + HOUR;
        let mut failed = 0;
        for _ in 0..100 {
            let r = w.tick("w1", t).await;
            failed += r.failed;
            t += 10 * 60_000;
        }
        assert_eq!(failed, 2);
        let stats = wechat_outbox::stats(&w.db, MIDNIGHT).await.unwrap();
        assert_eq!((stats.pending, stats.failed_today), (0, 2));
        let bob = wechat_outbox::rows_of(&w.db, w.students[1].0)
            .await
            .unwrap();
        assert_eq!(bob[1].state, OutboxState::Failed);
        assert_eq!(bob[1].last_errcode, Some(-1));
    }
}

#[tokio::test]
async fn a_power_cut_for_balance_is_pushed_once_with_what_to_do() {
    for w in worlds().await {
        let trip = |at_ms: i64| store::meters::MeterEvent {
            meter_id: METER,
            at_ms,
            kind: "trip".to_owned(),
            detail: "balance".to_owned(),
        };
        // Seen twice (a head-end restart re-reads the open relay): told once.
        for at in [DAY, DAY + 60_000] {
            store::meters::record(&w.db, &[], &[trip(at)], &[], at)
                .await
                .unwrap();
        }
        let r = w.tick("w1", DAY + 120_000).await;
        assert_eq!((r.sent, r.skipped), (2, 1), "{r:?}");
        let m = &w.mock.sent()[0];
        assert_eq!(m["template_id"], TPL_CUT);
        assert_eq!(m["data"]["thing2"]["value"], "余额不足，已断电");
        assert_eq!(m["data"]["thing3"]["value"], "购电到账后即可恢复供电");
        let inbox = store::students::messages(&w.db, w.students[0].0, 100)
            .await
            .unwrap();
        let cuts = inbox
            .iter()
            .filter(|m| {
                matches!(
                    &m.content,
                    MessageContent::Typed(MessageArgs::PowerCut { .. })
                )
            })
            .count();
        assert_eq!(cuts, 1);
        // Another trip reason is not a power cut for balance.
        let mut other = trip(DAY + HOUR);
        other.detail = "malicious_load; trips since install 3".to_owned();
        store::meters::record(&w.db, &[], &[other], &[], DAY + HOUR)
            .await
            .unwrap();
        assert_eq!(w.tick("w1", DAY + HOUR).await.claimed, 0);
    }
}
