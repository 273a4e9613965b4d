//! Key-bound clients end to end: apps that authenticate with a signed assertion
//! (private_key_jwt) and DPoP-bound tokens at the token endpoint and the resource API.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::{AUDIENCE, TestApp, now, www_authenticate};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const ALGS: &str = r#"algs="RS256 PS256 ES256 EdDSA""#;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A client's key pair and its public JWK (no `kid`: orgwall names it by its thumbprint).
struct ClientKey {
    pair: Pair,
    alg: &'static str,
    jwk: Value,
    /// RFC 7638 canonical form, computed here independently.
    canonical: String,
}

impl ClientKey {
    fn ec() -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p = pair.public_key().as_ref();
        let (x, y) = (b64(&p[1..33]), b64(&p[33..65]));
        Self {
            canonical: format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
            jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
            pair: Pair::Ec(pair),
            alg: "ES256",
        }
    }

    fn ed25519() -> Self {
        let pair = Ed25519KeyPair::generate().unwrap();
        let x = b64(pair.public_key().as_ref());
        Self {
            canonical: format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
            pair: Pair::Ed(pair),
            alg: "EdDSA",
        }
    }

    fn rsa(alg: &'static str) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let n = b64(public.modulus().big_endian_without_leading_zero());
        let e = b64(public.exponent().big_endian_without_leading_zero());
        Self {
            canonical: format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
            jwk: json!({"kty": "RSA", "n": n, "e": e}),
            pair: Pair::Rsa(pair),
            alg,
        }
    }

    fn thumbprint(&self) -> String {
        b64(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.canonical.as_bytes())
                .as_ref(),
        )
    }

    fn sign_jws(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match &self.pair {
            Pair::Rsa(p) => {
                let mut sig = vec![0; p.public_modulus_len()];
                let padding = if self.alg == "PS256" {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                p.sign(padding, &rng, input.as_bytes(), &mut sig).unwrap();
                sig
            }
            Pair::Ec(p) => p.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Pair::Ed(p) => p.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }

    fn assertion_claims(client_id: &str, aud: &str) -> Value {
        json!({
            "iss": client_id, "sub": client_id, "aud": aud,
            "iat": now(), "exp": now() + 300, "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    fn assertion_with(&self, claims: &Value) -> String {
        self.sign_jws(&json!({"alg": self.alg, "typ": "JWT"}), claims)
    }

    /// A DPoP proof for `method url`, with `ath` for `token` when given.
    fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        let mut claims = json!({
            "jti": uuid::Uuid::new_v4().to_string(), "htm": method, "htu": url, "iat": now(),
        });
        if let Some(t) = token {
            let ath = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.as_bytes());
            claims["ath"] = json!(b64(ath.as_ref()));
        }
        self.proof_with(&claims)
    }

    fn proof_with(&self, claims: &Value) -> String {
        self.sign_jws(
            &json!({"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk}),
            claims,
        )
    }
}

impl TestApp {
    fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.settings.public_url)
    }

    fn external(&self, path: &str) -> String {
        format!("{}{path}", self.settings.public_url)
    }

    /// API, org and an app registered with `keys`, authorized for read:data.
    async fn key_app(&self, keys: &[&ClientKey], require_dpop: bool) -> String {
        self.setup_tutorial("org_acme").await;
        let jwks = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        let app = self
            .admin_post(
                "/admin/apps",
                json!({"name": "keyed", "org_code": "org_acme", "jwks": jwks, "require_dpop": require_dpop}),
            )
            .await;
        assert_eq!(
            app["token_endpoint_auth_method"], "private_key_jwt",
            "{app}"
        );
        assert!(
            app.get("client_secret").is_none(),
            "no secret is made: {app}"
        );
        let id = app["client_id"].as_str().unwrap().to_string();
        self.admin_post(
            &format!("/admin/apps/{id}/authorize"),
            json!({"audience": AUDIENCE, "scopes": "read:data"}),
        )
        .await;
        id
    }

    async fn assertion_request(
        &self,
        assertion: &str,
        extra: &[(&str, &str)],
        dpop: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("audience", AUDIENCE),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ];
        form.extend_from_slice(extra);
        let mut req = self.http.post(self.url("/oauth2/token")).form(&form);
        if let Some(proof) = dpop {
            req = req.header("DPoP", proof);
        }
        req.send().await.unwrap()
    }

    async fn dpop_get(
        &self,
        path: &str,
        scheme: &str,
        token: &str,
        proof: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .get(self.url(path))
            .header("Authorization", format!("{scheme} {token}"));
        if let Some(p) = proof {
            req = req.header("DPoP", p);
        }
        req.send().await.unwrap()
    }
}

