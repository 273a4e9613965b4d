//! HTTPS: the tutorial's flow over TLS with a client that trusts only a test CA, HTTP/2 by
//! ALPN, certificate chains, clean refusals, a JWKS fetched over HTTPS from a private CA, and
//! one-line start-up errors.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::Value;

use crate::helpers::{AUDIENCE, TestApp, free_port};

/// A root CA, an intermediate, and a leaf for localhost/127.0.0.1, written as PEM files.
struct Pki {
    dir: PathBuf,
    root_pem: String,
}

impl Pki {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("orgwall-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            p
        };
        let root =
            CertifiedIssuer::self_signed(ca("orgwall test root"), KeyPair::generate().unwrap())
                .unwrap();
        let intermediate = CertifiedIssuer::signed_by(
            ca("orgwall test intermediate"),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf_cert = leaf.signed_by(&leaf_key, &intermediate).unwrap();
        let other_key = KeyPair::generate().unwrap();

        std::fs::write(
            dir.join("chain.pem"),
            format!("{}{}", leaf_cert.pem(), intermediate.pem()),
        )
        .unwrap();
        std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
        std::fs::write(dir.join("other-key.pem"), other_key.serialize_pem()).unwrap();
        std::fs::write(dir.join("garbage.pem"), "not a certificate").unwrap();
        std::fs::write(dir.join("root.pem"), root.pem()).unwrap();
        Self {
            dir,
            root_pem: root.pem(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn client(&self) -> reqwest::Client {
        let root = reqwest::Certificate::from_pem(self.root_pem.as_bytes()).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([root])
            .build()
            .unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn spawn_tls_issuer(pki: &Pki) -> (TestApp, String) {
    let port = free_port();
    let public_url = format!("https://localhost:{port}");
    let app = TestApp::spawn_issuer_with(|v| {
        v.insert("port".into(), port.to_string());
        v.insert("public_url".into(), public_url.clone());
        v.insert("tls_cert_file".into(), pki.path("chain.pem"));
        v.insert("tls_key_file".into(), pki.path("key.pem"));
    })
    .await;
    (app, public_url)
}

#[tokio::test]
async fn the_tutorial_flow_runs_over_https_with_http2() {
    let pki = Pki::new();
    let (app, base) = spawn_tls_issuer(&pki).await;
    let client = pki.client();
    // Set up through the admin API, over HTTPS.
    let (id, secret) = app
        .setup_tutorial_over(&client, &base, "read:data write:data")
        .await;
    let (id, secret) = (id.as_str(), secret.as_str());

    let res = client
        .post(format!("{base}/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("audience", AUDIENCE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.version(),
        reqwest::Version::HTTP_2,
        "ALPN negotiates h2 when offered"
    );
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], base);

    let res = client
        .get(format!("{base}/orgs/org_acme/data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .get(format!("{base}/orgs/org_beta/data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.json::<Value>().await.unwrap()["message"],
        "Token does not have access to this organization"
    );

    // HTTP/1.1 still works for clients that only speak it.
    let h1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.root_pem.as_bytes()).unwrap()])
        .http1_only()
        .build()
        .unwrap();
    let res = h1.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    drop(app);
}

#[tokio::test]
async fn untrusting_clients_and_plain_http_are_refused_and_the_server_keeps_serving() {
    let pki = Pki::new();
    let (app, base) = spawn_tls_issuer(&pki).await;

    // A client with only the system roots does not trust our CA: the handshake fails.
    let stranger = reqwest::Client::new();
    assert!(stranger.get(format!("{base}/health")).send().await.is_err());
    // Plain HTTP to the TLS port gets no HTTP answer.
    let port = base.rsplit(':').next().unwrap();
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    // ...and the server still serves HTTPS.
    let res = pki
        .client()
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    drop(app);
}

#[tokio::test]
async fn the_resource_api_fetches_a_jwks_over_https_from_a_private_ca() {
    let pki = Pki::new();
    let (issuer, base) = spawn_tls_issuer(&pki).await;
    let (id, secret) = issuer
        .setup_tutorial_over(&pki.client(), &base, "read:data")
        .await;
    // A resource-only orgwall trusting the HTTPS issuer through AUTH_JWKS_CA_FILE.
    let api = TestApp::spawn_with(|v| {
        v.insert("auth_issuer".into(), base.clone());
        v.insert(
            "auth_jwks_url".into(),
            format!("{base}/.well-known/jwks.json"),
        );
        v.insert("auth_jwks_ca_file".into(), pki.path("root.pem"));
    })
    .await;
    let res = pki
        .client()
        .post(format!("{base}/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("audience", AUDIENCE),
        ])
        .send()
        .await
        .unwrap();
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    assert_eq!(
        api.get("/orgs/org_acme/data", Some(&token)).await.status(),
        200
    );

    // Without the extra CA the same setup cannot fetch the keys, so it refuses the token.
    let blind = TestApp::spawn_with(|v| {
        v.insert("auth_issuer".into(), base.clone());
        v.insert(
            "auth_jwks_url".into(),
            format!("{base}/.well-known/jwks.json"),
        );
    })
    .await;
    assert_eq!(
        blind
            .get("/orgs/org_acme/data", Some(&token))
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn bad_tls_settings_stop_start_up_with_one_line_naming_the_variable() {
    let pki = Pki::new();
    let vars = |cert: &str, key: &str| {
        let mut v = std::collections::HashMap::new();
        v.insert("tls_cert_file".to_string(), cert.to_string());
        v.insert("tls_key_file".to_string(), key.to_string());
        v.insert("port".to_string(), "0".to_string());
        v
    };
    // Missing file: the configuration itself is refused.
    let err =
        orgwall::config::Settings::from_map(&vars("/nonexistent/cert.pem", &pki.path("key.pem")))
            .unwrap_err();
    assert!(
        err.0.starts_with("TLS_CERT_FILE: /nonexistent/cert.pem"),
        "{err}"
    );
    // Unreadable certificate, unreadable key, key of another certificate.
    for (cert, key, prefix) in [
        (
            pki.path("garbage.pem"),
            pki.path("key.pem"),
            "TLS_CERT_FILE: ",
        ),
        (
            pki.path("chain.pem"),
            pki.path("garbage.pem"),
            "TLS_KEY_FILE: ",
        ),
        (
            pki.path("chain.pem"),
            pki.path("other-key.pem"),
            "TLS_KEY_FILE: ",
        ),
    ] {
        let settings = orgwall::config::Settings::from_map(&vars(&cert, &key)).unwrap();
        let err = match orgwall::startup::Application::build(settings).await {
            Ok(_) => panic!("{cert} + {key} must not start"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.starts_with(prefix), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
