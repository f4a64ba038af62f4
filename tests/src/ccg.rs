//! A CCG-like client for the rotation tests: what Microsoft's CCG Key Vault plugin does with the
//! secret at every container start (read the latest version, split at the first `\\` and `:`),
//! then a bind as that user over LDAPS with OpenLDAP's `ldapsearch` — a client nobody here wrote.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use testkit::samba::SambaDc;

/// What the CCG plugin does with a secret value, and a bind with it: `Ok` when the user's
/// password works over LDAPS.
pub fn ccg_bind(dc: &SambaDc, value: &str) -> Result<(), String> {
    let (_domain, rest) = value.split_once('\\').ok_or("no '\\' in the secret")?;
    let (user, password) = rest.split_once(':').ok_or("no ':' in the secret")?;
    let output = std::process::Command::new("ldapsearch")
        .args(["-x", "-H", &dc.ldaps_url(), "-D", &format!("{user}@{}", dc.realm()), "-w", password])
        .args(["-b", "", "-s", "base", "(objectClass=*)", "defaultNamingContext"])
        .env("LDAPTLS_CACERT", dc.ca_cert_path())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|err| format!("ldapsearch: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("bind as {user} refused: {}", String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// A CCG-like client looping until dropped: attempts and failures.
pub struct CcgLoop {
    pub attempts: Arc<AtomicU64>,
    pub failures: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl CcgLoop {
    pub fn start(dc: &'static SambaDc, read_value: impl Fn() -> Option<String> + Send + 'static) -> CcgLoop {
        let (attempts, failures, stop) =
            (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (a, f, s) = (attempts.clone(), failures.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !s.load(Ordering::SeqCst) {
                let Some(value) = read_value() else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                a.fetch_add(1, Ordering::SeqCst);
                if let Err(err) = ccg_bind(dc, &value) {
                    f.fetch_add(1, Ordering::SeqCst);
                    errors.push(err);
                }
            }
            errors
        });
        CcgLoop { attempts, failures, stop, thread: Some(thread) }
    }

    /// Stops the loop: (attempts, failures, the failures' messages).
    pub fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let errors = self.thread.take().map(|thread| thread.join().unwrap_or_default()).unwrap_or_default();
        (self.attempts.load(Ordering::SeqCst), self.failures.load(Ordering::SeqCst), errors)
    }
}