async fn json_of(res: reqwest::Response, status: u16) -> (reqwest::header::HeaderMap, Value) {
    let got = res.status().as_u16();
    let headers = res.headers().clone();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    // Never the token itself in a failure message: CI searches the log for tokens.
    assert_eq!(got, status, "{}", body["error"]);
    (headers, body)
}

impl TestApp {
    /// Waits until an assertion from `key` gets `want`: a catalogue change made elsewhere
    /// reaches this instance's client cache through NOTIFY, within moments.
    async fn eventually_status(&self, key: &ClientKey, id: &str, want: u16) {
        for _ in 0..60 {
            let claims = ClientKey::assertion_claims(id, &self.token_endpoint());
            let res = self
                .assertion_request(&key.assertion_with(&claims), &[], None)
                .await;
            if res.status().as_u16() == want {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("an assertion by the {} key never got {want}", key.alg);
    }
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_key_bound_app_gets_tokens_with_assertions_signed_by_each_algorithm() {
    let app = TestApp::spawn_issuer().await;
    let (rsa, ec, ed) = (
        ClientKey::rsa("RS256"),
        ClientKey::ec(),
        ClientKey::ed25519(),
    );
    let id = app.key_app(&[&rsa, &ec, &ed], false).await;
    let pss = ClientKey::rsa("PS256");
    // The RSA key allows RS256 and PS256; register the PS256 one too.
    let (status, _) = app
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/apps/{id}/jwks"),
            Some(json!({"keys": [rsa.jwk, ec.jwk, ed.jwk, pss.jwk]})),
        )
        .await;
    assert_eq!(status, 200);

    for (key, aud) in [
        (&rsa, app.token_endpoint()),
        (&pss, app.token_endpoint()),
        (&ec, app.settings.public_url.clone()),
        (&ed, app.token_endpoint()),
    ] {
        let assertion = key.assertion_with(&ClientKey::assertion_claims(&id, &aud));
        let (_, body) = json_of(
            app.assertion_request(&assertion, &[("client_id", &id)], None)
                .await,
            200,
        )
        .await;
        assert_eq!(body["token_type"], "Bearer", "{}", key.alg);
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(claims_of(token)["client_id"], id.as_str());
        let res = app.get("/orgs/org_acme/data", Some(token)).await;
        assert_eq!(res.status(), 200, "{}", key.alg);
    }
}

#[tokio::test]
async fn every_assertion_failure_is_the_same_invalid_client() {
    let app = TestApp::spawn_issuer_with(|v| {
        // Many failures for one client on purpose: the limiter is tested on its own.
        v.insert("token_max_failures_per_client".into(), "1000".into());
        v.insert("token_max_failures_per_address".into(), "1000".into());
    })
    .await;
    let (key, stranger) = (ClientKey::ec(), ClientKey::ec());
    let id = app.key_app(&[&key], false).await;
    let aud = app.token_endpoint();
    let good = || ClientKey::assertion_claims(&id, &aud);
    let with = |name: &str, value: Value| {
        let mut c = good();
        c[name] = value;
        c
    };
    let hmac = {
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256"}"#),
            b64(good().to_string().as_bytes())
        );
        let k =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.jwk.to_string().as_bytes());
        format!(
            "{input}.{}",
            b64(aws_lc_rs::hmac::sign(&k, input.as_bytes()).as_ref())
        )
    };
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(good().to_string().as_bytes())
    );
    let cases: Vec<(&str, String)> = vec![
        ("another key", stranger.assertion_with(&good())),
        ("alg none", unsigned),
        ("HMAC with the public key", hmac),
        (
            "expired",
            key.assertion_with(&with("exp", json!(now() - 61))),
        ),
        (
            "lives too long",
            key.assertion_with(&with("exp", json!(now() + 3600 + 300))),
        ),
        (
            "not yet valid",
            key.assertion_with(&with("nbf", json!(now() + 120))),
        ),
        (
            "other audience",
            key.assertion_with(&with("aud", json!("https://elsewhere.example/token"))),
        ),
        (
            "sub is not the client",
            key.assertion_with(&with("sub", json!("someone"))),
        ),
        ("no jti", {
            let mut c = good();
            c.as_object_mut().unwrap().remove("jti");
            key.assertion_with(&c)
        }),
        (
            "unknown kid",
            key.sign_jws(&json!({"alg": "ES256", "kid": "nope"}), &good()),
        ),
        ("over 8 KiB", {
            let mut c = good();
            c["pad"] = json!("p".repeat(8 * 1024));
            key.assertion_with(&c)
        }),
    ];
    let mut bodies = Vec::new();
    for (case, assertion) in &cases {
        let res = app.assertion_request(assertion, &[], None).await;
        assert_eq!(res.status(), 401, "{case}");
        bodies.push(res.text().await.unwrap());
    }
    // A secret app cannot use an assertion, nor a key app a secret.
    let (secret_id, secret) = app.setup_tutorial("org_beta").await;
    let res = app
        .assertion_request(
            &key.assertion_with(&ClientKey::assertion_claims(&secret_id, &aud)),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status(), 401, "assertion for a secret app");
    bodies.push(res.text().await.unwrap());
    let (status, _) = app
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/apps/{secret_id}/jwks"),
            Some(stranger.jwk.clone()),
        )
        .await;
    assert_eq!(status, 200);
    app.eventually_status(&stranger, &secret_id, 200).await;
    let res = app.token_by_post(&secret_id, &secret, None).await;
    assert_eq!(res.status(), 401, "the secret of an app that now has keys");
    bodies.push(res.text().await.unwrap());
    // client_id naming another client than the assertion's iss.
    let res = app
        .assertion_request(
            &key.assertion_with(&good()),
            &[("client_id", &secret_id)],
            None,
        )
        .await;
    assert_eq!(res.status(), 401, "client_id differs from iss");
    bodies.push(res.text().await.unwrap());
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one body for all: {bodies:?}"
    );
    let body: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(body["error"], "invalid_client");

    // The assertion is valid; used twice, the second time is a replay.
    let once = key.assertion_with(&good());
    json_of(app.assertion_request(&once, &[], None).await, 200).await;
    json_of(app.assertion_request(&once, &[], None).await, 401).await;

    // A body beyond the form limit is refused before anything is read from it.
    let huge = "a".repeat(100 * 1024);
    let (_, body) = json_of(app.assertion_request(&huge, &[], None).await, 400).await;
    assert_eq!(body["error"], "invalid_request");

    // Malformed requests are invalid_request, not authentication failures.
    let fresh = key.assertion_with(&good());
    let (_, body) = json_of(
        app.assertion_request(&fresh, &[("client_secret", "x")], None)
            .await,
        400,
    )
    .await;
    assert_eq!(body["error"], "invalid_request");
    let res = app
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("audience", AUDIENCE),
                ("client_assertion", &fresh),
            ],
            None,
        )
        .await;
    assert_eq!(json_of(res, 400).await.1["error"], "invalid_request");
    let res = app
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("audience", AUDIENCE),
                ("client_assertion_type", "urn:other"),
                ("client_assertion", &fresh),
            ],
            None,
        )
        .await;
    assert_eq!(json_of(res, 400).await.1["error"], "invalid_request");
}

