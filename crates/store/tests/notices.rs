//! Notices (issue 13 item 7) on SQLite and — when `DORMWATT_TEST_PG_URL` is
//! set — PostgreSQL: targeting (campus / area / buildings), the schedule,
//! pinned order, validation that writes nothing, edits audited with before
//! and after, and two edits of one revision at once having one winner.

mod common;

use common::{NOW, at_once, audit_actions, audit_rows, seeded_two_buildings as seeded, winners};
use domain::staff::Role;
use store::audit::{self, Actor};
use store::notices::{self, Draft, Target};
use store::students::latest_notices;
use store::{Db, Error};

const HOUR: i64 = 3_600_000;

/// A meter of each of: (area 1, building 1), (area 1, building 2), another
/// area — as (meter id, building id, area id).
async fn three_meters(db: &Db) -> [(i64, i64, i64); 3] {
    let rows: Vec<(i64, i64, i64)> = store::on_db!(db, |p| sqlx::query_as(
        "select min(m.id), r.building_id, min(m.area_id) from meter m
         join room r on r.id = m.room_id group by r.building_id order by r.building_id"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    let a = rows[0];
    let b = *rows
        .iter()
        .find(|r| r.2 == a.2 && r.1 != a.1)
        .expect("two buildings in the first area");
    let c = *rows.iter().find(|r| r.2 != a.2).expect("a second area");
    [a, b, c]
}

async fn admin(db: &Db) -> Actor {
    common::operator(db, "admin", Role::Administrator).await.1
}

fn draft(title: &str, target: Target) -> Draft {
    Draft {
        title: title.to_owned(),
        body: format!("{title} body"),
        shown_from_ms: None,
        shown_until_ms: None,
        target,
        pinned: false,
        push: false,
    }
}

async fn titles(db: &Db, meter: i64, at: i64) -> Vec<String> {
    latest_notices(db, meter, at, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.title)
        .collect()
}

#[tokio::test]
async fn notices_reach_their_target_in_their_window_pinned_first() {
    for db in seeded().await {
        let who = admin(&db).await;
        let [(ma, ba, area1), (mb, _, _), (mc, _, _)] = three_meters(&db).await;
        notices::create(&db, &draft("campus", Target::Campus), &who, NOW)
            .await
            .unwrap();
        notices::create(
            &db,
            &draft("area", Target::Area { area_id: area1 }),
            &who,
            NOW + 1,
        )
        .await
        .unwrap();
        let mut b = draft(
            "building",
            Target::Buildings {
                building_ids: vec![ba],
            },
        );
        b.pinned = true;
        notices::create(&db, &b, &who, NOW - 10).await.unwrap();
        let mut later = draft("later", Target::Campus);
        later.shown_from_ms = Some(NOW + HOUR);
        later.shown_until_ms = Some(NOW + 2 * HOUR);
        notices::create(&db, &later, &who, NOW).await.unwrap();
        let mut ended = draft("ended", Target::Campus);
        ended.shown_until_ms = Some(NOW - 1);
        notices::create(&db, &ended, &who, NOW - HOUR)
            .await
            .unwrap();

        // Pinned first, then newest first; nothing scheduled or ended.
        assert_eq!(titles(&db, ma, NOW).await, ["building", "area", "campus"]);
        assert_eq!(titles(&db, mb, NOW).await, ["area", "campus"]);
        assert_eq!(titles(&db, mc, NOW).await, ["campus"]);
        // Inside the window of "later" (shown from is its date); after it.
        assert_eq!(titles(&db, mc, NOW + HOUR).await, ["later", "campus"]);
        assert_eq!(titles(&db, mc, NOW + 2 * HOUR).await, ["campus"]);
        // The demo seed's campus-wide notice reaches everyone too.
        store::students::add_notice(&db, Some(area1), "old area", "x", NOW + 2)
            .await
            .unwrap();
        assert_eq!(titles(&db, mc, NOW + 3).await, ["campus"]);
        assert_eq!(
            titles(&db, mb, NOW + 3).await,
            ["old area", "area", "campus"]
        );
    }
}

#[tokio::test]
async fn a_bad_notice_writes_nothing_and_an_edit_is_audited() {
    for db in seeded().await {
        let who = admin(&db).await;
        let [(ma, ba, _), (_, bb, _), _] = three_meters(&db).await;
        let before = audit_actions(&db).await.len();
        let mut bad = vec![
            draft(" ", Target::Campus),
            draft(&"长".repeat(notices::TITLE_CHARS_MAX + 1), Target::Campus),
            draft(
                "x",
                Target::Buildings {
                    building_ids: vec![],
                },
            ),
            draft(
                "x",
                Target::Buildings {
                    building_ids: vec![999_999],
                },
            ),
            draft("x", Target::Area { area_id: 999_999 }),
        ];
        let mut empty_body = draft("x", Target::Campus);
        empty_body.body = String::new();
        bad.push(empty_body);
        let mut backwards = draft("x", Target::Campus);
        backwards.shown_from_ms = Some(NOW);
        backwards.shown_until_ms = Some(NOW);
        bad.push(backwards);
        for d in &bad {
            let e = notices::create(&db, d, &who, NOW).await.unwrap_err();
            assert!(matches!(e, Error::Conflict(_)), "{d:?}: {e:?}");
        }
        assert!(notices::list(&db, 10).await.unwrap().is_empty());
        assert_eq!(audit_actions(&db).await.len(), before);

        let n = notices::create(
            &db,
            &draft(
                "water",
                Target::Buildings {
                    building_ids: vec![ba],
                },
            ),
            &who,
            NOW,
        )
        .await
        .unwrap();
        let mut d = n.draft.clone();
        d.title = "water off".to_owned();
        d.target = Target::Buildings {
            building_ids: vec![bb],
        };
        let e = notices::update(&db, n.id, n.revision, &bad[0], &who, NOW + 1)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)));
        let edited = notices::update(&db, n.id, n.revision, &d, &who, NOW + 2)
            .await
            .unwrap();
        assert_eq!(edited.revision, n.revision + 1);
        assert_eq!(edited.updated_by.as_deref(), Some("admin"));
        assert_eq!(notices::get(&db, n.id).await.unwrap(), Some(edited));
        // Retargeted: the first building no longer sees it.
        assert!(titles(&db, ma, NOW + 3).await.is_empty());
        // A stale revision is refused.
        let e = notices::update(&db, n.id, n.revision, &d, &who, NOW + 3)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)));
        let rows = audit_rows(&db, "notice_updated").await;
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.subject, format!("notice:{}", n.id));
        assert!(r.before_json.as_deref().unwrap().contains("\"water\""));
        assert!(r.after_json.as_deref().unwrap().contains("water off"));
        assert!(audit::verify(&db).await.unwrap().broken.is_none());
    }
}

