//! Attacks on the built-in issuer: guessing, confusing the client authentication,
//! oversized and repeated parameters, near-miss admin tokens, and secrets in the logs.
//! Rows already in issuer.rs (each error row once, recovery after the window, the four basic
//! admin-token misses) are not repeated.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, AUDIENCE, TestApp, captured_logs};

const CC: (&str, &str) = ("grant_type", "client_credentials");

/// A client whose requests come from another loopback address (Linux routes all of
/// 127.0.0.0/8 to lo), so that the per-address limits can be told apart.
fn client_from(addr: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(addr.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn post_form(
    client: &reqwest::Client,
    app: &TestApp,
    id: &str,
    secret: &str,
) -> reqwest::Response {
    client
        .post(app.url("/oauth2/token"))
        .form(&[
            CC,
            ("client_id", id),
            ("client_secret", secret),
            ("audience", AUDIENCE),
        ])
        .send()
        .await
        .unwrap()
}

/// A token-endpoint answer reduced to what a client can compare.
async fn answer(res: reqwest::Response) -> (u16, Value, Option<String>, Option<String>) {
    let status = res.status().as_u16();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (www, retry) = (header("www-authenticate"), header("retry-after"));
    (status, res.json().await.unwrap_or(Value::Null), www, retry)
}

fn error_of(answer: &(u16, Value, Option<String>, Option<String>)) -> (u16, &str) {
    (
        answer.0,
        answer.1["error"].as_str().unwrap_or("<not an oauth error>"),
    )
}

#[tokio::test]
async fn guessing_slows_one_client_id_from_one_address_and_never_locks_the_tenant_out() {
    let app = TestApp::spawn_issuer_with(|v| {
        v.insert("token_max_failures_per_client".into(), "3".into());
        v.insert("token_max_failures_per_address".into(), "8".into());
        v.insert("token_failure_window".into(), "60s".into());
    })
    .await;
    let (a, a_secret) = app.setup_tutorial("org_acme").await;
    let (b, b_secret) = app.setup_tutorial("org_beta").await;
    let here = client_from("127.0.0.1");
    let elsewhere = client_from("127.0.0.2");

    for i in 0..3 {
        let res = answer(post_form(&here, &app, &a, "guess").await).await;
        assert_eq!(error_of(&res), (401, "invalid_client"), "guess {i}");
    }
    let limited = answer(post_form(&here, &app, &a, "guess").await).await;
    assert_eq!(error_of(&limited), (429, "slow_down"));
    let wait: u64 = limited.3.as_deref().expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // Even the right secret waits, from this address, however it claims to be elsewhere.
    for (name, value) in [
        ("x-forwarded-for", "10.9.9.9"),
        ("forwarded", "for=10.9.9.9"),
        ("x-real-ip", "10.9.9.9"),
    ] {
        let res = here
            .post(app.url("/oauth2/token"))
            .header(name, value)
            .form(&[
                CC,
                ("client_id", a.as_str()),
                ("client_secret", a_secret.as_str()),
                ("audience", AUDIENCE),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(&answer(res).await), (429, "slow_down"), "{name}");
    }
    // The guessed-at tenant still gets tokens from anywhere else...
    assert_eq!(
        post_form(&elsewhere, &app, &a, &a_secret).await.status(),
        200
    );
    // ...and another client id from the guessing address is limited only per address.
    assert_eq!(post_form(&here, &app, &b, &b_secret).await.status(), 200);
    for i in 1..=4 {
        let res = answer(post_form(&here, &app, &format!("ghost-{i}"), "guess").await).await;
        assert_eq!(error_of(&res), (401, "invalid_client"), "ghost {i}");
    }
    let res = answer(post_form(&here, &app, "ghost-5", "guess").await).await;
    assert_eq!(
        error_of(&res),
        (429, "slow_down"),
        "ninth failure from the address"
    );
    assert_eq!(
        error_of(&answer(post_form(&here, &app, &b, &b_secret).await).await),
        (429, "slow_down"),
        "the whole address waits now"
    );
    assert_eq!(
        post_form(&elsewhere, &app, &b, &b_secret).await.status(),
        200
    );
}

#[tokio::test]
async fn unknown_client_wrong_secret_disabled_and_deleted_app_are_indistinguishable() {
    let app = TestApp::spawn_issuer_with(|v| {
        v.insert("token_max_failures_per_client".into(), "100".into());
        v.insert("token_max_failures_per_address".into(), "100".into());
    })
    .await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let form = [CC, ("audience", AUDIENCE)];
    let by_post = |id: String, secret: String| {
        let app = &app;
        async move { answer(app.token_by_post(&id, &secret, None).await).await }
    };
    let by_basic = |id: String, secret: String| {
        let app = &app;
        async move { answer(app.token_request(&form, Some((&id, &secret))).await).await }
    };

    let mut post_answers = Vec::new();
    let mut basic_answers = Vec::new();
    let live_cases = [
        (
            "unknown client",
            "no-such-client".to_string(),
            secret.clone(),
        ),
        ("wrong secret", id.clone(), format!("{secret}x")),
        ("empty secret", id.clone(), String::new()),
        ("client id in upper case", id.to_uppercase(), secret.clone()),
        ("over-long client id", "c".repeat(129), secret.clone()),
        (
            "secret of another length",
            id.clone(),
            secret[..10].to_string(),
        ),
    ];
    for (case, cid, csecret) in &live_cases {
        post_answers.push((*case, by_post(cid.clone(), csecret.clone()).await));
        basic_answers.push((*case, by_basic(cid.clone(), csecret.clone()).await));
    }
    app.admin_post(&format!("/admin/apps/{id}/disable"), json!({}))
        .await;
    post_answers.push(("disabled app", by_post(id.clone(), secret.clone()).await));
    basic_answers.push(("disabled app", by_basic(id.clone(), secret.clone()).await));
    let (status, _) = app
        .admin(reqwest::Method::DELETE, &format!("/admin/apps/{id}"), None)
        .await;
    assert_eq!(status, 200);
    post_answers.push(("deleted app", by_post(id.clone(), secret.clone()).await));
    basic_answers.push(("deleted app", by_basic(id.clone(), secret.clone()).await));

    let (_, first_post) = &post_answers[0];
    assert_eq!(error_of(first_post), (401, "invalid_client"));
    assert_eq!(
        first_post.2, None,
        "no Basic challenge for form credentials"
    );
    for (case, a) in &post_answers {
        assert_eq!(a, first_post, "form post, {case}");
    }
    let (_, first_basic) = &basic_answers[0];
    assert_eq!(error_of(first_basic), (401, "invalid_client"));
    assert!(
        first_basic
            .2
            .as_deref()
            .is_some_and(|c| c.starts_with("Basic"))
    );
    for (case, a) in &basic_answers {
        assert_eq!(a, first_basic, "Basic, {case}");
    }
    assert_eq!(first_post.1, first_basic.1, "same body either way");
}

/// RFC 6749 §2.3.1: id and secret are form-encoded, then joined by a colon, then base64.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn basic(raw: &str) -> String {
    format!("Basic {}", STANDARD.encode(raw))
}

#[tokio::test]
async fn basic_credentials_are_form_decoded_and_malformed_ones_are_refused() {
    let app = TestApp::spawn_issuer_with(|v| {
        v.insert("token_max_failures_per_client".into(), "100".into());
        v.insert("token_max_failures_per_address".into(), "100".into());
    })
    .await;
    let (id, _) = app.setup_tutorial("org_acme").await;
    // A secret with every character RFC 6749 makes special: stored the way orgwall stores one.
    let secret = "s3cr:et+x% y/=&ü";
    let salt = [7u8; 16];
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &salt),
        secret.as_bytes(),
    );
    sqlx::query("insert into client_secrets (client_id, salt, secret_hash) values ($1, $2, $3)")
        .bind(&id)
        .bind(&salt[..])
        .bind(tag.as_ref())
        .execute(&app.admin_pool)
        .await
        .unwrap();
    let send = |authorization: String| {
        let app = &app;
        async move {
            let res = app
                .http
                .post(app.url("/oauth2/token"))
                .header("authorization", authorization)
                .form(&[CC, ("audience", AUDIENCE)])
                .send()
                .await
                .unwrap();
            answer(res).await
        }
    };
    let every_char_encoded: String = id.bytes().map(|b| format!("%{b:02X}")).collect();

    for (case, header) in [
        (
            "form-encoded",
            basic(&format!("{id}:{}", form_encode(secret))),
        ),
        (
            "id percent-encoded too",
            basic(&format!("{every_char_encoded}:{}", form_encode(secret))),
        ),
        (
            "%3A, %2B and %20 spelled out",
            basic(&format!("{id}:s3cr%3Aet%2Bx%25%20y%2F%3D%26%C3%BC")),
        ),
    ] {
        let a = send(header).await;
        assert_eq!(a.0, 200, "{case}: {a:?}");
    }
    // Through the form the client library encodes; works the same.
    assert_eq!(app.token_by_post(&id, secret, None).await.status(), 200);

    for (case, header) in [
        (
            "secret not form-encoded ('+' reads as space, '%' is bad)",
            basic(&format!("{id}:{secret}")),
        ),
        (
            "'+' for a literal plus",
            basic(&format!("{id}:s3cr%3Aet+x%25+y%2F%3D%26%C3%BC")),
        ),
        ("malformed base64", "Basic !!!".to_string()),
        (
            "base64 with a stray character",
            format!("Basic {}*", STANDARD.encode(format!("{id}:x"))),
        ),
        (
            "url-safe base64 alphabet",
            format!(
                "Basic {}",
                URL_SAFE_NO_PAD.encode([0xfb, 0xff, 0xbf, b':', b'x'])
            ),
        ),
        ("no colon", basic(&id)),
        ("empty credentials", "Basic ".to_string()),
        ("only a colon", basic(":")),
        (
            "empty client id",
            basic(&format!(":{}", form_encode(secret))),
        ),
        (
            "not UTF-8",
            format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', 0xff])),
        ),
        ("bad percent escape", basic(&format!("{id}:%ZZ"))),
        ("truncated percent escape", basic(&format!("{id}:abc%4"))),
        (
            "percent-encoded invalid UTF-8",
            basic(&format!("{id}:%C3%28")),
        ),
        (
            "NUL in the id",
            basic(&format!("{id}%00:{}", form_encode(secret))),
        ),
    ] {
        let a = send(header).await;
        assert_eq!(error_of(&a), (401, "invalid_client"), "{case}: {a:?}");
    }
    // Basic plus a different client_id in the form is a confusion, not a login.
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .header(
            "authorization",
            basic(&format!("{id}:{}", form_encode(secret))),
        )
        .form(&[CC, ("audience", AUDIENCE), ("client_id", "someone-else")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(&answer(res).await), (400, "invalid_request"));
}

#[tokio::test]
async fn repeated_form_parameters_are_invalid_requests_however_spelled() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let (id, secret, aud) = (
        form_encode(&id),
        form_encode(&secret),
        form_encode(AUDIENCE),
    );
    let base = format!(
        "grant_type=client_credentials&client_id={id}&client_secret={secret}&audience={aud}&scope=read%3Adata"
    );
    let post = |body: String| {
        let app = &app;
        async move {
            let res = app
                .http
                .post(app.url("/oauth2/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            answer(res).await
        }
    };
    assert_eq!(post(base.clone()).await.0, 200, "control");

    for extra in [
        "grant_type=client_credentials".to_string(),
        format!("client_id={id}"),
        "client_id=someone-else".to_string(),
        format!("client_secret={secret}"),
        "client_secret=".to_string(),
        format!("audience={aud}"),
        "audience=https%3A%2F%2Fother.example".to_string(),
        "scope=read%3Adata".to_string(),
        "scope=".to_string(),
        "scope=write%3Adata+delete%3Adata".to_string(),
        "client%5Fid=someone-else".to_string(),
        "%61udience=https%3A%2F%2Fother.example".to_string(),
        "grant%5Ftype=password".to_string(),
        format!("resource={aud}&resource={aud}"),
    ] {
        for body in [format!("{base}&{extra}"), format!("{extra}&{base}")] {
            let a = post(body.clone()).await;
            assert_eq!(error_of(&a), (400, "invalid_request"), "{body}");
        }
    }
    // NUL cannot be stored or compared in PostgreSQL text: a bad request, never a 500.
    let (raw_id, raw_secret) = app.setup_tutorial("org_acme").await;
    for field in [
        "client_id",
        "client_secret",
        "audience",
        "resource",
        "scope",
        "grant_type",
    ] {
        let mut pairs = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", raw_id.clone()),
            ("client_secret", raw_secret.clone()),
            ("scope", "read:data".to_string()),
        ];
        if field == "resource" {
            pairs.push(("resource", format!("{AUDIENCE}\0")));
        } else {
            pairs.push(("audience", AUDIENCE.to_string()));
            let slot = pairs.iter_mut().find(|(k, _)| *k == field).unwrap();
            slot.1.push('\0');
        }
        let res = app
            .http
            .post(app.url("/oauth2/token"))
            .form(&pairs)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_of(&answer(res).await),
            (400, "invalid_request"),
            "NUL in {field}"
        );
    }
    // audience and resource naming different APIs
    let a = post(format!("{base}&resource=https%3A%2F%2Fother.example")).await;
    assert_eq!(error_of(&a), (400, "invalid_request"));
}

