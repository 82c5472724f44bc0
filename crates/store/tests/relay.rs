//! Staff relay commands (issue 14 item 5): the state machine, the guarded
//! claim and outcome, the cancellation bound, keep-power. Both backends;
//! the race runs at READ COMMITTED on PostgreSQL.

mod common;

use common::{NOW, at_once, audit_rows, exec, operator, seeded_two_buildings};
use domain::staff::Role;
use store::Db;
use store::relay::{self, CommandState, Outcome, Reason, RelayAction};

const LEASE_MS: i64 = 30_000;

async fn meter_ids(db: &Db, n: i64) -> Vec<i64> {
    store::on_db!(db, |p| sqlx::query_scalar::<_, i64>(
        "select id from meter order by id limit $1"
    )
    .bind(n)
    .fetch_all(p)
    .await)
    .unwrap()
}

async fn all_online(db: &Db) {
    exec(db, "update meter_state set online = true").await;
}

fn accepted(sw: i64) -> Outcome {
    Outcome {
        accepted: true,
        status_word: Some(sw),
        relay_closed: Some(sw & 0x10 == 0),
        error: None,
    }
}

#[test]
fn a_reason_is_required_and_bounded() {
    assert_eq!(Reason::parse("  "), Err(relay::BadReason::Missing));
    assert_eq!(Reason::parse(""), Err(relay::BadReason::Missing));
    assert_eq!(
        Reason::parse(&"拉".repeat(relay::REASON_CHARS_MAX + 1)),
        Err(relay::BadReason::TooLong)
    );
    assert_eq!(Reason::parse("a\u{0}b"), Err(relay::BadReason::Control));
    let ok = Reason::parse(&"拉".repeat(relay::REASON_CHARS_MAX)).unwrap();
    assert_eq!(ok.as_str().chars().count(), relay::REASON_CHARS_MAX);
    assert_eq!(Reason::parse(" 欠费 ").unwrap().as_str(), "欠费");
}

#[tokio::test]
async fn a_command_goes_queued_sending_done_and_is_audited_twice() {
    for db in seeded_two_buildings().await {
        let (_, actor) = operator(&db, "wang", Role::Administrator).await;
        let m = meter_ids(&db, 1).await;
        let reason = Reason::parse("违规电器").unwrap();
        let cmds = relay::request(&db, &actor, &m, RelayAction::Trip, &reason, NOW)
            .await
            .unwrap();
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].state, CommandState::Queued);
        // Offline meter: not claimed, stays queued.
        let none = relay::claim(&db, &m, "he-1", NOW + 1, LEASE_MS, 10)
            .await
            .unwrap();
        assert!(
            none.is_empty(),
            "{:?}: an offline meter's command was claimed",
            db.backend()
        );
        all_online(&db).await;
        // A head-end that does not route the meter does not claim it.
        let other = relay::claim(&db, &[m[0] + 100_000], "he-2", NOW + 2, LEASE_MS, 10)
            .await
            .unwrap();
        assert!(other.is_empty());
        let claimed = relay::claim(&db, &m, "he-1", NOW + 3, LEASE_MS, 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        let c = &claimed[0];
        assert_eq!(c.state, CommandState::Sending);
        assert_eq!(c.lease_epoch, 1);
        let done = relay::finish(&db, c, &accepted(0x0050), NOW + 4)
            .await
            .unwrap();
        assert_eq!(done.state, CommandState::Done);
        assert_eq!(done.status_word, Some(0x50));
        assert_eq!(done.relay_closed, Some(false));
        // A second outcome under the same claim is refused.
        let again = relay::finish(&db, c, &accepted(0), NOW + 5).await;
        assert!(
            matches!(again, Err(store::Error::LeaseLost(_))),
            "{again:?}"
        );
        assert_eq!(audit_rows(&db, "relay_requested").await.len(), 1);
        let outcome = audit_rows(&db, "relay_done").await;
        assert_eq!(outcome.len(), 1);
        assert_eq!(outcome[0].operator_name, "wang");
        assert!(
            outcome[0]
                .after_json
                .as_deref()
                .unwrap()
                .contains("违规电器")
        );
        let listed = relay::of_meter(&db, m[0], 10).await.unwrap();
        assert_eq!(listed, vec![done]);
    }
}

