//! A CCG-like client for end-to-end tests: what a Windows node does at every container start
//! with the Key Vault plugin, against the test DC.
//!
//! ```text
//!   secret source ──► "DOMAIN\user:password"   (the Key Vault secret's current value)
//!        split at the first '\' and the first ':'   (as the plugin does)
//!   LDAPS simple bind as DOMAIN\user ──► msDS-ManagedPassword of the gMSA ──► decoded blob
//!   kinit 'gmsa$@REALM' with the decoded password ──► a TGT as the gMSA (where kinit exists)
//! ```
//!
//! [`CcgClient::attempt`] is one container start; [`CcgClient::spawn_loop`] repeats it until
//! stopped and counts attempts and failures, so a rotation test can assert that no container
//! start failed while passwords changed underneath.
//!
//! Secrets stay in `SecretString`/`SecretBytes`; failures carry codes and server messages only.
//! `kinit` runs with a private `KRB5_CONFIG` and `KRB5CCNAME` in a temporary directory, its
//! stdout and stderr go to null and a file, and it is killed if the attempt is dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ad::{AccountName, AdError, LdapConfig};
use gmsa::SecretString;
use tokio::io::AsyncWriteExt;

/// Where the client gets the secret's current value (a closure over a simulated Key Vault).
pub type SecretSource = Arc<dyn Fn() -> Result<SecretString, String> + Send + Sync>;

/// How long `kinit` may take.
const KINIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why one attempt failed. Never carries a password.
#[derive(Debug, thiserror::Error)]
pub enum CcgFailure {
    /// The secret source returned an error.
    #[error("secret source: {0}")]
    Secret(String),
    /// The value is not `DOMAIN\user:password`.
    #[error("secret value is not DOMAIN\\user:password: {0}")]
    Format(&'static str),
    /// Binding as the user or reading the managed password failed.
    #[error("directory ({code}): {source}", code = source.code())]
    Directory {
        #[source]
        source: AdError,
    },
    /// `kinit` as the gMSA failed.
    #[error("kinit as {principal} failed ({status}): {stderr}")]
    Kerberos { principal: String, status: String, stderr: String },
    /// Running `kinit` failed (spawn, pipe, timeout).
    #[error("kinit: {0}")]
    Process(String),
}

impl CcgFailure {
    /// Stable code: `secret`, `format`, the directory error's code, `kerberos`, `process`.
    pub fn code(&self) -> &'static str {
        match self {
            CcgFailure::Secret(_) => "secret",
            CcgFailure::Format(_) => "format",
            CcgFailure::Directory { source } => source.code(),
            CcgFailure::Kerberos { .. } => "kerberos",
            CcgFailure::Process(_) => "process",
        }
    }
}

/// What one successful attempt did beyond reading the managed password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcgSuccess {
    /// A TGT as the gMSA was obtained with the decoded password.
    Kerberos,
    /// `kinit` is not installed: the managed password was read and decoded, no TGT asked for.
    NoKinit,
    /// The gMSA's password holds a line feed (about 1 in 500 passwords: 128 random UTF-16
    /// units), which kinit cannot read from stdin; no TGT asked for.
    PasswordNotTypeable,
}

/// The client: one gMSA, one DC, one secret source.
pub struct CcgClient {
    secret: SecretSource,
    ldaps_url: String,
    ca_path: PathBuf,
    gmsa: AccountName,
    realm: String,
    /// Private Kerberos state (krb5.conf, credential caches); removed on drop.
    kerberos_dir: tempfile::TempDir,
    /// `kinit` when installed.
    kinit: Option<PathBuf>,
    attempts: AtomicU64,
}

impl CcgClient {
    /// A client reading the gMSA `gmsa` from the DC at `ldaps_url` (trusting `ca_path`), whose
    /// KDC for `realm` is `kdc` (host or host:port). Looks for `kinit` on PATH.
    pub fn new(
        secret: SecretSource,
        ldaps_url: impl Into<String>,
        ca_path: impl Into<PathBuf>,
        gmsa: AccountName,
        realm: impl Into<String>,
        kdc: &str,
    ) -> std::io::Result<CcgClient> {
        let realm = realm.into();
        let kerberos_dir = tempfile::Builder::new().prefix("gmsa-fleet-ccg-").tempdir()?;
        let krb5_conf = format!(
            "[libdefaults]\n  default_realm = {realm}\n  dns_lookup_realm = false\n  dns_lookup_kdc = false\n  \
             udp_preference_limit = 1\n[realms]\n  {realm} = {{\n    kdc = {kdc}\n  }}\n"
        );
        std::fs::write(kerberos_dir.path().join("krb5.conf"), krb5_conf)?;
        Ok(CcgClient {
            secret,
            ldaps_url: ldaps_url.into(),
            ca_path: ca_path.into(),
            gmsa,
            realm,
            kerberos_dir,
            kinit: find_on_path("kinit"),
            attempts: AtomicU64::new(0),
        })
    }

    /// True when `kinit` is installed, so attempts also obtain a TGT.
    pub fn has_kinit(&self) -> bool {
        self.kinit.is_some()
    }

