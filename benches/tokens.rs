//! Micro-benchmarks of the two hot cryptographic paths: verifying a token with a cached key
//! (the resource API, every request) and issuing one (the token endpoint: claims, JSON,
//! base64, signature). `cargo bench --bench tokens`; figures go to BENCHMARKS.md by hand.

use std::collections::HashMap;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use orgwall::auth::jwks::{VerifyKey, parse_jwks};
use orgwall::auth::verifier::LocalKeys;
use orgwall::auth::{KeySource, SigningAlgorithm, Verifier};
use orgwall::issuer::keys::{Signer, generate};
use serde_json::json;

const ISSUER: &str = "https://issuer.bench";
const AUDIENCE: &str = "https://api.yourapp.com";

struct Keys(HashMap<String, Arc<VerifyKey>>);

impl LocalKeys for Keys {
    fn verify_key(&self, kid: &str) -> Option<Arc<VerifyKey>> {
        self.0.get(kid).cloned()
    }
}

fn token(signer: &Signer) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": ISSUER, "sub": "client", "client_id": "client", "aud": [AUDIENCE],
        "iat": now, "exp": now + 3600, "jti": "j", "scp": "read:data write:data",
        "scope": "read:data write:data", "org_code": "org_acme",
    });
    let header = json!({"alg": signer.alg.name(), "typ": "at+jwt", "kid": signer.kid});
    signer.sign(&header, &claims).unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for alg in [
        SigningAlgorithm::RS256,
        SigningAlgorithm::ES256,
        SigningAlgorithm::EdDSA,
    ] {
        let (kid, der, jwk) = generate(alg).unwrap();
        let signer = Signer::from_pkcs8(kid, alg, &der).unwrap();
        let keys = parse_jwks(json!({"keys": [jwk]}).to_string().as_bytes()).unwrap();
        let verifier = Verifier::new(
            KeySource::Local(Arc::new(Keys(keys))),
            ISSUER,
            AUDIENCE,
            &[alg],
        );
        let valid = token(&signer);
        let mut forged = valid.clone();
        forged.replace_range(forged.len() - 6.., "AAAAAA");

        c.bench_function(&format!("issue {alg}"), |b| b.iter(|| token(&signer)));
        c.bench_function(&format!("verify {alg}, first sight (cached key)"), |b| {
            b.to_async(&rt)
                .iter(|| async { verifier.verify_fully(&valid).await.unwrap() })
        });
        c.bench_function(&format!("verify {alg}, remembered token"), |b| {
            b.to_async(&rt)
                .iter(|| async { verifier.verify(&valid).await.unwrap() })
        });
        c.bench_function(&format!("reject {alg} bad signature"), |b| {
            b.to_async(&rt)
                .iter(|| async { verifier.verify(&forged).await.unwrap_err() })
        });
    }
}

criterion_group!(tokens, benches);
criterion_main!(tokens);