#[tokio::test]
async fn a_refused_command_fails_and_a_silent_meter_requeues_it() {
    for db in seeded_two_buildings().await {
        let (_, actor) = operator(&db, "li", Role::Administrator).await;
        let m = meter_ids(&db, 2).await;
        all_online(&db).await;
        let r = Reason::parse("test").unwrap();
        relay::request(&db, &actor, &m, RelayAction::Close, &r, NOW)
            .await
            .unwrap();
        let c = relay::claim(&db, &m, "he-1", NOW, LEASE_MS, 10)
            .await
            .unwrap();
        assert_eq!(c.len(), 2);
        let failed = relay::finish(
            &db,
            &c[0],
            &Outcome {
                accepted: false,
                status_word: None,
                relay_closed: None,
                error: Some("password".into()),
            },
            NOW + 1,
        )
        .await
        .unwrap();
        assert_eq!(failed.state, CommandState::Failed);
        assert_eq!(audit_rows(&db, "relay_failed").await.len(), 1);
        relay::requeue(&db, &c[1], "no answer", NOW + 10, NOW + 2)
            .await
            .unwrap();
        let back = relay::get(&db, c[1].id).await.unwrap().unwrap();
        assert_eq!(back.state, CommandState::Queued);
        assert_eq!(back.error.as_deref(), Some("no answer"));
        // The requeued one is claimed again after its pause, with a new epoch.
        let early = relay::claim(&db, &m, "he-1", NOW + 10, LEASE_MS, 10)
            .await
            .unwrap();
        assert!(early.is_empty(), "{early:?}");
        let again = relay::claim(&db, &m, "he-1", NOW + 11, LEASE_MS, 10)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].lease_epoch, 2);
        assert_eq!(again[0].attempts, 2);
    }
}

#[tokio::test]
async fn an_offline_meters_command_is_cancelled_after_the_bound_never_dropped() {
    for db in seeded_two_buildings().await {
        let (_, actor) = operator(&db, "zhao", Role::Administrator).await;
        let m = meter_ids(&db, 1).await;
        let r = Reason::parse("断电检修").unwrap();
        let c = relay::request(&db, &actor, &m, RelayAction::Trip, &r, NOW)
            .await
            .unwrap();
        let bound = 10 * 60_000;
        // Before the bound: still queued, visible.
        assert!(
            relay::cancel_expired(&db, bound, NOW + bound - 1)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            relay::get(&db, c[0].id).await.unwrap().unwrap().state,
            CommandState::Queued
        );
        let gone = relay::cancel_expired(&db, bound, NOW + bound)
            .await
            .unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].state, CommandState::Cancelled);
        let rows = audit_rows(&db, "relay_cancelled").await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].operator_name, "zhao");
        // A cancelled command is never claimed.
        all_online(&db).await;
        assert!(
            relay::claim(&db, &m, "he-1", NOW + bound + 1, LEASE_MS, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_stale_claim_is_retaken_and_the_old_holder_cannot_record() {
    for db in seeded_two_buildings().await {
        let (_, actor) = operator(&db, "sun", Role::Administrator).await;
        let m = meter_ids(&db, 1).await;
        all_online(&db).await;
        let r = Reason::parse("x").unwrap();
        relay::request(&db, &actor, &m, RelayAction::Trip, &r, NOW)
            .await
            .unwrap();
        let first = relay::claim(&db, &m, "he-1", NOW, LEASE_MS, 1)
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        // Within the lease nobody else takes it.
        assert!(
            relay::claim(&db, &m, "he-2", NOW + LEASE_MS - 1, LEASE_MS, 1)
                .await
                .unwrap()
                .is_empty()
        );
        // he-1 crashed: after its lease, he-2 retakes it.
        let second = relay::claim(&db, &m, "he-2", NOW + LEASE_MS + 1, LEASE_MS, 1)
            .await
            .unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].lease_epoch, first[0].lease_epoch + 1);
        let late = relay::finish(&db, &first[0], &accepted(0x50), NOW + LEASE_MS + 2).await;
        assert!(matches!(late, Err(store::Error::LeaseLost(_))), "{late:?}");
        let late = relay::requeue(&db, &first[0], "x", NOW, NOW + LEASE_MS + 2).await;
        assert!(matches!(late, Err(store::Error::LeaseLost(_))), "{late:?}");
        relay::finish(&db, &second[0], &accepted(0x50), NOW + LEASE_MS + 3)
            .await
            .unwrap();
        assert_eq!(audit_rows(&db, "relay_done").await.len(), 1);
    }
}

