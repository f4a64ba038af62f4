//! A CCG-like client for the rotation tests: what Microsoft's CCG Key Vault plugin does with the
//! secret at every container start. [`ccg_bind`] checks one credential with OpenLDAP's
//! `ldapsearch` (a client nobody here wrote); [`CcgLoop`] runs `testkit::ccg`'s full client —
//! managed password and Kerberos included — for a whole test.

use std::sync::Arc;
use std::time::Duration;
use testkit::samba::SambaDc;

/// What the CCG plugin does with a secret value, and a bind with it: `Ok` when the user's
/// password works over LDAPS.
pub fn ccg_bind(dc: &SambaDc, value: &str) -> Result<(), String> {
    let (_domain, user, password) = gmsa::secret::split_credential(value)?;
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

/// A CCG-like client in a loop for the whole of a test (`testkit::ccg`): each attempt is one
/// container start — read the secret, split it as the plugin does, bind as that user over LDAPS,
/// read and decode the gMSA's `msDS-ManagedPassword`, and, with `kinit` installed, get a TGT as
/// the gMSA.
pub struct CcgLoop(testkit::ccg::CcgLoop);

impl CcgLoop {
    /// Starts the loop (inside a Tokio runtime) for gMSA `gmsa` (without `$`) of `dc`, reading the
    /// secret with `read_value`.
    pub fn start(
        dc: &'static SambaDc,
        gmsa: &str,
        read_value: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) -> CcgLoop {
        let source: testkit::ccg::SecretSource =
            Arc::new(move || read_value().map(gmsa::SecretString::new).ok_or_else(|| "no secret yet".to_string()));
        let account = ad::AccountName::gmsa(gmsa).expect("a gMSA name");
        let client =
            testkit::ccg::CcgClient::new(source, dc.ldaps_url(), dc.ca_cert_path(), account, dc.realm(), "127.0.0.1")
                .expect("a CCG-like client");
        CcgLoop(Arc::new(client).spawn_loop(Duration::from_millis(100)))
    }

    /// Stops the loop: attempts, failures (with the first few), and how many got a TGT.
    pub async fn finish(self) -> testkit::ccg::CcgStats {
        self.0.stop().await
    }
}
