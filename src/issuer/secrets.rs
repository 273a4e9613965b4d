//! Client ids and secrets.
//!
//! A secret is 256 bits from the OS CSPRNG. It is stored as HMAC-SHA-256 keyed with a random
//! per-secret salt. A slow password hash (bcrypt, argon2) exists to stretch low-entropy human
//! passwords; against a uniformly random 256-bit secret, guessing is hopeless whatever the hash
//! costs, so a fast keyed hash is as safe and keeps the token endpoint fast (Ory Hydra's users
//! measured bcrypt as its bottleneck). The salt makes equal secrets hash differently and rules
//! out precomputation. Verification compares in constant time (aws-lc's `hmac::verify`).

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

pub struct HashedSecret {
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the OS CSPRNG failed");
    buf
}

/// A new client id: 128 random bits, hex, like Kinde's.
pub fn new_client_id() -> String {
    random_bytes::<16>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new client secret (256 bits, base64url) and its stored form.
pub fn new_secret() -> (SecretString, HashedSecret) {
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let hashed = hash_secret(&secret);
    (SecretString::from(secret), hashed)
}

pub fn hash_secret(secret: &str) -> HashedSecret {
    let salt = random_bytes::<16>().to_vec();
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &salt), secret.as_bytes());
    HashedSecret {
        salt,
        hash: tag.as_ref().to_vec(),
    }
}

/// Constant-time check of `presented` against one stored secret.
pub fn verify_secret(presented: &SecretString, salt: &[u8], hash: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, salt);
    hmac::verify(&key, presented.expose_secret().as_bytes(), hash).is_ok()
}

/// Burns the same work as a real check, so that an unknown client id takes as long to refuse
/// as a wrong secret.
pub fn verify_against_nothing(presented: &SecretString) {
    let _ = verify_secret(presented, &[0u8; 16], &[0u8; 32]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_verify_only_themselves() {
        let (secret, stored) = new_secret();
        assert_eq!(secret.expose_secret().len(), 43);
        assert!(verify_secret(&secret, &stored.salt, &stored.hash));
        let (other, _) = new_secret();
        assert!(!verify_secret(&other, &stored.salt, &stored.hash));
        assert_ne!(new_client_id(), new_client_id());
        assert_eq!(new_client_id().len(), 32);
    }
}
