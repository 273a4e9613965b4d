//! Signing keys: generated on first start, rotated by `keys rotate`, published in the JWKS
//! until the longest token lifetime has passed since they last signed.
//!
//! Private-key operations use aws-lc (constant-time RSA, unlike the `rsa` crate:
//! RUSTSEC-2023-0071). Keys are generated off the async runtime. Every instance reloads its
//! keys when the `signing_keys` table changes (LISTEN `orgwall_keys`, fed by a trigger).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::auth::jwks::{VerifyKey, parse_jwks};
use crate::auth::verifier::LocalKeys;
use crate::telemetry::spawn_blocking_with_tracing;

/// The key that signs new tokens.
pub struct Signer {
    pub kid: String,
    pair: KeyPair,
    rng: SystemRandom,
}

impl Signer {
    /// Signs `header.claims` (both already JSON) and returns the compact JWS.
    pub fn sign(&self, header: &Value, claims: &Value) -> anyhow::Result<String> {
        let mut token = String::with_capacity(1024);
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(header)?, &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut token);
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                token.as_bytes(),
                &mut signature,
            )
            .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

#[derive(Default)]
struct KeySet {
    signer: Option<Arc<Signer>>,
    jwks: Arc<Value>,
    verify: HashMap<String, Arc<VerifyKey>>,
}

/// The issuer's keys as this process knows them.
pub struct KeyStore {
    pool: PgPool,
    /// Tokens live at most this long unless an API says longer.
    default_lifetime: Duration,
    state: RwLock<KeySet>,
}

/// A new RSA-2048 key: (kid, PKCS#8 DER, public JWK).
fn generate_rsa() -> anyhow::Result<(String, Vec<u8>, Value)> {
    let pair = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
    let der = pair
        .as_der()
        .map_err(|_| anyhow::anyhow!("PKCS#8 encoding failed"))?
        .as_ref()
        .to_vec();
    let public = pair.public_key();
    let n = public.modulus().big_endian_without_leading_zero().to_vec();
    let e = public.exponent().big_endian_without_leading_zero().to_vec();
    // RFC 7638 thumbprint as kid: stable, unique, says nothing secret.
    let thumb_input = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(&e),
        URL_SAFE_NO_PAD.encode(&n)
    );
    let kid = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        thumb_input.as_bytes(),
    ));
    let jwk = json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(&n), "e": URL_SAFE_NO_PAD.encode(&e),
    });
    Ok((kid, der, jwk))
}

/// Adds a new signing key and retires the others, in one transaction. Returns the new kid.
pub async fn rotate(pool: &PgPool) -> anyhow::Result<String> {
    let kid = add_key(pool, true).await?;
    tracing::info!(%kid, "signing key rotated");
    Ok(kid)
}

/// Makes sure a signing key exists (first start).
pub async fn ensure_key(pool: &PgPool) -> anyhow::Result<()> {
    let has_key: bool =
        sqlx::query_scalar("select exists (select 1 from signing_keys where retired_at is null)")
            .fetch_one(pool)
            .await
            .context("reading signing keys")?;
    if !has_key {
        add_key(pool, false).await?;
    }
    Ok(())
}