/// An issuer with the tutorial's setup that does not slow down the many failures below.
async fn patient_issuer() -> (TestApp, String, String) {
    let app = TestApp::spawn_issuer_with(|v| {
        v.insert("token_max_failures_per_client".into(), "100".into());
        v.insert("token_max_failures_per_address".into(), "100".into());
    })
    .await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    (app, id, secret)
}

/// A client-credentials form for `id` and `secret`, then `extra`.
fn credentials_and(id: &str, secret: &str, extra: Vec<(&str, String)>) -> Vec<(String, String)> {
    let mut pairs = vec![
        ("grant_type".to_string(), "client_credentials".to_string()),
        ("client_id".to_string(), id.to_string()),
        ("client_secret".to_string(), secret.to_string()),
    ];
    pairs.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
    pairs
}

/// Posts a (huge) form on a fresh connection, since the server may close it before reading
/// everything; the status and `error` of the answer, which must not echo the input.
async fn send_huge(app: &TestApp, pairs: Vec<(String, String)>) -> Option<(u16, String)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let res = client
        .post(app.url("/oauth2/token"))
        .form(&pairs)
        .send()
        .await;
    match res {
        Ok(res) => {
            let status = res.status().as_u16();
            let text = res.text().await.unwrap_or_default();
            assert!(
                text.len() < 1024,
                "the answer echoes the input: {} bytes",
                text.len()
            );
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            Some((status, body["error"].as_str().unwrap_or("").to_string()))
        }
        // Closed while the client was still sending: acceptable for an over-limit body.
        Err(e) => {
            assert!(!e.is_timeout(), "{e}");
            None
        }
    }
}