#[tokio::test]
async fn two_edits_of_one_revision_at_once_have_one_winner() {
    for db in seeded().await {
        let who = admin(&db).await;
        let n = notices::create(&db, &draft("n", Target::Campus), &who, NOW)
            .await
            .unwrap();
        let won = winners(
            &db,
            8,
            |db, i| {
                let (who, mut d) = (who.clone(), n.draft.clone());
                d.title = format!("edit {i}");
                async move { notices::update(&db, n.id, n.revision, &d, &who, NOW + 1).await }
            },
            |e| matches!(e, Error::Conflict(_)),
        )
        .await;
        assert_eq!(won.len(), 1, "{:?}", db.backend());
        let rows = audit_rows(&db, "notice_updated").await;
        assert_eq!(rows.len(), 1);
    }
}

// ------------------------------------------------ meter password reset (item 8)

#[tokio::test]
async fn a_staff_password_reset_unbinds_and_tells_every_binder() {
    use store::message::{MessageArgs, MessageContent};
    use store::meter_reset;
    for db in seeded().await {
        let who = admin(&db).await;
        let [(meter, _, _), (other_meter, _, _), _] = three_meters(&db).await;
        let a = store::students::create_demo(&db, "甲", NOW).await.unwrap();
        let b = store::students::create_demo(&db, "乙", NOW).await.unwrap();
        for s in [a.id, b.id] {
            store::students::bind(&db, s, meter, true, 5, NOW)
                .await
                .unwrap();
        }
        store::students::bind(&db, a.id, other_meter, false, 5, NOW)
            .await
            .unwrap();
        let t = meter_reset::target(&db, meter).await.unwrap().unwrap();
        assert_eq!(t.binders, 2);
        assert_eq!(t.password_hash, None);
        let hash = domain::password::hash("424242", [3; 16]).unwrap();
        let r = meter_reset::reset(&db, meter, None, &hash, &who, NOW + 1)
            .await
            .unwrap();
        assert_eq!(r.unbound, 2);
        // The stale expectation (factory default) no longer holds.
        let e = meter_reset::reset(&db, meter, None, &hash, &who, NOW + 2)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e:?}");
        let t = meter_reset::target(&db, meter).await.unwrap().unwrap();
        assert_eq!(t.binders, 0);
        assert!(domain::password::verify(
            "424242",
            t.password_hash.as_deref()
        ));
        for s in [a.id, b.id] {
            let m = store::students::messages(&db, s, 10).await.unwrap();
            let resets = m
                .iter()
                .filter(|m| {
                    matches!(
                        &m.content,
                        MessageContent::Typed(MessageArgs::PasswordResetByStaff { place })
                            if place.meter == t.address
                    )
                })
                .count();
            assert_eq!(resets, 1, "student {s}: {m:?}");
        }
        // Student a keeps the other meter, now as default.
        let left = store::students::bindings(&db, a.id).await.unwrap();
        assert_eq!(left.len(), 1);
        assert!(left[0].is_default && left[0].meter_id.get() == other_meter);
        let rows = audit_rows(&db, "meter_password_reset").await;
        assert_eq!(rows.len(), 1);
        let all = format!("{:?}", rows[0]);
        assert!(!all.contains("424242") && !all.contains("pbkdf2"), "{all}");
        assert!(
            rows[0]
                .after_json
                .as_deref()
                .unwrap()
                .contains("\"unbound\":2")
        );
    }
}