#[tokio::test]
async fn assertion_failures_count_for_the_brute_force_limiter() {
    let app = TestApp::spawn_issuer_with(|v| {
        v.insert("token_max_failures_per_client".into(), "3".into());
    })
    .await;
    let (key, stranger) = (ClientKey::ec(), ClientKey::ec());
    let id = app.key_app(&[&key], false).await;
    let aud = app.token_endpoint();
    // Three failures in the window, then the next attempt waits, even a valid one.
    for _ in 0..3 {
        let forged = stranger.assertion_with(&ClientKey::assertion_claims(&id, &aud));
        json_of(app.assertion_request(&forged, &[], None).await, 401).await;
    }
    let forged = stranger.assertion_with(&ClientKey::assertion_claims(&id, &aud));
    json_of(app.assertion_request(&forged, &[], None).await, 429).await;
    let valid = key.assertion_with(&ClientKey::assertion_claims(&id, &aud));
    let (_, body) = json_of(app.assertion_request(&valid, &[], None).await, 429).await;
    assert_eq!(body["error"], "slow_down");
}

#[tokio::test]
async fn a_replayed_assertion_is_refused_by_another_instance_on_the_same_database() {
    let app = TestApp::spawn_issuer().await;
    let key = ClientKey::ed25519();
    let id = app.key_app(&[&key], false).await;
    let mut settings = app.settings.clone();
    settings.port = 0;
    let second = orgwall::startup::Application::build(settings)
        .await
        .unwrap();
    let second_url = format!("http://127.0.0.1:{}/oauth2/token", second.port());
    tokio::spawn(second.run_until_stopped());

    let assertion = key.assertion_with(&ClientKey::assertion_claims(&id, &app.token_endpoint()));
    json_of(app.assertion_request(&assertion, &[], None).await, 200).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("audience", AUDIENCE),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    let res = app.http.post(&second_url).form(&form).send().await.unwrap();
    assert_eq!(json_of(res, 401).await.1["error"], "invalid_client");
    // A fresh assertion works there.
    let fresh = key.assertion_with(&ClientKey::assertion_claims(&id, &app.token_endpoint()));
    let form = [
        ("grant_type", "client_credentials"),
        ("audience", AUDIENCE),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", fresh.as_str()),
    ];
    let res = app.http.post(&second_url).form(&form).send().await.unwrap();
    json_of(res, 200).await;
}