fn big(n: usize) -> String {
    "x".repeat(n)
}

#[tokio::test]
async fn a_form_over_the_size_limit_is_an_invalid_request_whatever_the_field() {
    let (app, id, secret) = patient_issuer().await;
    let form = |extra| credentials_and(&id, &secret, extra);

    // Over the 64 KiB form limit: refused as a request, whatever the field.
    for (case, pairs) in [
        (
            "1 MiB padding",
            form(vec![("audience", AUDIENCE.into()), ("pad", big(1 << 20))]),
        ),
        ("1 MiB audience", form(vec![("audience", big(1 << 20))])),
        (
            "100 KiB scope",
            form(vec![
                ("audience", AUDIENCE.into()),
                ("scope", big(100 << 10)),
            ]),
        ),
    ] {
        if let Some(got) = send_huge(&app, pairs).await {
            assert_eq!((got.0, got.1.as_str()), (400, "invalid_request"), "{case}");
        }
    }
}

#[tokio::test]
async fn huge_values_within_the_limit_are_refused_for_what_they_are_without_echo() {
    let (app, id, secret) = patient_issuer().await;
    let form = |extra| credentials_and(&id, &secret, extra);
    let expect = |got: Option<(u16, String)>, status: u16, error: &str, case: &str| {
        let got = got.unwrap_or_else(|| panic!("{case}: no answer"));
        assert_eq!((got.0, got.1.as_str()), (status, error), "{case}");
    };

    // Within the limit: refused for what the value is, quickly and without echoing it.
    let many_unknown: Vec<String> = (0..10_000).map(|i| format!("s{i}")).collect();
    let many_unknown = many_unknown.join(" ");
    assert!(many_unknown.len() < 60 * 1024);
    let cases = [
        (
            "10,000 unknown scopes",
            form(vec![("audience", AUDIENCE.into()), ("scope", many_unknown)]),
            400,
            "invalid_scope",
        ),
        (
            "60 KiB audience",
            form(vec![("audience", big(60 << 10))]),
            400,
            "invalid_target",
        ),
        (
            "60 KiB resource",
            form(vec![("resource", big(60 << 10))]),
            400,
            "invalid_target",
        ),
        (
            "60 KiB unknown grant",
            vec![("grant_type".into(), big(60 << 10))],
            400,
            "unsupported_grant_type",
        ),
    ];
    for (case, pairs, status, error) in cases {
        expect(send_huge(&app, pairs).await, status, error, case);
    }
    // Credentials of 60 KiB: an unknown client, like any other.
    for (case, pairs) in [
        (
            "60 KiB client id",
            vec![
                CC,
                ("client_id", &big(60 << 10)),
                ("client_secret", &secret),
                ("audience", AUDIENCE),
            ],
        ),
        (
            "60 KiB secret",
            vec![
                CC,
                ("client_id", &id),
                ("client_secret", &big(60 << 10)),
                ("audience", AUDIENCE),
            ],
        ),
    ] {
        let pairs = pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        expect(send_huge(&app, pairs).await, 401, "invalid_client", case);
    }
    // 4,000 copies of a granted scope are one scope.
    let repeated = vec!["read:data"; 4_000].join(" ");
    let res = app.token_by_post(&id, &secret, Some(&repeated)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["scope"], "read:data");
}