#[tokio::test]
async fn two_resets_of_one_meter_at_once_have_one_winner() {
    use store::meter_reset;
    for db in seeded().await {
        let who = admin(&db).await;
        let [(meter, _, _), _, _] = three_meters(&db).await;
        let won = winners(
            &db,
            6,
            |db, i| {
                let who = who.clone();
                let i = u8::try_from(i).unwrap();
                async move {
                    let pw = format!("5{i}1234");
                    let h = domain::password::hash(&pw, [i; 16]).unwrap();
                    meter_reset::reset(&db, meter, None, &h, &who, NOW + 1)
                        .await
                        .map(|_| pw)
                }
            },
            |e| matches!(e, Error::Conflict(_)),
        )
        .await;
        assert_eq!(won.len(), 1, "{:?}", db.backend());
        let t = meter_reset::target(&db, meter).await.unwrap().unwrap();
        assert!(domain::password::verify(
            &won[0],
            t.password_hash.as_deref()
        ));
    }
}

// ------------------------------------------------ dashboard figures (item 9)

#[tokio::test]
async fn the_dashboard_counts_today_within_the_scope() {
    use domain::WholeKwh;
    use domain::order::Channel;
    use store::dashboard::{self, Within};
    use store::orders::{self, NewOrder, PaymentConfirmation};
    for db in seeded().await {
        let [(ma, ba, area1), _, (mc, _, area2)] = three_meters(&db).await;
        let address = |id: i64| {
            let db = db.clone();
            async move {
                store::campus::meter_by_id(&db, domain::MeterId::new(id))
                    .await
                    .unwrap()
                    .unwrap()
                    .address
            }
        };
        let (aa, ac) = (address(ma).await, address(mc).await);
        for (area, addr, kwh, tx) in [(area1, &aa, 5, "wx-1"), (area2, &ac, 7, "wx-2")] {
            let o = orders::create(
                &db,
                &NewOrder {
                    area_id: area,
                    meter_address: addr.as_str(),
                    student_id: None,
                    kwh: WholeKwh::new(kwh, 500).unwrap(),
                    channel: Channel::Wechat,
                    operator: None,
                },
                NOW,
            )
            .await
            .unwrap();
            orders::record_payment(
                &db,
                &PaymentConfirmation {
                    out_trade_no: &o.out_trade_no,
                    transaction_id: tx,
                    amount_fen: o.amount_fen,
                },
                NOW + 1,
            )
            .await
            .unwrap();
        }
        let day = (NOW - HOUR, NOW + HOUR);
        let all = dashboard::figures(&db, &Within::default(), day.0, day.1)
            .await
            .unwrap();
        assert_eq!(all.sales.len(), 1);
        assert_eq!((all.sales[0].orders, all.sales[0].kwh), (2, 12));
        assert_eq!(all.undelivered, 2);
        assert_eq!(all.undelivered_oldest_paid_ms, Some(NOW + 1));
        assert_eq!(all.exceptions, 0);
        assert!(all.meters > 0 && all.offline == all.meters && all.read_today == 0);
        let one = Within {
            areas: Some(vec![area1]),
            buildings: Some(vec![ba]),
        };
        let mine = dashboard::figures(&db, &one, day.0, day.1).await.unwrap();
        assert_eq!((mine.sales[0].orders, mine.sales[0].kwh), (1, 5));
        assert_eq!(mine.undelivered, 1);
        assert!(mine.meters < all.meters);
        let nothing = Within {
            areas: None,
            buildings: Some(vec![]),
        };
        let none = dashboard::figures(&db, &nothing, day.0, day.1)
            .await
            .unwrap();
        assert!(none.sales.is_empty() && none.meters == 0 && none.undelivered == 0);
        // Yesterday had no sales.
        let y = dashboard::figures(&db, &Within::default(), day.0 - 24 * HOUR, day.0)
            .await
            .unwrap();
        assert!(y.sales.is_empty());
        assert_eq!(y.undelivered, 2, "undelivered is now, not per day");
    }
}

