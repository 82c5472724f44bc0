//! Staff parameter writes (issue 14 item 6, part 4): validation, the state
//! machine, done only on an equal read-back, the guarded claim and fenced
//! outcome, the cancellation bound. Both backends; the race runs at READ
//! COMMITTED on PostgreSQL.

mod common;

use common::{NOW, at_once, audit_rows, exec, operator, seeded_two_buildings};
use domain::staff::Role;
use store::Db;
use store::meter_params::{self, BadParams, Outcome, ParamSet};
use store::relay::CommandState;

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

async fn count_rows(db: &Db) -> i64 {
    store::on_db!(db, |p| sqlx::query_scalar::<_, i64>(
        "select count(*) from meter_param_command"
    )
    .fetch_one(p)
    .await)
    .unwrap()
}

fn set(limit: Option<i64>, step: Option<i64>, pf: Option<i64>) -> ParamSet {
    ParamSet {
        power_limit_w: limit,
        malicious_step_w: step,
        malicious_pf_milli: pf,
    }
}

#[test]
fn ranges_are_checked_with_exclusive_power_factor_bounds() {
    assert_eq!(set(None, None, None).validate(), Err(BadParams::Empty));
    assert_eq!(
        set(Some(99), None, None).validate(),
        Err(BadParams::PowerLimit)
    );
    assert_eq!(
        set(Some(10_001), None, None).validate(),
        Err(BadParams::PowerLimit)
    );
    assert_eq!(set(Some(100), None, None).validate(), Ok(()));
    assert_eq!(set(Some(10_000), None, None).validate(), Ok(()));
    assert_eq!(set(None, Some(99), None).validate(), Err(BadParams::Step));
    assert_eq!(
        set(None, Some(5_001), None).validate(),
        Err(BadParams::Step)
    );
    assert_eq!(set(None, Some(5_000), None).validate(), Ok(()));
    assert_eq!(
        set(None, None, Some(500)).validate(),
        Err(BadParams::PowerFactor)
    );
    assert_eq!(
        set(None, None, Some(1_000)).validate(),
        Err(BadParams::PowerFactor)
    );
    assert_eq!(set(None, None, Some(501)).validate(), Ok(()));
    assert_eq!(set(None, None, Some(999)).validate(), Ok(()));
}

#[tokio::test]
async fn bad_input_queues_nothing() {
    for db in seeded_two_buildings().await {
        let (_, actor) = operator(&db, "zhao", Role::Administrator).await;
        let m = meter_ids(&db, 3).await;
        let r = meter_params::request(&db, &actor, &m, &set(Some(50), None, None), NOW).await;
        assert!(
            r.is_err(),
            "{:?}: an out-of-range limit was queued",
            db.backend()
        );
        let r = meter_params::request(&db, &actor, &[], &set(Some(500), None, None), NOW).await;
        assert!(r.is_err());
        // One unknown meter: the whole request is refused, nothing half-queued.
        let mut bad = m.clone();
        bad.push(9_999_999);
        let r = meter_params::request(&db, &actor, &bad, &set(Some(500), None, None), NOW).await;
        assert!(r.is_err());
        assert_eq!(count_rows(&db).await, 0, "{:?}", db.backend());
        assert!(audit_rows(&db, "meter_params_requested").await.is_empty());
    }
}