#[tokio::test]
async fn near_miss_admin_tokens_change_nothing_on_any_admin_route() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let state = || async {
        sqlx::query_scalar::<_, String>(
            "select concat_ws('|',
               (select string_agg(client_id || enabled::text, ',' order by client_id) from m2m_apps),
               (select string_agg(id::text, ',' order by id) from client_secrets),
               (select string_agg(kid, ',' order by kid) from signing_keys),
               (select string_agg(code, ',' order by code) from organizations),
               (select count(*) from org_users))",
        )
        .fetch_one(&app.admin_pool)
        .await
        .unwrap()
    };
    let before = state().await;
    let routes: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (reqwest::Method::GET, "/admin/apps".into(), None),
        (
            reqwest::Method::POST,
            "/admin/apps".into(),
            Some(json!({"name": "evil", "org_code": "org_acme"})),
        ),
        (
            reqwest::Method::POST,
            "/admin/orgs".into(),
            Some(json!({"code": "org_evil", "name": "Evil"})),
        ),
        (
            reqwest::Method::POST,
            "/admin/keys/rotate".into(),
            Some(json!({})),
        ),
        (
            reqwest::Method::POST,
            format!("/admin/apps/{id}/rotate-secret"),
            Some(json!({})),
        ),
        (
            reqwest::Method::POST,
            format!("/admin/apps/{id}/disable"),
            Some(json!({})),
        ),
        (
            reqwest::Method::POST,
            format!("/admin/apps/{id}/token"),
            Some(json!({"audience": AUDIENCE})),
        ),
        (
            reqwest::Method::POST,
            "/admin/orgs/org_acme/users".into(),
            Some(json!({"email": "e@v.il", "name": "Eve"})),
        ),
        (reqwest::Method::DELETE, format!("/admin/apps/{id}"), None),
    ];
    let mut near_misses: Vec<(String, Option<String>)> = vec![
        ("none".into(), None),
        ("empty bearer".into(), Some("Bearer ".into())),
        ("longer".into(), Some(format!("Bearer {ADMIN_TOKEN}x"))),
        (
            "upper case".into(),
            Some(format!("Bearer {}", ADMIN_TOKEN.to_uppercase())),
        ),
        (
            "first char changed".into(),
            Some(format!("Bearer X{}", &ADMIN_TOKEN[1..])),
        ),
        (
            "token twice".into(),
            Some(format!("Bearer {ADMIN_TOKEN} {ADMIN_TOKEN}")),
        ),
        ("no scheme".into(), Some(ADMIN_TOKEN.into())),
        (
            "Basic scheme".into(),
            Some(format!("Basic {}", STANDARD.encode(ADMIN_TOKEN))),
        ),
        (
            "Basic user:token".into(),
            Some(format!(
                "Basic {}",
                STANDARD.encode(format!("admin:{ADMIN_TOKEN}"))
            )),
        ),
        ("a client secret".into(), Some(format!("Bearer {secret}"))),
    ];
    // An access token of the issuer itself is not an admin token.
    near_misses.push((
        "an access token".into(),
        Some(format!("Bearer {}", app.access_token(&id, &secret).await)),
    ));

    for (method, path, body) in &routes {
        for (case, authorization) in &near_misses {
            for query in ["", "?token=", "?admin_token=", "?access_token="] {
                let query = if query.is_empty() {
                    String::new()
                } else {
                    format!("{query}{ADMIN_TOKEN}")
                };
                let mut req = app
                    .http
                    .request(method.clone(), app.url(&format!("{path}{query}")))
                    .header("x-admin-token", ADMIN_TOKEN);
                if let Some(a) = authorization {
                    req = req.header("authorization", a);
                }
                if let Some(b) = body {
                    req = req.json(b);
                }
                let res = req.send().await.unwrap();
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                assert_eq!(status, 401, "{method} {path}{query} with {case}: {body}");
                assert!(body["message"].is_string(), "{body}");
                assert!(body.get("client_secret").is_none() && body.get("access_token").is_none());
            }
        }
    }
    assert_eq!(
        state().await,
        before,
        "a refused admin request changed something"
    );
}

