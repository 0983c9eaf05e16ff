//! PBKDF2-HMAC-SHA256 password hashing, run on the blocking pool with at most
//! one hash per core at a time, so a burst of logins queues instead of
//! starving the async workers that answer every other request.

use std::sync::Arc;

use anyhow::Context;
use pbkdf2::password_hash::{CustomizedPasswordHasher, PasswordVerifier, phc::PasswordHash};
use pbkdf2::{Algorithm, Params, Pbkdf2};
use tokio::sync::{OnceCell, Semaphore};

#[derive(Clone)]
pub struct PasswordHasher {
    rounds: u32,
    permits: Arc<Semaphore>,
    /// A hash of a random password at the current cost, verified against when
    /// the email is unknown so that case takes as long as a wrong password.
    decoy: Arc<OnceCell<String>>,
}

impl PasswordHasher {
    pub const MIN_ROUNDS: u32 = Params::MIN_ROUNDS;

    pub fn new(rounds: u32) -> anyhow::Result<Self> {
        Params::new(rounds)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("PBKDF2 rounds {rounds} are out of range"))?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            rounds,
            permits: Arc::new(Semaphore::new(cores)),
            decoy: Arc::new(OnceCell::new()),
        })
    }

    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let rounds = self.rounds;
        self.blocking(move || hash_blocking(&password, rounds))
            .await
    }

    /// Checks a password against a stored PHC string. With `None` (no such
    /// account) it does the same work against a decoy and answers `false`.
    pub async fn verify(&self, password: String, stored: Option<String>) -> anyhow::Result<bool> {
        let (phc, known) = match stored {
            Some(phc) => (phc, true),
            None => (self.decoy().await?, false),
        };
        let ok = self
            .blocking(move || {
                let parsed = PasswordHash::new(&phc).map_err(|e| {
                    anyhow::anyhow!("stored password hash is not a PHC string: {e}")
                })?;
                Ok(Pbkdf2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(ok && known)
    }

    /// Whether a stored hash was made with another cost than the current one
    /// (and should be replaced at the next successful login).
    pub fn needs_rehash(&self, stored: &str) -> bool {
        PasswordHash::new(stored)
            .ok()
            .and_then(|h| Params::try_from(&h).ok())
            .is_none_or(|p| p.rounds() != self.rounds)
    }

    async fn decoy(&self) -> anyhow::Result<String> {
        self.decoy
            .get_or_try_init(|| async {
                let mut random = [0u8; 24];
                rand::fill(&mut random);
                self.hash(hex::encode(random)).await
            })
            .await
            .cloned()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .context("password hasher is shut down")?;
        tokio::task::spawn_blocking(f)
            .await
            .context("password hashing task failed")?
    }
}

fn hash_blocking(password: &str, rounds: u32) -> anyhow::Result<String> {
    let params = Params::new(rounds).map_err(|e| anyhow::anyhow!("{e}"))?;
    let salt = pbkdf2::password_hash::try_generate_salt().context("no system randomness")?;
    let hash = Pbkdf2::new(Algorithm::Pbkdf2Sha256, params)
        .hash_password_customized(password.as_bytes(), &salt, None, None, params)
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_report_their_cost() {
        let h = PasswordHasher::new(1000).unwrap();
        let phc = h.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$pbkdf2-sha256$i=1000"), "{phc}");
        assert!(
            h.verify("correct horse".into(), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(
            !h.verify("wrong horse".into(), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(!h.needs_rehash(&phc));
        assert!(PasswordHasher::new(2000).unwrap().needs_rehash(&phc));
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        let h = PasswordHasher::new(1000).unwrap();
        assert!(!h.verify("anything at all".into(), None).await.unwrap());
    }

    #[test]
    fn refuses_a_cost_below_the_minimum() {
        assert!(PasswordHasher::new(10).is_err());
    }
}