#[tokio::test]
async fn dpop_bound_tokens_need_a_proof_of_their_key_at_the_resource_api() {
    let app = TestApp::spawn_issuer().await;
    let (client, dpop_key, other) = (
        ClientKey::ec(),
        ClientKey::ed25519(),
        ClientKey::rsa("RS256"),
    );
    let id = app.key_app(&[&client], false).await;
    let assertion = client.assertion_with(&ClientKey::assertion_claims(&id, &app.token_endpoint()));
    let proof = dpop_key.proof("POST", &app.token_endpoint(), None);
    let (_, body) = json_of(
        app.assertion_request(&assertion, &[], Some(&proof)).await,
        200,
    )
    .await;
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        claims_of(&token)["cnf"]["jkt"],
        dpop_key.thumbprint().as_str()
    );

    let path = "/orgs/org_acme/data";
    let url = app.external(path);
    let ok = app
        .dpop_get(
            path,
            "DPoP",
            &token,
            Some(&dpop_key.proof("GET", &url, Some(&token))),
        )
        .await;
    assert_eq!(ok.status(), 200);

    let proof_failure = |res: reqwest::Response, case: &'static str| async move {
        let (headers, body) = json_of(res, 401).await;
        assert_eq!(body["message"], "Invalid DPoP proof", "{case}");
        assert_eq!(
            www_authenticate(&headers).as_deref(),
            Some(format!(r#"DPoP error="invalid_dpop_proof", {ALGS}"#).as_str()),
            "{case}"
        );
    };
    let replayed = dpop_key.proof("GET", &url, Some(&token));
    assert_eq!(
        app.dpop_get(path, "DPoP", &token, Some(&replayed))
            .await
            .status(),
        200
    );
    proof_failure(
        app.dpop_get(path, "DPoP", &token, Some(&replayed)).await,
        "replay",
    )
    .await;
    proof_failure(app.dpop_get(path, "DPoP", &token, None).await, "no proof").await;
    let by_other_key = other.proof("GET", &url, Some(&token));
    proof_failure(
        app.dpop_get(path, "DPoP", &token, Some(&by_other_key))
            .await,
        "other key",
    )
    .await;
    let wrong_method = dpop_key.proof("POST", &url, Some(&token));
    proof_failure(
        app.dpop_get(path, "DPoP", &token, Some(&wrong_method))
            .await,
        "htm",
    )
    .await;
    let no_ath = dpop_key.proof("GET", &url, None);
    proof_failure(
        app.dpop_get(path, "DPoP", &token, Some(&no_ath)).await,
        "no ath",
    )
    .await;
    let wrong_ath = dpop_key.proof("GET", &url, Some("another token"));
    proof_failure(
        app.dpop_get(path, "DPoP", &token, Some(&wrong_ath)).await,
        "ath",
    )
    .await;
    let http_url = url.replacen("http://", "https://", 1);
    let port = app
        .settings
        .public_url
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    for (case, htu) in [
        ("scheme", http_url),
        ("port", url.replacen(&format!(":{port}"), ":1", 1)),
        ("trailing slash", format!("{url}/")),
        ("other path", app.external("/orgs/org_beta/data")),
    ] {
        let proof = dpop_key.proof("GET", &htu, Some(&token));
        proof_failure(app.dpop_get(path, "DPoP", &token, Some(&proof)).await, case).await;
    }
    let old = {
        let mut c = json!({"jti": "old", "htm": "GET", "htu": url, "iat": now() - 120});
        let ath = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        c["ath"] = json!(b64(ath.as_ref()));
        dpop_key.proof_with(&c)
    };
    proof_failure(app.dpop_get(path, "DPoP", &token, Some(&old)).await, "iat").await;
    let private = {
        let mut jwk = dpop_key.jwk.clone();
        jwk["d"] = json!(b64(&[7; 32]));
        let claims = json!({"jti": "p", "htm": "GET", "htu": url, "iat": now()});
        dpop_key.sign_jws(
            &json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}),
            &claims,
        )
    };
    proof_failure(
        app.dpop_get(path, "DPoP", &token, Some(&private)).await,
        "private jwk",
    )
    .await;
    let huge = "e".repeat(100 * 1024);
    let res = app.dpop_get(path, "DPoP", &token, Some(&huge)).await;
    assert!(res.status().is_client_error(), "{}", res.status());
    assert!(res.json::<Value>().await.is_ok(), "a JSON body");

    // A bound token as Bearer, and a bearer token as DPoP: the token itself is refused.
    let invalid_token = format!(r#"DPoP error="invalid_token", {ALGS}"#);
    let (headers, body) = json_of(app.get(path, Some(&token)).await, 401).await;
    assert_eq!(body["message"], "Invalid or expired token");
    assert_eq!(
        www_authenticate(&headers).as_deref(),
        Some(invalid_token.as_str())
    );
    let plain = app
        .assertion_request(
            &client.assertion_with(&ClientKey::assertion_claims(&id, &app.token_endpoint())),
            &[],
            None,
        )
        .await;
    let plain = json_of(plain, 200).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let proof = dpop_key.proof("GET", &url, Some(&plain));
    let (headers, _) = json_of(app.dpop_get(path, "DPoP", &plain, Some(&proof)).await, 401).await;
    assert_eq!(
        www_authenticate(&headers).as_deref(),
        Some(invalid_token.as_str())
    );
    let (headers, _) = json_of(
        app.dpop_get(path, "DPoP", "not.a.token", Some(&proof))
            .await,
        401,
    )
    .await;
    assert_eq!(
        www_authenticate(&headers).as_deref(),
        Some(invalid_token.as_str())
    );
}

