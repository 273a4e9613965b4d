//! The JWKS cache against an issuer that goes down, rotates, hangs, or is flooded with
//! unknown `kid`s.
//!
//! The cache's windows are unit-tested with a moved clock (src/auth/jwks.rs); here one test
//! waits out the TTL and one the cooldown, end to end, and the others set both to zero.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{TestApp, issuer_key, second_key};

fn with_kid(app: &TestApp, kid: &str) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let claims = app.issuer.claims(Some("org_acme"), "read:data");
    if kid == second_key().kid {
        second_key().sign(&header, &claims)
    } else {
        issuer_key().sign(&header, &claims)
    }
}

async fn status(app: &TestApp, token: &str) -> u16 {
    app.get("/orgs/org_acme/data", Some(token))
        .await
        .status()
        .as_u16()
}

/// The end-to-end check of the cooldown.
#[tokio::test]
async fn keys_are_fetched_lazily_and_a_down_issuer_does_not_stop_start_up() {
    let app = TestApp::spawn_with(|v| {
        v.insert("auth_jwks_cooldown".into(), "1s".into());
    })
    .await;
    assert_eq!(
        app.issuer.hits.load(Ordering::SeqCst),
        0,
        "no fetch before the first token"
    );
    app.issuer.down.store(true, Ordering::SeqCst);
    let token = app.issuer.token("org_acme", "read:data");

    assert_eq!(status(&app, &token).await, 401, "no keys yet: fail closed");
    app.issuer.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status(&app, &token).await, 200, "recovers by itself");
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_issuer_is_down() {
    let app = TestApp::spawn_with(|v| {
        v.insert("auth_jwks_ttl".into(), "0s".into());
        v.insert("auth_jwks_cooldown".into(), "0s".into());
    })
    .await;
    let token = app.issuer.token("org_acme", "read:data");
    assert_eq!(status(&app, &token).await, 200);

    app.issuer.down.store(true, Ordering::SeqCst); // keys are stale at once; refresh fails

    for _ in 0..3 {
        assert_eq!(status(&app, &token).await, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        app.issuer.hits.load(Ordering::SeqCst) >= 2,
        "a background refresh was tried"
    );
}

#[tokio::test]
async fn a_new_key_is_trusted_without_a_restart() {
    let app = TestApp::spawn_with(|v| {
        v.insert("auth_jwks_cooldown".into(), "0s".into());
    })
    .await;
    assert_eq!(
        status(&app, &app.issuer.token("org_acme", "read:data")).await,
        200
    );

    app.issuer.publish(&[issuer_key(), second_key()]);

    assert_eq!(status(&app, &with_kid(&app, &second_key().kid)).await, 200);
    assert_eq!(status(&app, &with_kid(&app, &issuer_key().kid)).await, 200);
}

#[tokio::test]
async fn five_hundred_unknown_kids_cause_at_most_two_fetches() {
    // Default cooldown (30 s): one fetch for the first token, at most one more for unknown
    // kids within the cooldown, however many arrive and however concurrently.
    let app = TestApp::spawn().await;
    assert_eq!(
        status(&app, &app.issuer.token("org_acme", "read:data")).await,
        200
    );

    for batch in 0..10 {
        let statuses = join_all((0..50).map(|i| {
            let app = &app;
            async move {
                let kid = format!("random-{batch}-{i}-{}", uuid::Uuid::new_v4());
                let header = json!({"alg": "RS256", "kid": kid});
                status(
                    app,
                    &issuer_key().sign(&header, &app.issuer.claims(Some("org_acme"), "read:data")),
                )
                .await
            }
        }))
        .await;
        assert!(statuses.iter().all(|s| *s == 401));
    }

    assert!(
        app.issuer.hits.load(Ordering::SeqCst) <= 2,
        "fetches: {}",
        app.issuer.hits.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn a_hanging_issuer_slows_neither_known_kids_nor_unknown_ones_beyond_the_timeout() {
    let app = TestApp::spawn_with(|v| {
        v.insert("auth_jwks_ttl".into(), "0s".into());
        v.insert("auth_jwks_cooldown".into(), "0s".into());
        v.insert("auth_jwks_timeout".into(), "1s".into());
    })
    .await;
    let token = app.issuer.token("org_acme", "read:data");
    assert_eq!(status(&app, &token).await, 200);
    app.issuer.delay_ms.store(20_000, Ordering::SeqCst);

    // Known kid: served from the (stale) cache while the refresh hangs in the background.
    let known = tokio::time::timeout(Duration::from_millis(800), status(&app, &token)).await;
    assert_eq!(
        known.expect("a known kid must not wait for the issuer"),
        200
    );
    // Unknown kid: refused once the 1 s fetch timeout has passed, not after 20 s.
    let unknown = with_kid(&app, &second_key().kid);
    let answer = tokio::time::timeout(Duration::from_secs(4), status(&app, &unknown)).await;
    assert_eq!(
        answer.expect("an unknown kid must fail within the fetch timeout"),
        401
    );
}

/// The end-to-end check of the TTL.
#[tokio::test]
async fn a_key_withdrawn_from_the_jwks_stops_verifying_even_a_token_seen_before() {
    let app = TestApp::spawn_with(|v| {
        v.insert("auth_jwks_ttl".into(), "1s".into());
        v.insert("auth_jwks_cooldown".into(), "1s".into());
    })
    .await;
    let token = app.issuer.token("org_acme", "read:data");
    for _ in 0..3 {
        assert_eq!(status(&app, &token).await, 200, "verified, then remembered");
    }

    // The issuer withdraws the key (say it leaked) and publishes another.
    app.issuer.publish(&[second_key()]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The first request after the TTL starts the background refresh; soon after, the
    // remembered verification no longer counts.
    let mut refused = false;
    for _ in 0..30 {
        if status(&app, &token).await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refused,
        "a token signed by a withdrawn key is still accepted"
    );
    assert_eq!(status(&app, &with_kid(&app, &second_key().kid)).await, 200);
}