// ------------------------------------------------ named API keys (item 1)

#[tokio::test]
async fn api_keys_verify_until_revoked_and_revoke_once() {
    use store::api_keys::{self, Verified};
    for db in seeded().await {
        let who = admin(&db).await;
        let (key, secret) = api_keys::create(&db, "till-1", Role::Cashier, &who, NOW)
            .await
            .unwrap();
        assert!(
            secret.starts_with("dwk_") && secret.len() == 4 + 64,
            "{secret}"
        );
        let stored: String = store::on_db!(&db, |p| sqlx::query_scalar::<_, String>(
            "select secret_hash from api_key where id = $1"
        )
        .bind(key.id)
        .fetch_one(p)
        .await)
        .unwrap();
        assert_ne!(stored, secret);
        assert_eq!(stored, api_keys::secret_hash(&secret));
        assert!(matches!(
            api_keys::create(&db, "till-1", Role::Auditor, &who, NOW).await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            api_keys::create(&db, " ", Role::Auditor, &who, NOW).await,
            Err(Error::Conflict(_))
        ));
        match api_keys::verify(&db, &secret, NOW + 5).await.unwrap() {
            Verified::Live(k) => {
                assert_eq!((k.name.as_str(), k.role), ("till-1", Role::Cashier));
                assert_eq!(k.last_used_at_ms, Some(NOW + 5));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            api_keys::verify(&db, "dwk_wrong", NOW).await.unwrap(),
            Verified::Unknown
        );
        let listed = api_keys::list(&db).await.unwrap();
        assert_eq!(listed[0].last_used_at_ms, Some(NOW + 5));
        assert_eq!(listed[0].created_by.as_deref(), Some("admin"));

        // Two revokes at once: one revokes, the other finds it revoked.
        let revoked = at_once(&db, 4, |db, _| {
            let who = who.clone();
            async move { api_keys::revoke(&db, key.id, &who, NOW + 10).await }
        })
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
        assert_eq!(revoked, 1, "{:?}", db.backend());
        assert!(!api_keys::revoke(&db, key.id, &who, NOW + 11).await.unwrap());
        assert!(matches!(
            api_keys::revoke(&db, 999_999, &who, NOW).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            api_keys::verify(&db, &secret, NOW + 12).await.unwrap(),
            Verified::Revoked(_)
        ));
        let rows = audit_rows(&db, "api_key_revoked").await;
        assert_eq!(rows.len(), 1);
        let created = audit_rows(&db, "api_key_created").await;
        assert_eq!(created.len(), 1);
        assert!(!format!("{created:?}").contains(&secret));
    }
}