#[tokio::test]
async fn two_head_ends_claiming_one_command_send_it_once() {
    for db in seeded_two_buildings().await {
        let (_, actor) = operator(&db, "qian", Role::Administrator).await;
        let m = meter_ids(&db, 1).await;
        all_online(&db).await;
        let r = Reason::parse("race").unwrap();
        for round in 0..10 {
            let at = NOW + round * 1_000;
            relay::request(&db, &actor, &m, RelayAction::Trip, &r, at)
                .await
                .unwrap();
            let m2 = m.clone();
            let claims = at_once(&db, 8, move |db, i| {
                let m = m2.clone();
                async move {
                    relay::claim(&db, &m, &format!("he-{i}"), at + 1, LEASE_MS, 10)
                        .await
                        .unwrap()
                }
            })
            .await;
            let won: Vec<_> = claims.into_iter().flatten().collect();
            assert_eq!(won.len(), 1, "{:?} round {round}: {won:?}", db.backend());
            relay::finish(&db, &won[0], &accepted(0x50), at + 2)
                .await
                .unwrap();
        }
        assert_eq!(audit_rows(&db, "relay_done").await.len(), 10);
    }
}

#[tokio::test]
async fn keep_power_is_honoured_by_a_balance_trip() {
    for db in seeded_two_buildings().await {
        let (_, actor) = operator(&db, "zhou", Role::Administrator).await;
        let m = meter_ids(&db, 2).await;
        all_online(&db).await;
        let r = Reason::parse("医疗需要").unwrap();
        relay::request(&db, &actor, &m[..1], RelayAction::KeepPower, &r, NOW)
            .await
            .unwrap();
        let c = relay::claim(&db, &m, "he-1", NOW, LEASE_MS, 10)
            .await
            .unwrap();
        relay::finish(&db, &c[0], &accepted(0x4000), NOW + 1)
            .await
            .unwrap();
        assert!(relay::keep_power(&db, m[0]).await.unwrap());
        // Under keep-power: no balance trip; the other meter gets one, once.
        assert!(
            !relay::enqueue_balance_trip(&db, m[0], NOW + 2)
                .await
                .unwrap()
        );
        assert!(
            relay::enqueue_balance_trip(&db, m[1], NOW + 2)
                .await
                .unwrap()
        );
        assert!(
            !relay::enqueue_balance_trip(&db, m[1], NOW + 3)
                .await
                .unwrap()
        );
        // Released: a balance trip is queued again.
        relay::request(
            &db,
            &actor,
            &m[..1],
            RelayAction::KeepPowerRelease,
            &r,
            NOW + 4,
        )
        .await
        .unwrap();
        let c = relay::claim(&db, &m[..1], "he-1", NOW + 5, LEASE_MS, 10)
            .await
            .unwrap();
        relay::finish(&db, &c[0], &accepted(0), NOW + 6)
            .await
            .unwrap();
        assert!(!relay::keep_power(&db, m[0]).await.unwrap());
        assert!(
            relay::enqueue_balance_trip(&db, m[0], NOW + 7)
                .await
                .unwrap()
        );
    }
}

#[tokio::test]
async fn a_bulk_request_is_bounded() {
    for db in seeded_two_buildings().await {
        let (_, actor) = operator(&db, "wu", Role::Administrator).await;
        let r = Reason::parse("x").unwrap();
        assert!(
            relay::request(&db, &actor, &[], RelayAction::Trip, &r, NOW)
                .await
                .is_err()
        );
        let many = vec![1; relay::BATCH_MAX + 1];
        assert!(
            relay::request(&db, &actor, &many, RelayAction::Trip, &r, NOW)
                .await
                .is_err()
        );
        assert!(audit_rows(&db, "relay_requested").await.is_empty());
    }
}
