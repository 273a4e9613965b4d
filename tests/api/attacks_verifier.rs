//! Attacks on the token verifier: each forged, confused or malformed token gets
//! `401` with `Bearer error="invalid_token"`, never `200` and never `500`. Cases already in
//! auth_checks.rs (another key under the right kid, payload changed after signing, expired,
//! not yet valid, wrong iss/aud, missing aud, PS256, unknown kid) are not repeated here.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair as _,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use orgwall::auth::jwks::JwksCache;
use orgwall::auth::{KeySource, SigningAlgorithm, Verifier};
use serde_json::{Value, json};

use crate::helpers::{
    AUDIENCE, FakeIssuer, TestApp, assert_error, attacker_key, issuer_key, now, www_authenticate,
};

const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload` from raw JSON texts, unsigned.
fn signing_input(header: &str, payload: &str) -> String {
    format!("{}.{}", b64(header), b64(payload))
}

/// Sends `Authorization: <value>` to a read route; `None` when the client cannot even build
/// such a header (a NUL byte, say).
async fn send_authorization(app: &TestApp, value: &str) -> Option<reqwest::Response> {
    let value = reqwest::header::HeaderValue::from_str(value).ok()?;
    Some(
        app.http
            .get(app.url("/orgs/org_acme/data"))
            .header("authorization", value)
            .send()
            .await
            .expect("request"),
    )
}

/// The token is refused the one way every bad token is: 401, `invalid_token`, the fixed JSON
/// body.
async fn assert_rejected(app: &TestApp, token: &str, why: &str) {
    let res = send_authorization(app, &format!("Bearer {token}"))
        .await
        .unwrap_or_else(|| panic!("{why}: not sendable as a header"));
    let status = res.status().as_u16();
    let challenge = www_authenticate(res.headers());
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(
        (status, challenge.as_deref(), body),
        (
            401,
            Some(INVALID_TOKEN),
            json!({"error": "Unauthorized", "message": "Invalid or expired token"})
        ),
        "{why}"
    );
}

async fn assert_accepted(app: &TestApp, token: &str, why: &str) {
    let res = app.get("/orgs/org_acme/data", Some(token)).await;
    assert_eq!(res.status(), 200, "{why}");
}

fn good_claims(app: &TestApp) -> Value {
    app.issuer.claims(Some("org_acme"), "read:data")
}

#[tokio::test]
async fn alg_none_in_any_letter_case_with_or_without_signature_is_refused() {
    let app = TestApp::spawn().await;
    let claims = good_claims(&app).to_string();
    assert_accepted(&app, &app.issuer.token("org_acme", "read:data"), "control").await;
    let real_signature = app.issuer.mint(&good_claims(&app));
    let real_signature = real_signature.rsplit('.').next().unwrap();

    for alg in ["none", "None", "NONE", "nOnE", "none ", ""] {
        for header in [
            json!({"alg": alg, "typ": "JWT"}),
            json!({"alg": alg, "typ": "JWT", "kid": issuer_key().kid}),
        ] {
            let input = signing_input(&header.to_string(), &claims);
            for token in [
                format!("{input}."),
                input.clone(),
                format!("{input}.{real_signature}"),
                format!("{input}.{}", b64("signature")),
            ] {
                assert_rejected(&app, &token, &format!("alg {alg:?}: {header}")).await;
            }
        }
    }
}

/// The RSA public key as DER, built from the JWK that the issuer publishes.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    if bytes[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(bytes);
    der(0x02, &content)
}

const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// (PKCS#1 RSAPublicKey, SubjectPublicKeyInfo) DER of a published RSA JWK.
fn rsa_public_der(jwk: &Value) -> (Vec<u8>, Vec<u8>) {
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
    let pkcs1 = der(0x30, &[der_uint(&n), der_uint(&e)].concat());
    let algorithm = der(0x30, &[OID_RSA_ENCRYPTION, &[0x05, 0x00]].concat());
    let bits = der(0x03, &[&[0u8][..], &pkcs1].concat());
    let spki = der(0x30, &[algorithm, bits].concat());
    (pkcs1, spki)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_as_hmac_secret_is_refused() {
    let app = TestApp::spawn().await;
    let claims = good_claims(&app).to_string();
    let jwk = issuer_key().jwk();
    let (pkcs1, spki) = rsa_public_der(&jwk);
    let spki_pem = pem("PUBLIC KEY", &spki);
    // The PEM really is the issuer's public key: it verifies the issuer's own token.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[AUDIENCE]);
    jsonwebtoken::decode::<Value>(
        &app.issuer.mint(&good_claims(&app)),
        &jsonwebtoken::DecodingKey::from_rsa_pem(spki_pem.as_bytes()).unwrap(),
        &validation,
    )
    .expect("the hand-built PEM is the issuer's key");
    // What an attacker downloads: the JWKS exactly as served.
    let served_jwks = app
        .http
        .get(app.issuer.jwks_url())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let served_key =
        serde_json::to_vec(&serde_json::from_slice::<Value>(&served_jwks).unwrap()["keys"][0])
            .unwrap();

    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("SPKI PEM", spki_pem.clone().into_bytes()),
        (
            "SPKI PEM without final newline",
            spki_pem.trim_end().as_bytes().to_vec(),
        ),
        ("PKCS#1 PEM", pem("RSA PUBLIC KEY", &pkcs1).into_bytes()),
        ("SPKI DER", spki),
        ("PKCS#1 DER", pkcs1),
        ("JWK JSON", jwk.to_string().into_bytes()),
        ("JWK JSON as served", served_key),
        ("JWKS JSON as served", served_jwks),
        (
            "modulus bytes",
            URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap(),
        ),
    ];
    for (what, secret) in &secrets {
        for alg in ["HS256", "HS384", "HS512", "hs256"] {
            let hmac_alg = match alg {
                "HS384" => hmac::HMAC_SHA384,
                "HS512" => hmac::HMAC_SHA512,
                _ => hmac::HMAC_SHA256,
            };
            for header in [
                json!({"alg": alg, "typ": "JWT", "kid": issuer_key().kid}),
                json!({"alg": alg, "typ": "JWT"}),
            ] {
                let input = signing_input(&header.to_string(), &claims);
                let tag = hmac::sign(&hmac::Key::new(hmac_alg, secret), input.as_bytes());
                let token = format!("{input}.{}", b64(tag));
                assert_rejected(&app, &token, &format!("{alg} keyed with the {what}")).await;
            }
        }
    }
}

#[tokio::test]
async fn a_kid_holding_a_path_or_sql_is_just_an_unknown_kid() {
    let app = TestApp::spawn().await;
    app.create_record("org_acme", "survivor", json!(1)).await;
    let claims = good_claims(&app);

    for kid in [
        "../../etc/passwd",
        "../../../../../../dev/null",
        "/dev/null",
        "file:///etc/passwd",
        "http://127.0.0.1:1/keys",
        "' or '1'='1",
        "x'; drop table records; --",
        "test-key-1' --",
        "test-key-1\u{0}",
        "test-key-1 ",
        "TEST-KEY-1",
        "",
        &"k".repeat(4000),
    ] {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
        // Signed by the real key too: only the kid is wrong.
        assert_rejected(&app, &issuer_key().sign(&header, &claims), kid).await;
        assert_rejected(&app, &attacker_key().sign(&header, &claims), kid).await;
    }
    for header in [
        json!({"alg": "RS256", "typ": "JWT"}),
        json!({"alg": "RS256", "kid": null}),
        json!({"alg": "RS256", "kid": 1}),
        json!({"alg": "RS256", "kid": ["test-key-1"]}),
    ] {
        assert_rejected(
            &app,
            &issuer_key().sign(&header, &claims),
            &header.to_string(),
        )
        .await;
    }
    assert_eq!(app.rows_of("org_acme").await.len(), 1, "records survived");
}

#[tokio::test]
async fn jku_and_x5u_are_never_fetched_and_never_trusted() {
    let app = TestApp::spawn().await;
    // The attacker's JWKS: their key under the issuer's kid.
    let evil = FakeIssuer::start().await;
    evil.publish(&[attacker_key()]);
    let claims = good_claims(&app);
    // Warm the real cache first, so that any later fetch could only be one we were tricked into.
    assert_accepted(&app, &app.issuer.token("org_acme", "read:data"), "control").await;

    for member in ["jku", "x5u"] {
        for kid in [issuer_key().kid.as_str(), "evil-only-kid"] {
            let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid, member: evil.jwks_url()});
            assert_rejected(
                &app,
                &attacker_key().sign(&header, &claims),
                &format!("{member} with kid {kid}"),
            )
            .await;
        }
    }
    // A token signed by the real key and carrying a jku is still fine: the member is ignored.
    let header =
        json!({"alg": "RS256", "typ": "JWT", "kid": issuer_key().kid, "jku": evil.jwks_url()});
    assert_accepted(&app, &issuer_key().sign(&header, &claims), "jku ignored").await;

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        evil.hits.load(Ordering::SeqCst),
        0,
        "the attacker's JWKS was fetched"
    );
}

/// An EC P-256 key (ES256) held by the test.
struct EcKey {
    kid: String,
    pair: EcdsaKeyPair,
}

impl EcKey {
    fn generate(kid: &str, alg: &'static EcdsaSigningAlgorithm) -> Self {
        Self {
            kid: kid.into(),
            pair: EcdsaKeyPair::generate(alg).expect("ec keygen"),
        }
    }

    fn jwk(&self) -> Value {
        // Uncompressed point: 0x04 || x || y.
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        })
    }

    fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .expect("ecdsa sign")
            .as_ref()
            .to_vec()
    }

    fn sign_raw(&self, header: &str, payload: &str) -> String {
        let input = signing_input(header, payload);
        format!("{input}.{}", b64(self.sign_bytes(input.as_bytes())))
    }
}

/// A self-signed-looking X.509 certificate carrying `spki`, signed by `signer` (ECDSA).
fn certificate(spki: &[u8], signer: &EcKey) -> Vec<u8> {
    const ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    let name = der(
        0x30,
        &der(
            0x31,
            &der(
                0x30,
                &[&[0x06, 0x03, 0x55, 0x04, 0x03][..], &der(0x0c, b"attacker")].concat(),
            ),
        ),
    );
    let validity = der(
        0x30,
        &[der(0x17, b"250101000000Z"), der(0x17, b"491231235959Z")].concat(),
    );
    let sig_alg = der(0x30, ECDSA_SHA256);
    let tbs = der(
        0x30,
        &[
            der(0xa0, &der_uint(&[2])),
            der_uint(&[1]),
            sig_alg.clone(),
            name.clone(),
            validity,
            name,
            spki.to_vec(),
        ]
        .concat(),
    );
    let signature = signer.sign_bytes(&tbs);
    let bits = der(0x03, &[&[0u8][..], &signature].concat());
    der(0x30, &[tbs, sig_alg, bits].concat())
}

#[tokio::test]
async fn an_embedded_jwk_or_x5c_holding_the_attackers_key_is_not_trusted() {
    let app = TestApp::spawn().await;
    let claims = good_claims(&app);
    let attacker_jwk = attacker_key().jwk();
    let (_, attacker_spki) = rsa_public_der(&attacker_jwk);
    let cert_signer = EcKey::generate("cert", &ECDSA_P256_SHA256_ASN1_SIGNING);
    let cert = STANDARD.encode(certificate(&attacker_spki, &cert_signer));

    for header in [
        json!({"alg": "RS256", "typ": "JWT", "kid": issuer_key().kid, "jwk": attacker_jwk}),
        json!({"alg": "RS256", "typ": "JWT", "jwk": attacker_jwk}),
        json!({"alg": "RS256", "typ": "JWT", "kid": issuer_key().kid, "x5c": [cert]}),
        json!({"alg": "RS256", "typ": "JWT", "x5c": [cert]}),
        json!({"alg": "RS256", "typ": "JWT", "x5c": [cert], "x5t#S256": b64([0u8; 32])}),
    ] {
        assert_rejected(
            &app,
            &attacker_key().sign(&header, &claims),
            &header.to_string(),
        )
        .await;
    }
}

#[tokio::test]
async fn truncated_and_non_base64_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", "read:data");
    assert_accepted(&app, &token, "control").await;
    let parts: Vec<&str> = token.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    let standard = |seg: &str| STANDARD.encode(URL_SAFE_NO_PAD.decode(seg).unwrap());

    let cases = [
        token[..token.len() - 1].to_string(),
        token[..token.len() - 2].to_string(),
        format!("{h}.{p}.{}", &s[..s.len() / 2]),
        format!("{h}.{p}."),
        format!("{h}.{p}"),
        format!("{h}."),
        h.to_string(),
        format!("{h}.{}.{s}", &p[..p.len() - 3]),
        format!("{}.{p}.{s}", &h[..h.len() - 1]),
        format!("{h}.{p}.{s}."),
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}..{s}"),
        format!(".{p}.{s}"),
        "..".to_string(),
        ".".to_string(),
        format!("{h}={}.{p}.{s}", ""),
        format!("{h}.{p}.{s}=="),
        format!("{}.{p}.{s}", standard(h)),
        format!("{h}.{}.{s}", standard(p)),
        format!("{h}.{p}.{}", standard(s)),
        format!("{h}.{p}.{}", s.replace(['-', '_'], "+")),
        format!("@@@.{p}.{s}"),
        format!("{h}.%%%.{s}"),
        format!("{h}.{p}.!!!"),
        format!("{h}.{p}.{}", "A".repeat(s.len())),
        format!("{}.{p}.{s}", b64("not json")),
        format!("{}.{p}.{s}", b64("[]")),
        format!("{}.{p}.{s}", b64("null")),
        format!("{h}.{}.{s}", b64("not json")),
        "eyJ".to_string(),
        "a.b.c".to_string(),
    ];
    // Standard base64 of a segment whose length is a multiple of 3 is the same text: skip it.
    for case in cases.iter().filter(|c| **c != token) {
        assert_rejected(&app, case, case).await;
    }
}

#[tokio::test]
async fn claims_of_the_wrong_type_or_missing_are_refused() {
    let app = TestApp::spawn().await;
    let good = good_claims(&app);
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let cases = [
        (
            "exp as a string",
            with("exp", json!((now() + 3600).to_string())),
        ),
        ("exp null", with("exp", Value::Null)),
        ("exp an array", with("exp", json!([now() + 3600]))),
        ("exp missing", without("exp")),
        ("nbf as a string", with("nbf", json!(now().to_string()))),
        ("iat as a string", with("iat", json!(now().to_string()))),
        ("iss missing", without("iss")),
        ("iss null", with("iss", Value::Null)),
        (
            "iss an array holding the issuer",
            with("iss", json!([app.issuer.url])),
        ),
        (
            "iss with a trailing slash",
            with("iss", json!(format!("{}/", app.issuer.url))),
        ),
        (
            "iss in another case",
            with("iss", json!(app.issuer.url.to_uppercase())),
        ),
        ("aud null", with("aud", Value::Null)),
        ("aud empty array", with("aud", json!([]))),
        (
            "aud in another case",
            with("aud", json!(AUDIENCE.to_uppercase())),
        ),
        (
            "aud with a trailing slash",
            with("aud", json!(format!("{AUDIENCE}/"))),
        ),
        ("org_code an array", with("org_code", json!(["org_acme"]))),
        ("org_code a number", with("org_code", json!(1))),
        ("scp an object", with("scp", json!({"read:data": true}))),
        ("sub a number", with("sub", json!(7))),
        ("no client id at all", without("sub")),
        ("claims an array", json!([good.clone()])),
    ];
    for (why, claims) in cases {
        assert_rejected(&app, &app.issuer.mint(&claims), why).await;
    }
}

#[tokio::test]
async fn typ_other_than_jwt_or_at_jwt_and_any_crit_are_refused() {
    let app = TestApp::spawn().await;
    let claims = good_claims(&app);
    let kid = issuer_key().kid.clone();
    for typ in ["at+jwt", "JWT"] {
        let header = json!({"alg": "RS256", "typ": typ, "kid": kid});
        assert_accepted(&app, &issuer_key().sign(&header, &claims), typ).await;
    }
    for typ in [
        json!("JWE"),
        json!("JOSE"),
        json!("dpop+jwt"),
        json!("logout+jwt"),
        json!("secevent+jwt"),
        json!("id_token+jwt"),
        json!(""),
        json!(1),
        json!(["JWT"]),
    ] {
        let header = json!({"alg": "RS256", "typ": typ, "kid": kid});
        assert_rejected(&app, &issuer_key().sign(&header, &claims), &typ.to_string()).await;
    }
    for crit in [
        json!(["exp"]),
        json!(["b64"]),
        json!([]),
        json!("exp"),
        json!(null),
    ] {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid, "crit": crit, "b64": false});
        assert_rejected(
            &app,
            &issuer_key().sign(&header, &claims),
            &crit.to_string(),
        )
        .await;
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid, "crit": crit});
        assert_rejected(
            &app,
            &issuer_key().sign(&header, &claims),
            &crit.to_string(),
        )
        .await;
    }
}

#[tokio::test]
async fn duplicated_claims_or_header_members_are_refused() {
    let app = TestApp::spawn().await;
    let (iss, exp, kid) = (
        app.issuer.url.clone(),
        now() + 3600,
        issuer_key().kid.clone(),
    );
    let base = format!(
        r#""iss":"{iss}","sub":"c1","aud":["{AUDIENCE}"],"iat":{},"exp":{exp},"scp":"read:data""#,
        now()
    );
    let header = format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{kid}"}}"#);
    let control = issuer_key().sign_raw(&header, &format!(r#"{{{base},"org_code":"org_acme"}}"#));
    assert_accepted(&app, &control, "control").await;

    let payloads = [
        format!(r#"{{{base},"org_code":"org_acme","org_code":"org_beta"}}"#),
        format!(r#"{{{base},"org_code":"org_beta","org_code":"org_acme"}}"#),
        format!(r#"{{{base},"org_code":"org_beta","org\u005fcode":"org_acme"}}"#),
        format!(r#"{{{base},"org_code":"org_acme","scp":"read:data write:data"}}"#),
        format!(r#"{{{base},"org_code":"org_acme","iss":"https://evil.example"}}"#),
        format!(r#"{{{base},"org_code":"org_acme","aud":"https://other.example"}}"#),
        format!(r#"{{{base},"org_code":"org_acme","exp":1}}"#),
        format!(r#"{{{base},"org_code":"org_acme","sub":"c2"}}"#),
    ];
    for payload in &payloads {
        let token = issuer_key().sign_raw(&header, payload);
        for org in ["org_acme", "org_beta"] {
            let res = app.get(&format!("/orgs/{org}/data"), Some(&token)).await;
            let headers = assert_error(res, 401, "Invalid or expired token").await;
            assert_eq!(
                www_authenticate(&headers).as_deref(),
                Some(INVALID_TOKEN),
                "{payload}"
            );
        }
    }
    let good_payload = format!(r#"{{{base},"org_code":"org_acme"}}"#);
    for header in [
        format!(r#"{{"alg":"RS256","alg":"none","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"none","alg":"RS256","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"RS256","kid":"{kid}","kid":"other"}}"#),
        format!(r#"{{"alg":"RS256","kid":"other","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"RS256","kid":"{kid}","typ":"JWT","typ":"JWE"}}"#),
    ] {
        assert_rejected(
            &app,
            &issuer_key().sign_raw(&header, &good_payload),
            &header,
        )
        .await;
    }
}

#[tokio::test]
async fn an_authorization_header_that_is_not_exactly_one_bearer_token_is_refused() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", "read:data");

    for value in [
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "Digest x",
    ] {
        let res = send_authorization(&app, value).await.unwrap();
        let headers = assert_error(res, 401, "No token provided").await;
        assert_eq!(
            www_authenticate(&headers).as_deref(),
            Some(r#"Bearer realm="orgwall""#),
            "{value:?}"
        );
    }
    // A token under another scheme is not a bearer token, even a valid one.
    let res = send_authorization(&app, &format!("Basic {token}"))
        .await
        .unwrap();
    assert_error(res, 401, "No token provided").await;

    for value in [
        "Bearer a b".to_string(),
        format!("Bearer {token} {token}"),
        format!("Bearer {token} x"),
        format!("Bearer {token},{token}"),
        format!("Bearer\t{token}"),
        format!("Bearer={token}"),
    ] {
        let res = send_authorization(&app, &value).await.unwrap();
        let status = res.status().as_u16();
        let challenge = www_authenticate(res.headers());
        assert_eq!(status, 401, "{value:.40}");
        assert!(
            challenge.is_some_and(|c| c.starts_with("Bearer")),
            "{value:.40}"
        );
    }
    // Two Authorization headers, each valid on its own: ambiguous, refused.
    let res = app
        .http
        .get(app.url("/orgs/org_acme/data"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let headers = assert_error(res, 401, "Invalid or expired token").await;
    assert_eq!(www_authenticate(&headers).as_deref(), Some(INVALID_TOKEN));
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_letter_case() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", "read:data");

    // The scheme is case-insensitive (RFC 7235 §2.1).
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let res = send_authorization(&app, &format!("{scheme} {token}"))
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn oversized_tokens_are_refused_before_decoding() {
    let app = TestApp::spawn().await;
    let claims = good_claims(&app);
    // A validly signed token just over the 8 KiB limit: refused by size alone.
    let mut padded = claims.clone();
    padded["pad"] = json!("x".repeat(8 * 1024));
    let signed = app.issuer.mint(&padded);
    assert!(signed.len() > 8 * 1024);
    assert_rejected(&app, &signed, "9 KiB token, validly signed").await;
    let big = format!(
        "{}.{}.{}",
        b64("{}"),
        "A".repeat(100 * 1024),
        "A".repeat(342)
    );
    assert_rejected(&app, &big, "100 KiB token").await;

    // 1 MiB: actix-http refuses the request head before orgwall sees it (431), or orgwall does
    // (401); never 200, never 500.
    let huge = format!(
        "{}.{}.{}",
        b64("{}"),
        "A".repeat(1024 * 1024),
        "A".repeat(342)
    );
    // A client of its own: the server closes this connection, which must not be pooled.
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let res = once
        .get(app.url("/orgs/org_acme/data"))
        .header("authorization", format!("Bearer {huge}"))
        .send()
        .await;
    match res {
        Ok(res) => {
            let status = res.status().as_u16();
            assert!(status == 401 || status == 431, "1 MiB token: {status}");
        }
        // The server may close the connection while the client is still writing the head.
        Err(e) => assert!(!e.is_timeout(), "1 MiB token: {e}"),
    }
    // The service is still there.
    assert_accepted(&app, &app.issuer.token("org_acme", "read:data"), "after").await;
}

/// Every error the service returns has a JSON body, whatever its status. actix-http 3.20 answers an over-long request
/// head (> 128 KiB) with its own empty 431 from inside its HTTP/1 dispatcher, before any
/// service or middleware of ours runs, so no code in orgwall can shape that body today.
#[tokio::test]
#[ignore = "actix-http writes an empty-bodied 431 for a request head over 128 KiB before orgwall runs; reported, not fixable outside actix-http"]
async fn an_oversized_request_head_gets_a_431_with_a_json_body() {
    let app = TestApp::spawn().await;
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let res = once
        .get(app.url("/orgs/org_acme/data"))
        .header(
            "authorization",
            format!("Bearer {}", "A".repeat(1024 * 1024)),
        )
        .send()
        .await
        .expect("a response, not a reset");
    assert_error(res, 431, "Request header fields too large").await;
}

fn es256_app_vars(v: &mut std::collections::HashMap<String, String>) {
    v.insert("auth_algorithms".into(), "ES256".into());
}

#[tokio::test]
async fn an_all_zero_es256_signature_is_refused() {
    let app = TestApp::spawn_with(es256_app_vars).await;
    let key = EcKey::generate("ec-key-1", &ECDSA_P256_SHA256_FIXED_SIGNING);
    *app.issuer.jwks.lock().unwrap() = json!({"keys": [key.jwk()]});
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": key.kid}).to_string();
    let claims = good_claims(&app).to_string();
    // Control: a real ES256 signature by the published key passes.
    assert_accepted(&app, &key.sign_raw(&header, &claims), "ES256 control").await;

    let input = signing_input(&header, &claims);
    let n = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51u8,
    ];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("64 zero bytes (CVE-2022-21449)", vec![0; 64]),
        ("r = s = n", [n, n].concat()),
        ("r = 0, s = n", [[0; 32], n].concat()),
        (
            "DER-encoded zeros",
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
        ),
        ("empty", vec![]),
        ("one zero byte", vec![0]),
        ("65 zero bytes", vec![0; 65]),
        ("64 0xff bytes", vec![0xff; 64]),
    ];
    for (what, signature) in cases {
        assert_rejected(&app, &format!("{input}.{}", b64(signature)), what).await;
    }
    // RS256 is not configured here, even with a key the JWKS might have held.
    let rs = json!({"alg": "RS256", "typ": "JWT", "kid": key.kid});
    assert_rejected(
        &app,
        &issuer_key().sign(&rs, &good_claims(&app)),
        "RS256 on ES256",
    )
    .await;
    // ES256 header, signed by the RSA key: refused for the key type, not a 500.
    let es_on_rsa = issuer_key().sign_raw(&header, &claims);
    assert_rejected(&app, &es_on_rsa, "RSA signature under ES256 header").await;
}

/// A deterministic xorshift64* generator: reproducible mutations without another crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \"{}";

fn mutate(rng: &mut XorShift, token: &[u8]) -> Vec<u8> {
    let mut t = token.to_vec();
    for _ in 0..1 + rng.below(3) {
        if t.is_empty() {
            break;
        }
        let i = rng.below(t.len());
        match rng.below(7) {
            0 => t[i] = ALPHABET[rng.below(ALPHABET.len())],
            1 => t[i] ^= 1 << rng.below(8),
            2 => {
                t.remove(i);
            }
            3 => t.insert(i, ALPHABET[rng.below(ALPHABET.len())]),
            4 => {
                let j = rng.below(t.len());
                t.swap(i, j);
            }
            5 => t.truncate(i),
            _ => {
                // Replace one segment with another one's text.
                let text = String::from_utf8_lossy(&t).into_owned();
                let mut parts: Vec<String> = text.split('.').map(str::to_owned).collect();
                let (a, b) = (rng.below(parts.len()), rng.below(parts.len()));
                parts[a] = parts[b].clone();
                t = parts.join(".").into_bytes();
            }
        }
    }
    t
}

#[tokio::test]
async fn random_mutations_of_a_valid_token_are_never_accepted() {
    let issuer = FakeIssuer::start().await;
    let cache = JwksCache::new(
        url::Url::parse(&issuer.jwks_url()).unwrap(),
        reqwest::Client::new(),
        Duration::from_secs(600),
        Duration::from_secs(600),
    );
    let verifier = Verifier::new(
        KeySource::Remote(Arc::new(cache)),
        &issuer.url,
        AUDIENCE,
        &[SigningAlgorithm::RS256],
    );
    let tokens = [
        issuer.token("org_acme", "read:data"),
        issuer_key().sign(
            &json!({"alg": "RS256", "typ": "at+jwt", "kid": issuer_key().kid}),
            &json!({"iss": issuer.url, "azp": "m2m", "aud": AUDIENCE, "exp": now() + 600,
                    "scp": ["read:data"], "org_code": "org_beta"}),
        ),
    ];
    for token in &tokens {
        verifier
            .verify(token)
            .await
            .expect("control: the token is valid");
    }

    let mut rng = XorShift(0x0a11_ce5e_ed00_0004);
    let mut tried = 0;
    while tried < 300 {
        let original = &tokens[tried % tokens.len()];
        let mutated = mutate(&mut rng, original.as_bytes());
        if mutated == original.as_bytes() {
            continue;
        }
        tried += 1;
        let text = String::from_utf8_lossy(&mutated);
        if let Ok(accepted) = verifier.verify(&text).await {
            panic!("mutation #{tried} accepted: {text:?} → {accepted:?}");
        }
    }
    assert!(
        issuer.hits.load(Ordering::SeqCst) <= 2,
        "unknown kids in mutations caused a fetch storm"
    );
}

#[tokio::test]
async fn random_mutations_over_http_get_401_never_500() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", "read:data");
    let mut rng = XorShift(0x5eed_0000_0000_0042);
    let mut sent = 0;
    while sent < 40 {
        let mutated = mutate(&mut rng, token.as_bytes());
        if mutated == token.as_bytes() {
            continue;
        }
        let text = String::from_utf8_lossy(&mutated).into_owned();
        let Some(res) = send_authorization(&app, &format!("Bearer {text}")).await else {
            continue; // not even a header value
        };
        sent += 1;
        assert_eq!(res.status(), 401, "mutation accepted or crashed: {text:?}");
    }
}
