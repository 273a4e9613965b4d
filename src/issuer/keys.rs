//! Signing keys: generated on first start, rotated by `keys rotate`, published in the JWKS
//! until the longest token lifetime has passed since they last signed.
//!
//! Private-key operations use aws-lc (constant-time RSA, unlike the `rsa` crate:
//! RUSTSEC-2023-0071). Keys are generated off the async runtime. Every instance reloads its
//! keys when the `signing_keys` table changes (LISTEN `orgwall_keys`, fed by a trigger).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, anyhow};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};

use crate::auth::SigningAlgorithm;
use crate::auth::jwks::{VerifyKey, parse_jwks};
use crate::auth::verifier::LocalKeys;
use crate::db::Tx;
use crate::db::on_pool;
use crate::telemetry::spawn_blocking_with_tracing;

/// The algorithms the issuer can sign with, per API: RS256 (the default, as with Kinde),
/// ES256 and EdDSA (Ed25519), which sign tens of times faster.
pub const SIGNING_ALGORITHMS: [SigningAlgorithm; 3] = [
    SigningAlgorithm::RS256,
    SigningAlgorithm::ES256,
    SigningAlgorithm::EdDSA,
];

enum PrivateKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A key that signs new tokens.
pub struct Signer {
    pub kid: String,
    pub alg: SigningAlgorithm,
    key: PrivateKey,
    rng: SystemRandom,
}

impl Signer {
    pub fn from_pkcs8(kid: String, alg: SigningAlgorithm, der: &[u8]) -> anyhow::Result<Self> {
        let unreadable = |e: String| anyhow!("stored key {kid} is unreadable: {e}");
        let key = match alg {
            SigningAlgorithm::RS256 => {
                PrivateKey::Rsa(RsaKeyPair::from_pkcs8(der).map_err(|e| unreadable(e.to_string()))?)
            }
            SigningAlgorithm::ES256 => PrivateKey::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| unreadable(e.to_string()))?,
            ),
            SigningAlgorithm::EdDSA => PrivateKey::Ed(
                Ed25519KeyPair::from_pkcs8(der).map_err(|e| unreadable(e.to_string()))?,
            ),
            other => {
                return Err(anyhow!(
                    "stored key {kid} has unsupported algorithm {other}"
                ));
            }
        };
        Ok(Self {
            kid,
            alg,
            key,
            rng: SystemRandom::new(),
        })
    }

    /// Signs `header.claims` (both serialized as JSON) and returns the compact JWS.
    pub fn sign(
        &self,
        header: &impl serde::Serialize,
        claims: &impl serde::Serialize,
    ) -> anyhow::Result<String> {
        let mut token = String::with_capacity(1024);
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(header)?, &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut token);
        let message = token.as_bytes();
        let signature = match &self.key {
            PrivateKey::Rsa(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(|_| anyhow!("RSA signing failed"))?;
                sig
            }
            PrivateKey::Ec(pair) => pair
                .sign(&self.rng, message)
                .map_err(|_| anyhow!("ECDSA signing failed"))?
                .as_ref()
                .to_vec(),
            PrivateKey::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

#[derive(Default)]
struct KeySet {
    signers: HashMap<SigningAlgorithm, Arc<Signer>>,
    jwks: Arc<Value>,
    verify: HashMap<String, Arc<VerifyKey>>,
}

/// `last_signed_at` is written at most this often per key and process, so the true last
/// signature is never later than the recorded one plus this.
pub const SIGNED_AT_EVERY: Duration = Duration::from_secs(10);

/// The issuer's keys as this process knows them.
pub struct KeyStore {
    pool: PgPool,
    /// Per kid: when this process last wrote `last_signed_at` for it.
    signed_recorded: std::sync::Mutex<HashMap<String, std::time::Instant>>,
    /// Tokens live at most this long unless an API says longer.
    default_lifetime: Duration,
    state: RwLock<KeySet>,
    /// Bumped whenever the published key set changes (see `LocalKeys::generation`).
    generation: std::sync::atomic::AtomicU64,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7638 thumbprint of the required members (in lexicographic order, no spaces).
fn thumbprint(canonical: &str) -> String {
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// A new key: (kid, PKCS#8 DER, public JWK). The kid is the key's RFC 7638 thumbprint: stable,
/// unique, and says nothing secret.
pub fn generate(alg: SigningAlgorithm) -> anyhow::Result<(String, Vec<u8>, Value)> {
    match alg {
        SigningAlgorithm::RS256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(|_| anyhow!("RSA key generation failed"))?;
            let der = pair
                .as_der()
                .map_err(|_| anyhow!("PKCS#8 encoding failed"))?
                .as_ref()
                .to_vec();
            let public = pair.public_key();
            let n = b64(public.modulus().big_endian_without_leading_zero());
            let e = b64(public.exponent().big_endian_without_leading_zero());
            let kid = thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
            Ok((
                kid.clone(),
                der,
                json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}),
            ))
        }
        SigningAlgorithm::ES256 => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(|_| anyhow!("EC key generation failed"))?;
            let der = pair
                .to_pkcs8v1()
                .map_err(|_| anyhow!("PKCS#8 encoding failed"))?
                .as_ref()
                .to_vec();
            // Uncompressed point: 0x04 || X || Y.
            let point = pair.public_key().as_ref();
            let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
            let kid = thumbprint(&format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
            ));
            Ok((
                kid.clone(),
                der,
                json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid, "x": x, "y": y}),
            ))
        }
        SigningAlgorithm::EdDSA => {
            let pair =
                Ed25519KeyPair::generate().map_err(|_| anyhow!("Ed25519 key generation failed"))?;
            let der = pair
                .to_pkcs8()
                .map_err(|_| anyhow!("PKCS#8 encoding failed"))?
                .as_ref()
                .to_vec();
            let x = b64(pair.public_key().as_ref());
            let kid = thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
            Ok((
                kid.clone(),
                der,
                json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid, "x": x}),
            ))
        }
        other => Err(anyhow!("the issuer does not sign with {other}")),
    }
}