/// Runs the issuer's secret-bearing paths, then searches every log line captured so far in
/// this test process (all tests' servers, at debug level) for the secrets they handled.
/// Asserts that no captured log line of this process holds any of `needles`, nor anything
/// that starts like a JWT.
fn assert_not_logged(client_id: &str, needles: &[(String, String)]) {
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(
        logs.contains("access token issued") && logs.contains(client_id),
        "the issuer's log lines were captured (else this test proves nothing)"
    );
    for (what, needle) in needles {
        assert!(!logs.contains(needle.as_str()), "the logs hold the {what}");
    }
    // No JWT of any test in this process: compact JWS headers and claims begin like these.
    for prefix in ["eyJhbGciOi", "eyJhdWQiOi"] {
        assert!(
            !logs.contains(prefix),
            "a JWT segment ({prefix}...) was logged"
        );
    }
}

/// A token, its signature and its claims, as log needles.
fn token_needles(what: &str, token: &str) -> [(String, String); 3] {
    [
        (what.into(), token.into()),
        (
            format!("{what}: signature"),
            token.rsplit('.').next().unwrap().into(),
        ),
        (
            format!("{what}: claims"),
            token.split('.').nth(1).unwrap().into(),
        ),
    ]
}

#[tokio::test]
async fn issued_tokens_secrets_and_private_keys_never_reach_a_log_line() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let rotated = app
        .admin_post(
            &format!("/admin/apps/{id}/rotate-secret"),
            json!({"grace": "1h"}),
        )
        .await["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    app.admin_post("/admin/keys/rotate", json!({})).await;
    let by_post = app.access_token(&id, &rotated).await;
    let by_basic = app
        .token_request(&[CC, ("audience", AUDIENCE)], Some((&id, &secret)))
        .await
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let by_admin = app
        .admin_post(
            &format!("/admin/apps/{id}/token"),
            json!({"audience": AUDIENCE}),
        )
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let guess = format!("guess-{}", uuid::Uuid::new_v4().simple());
    assert_eq!(app.token_by_post(&id, &guess, None).await.status(), 401);
    let _ = app
        .token_request(&[CC, ("audience", AUDIENCE)], Some((&id, &guess)))
        .await;
    for token in [&by_post, &by_basic, &by_admin] {
        assert_eq!(
            app.get("/orgs/org_acme/data", Some(token)).await.status(),
            200
        );
        assert_eq!(
            app.get("/orgs/org_beta/data", Some(token)).await.status(),
            403
        );
        // A tampered copy goes down the rejection path (debug logging included).
        let tampered = format!("{}x", &token[..token.len() - 1]);
        assert_eq!(
            app.get("/orgs/org_acme/data", Some(&tampered))
                .await
                .status(),
            401
        );
    }
    let private_keys: Vec<Vec<u8>> = sqlx::query_scalar("select private_der from signing_keys")
        .fetch_all(&app.admin_pool)
        .await
        .unwrap();
    assert_eq!(private_keys.len(), 2, "first key and the rotated one");

    let mut needles: Vec<(String, String)> = vec![
        ("client secret".into(), secret.clone()),
        ("rotated secret".into(), rotated.clone()),
        ("guessed secret".into(), guess.clone()),
        ("admin token".into(), ADMIN_TOKEN.into()),
        (
            "Basic credentials".into(),
            STANDARD.encode(format!("{id}:{secret}")),
        ),
    ];
    needles.extend(token_needles("token by post", &by_post));
    needles.extend(token_needles("token by Basic", &by_basic));
    needles.extend(token_needles("token by admin", &by_admin));
    for (i, der) in private_keys.iter().enumerate() {
        let base64 = STANDARD.encode(der);
        needles.push((format!("private key {i}, base64"), base64.clone()));
        // One PEM line of the key's body, past the shared PKCS#8 prefix.
        needles.push((
            format!("private key {i}, a PEM line"),
            base64[64..128].to_string(),
        ));
        needles.push((
            format!("private key {i}, base64url"),
            URL_SAFE_NO_PAD.encode(der),
        ));
        let hex: String = der[40..80].iter().map(|b| format!("{b:02x}")).collect();
        needles.push((format!("private key {i}, hex"), hex));
    }
    assert_not_logged(&id, &needles);
}

#[tokio::test]
async fn secrets_sent_where_they_do_not_belong_never_reach_a_log_line() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let token = app.access_token(&id, &secret).await;

    // Secrets where they do not belong, in query strings (RFC 6750 §2.3 allows the first).
    let res = app
        .http
        .get(app.url(&format!("/orgs/org_acme/data?access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a query-string token is not accepted");
    let res = app
        .http
        .get(app.url(&format!(
            "/admin/apps?admin_token={ADMIN_TOKEN}&client_secret={secret}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let near_admin = format!("{ADMIN_TOKEN}x");
    let res = app
        .http
        .get(app.url("/admin/apps"))
        .bearer_auth(&near_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let mut needles: Vec<(String, String)> = vec![
        ("client secret".into(), secret.clone()),
        ("admin token".into(), ADMIN_TOKEN.into()),
        ("near-miss admin token".into(), near_admin),
    ];
    needles.extend(token_needles("token in a query string", &token));
    assert_not_logged(&id, &needles);
}