#[tokio::test]
async fn a_write_is_done_only_when_read_back_equal_and_is_audited() {
    for db in seeded_two_buildings().await {
        let (_, actor) = operator(&db, "wang", Role::Administrator).await;
        let m = meter_ids(&db, 3).await;
        let want = set(Some(1_500), Some(400), Some(850));
        let cmds = meter_params::request(&db, &actor, &m, &want, NOW)
            .await
            .unwrap();
        assert_eq!(cmds.len(), 3);
        assert!(
            cmds.iter()
                .all(|c| c.state == CommandState::Queued && c.wanted == want)
        );
        assert_eq!(audit_rows(&db, "meter_params_requested").await.len(), 3);
        // Offline meters are not claimed.
        assert!(
            meter_params::claim(&db, &m, "he-1", NOW + 1, LEASE_MS, 10)
                .await
                .unwrap()
                .is_empty()
        );
        all_online(&db).await;
        let claimed = meter_params::claim(&db, &m, "he-1", NOW + 2, LEASE_MS, 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 3);
        assert!(
            claimed
                .iter()
                .all(|c| c.state == CommandState::Sending && c.attempts == 1)
        );
        // 1: read back equal → done.
        let ok = meter_params::finish(
            &db,
            &claimed[0],
            &Outcome {
                read: want,
                error: None,
            },
            NOW + 3,
        )
        .await
        .unwrap();
        assert_eq!(ok.state, CommandState::Done);
        assert_eq!(ok.read, want);
        // 2: accepted but one value reads back different → failed.
        let off = meter_params::finish(
            &db,
            &claimed[1],
            &Outcome {
                read: set(Some(1_500), Some(600), Some(850)),
                error: None,
            },
            NOW + 3,
        )
        .await
        .unwrap();
        assert_eq!(off.state, CommandState::Failed);
        assert!(
            off.error.as_deref().unwrap().contains("malicious_step_w"),
            "{off:?}"
        );
        // 3: an error reply, even with equal values read back (partly or
        // wholly applied) → failed with the meter's reply.
        let rej = meter_params::finish(
            &db,
            &claimed[2],
            &Outcome {
                read: want,
                error: Some("04A00101: [\"password\"]".into()),
            },
            NOW + 3,
        )
        .await
        .unwrap();
        assert_eq!(rej.state, CommandState::Failed);
        assert!(rej.error.as_deref().unwrap().contains("password"));
        assert_eq!(audit_rows(&db, "meter_params_done").await.len(), 1);
        let failed = audit_rows(&db, "meter_params_failed").await;
        assert_eq!(failed.len(), 2, "{:?}", db.backend());
        assert!(
            failed.iter().all(|a| a.operator_name == actor.name),
            "{failed:?}"
        );
        // Final: nothing more to claim.
        assert!(
            meter_params::claim(&db, &m, "he-1", NOW + LEASE_MS * 3, LEASE_MS, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_silent_meter_is_retried_then_cancelled_after_the_bound() {
    for db in seeded_two_buildings().await {
        let (_, actor) = operator(&db, "li", Role::Administrator).await;
        let m = meter_ids(&db, 1).await;
        all_online(&db).await;
        meter_params::request(&db, &actor, &m, &set(Some(800), None, None), NOW)
            .await
            .unwrap();
        let c = meter_params::claim(&db, &m, "he-1", NOW + 1, LEASE_MS, 1)
            .await
            .unwrap();
        meter_params::requeue(&db, &c[0], "timeout", NOW + 10_000, NOW + 2)
            .await
            .unwrap();
        // Not before the retry time.
        assert!(
            meter_params::claim(&db, &m, "he-1", NOW + 5_000, LEASE_MS, 1)
                .await
                .unwrap()
                .is_empty()
        );
        let again = meter_params::claim(&db, &m, "he-1", NOW + 10_001, LEASE_MS, 1)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 2);
        assert_eq!(again[0].error.as_deref(), Some("timeout"));
        meter_params::requeue(&db, &again[0], "timeout", NOW + 20_000, NOW + 10_002)
            .await
            .unwrap();
        // Within the bound nothing is cancelled; after it, it is, audited.
        assert!(
            meter_params::cancel_expired(&db, 60_000, NOW + 59_999)
                .await
                .unwrap()
                .is_empty()
        );
        let gone = meter_params::cancel_expired(&db, 60_000, NOW + 60_000)
            .await
            .unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].state, CommandState::Cancelled);
        assert_eq!(audit_rows(&db, "meter_params_cancelled").await.len(), 1);
    }
}

#[tokio::test]
async fn a_retaken_claim_fences_the_old_holder_even_under_the_same_name() {
    for db in seeded_two_buildings().await {
        let (_, actor) = operator(&db, "sun", Role::Administrator).await;
        let m = meter_ids(&db, 1).await;
        all_online(&db).await;
        let want = set(Some(800), None, None);
        meter_params::request(&db, &actor, &m, &want, NOW)
            .await
            .unwrap();
        let first = meter_params::claim(&db, &m, "he-1", NOW, LEASE_MS, 1)
            .await
            .unwrap();
        assert!(
            meter_params::claim(&db, &m, "he-2", NOW + LEASE_MS - 1, LEASE_MS, 1)
                .await
                .unwrap()
                .is_empty()
        );
        // The lease ran out and the same worker name retook it: only the
        // epoch tells the stale claim from the new one.
        let second = meter_params::claim(&db, &m, "he-1", NOW + LEASE_MS + 1, LEASE_MS, 1)
            .await
            .unwrap();
        assert_eq!(second[0].lease_epoch, first[0].lease_epoch + 1);
        let o = Outcome {
            read: want,
            error: None,
        };
        let late = meter_params::finish(&db, &first[0], &o, NOW + LEASE_MS + 2).await;
        assert!(
            matches!(late, Err(store::Error::LeaseLost(_))),
            "{:?} {late:?}",
            db.backend()
        );
        let late = meter_params::requeue(&db, &first[0], "x", NOW, NOW + LEASE_MS + 2).await;
        assert!(matches!(late, Err(store::Error::LeaseLost(_))), "{late:?}");
        meter_params::finish(&db, &second[0], &o, NOW + LEASE_MS + 3)
            .await
            .unwrap();
        assert_eq!(audit_rows(&db, "meter_params_done").await.len(), 1);
    }
}

#[tokio::test]
async fn two_claimers_of_one_write_execute_it_once() {
    for db in seeded_two_buildings().await {
        let (_, actor) = operator(&db, "qian", Role::Administrator).await;
        let m = meter_ids(&db, 1).await;
        all_online(&db).await;
        for round in 0..10 {
            let at = NOW + round * 1_000;
            let c = meter_params::request(&db, &actor, &m, &set(Some(900), None, None), at)
                .await
                .unwrap();
            let (id, epoch) = (c[0].id, c[0].lease_epoch);
            // Every claimer read the same (id, epoch) and tries to take it;
            // each later one as if it stalled past every earlier lease, so
            // only the epoch it read stops it.
            let claims = at_once(&db, 8, move |db, i| async move {
                let now = at + 1 + i * (LEASE_MS + 1);
                meter_params::take(&db, id, epoch, &format!("he-{i}"), now, LEASE_MS)
                    .await
                    .unwrap()
            })
            .await;
            let won: Vec<_> = claims.into_iter().flatten().collect();
            assert_eq!(won.len(), 1, "{:?} round {round}: {won:?}", db.backend());
            let o = Outcome {
                read: won[0].wanted,
                error: None,
            };
            meter_params::finish(&db, &won[0], &o, at + 2)
                .await
                .unwrap();
            assert_eq!(
                meter_params::get(&db, id).await.unwrap().unwrap().state,
                CommandState::Done
            );
        }
        assert_eq!(audit_rows(&db, "meter_params_done").await.len(), 10);
    }
}