/// What `keys rotate` made: the new kid per algorithm, and the new RS256 kid on its own.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RotatedKeys {
    pub kid: Option<String>,
    pub kids: BTreeMap<String, String>,
}

/// Adds a new signing key for every algorithm in use (RS256 at least) and retires the old
/// ones, so that all keys rotate together.
pub async fn rotate(pool: &PgPool) -> anyhow::Result<RotatedKeys> {
    let in_use = on_pool!(pool, |conn| sqlx::query_scalar!(
        r#"select distinct alg as "alg!" from signing_keys where retired_at is null
           union select 'RS256'"#,
    )
    .fetch_all(conn)
    .await)
    .context("reading signing keys")?;
    let mut kids = BTreeMap::new();
    for alg in in_use.iter().filter_map(|a| SigningAlgorithm::from_jose(a)) {
        let kid = add_key(pool, alg, true).await?;
        tracing::info!(%kid, %alg, "signing key rotated");
        kids.insert(alg.name().to_owned(), kid);
    }
    Ok(RotatedKeys {
        kid: kids.get("RS256").cloned(),
        kids,
    })
}

/// A signing key as `keys list` and `GET /admin/keys` show it: never its private part.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    /// `signing` while it signs new tokens, `retired` once a newer key replaced it, `revoked`
    /// once revoked (out of the JWKS, its tokens refused).
    #[schema(examples("signing", "retired", "revoked"))]
    pub status: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub retired_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Every stored signing key, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

pub async fn list(pool: &PgPool) -> anyhow::Result<KeyList> {
    let keys = on_pool!(pool, |conn| sqlx::query_as!(
        KeyInfo,
        r#"select kid, alg,
                  case when revoked_at is not null then 'revoked'
                       when retired_at is null then 'signing'
                       else 'retired' end as "status!",
                  created_at, retired_at
             from signing_keys
            order by created_at desc, kid"#,
    )
    .fetch_all(conn)
    .await)
    .context("reading signing keys")?;
    Ok(KeyList { keys })
}

/// Makes sure a key signs for `alg` (RS256 on first start; others when an API asks for them).
pub async fn ensure_key(pool: &PgPool, alg: SigningAlgorithm) -> anyhow::Result<()> {
    let mut tx = Tx::begin_plain(pool).await?;
    let result = ensure_key_in(tx.conn(), alg).await;
    tx.finish(result).await
}