#[tokio::test]
async fn the_token_endpoint_refuses_bad_proofs_and_require_dpop_apps_without_one() {
    let app = TestApp::spawn_issuer().await;
    let (client, dpop_key) = (ClientKey::ec(), ClientKey::ec());
    let id = app.key_app(&[&client], true).await;
    let assertion =
        || client.assertion_with(&ClientKey::assertion_claims(&id, &app.token_endpoint()));
    let refused = |res: reqwest::Response| async move {
        let (headers, body) = json_of(res, 400).await;
        assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
        assert_eq!(headers["cache-control"], "no-store");
    };
    refused(app.assertion_request(&assertion(), &[], None).await).await;
    let wrong_url = dpop_key.proof("POST", &format!("{}/", app.token_endpoint()), None);
    refused(
        app.assertion_request(&assertion(), &[], Some(&wrong_url))
            .await,
    )
    .await;
    let wrong_method = dpop_key.proof("GET", &app.token_endpoint(), None);
    refused(
        app.assertion_request(&assertion(), &[], Some(&wrong_method))
            .await,
    )
    .await;
    let good = dpop_key.proof("POST", &app.token_endpoint(), None);
    let (_, body) = json_of(
        app.assertion_request(&assertion(), &[], Some(&good)).await,
        200,
    )
    .await;
    assert_eq!(body["token_type"], "DPoP");
    refused(app.assertion_request(&assertion(), &[], Some(&good)).await).await;

    // A secret app created with require_dpop too.
    let made = app
        .admin_post(
            "/admin/apps",
            json!({"name": "s", "org_code": "org_acme", "require_dpop": true}),
        )
        .await;
    let (sid, secret) = (
        made["client_id"].as_str().unwrap(),
        made["client_secret"].as_str().unwrap(),
    );
    app.admin_post(
        &format!("/admin/apps/{sid}/authorize"),
        json!({"audience": AUDIENCE, "scopes": "read:data"}),
    )
    .await;
    refused(app.token_by_post(sid, secret, None).await).await;
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .header("DPoP", dpop_key.proof("POST", &app.token_endpoint(), None))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", sid),
            ("client_secret", secret),
            ("audience", AUDIENCE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(res, 200).await.1["token_type"], "DPoP");
}