/// Generates a key off the runtime and stores it. With `retire_others` it replaces the active
/// key; without, it is added only if no key is active (two instances starting at once: the
/// advisory lock lets one of them add the first key).
async fn add_key(pool: &PgPool, retire_others: bool) -> anyhow::Result<String> {
    let (kid, der, jwk) = spawn_blocking_with_tracing(generate_rsa).await??;
    let mut tx = crate::db::Tx::begin_plain(pool).await?;
    let result = async {
        sqlx::query("select pg_advisory_xact_lock(hashtext('orgwall_signing_keys'))")
            .execute(tx.conn())
            .await?;
        if retire_others {
            sqlx::query("update signing_keys set retired_at = now() where retired_at is null")
                .execute(tx.conn())
                .await?;
        }
        sqlx::query(
            "insert into signing_keys (kid, alg, private_der, public_jwk)
             select $1, 'RS256', $2, $3
              where not exists (select 1 from signing_keys where retired_at is null)",
        )
        .bind(&kid)
        .bind(&der)
        .bind(&jwk)
        .execute(tx.conn())
        .await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    tx.finish(result).await.context("storing a signing key")?;
    Ok(kid)
}

impl KeyStore {
    /// An empty store; [`KeyStore::ensure_and_reload`] fills it.
    pub fn new(pool: PgPool, default_lifetime: Duration) -> Arc<Self> {
        Arc::new(Self {
            pool,
            default_lifetime,
            state: RwLock::new(KeySet::default()),
        })
    }

    /// Creates the first key when there is none, then loads the keys.
    pub async fn ensure_and_reload(&self) -> anyhow::Result<()> {
        ensure_key(&self.pool).await?;
        self.reload().await
    }

    /// Re-reads the published keys and the current signer.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let rows: Vec<(String, Option<Vec<u8>>, Value)> = sqlx::query_as(
            "select kid, case when retired_at is null then private_der end, public_jwk
               from signing_keys
              where retired_at is null
                 or retired_at > now() - make_interval(secs => greatest($1::double precision,
                      (select coalesce(max(token_lifetime_secs), 0) from apis)))
              order by created_at desc",
        )
        .bind(self.default_lifetime.as_secs_f64())
        .fetch_all(&self.pool)
        .await
        .context("reading signing keys")?;

        let mut signer = None;
        let mut published = Vec::with_capacity(rows.len());
        for (kid, der, jwk) in rows {
            if let (None, Some(der)) = (&signer, der) {
                let pair = KeyPair::from_pkcs8(&der)
                    .map_err(|e| anyhow::anyhow!("stored key {kid} is unreadable: {e}"))?;
                signer = Some(Arc::new(Signer {
                    kid: kid.clone(),
                    pair,
                    rng: SystemRandom::new(),
                }));
            }
            published.push(jwk);
        }
        let jwks = json!({ "keys": published });
        let verify = parse_jwks(jwks.to_string().as_bytes()).map_err(anyhow::Error::msg)?;
        let mut state = self.state.write().expect("key lock poisoned");
        *state = KeySet {
            signer,
            jwks: Arc::new(jwks),
            verify,
        };
        Ok(())
    }

    pub fn signer(&self) -> Option<Arc<Signer>> {
        self.state.read().expect("key lock poisoned").signer.clone()
    }

    /// The public JWKS document: public keys only.
    pub fn jwks(&self) -> Arc<Value> {
        self.state.read().expect("key lock poisoned").jwks.clone()
    }

    /// Follows changes made by other processes (`orgwall keys rotate`), and re-reads every
    /// minute so that retired keys leave the JWKS on time.
    pub fn spawn_reloader(self: &Arc<Self>) {
        let store = Arc::downgrade(self);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut listener = None;
            loop {
                if listener.is_none() {
                    match sqlx::postgres::PgListener::connect_with(&pool).await {
                        Ok(mut l) => {
                            if l.listen("orgwall_keys").await.is_ok() {
                                listener = Some(l);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot listen for key changes"),
                    }
                }
                let listener_failed = match listener.as_mut() {
                    Some(l) => matches!(
                        tokio::time::timeout(Duration::from_secs(60), l.recv()).await,
                        Ok(Err(_))
                    ),
                    None => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        false
                    }
                };
                if listener_failed {
                    listener = None;
                }
                let Some(store) = store.upgrade() else { return };
                let result = if store.signer().is_none() {
                    store.ensure_and_reload().await
                } else {
                    store.reload().await
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
            }
        });
    }
}

impl LocalKeys for KeyStore {
    fn verify_key(&self, kid: &str) -> Option<Arc<VerifyKey>> {
        self.state
            .read()
            .expect("key lock poisoned")
            .verify
            .get(kid)
            .cloned()
    }
}