/// [`ensure_key`] inside the caller's transaction, so that a key made for something that then
/// fails (an API that cannot be created) is rolled back with it.
pub async fn ensure_key_in(conn: &mut PgConnection, alg: SigningAlgorithm) -> anyhow::Result<()> {
    let has_key = sqlx::query_scalar!(
        r#"select exists (select 1 from signing_keys where retired_at is null and alg = $1)
             as "exists!""#,
        alg.name(),
    )
    .fetch_one(&mut *conn)
    .await
    .context("reading signing keys")?;
    if !has_key {
        let key = spawn_blocking_with_tracing(move || generate(alg)).await??;
        store_key(conn, alg, &key, false)
            .await
            .context("storing a signing key")?;
    }
    Ok(())
}

/// Adds a new key for `alg` that signs from now on, and revokes `kid` (retired at once, left
/// out of the JWKS): the emergency replacement of a leaked key. Returns the new kid.
pub async fn replace_and_revoke(
    pool: &PgPool,
    alg: SigningAlgorithm,
    kid: &str,
) -> anyhow::Result<String> {
    let key = spawn_blocking_with_tracing(move || generate(alg)).await??;
    let mut tx = Tx::begin_plain(pool).await?;
    let result = async {
        store_key(tx.conn(), alg, &key, true).await?;
        sqlx::query!(
            "update signing_keys
                set revoked_at = coalesce(revoked_at, now()),
                    retired_at = coalesce(retired_at, now())
              where kid = $1",
            kid
        )
        .execute(tx.conn())
        .await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    tx.finish(result).await.context("revoking a signing key")?;
    Ok(key.0)
}

/// Generates a key off the runtime and stores it. With `retire_others` it replaces the active
/// key of its algorithm.
async fn add_key(
    pool: &PgPool,
    alg: SigningAlgorithm,
    retire_others: bool,
) -> anyhow::Result<String> {
    let key = spawn_blocking_with_tracing(move || generate(alg)).await??;
    let mut tx = Tx::begin_plain(pool).await?;
    let result = store_key(tx.conn(), alg, &key, retire_others).await;
    tx.finish(result).await.context("storing a signing key")?;
    Ok(key.0)
}

/// Stores a generated key. Without `retire_others` it is added only if none of its algorithm is
/// active (two instances starting at once: the advisory lock lets one of them add the first
/// key).
async fn store_key(
    conn: &mut PgConnection,
    alg: SigningAlgorithm,
    (kid, der, jwk): &(String, Vec<u8>, Value),
    retire_others: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query!("select pg_advisory_xact_lock(hashtext('orgwall_signing_keys'))")
        .execute(&mut *conn)
        .await?;
    if retire_others {
        sqlx::query!(
            "update signing_keys set retired_at = now() where retired_at is null and alg = $1",
            alg.name(),
        )
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query!(
        "insert into signing_keys (kid, alg, private_der, public_jwk)
         select $1, $4, $2, $3
          where not exists (select 1 from signing_keys where retired_at is null and alg = $4)",
        kid,
        der,
        jwk,
        alg.name(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn record_signed(pool: &PgPool, kid: &str) -> Result<(), sqlx::Error> {
    on_pool!(pool, |conn| sqlx::query!(
        "update signing_keys set last_signed_at = greatest(last_signed_at, now()) where kid = $1",
        kid
    )
    .execute(conn)
    .await)
    .map(drop)
}

impl KeyStore {
    /// An empty store; [`KeyStore::ensure_and_reload`] fills it.
    pub fn new(pool: PgPool, default_lifetime: Duration) -> Arc<Self> {
        Arc::new(Self {
            pool,
            signed_recorded: Default::default(),
            default_lifetime,
            state: RwLock::new(KeySet::default()),
            generation: Default::default(),
        })
    }

    /// Creates the first key when there is none, then loads the keys.
    pub async fn ensure_and_reload(&self) -> anyhow::Result<()> {
        ensure_key(&self.pool, SigningAlgorithm::RS256).await?;
        self.reload().await
    }

    /// Re-reads the published keys and the current signer.
    pub async fn reload(&self) -> anyhow::Result<()> {
        // The private key only of the keys that still sign. A retired key stays published
        // until the longest lifetime has passed since it last signed, as recorded (a record
        // is at most SIGNED_AT_EVERY behind); a revoked key never is.
        let rows = on_pool!(&self.pool, |conn| sqlx::query!(
            "select kid, alg, case when retired_at is null then private_der end as private_der,
                    public_jwk
               from signing_keys
              where revoked_at is null
                and (retired_at is null
                     or greatest(retired_at, last_signed_at + make_interval(secs => $2))
                        > now() - make_interval(secs => greatest($1::double precision,
                            (select coalesce(max(token_lifetime_secs), 0) from apis))))
              order by created_at desc",
            self.default_lifetime.as_secs_f64(),
            SIGNED_AT_EVERY.as_secs_f64(),
        )
        .fetch_all(conn)
        .await)
        .context("reading signing keys")?;

        let mut signers = HashMap::new();
        let mut published = Vec::with_capacity(rows.len());
        for row in rows {
            let (kid, alg, der, jwk) = (row.kid, row.alg, row.private_der, row.public_jwk);
            let alg = SigningAlgorithm::from_jose(&alg)
                .ok_or_else(|| anyhow!("stored key {kid} has unknown algorithm {alg}"))?;
            if let (false, Some(der)) = (signers.contains_key(&alg), der) {
                signers.insert(alg, Arc::new(Signer::from_pkcs8(kid, alg, &der)?));
            }
            published.push(jwk);
        }
        let jwks = json!({ "keys": published });
        let verify = parse_jwks(jwks.to_string().as_bytes()).map_err(anyhow::Error::msg)?;
        let mut state = self.state.write().expect("key lock poisoned");
        let same_keys = state.verify.len() == verify.len()
            && verify.keys().all(|kid| state.verify.contains_key(kid));
        if !same_keys {
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        *state = KeySet {
            signers,
            jwks: Arc::new(jwks),
            verify,
        };
        Ok(())
    }

    /// The active key for `alg`, if one is loaded.
    pub fn signer(&self, alg: SigningAlgorithm) -> Option<Arc<Signer>> {
        self.state
            .read()
            .expect("key lock poisoned")
            .signers
            .get(&alg)
            .cloned()
    }

    /// Records that `kid` just signed a token: `last_signed_at` is written in the background,
    /// at most once per [`SIGNED_AT_EVERY`] (never on every token).
    pub fn note_signed(&self, kid: &str) {
        {
            let mut recorded = self.signed_recorded.lock().expect("key lock poisoned");
            if recorded
                .get(kid)
                .is_some_and(|at| at.elapsed() < SIGNED_AT_EVERY)
            {
                return;
            }
            recorded.insert(kid.to_owned(), std::time::Instant::now());
        }
        let (pool, kid) = (self.pool.clone(), kid.to_owned());
        tokio::spawn(async move {
            if let Err(e) = record_signed(&pool, &kid).await {
                tracing::warn!(error = %e, %kid, "recording when a key last signed failed");
            }
        });
    }

    /// Writes `last_signed_at` now for every key this process signed with (a short-lived
    /// process, `orgwall token`, calls it before it exits).
    pub async fn flush_signed(&self) -> anyhow::Result<()> {
        let kids: Vec<String> = self
            .signed_recorded
            .lock()
            .expect("key lock poisoned")
            .keys()
            .cloned()
            .collect();
        for kid in kids {
            record_signed(&self.pool, &kid).await?;
        }
        Ok(())
    }

    /// The public JWKS document: public keys only.
    pub fn jwks(&self) -> Arc<Value> {
        self.state.read().expect("key lock poisoned").jwks.clone()
    }

    /// Reloads, creating the first key if there is none yet (the database may have been down
    /// at start-up).
    pub async fn refresh(&self) {
        let result = if self.signer(SigningAlgorithm::RS256).is_none() {
            self.ensure_and_reload().await
        } else {
            self.reload().await
        };
        if let Err(e) = result {
            tracing::warn!(error = %format!("{e:#}"), "reloading signing keys failed");
        }
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

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }
}