#[tokio::test]
async fn keys_are_registered_rotated_and_checked_from_the_cli() {
    let app = TestApp::spawn_issuer().await;
    app.setup_tutorial("org_acme").await;
    let dir = std::env::temp_dir().join(format!("orgwall-keys-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, v: &Value| {
        let path = dir.join(name);
        std::fs::write(&path, v.to_string()).unwrap();
        path.to_string_lossy().to_string()
    };
    let (old, new) = (ClientKey::ec(), ClientKey::ed25519());

    let mut private = old.jwk.clone();
    private["d"] = json!(b64(&[1; 32]));
    let (ok, _, stderr) = crate::issuer::orgwall(
        &app,
        &[
            "app",
            "create",
            "--name",
            "k",
            "--org",
            "org_acme",
            "--jwks-file",
            &file("private.json", &private),
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("`d`"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let (ok, made, stderr) = crate::issuer::orgwall(
        &app,
        &[
            "app",
            "create",
            "--name",
            "k",
            "--org",
            "org_acme",
            "--jwks-file",
            &file("old.json", &old.jwk),
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(made["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(
        made["kids"][0],
        old.thumbprint().as_str(),
        "the thumbprint is the kid"
    );
    let id = made["client_id"].as_str().unwrap().to_string();
    app.admin_post(
        &format!("/admin/apps/{id}/authorize"),
        json!({"audience": AUDIENCE, "scopes": "read:data"}),
    )
    .await;
    let get_token = |key: &ClientKey| {
        key.assertion_with(&ClientKey::assertion_claims(&id, &app.token_endpoint()))
    };
    json_of(
        app.assertion_request(&get_token(&old), &[], None).await,
        200,
    )
    .await;

    // Rotation: both keys, then the new one alone.
    let both = json!({"keys": [old.jwk, new.jwk]});
    let (ok, _, stderr) = crate::issuer::orgwall(
        &app,
        &[
            "app",
            "set-keys",
            "--client-id",
            &id,
            "--jwks-file",
            &file("both.json", &both),
        ],
    );
    assert!(ok, "{stderr}");
    app.eventually_status(&new, &id, 200).await;
    json_of(
        app.assertion_request(&get_token(&old), &[], None).await,
        200,
    )
    .await;
    let (ok, _, _) = crate::issuer::orgwall(
        &app,
        &[
            "app",
            "set-keys",
            "--client-id",
            &id,
            "--jwks-file",
            &file("new.json", &new.jwk),
        ],
    );
    assert!(ok);
    app.eventually_status(&old, &id, 401).await;
    json_of(
        app.assertion_request(&get_token(&new), &[], None).await,
        200,
    )
    .await;

    // Both changes are in the organization's audit log, with the kids and no key material.
    let events: Vec<(String, Value)> = sqlx::query_as(
        "select action, details from audit_events
          where org_code = 'org_acme' and details ->> 'app_client_id' = $1 order by id",
    )
    .bind(&id)
    .fetch_all(&app.admin_pool)
    .await
    .unwrap();
    let actions: Vec<&str> = events.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions[0], "app.created");
    assert_eq!(
        actions.iter().filter(|a| **a == "app.keys_set").count(),
        2,
        "{actions:?}"
    );
    assert_eq!(events[0].1["kids"][0], old.thumbprint().as_str());
    assert!(
        !events
            .iter()
            .any(|(_, d)| d.to_string().contains(old.jwk["x"].as_str().unwrap()))
    );

    // The admin API refuses the same bad keys with a 400 saying why.
    let small_rsa = json!({"kty": "RSA", "n": b64(&[0xc5; 128]), "e": "AQAB"});
    let (status, body) = app
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/apps/{id}/jwks"),
            Some(small_rsa),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("2048"), "{body}");
    let off_curve = json!({"kty": "EC", "crv": "P-256", "x": old.jwk["x"], "y": old.jwk["x"]});
    let (status, body) = app
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/apps/{id}/jwks"),
            Some(off_curve),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn discovery_lists_private_key_jwt_and_dpop() {
    let app = TestApp::spawn_issuer().await;
    let meta: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let algs = json!(["RS256", "PS256", "ES256", "EdDSA"]);
    assert!(
        meta["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("private_key_jwt"))
    );
    assert_eq!(
        meta["token_endpoint_auth_signing_alg_values_supported"],
        algs
    );
    assert_eq!(meta["dpop_signing_alg_values_supported"], algs);
}

#[tokio::test]
async fn an_external_issuers_token_with_cnf_jkt_is_held_to_the_same_rules() {
    let app = TestApp::spawn().await;
    let key = ClientKey::ec();
    let mut claims = app.issuer.claims(Some("org_acme"), "read:data");
    claims["cnf"] = json!({"jkt": key.thumbprint()});
    let token = app.issuer.mint(&claims);
    let path = "/orgs/org_acme/data";
    let url = app.external(path);

    let (headers, _) = json_of(app.get(path, Some(&token)).await, 401).await;
    let challenge = www_authenticate(&headers).unwrap();
    assert!(
        challenge.starts_with(r#"DPoP error="invalid_token""#),
        "{challenge}"
    );
    let proof = key.proof("GET", &url, Some(&token));
    assert_eq!(
        app.dpop_get(path, "DPoP", &token, Some(&proof))
            .await
            .status(),
        200
    );
    let other = ClientKey::ec().proof("GET", &url, Some(&token));
    json_of(app.dpop_get(path, "DPoP", &token, Some(&other)).await, 401).await;

    // A confirmation orgwall cannot check (an mTLS certificate binding) is not ignored.
    let mut mtls = app.issuer.claims(Some("org_acme"), "read:data");
    mtls["cnf"] = json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"});
    let (_, body) = json_of(app.get(path, Some(&app.issuer.mint(&mtls))).await, 401).await;
    assert_eq!(body["message"], "Invalid or expired token");
}

#[tokio::test]
async fn a_key_bound_app_introspects_and_revokes_its_token_with_assertions() {
    let app = TestApp::spawn_issuer().await;
    let key = ClientKey::ec();
    let id = app.key_app(&[&key], false).await;
    let assertion = |aud: &str| key.assertion_with(&ClientKey::assertion_claims(&id, aud));
    let (_, body) = json_of(
        app.assertion_request(&assertion(&app.token_endpoint()), &[], None)
            .await,
        200,
    )
    .await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let post = |path: &str, assertion: String| {
        app.http
            .post(app.url(path))
            .form(&[
                ("token", token.as_str()),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
    };
    let issuer = app.settings.public_url.clone();
    let (_, seen) = json_of(
        post("/oauth2/introspect", assertion(&issuer))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["client_id"], id.as_str());
    let res = post("/oauth2/revoke", assertion(&issuer)).await.unwrap();
    assert_eq!(res.status(), 200);
    let (_, seen) = json_of(
        post("/oauth2/introspect", assertion(&issuer))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(seen, json!({"active": false}));
    // An assertion that does not verify is the token endpoint's invalid_client.
    let res = post("/oauth2/introspect", "not.an.assertion".into())
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn the_oauth2_crate_gets_a_dpop_bound_token_for_a_key_bound_app() {
    // What the README says of the `oauth2` crate: no secret, the assertion as extra form
    // parameters, the DPoP header added by the HTTP function handed to the crate.
    use oauth2::{AuthUrl, ClientId, TokenResponse, TokenUrl, basic::BasicClient};
    let app = TestApp::spawn_issuer().await;
    let (key, dpop_key) = (ClientKey::ec(), ClientKey::ed25519());
    let id = app.key_app(&[&key], true).await;
    let token_endpoint = app.token_endpoint();
    let assertion = key.assertion_with(&ClientKey::assertion_claims(&id, &token_endpoint));
    let proof = dpop_key.proof("POST", &token_endpoint, None);

    let http = reqwest::Client::new();
    let send = |request: oauth2::HttpRequest| {
        let (http, proof) = (http.clone(), proof.clone());
        async move {
            let (parts, body) = request.into_parts();
            let res = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .header("DPoP", proof)
                .body(body)
                .send()
                .await?;
            let mut out = http::Response::builder().status(res.status());
            for (k, v) in res.headers() {
                out = out.header(k, v);
            }
            Ok::<_, reqwest::Error>(out.body(res.bytes().await?.to_vec()).unwrap())
        }
    };
    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_auth_uri(AuthUrl::new(app.url("/unused")).unwrap())
        .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).unwrap());
    let token = client
        .exchange_client_credentials()
        .add_extra_param("audience", AUDIENCE)
        .add_extra_param("client_assertion_type", ASSERTION_TYPE)
        .add_extra_param("client_assertion", assertion)
        .request_async(&send)
        .await
        .expect("oauth2 client-credentials exchange with an assertion");
    let access = token.access_token().secret().clone();
    assert_eq!(
        claims_of(&access)["cnf"]["jkt"],
        dpop_key.thumbprint().as_str()
    );

    let url = app.external("/orgs/org_acme/data");
    let proof = dpop_key.proof("GET", &url, Some(&access));
    let res = app
        .dpop_get("/orgs/org_acme/data", "DPoP", &access, Some(&proof))
        .await;
    assert_eq!(res.status(), 200);
}