    /// One container start: read the secret, split it, bind as the user, read and decode the
    /// managed password, and (with kinit) obtain a TGT as the gMSA.
    pub async fn attempt(&self) -> Result<CcgSuccess, CcgFailure> {
        let number = self.attempts.fetch_add(1, Ordering::Relaxed);
        let value = (self.secret)().map_err(CcgFailure::Secret)?;
        let (domain, user, password) = split_secret(value.expose())?;
        let principal = format!("{domain}\\{user}");
        let config = LdapConfig::new(self.ldaps_url.clone(), principal, SecretString::new(password))
            .with_ca_bundle(&self.ca_path)
            .map_err(|source| CcgFailure::Directory { source })?;
        let managed =
            ad::read_managed_password(&config, &self.gmsa).await.map_err(|source| CcgFailure::Directory { source })?;
        let Some(kinit) = &self.kinit else {
            return Ok(CcgSuccess::NoKinit);
        };
        let kerberos_password = managed.current_kerberos_password();
        if kerberos_password.expose().contains('\n') {
            return Ok(CcgSuccess::PasswordNotTypeable);
        }
        self.kinit(kinit, &kerberos_password, number).await?;
        Ok(CcgSuccess::Kerberos)
    }

    async fn kinit(&self, kinit: &Path, password: &SecretString, number: u64) -> Result<(), CcgFailure> {
        let principal = format!("{}@{}", self.gmsa.machine_account(), self.realm);
        let dir = self.kerberos_dir.path();
        let cache = dir.join(format!("ccache-{number}"));
        let stderr_path = dir.join(format!("kinit-{number}.err"));
        let process_error = |what: &str, error: std::io::Error| CcgFailure::Process(format!("{what}: {error}"));
        let stderr = std::fs::File::create(&stderr_path).map_err(|error| process_error("create stderr file", error))?;
        let mut child = tokio::process::Command::new(kinit)
            .arg(&principal)
            .env("KRB5_CONFIG", dir.join("krb5.conf"))
            .env("KRB5CCNAME", format!("FILE:{}", cache.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| process_error("spawn", error))?;
        if let Some(mut stdin) = child.stdin.take() {
            let line = SecretString::new(format!("{}\n", password.expose()));
            let written = stdin.write_all(line.expose().as_bytes()).await;
            drop(stdin);
            drop(line);
            written.map_err(|error| process_error("write password to stdin", error))?;
        }
        let status = tokio::time::timeout(KINIT_TIMEOUT, child.wait())
            .await
            .map_err(|_| CcgFailure::Process(format!("no answer within {KINIT_TIMEOUT:?}")))?
            .map_err(|error| process_error("wait", error))?;
        let _ = std::fs::remove_file(&cache);
        if !status.success() {
            let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            // kinit prints its prompt and the KDC's reason; neither contains the password.
            let reason = text.replace(&format!("Password for {principal}: "), "").trim().to_string();
            return Err(CcgFailure::Kerberos { principal, status: status.to_string(), stderr: reason });
        }
        let _ = std::fs::remove_file(&stderr_path);
        Ok(())
    }

    /// Repeats [`CcgClient::attempt`] with `pause` between attempts until [`CcgLoop::stop`].
    pub fn spawn_loop(self: Arc<Self>, pause: Duration) -> CcgLoop {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let handle = tokio::spawn(async move {
            let mut stats = CcgStats::default();
            loop {
                stats.attempts += 1;
                match self.attempt().await {
                    Ok(success) => stats.kerberos += u64::from(success == CcgSuccess::Kerberos),
                    Err(failure) => {
                        stats.failures += 1;
                        if stats.first_failures.len() < 5 {
                            stats.first_failures.push(format!("{}: {failure}", failure.code()));
                        }
                    }
                }
                if *stopped.borrow() {
                    return stats;
                }
                tokio::select! {
                    _ = stopped.changed() => return stats,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        });
        CcgLoop { stop, handle }
    }
}

/// Splits `DOMAIN\user:password` as the plugin does: the domain before the first `\`, then the
/// user before the first `:` after it, the password after that.
pub fn split_secret(value: &str) -> Result<(&str, &str, &str), CcgFailure> {
    let (domain, user, password) = gmsa::secret::split_credential(value).map_err(CcgFailure::Format)?;
    if domain.is_empty() || user.is_empty() || password.is_empty() {
        return Err(CcgFailure::Format("empty domain, user or password"));
    }
    Ok((domain, user, password))
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// A running [`CcgClient::spawn_loop`].
pub struct CcgLoop {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<CcgStats>,
}

impl CcgLoop {
    /// Stops after the attempt in progress and returns the counts.
    pub async fn stop(self) -> CcgStats {
        let _ = self.stop.send(true);
        match self.handle.await {
            Ok(stats) => stats,
            Err(error) => CcgStats { first_failures: vec![format!("loop task: {error}")], ..CcgStats::default() },
        }
    }
}

/// What a loop did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CcgStats {
    /// Attempts made.
    pub attempts: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Attempts that obtained a TGT as the gMSA.
    pub kerberos: u64,
    /// The first few failures, as `code: message`.
    pub first_failures: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_splits_at_the_first_backslash_and_the_first_colon() {
        assert_eq!(split_secret("CONTOSO\\gmsa-a:Pa:ss\\w0rd").unwrap(), ("CONTOSO", "gmsa-a", "Pa:ss\\w0rd"));
        for bad in ["gmsa-a:pw", "CONTOSO\\gmsa-a", "\\u:p", "D\\:p", "D\\u:"] {
            assert_eq!(split_secret(bad).unwrap_err().code(), "format", "{bad}");
        }
    }
}
