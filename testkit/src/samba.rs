//! A real Samba Active Directory domain controller for tests: a fresh domain provisioned into a
//! temporary directory, served by `samba -i` on loopback, stopped and removed afterwards.
//!
//! ```text
//!   SambaDc::shared()  ──►  samba-tool domain provision --targetdir=DIR  (~5 s, once per process)
//!                      ──►  samba -i -M single -s DIR/etc/smb.conf        (LDAP 389, LDAPS 636, KDC 88 on lo)
//!   tests              ──►  ldaps://127.0.0.1:636, trusting DIR/tls/ca.pem
//! ```
//!
//! Samba's ports are fixed and it can only bind addresses configured on an interface (`lo`), so
//! one machine runs one DC at a time. Two mechanisms keep that true:
//! - **Within a test process** tests share one DC ([`SambaDc::shared`]) and keep apart by giving
//!   every object a unique name ([`unique_name`]).
//! - **Across processes** (parallel `cargo test` binaries) a DC holds an exclusive lock on
//!   `$TMPDIR/gmsa-fleet-samba.lock` for its whole life; the next process waits for it.
//!
//! The shared DC lives in a `static` and is never dropped, so it cannot clean up on drop.
//! Instead `samba -i` exits by itself when its stdin reaches end of file, which happens when the
//! test process exits (the pipe's write end closes with it), and the next DC start removes
//! directories left behind by earlier processes.
//!
//! Samba's self-generated certificate has no subjectAltName, which rustls (rightly) rejects; the
//! harness therefore issues its own test CA and a server certificate for the DC's host name,
//! `localhost` and `127.0.0.1`, as an enterprise CA would for a Windows DC.
//!
//! Needs samba 4.22 (`samba`, `samba-ad-dc`, `samba-ad-provision`, and `ldb-tools` for tests that
//! read the database directly) from Debian's bookworm-backports, as `scripts/lib/install.sh`
//! installs them: 4.17 never returns `msDS-ManagedPassword`. 4.22's provisioning creates a KDS
//! root key back-dated 10 hours (usable at once), so the harness adds none. Must run as root.

use std::fs::{self, File};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Prefix of every DC directory under the temp dir; stale ones are swept on start.
const DIR_PREFIX: &str = "gmsa-fleet-samba-";
/// How long a DC may take to accept LDAPS connections after `samba` starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the DNS RPC server may refuse a `samba-tool dns` edit after LDAPS answers.
const DNS_RPC_TIMEOUT: Duration = Duration::from_secs(90);

/// Why a DC could not be provisioned or started.
#[derive(Debug, thiserror::Error)]
pub enum SambaError {
    /// A file or directory of the DC could not be written or read.
    #[error("samba harness: {what}: {source}")]
    Io { what: String, source: std::io::Error },
    /// `samba-tool domain provision` failed.
    #[error("samba-tool domain provision failed ({status}): {output}")]
    Provision { status: String, output: String },
    /// The test certificate could not be generated.
    #[error("samba harness: cannot generate the test TLS certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// `samba` exited or did not open LDAPS in time.
    #[error("samba did not accept LDAPS on 127.0.0.1:636 within {waited:?}; log tail: {log}")]
    NotReady { waited: Duration, log: String },
    /// The DC's own A record could not be written into its provisioned zone.
    #[error("ldbadd of the DC's A record into {ldb} failed: {output}")]
    AddressRecord { ldb: String, output: String },
    /// `samba-tool dns …` against the running DC failed (after retrying refused connections).
    #[error("samba-tool dns {args} failed: {stderr}")]
    Dns { args: String, stderr: String },
    /// Another process holds the DC ports without the harness lock.
    #[error("port {0} on 127.0.0.1 is in use by another program; stop it (a system samba?) to run the DC tests")]
    PortBusy(u16),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SambaError {
    let what = what.into();
    move |source| SambaError::Io { what, source }
}

/// What domain to provision.
#[derive(Debug, Clone)]
pub struct SambaOptions {
    /// Kerberos realm, upper case (`CONTOSO.TEST`); the DNS domain is its lower-case form.
    pub realm: String,
    /// NetBIOS domain name (`CONTOSO`).
    pub netbios_domain: String,
    /// Host name of the DC (`DC1`); the certificate names `DC1.contoso.test`.
    pub host_name: String,
    /// Serve DNS on 127.0.0.1:53 (`--dns-backend=SAMBA_INTERNAL`), with the DC's own A record
    /// registered so that its SRV targets resolve. Off by default: port 53 may be
    /// taken by the system resolver and no test here needs SRV records.
    pub internal_dns: bool,
    /// smb.conf's `old password allowed period` in minutes: how long the previous password
    /// still binds over NTLM/LDAP after a reset. `None` leaves Samba's default (60); the default
    /// here is `Some(0)`, so a rotation test sees the old password refused at once.
    pub old_password_allowed_period: Option<u32>,
}

impl Default for SambaOptions {
    fn default() -> Self {
        SambaOptions {
            realm: "CONTOSO.TEST".to_string(),
            netbios_domain: "CONTOSO".to_string(),
            host_name: "DC1".to_string(),
            internal_dns: false,
            old_password_allowed_period: Some(0),
        }
    }
}

/// A running Samba AD DC on 127.0.0.1.
pub struct SambaDc {
    options: SambaOptions,
    dir: PathBuf,
    admin_password: String,
    domain_sid: String,
    child: Child,
    /// Kept open so `samba -i` keeps running: it exits when stdin reaches end of file.
    stdin: Option<ChildStdin>,
    /// The exclusive lock on the machine's DC ports; released when this DC is dropped or the process exits.
    _port_lock: File,
}

static SHARED: OnceLock<SambaDc> = OnceLock::new();

impl SambaDc {
    /// The DC of this test process, provisioned on first use with [`SambaOptions::default`] and
    /// its internal DNS (so reachability checks, which only read, can share it: a process that
    /// holds the shared DC can start no other, since both need the same ports).
    ///
    /// Blocks the calling thread while the DC starts (about 5–10 s once per process); concurrent
    /// callers wait for the same DC. Panics if it cannot start: tests cannot run without it.
    pub fn shared() -> &'static SambaDc {
        SHARED.get_or_init(|| match SambaDc::start(SambaOptions { internal_dns: true, ..SambaOptions::default() }) {
            Ok(dc) => dc,
            Err(error) => panic!("cannot start the shared Samba DC: {error}"),
        })
    }

    /// Provisions a fresh domain and starts a DC owned by the caller; dropping it stops the DC and
    /// removes its directory. Waits while another DC (of this or another process) holds the ports,
    /// so do not hold two at once, nor use this in a process that also uses [`SambaDc::shared`].
    pub fn start(options: SambaOptions) -> Result<SambaDc, SambaError> {
        let started = Instant::now();
        let port_lock = acquire_port_lock()?;
        sweep_stale_dirs();
        wait_for_ports_free(Duration::from_secs(15))?;

        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("run")).map_err(io_error(format!("create {}", dir.display())))?;
        fs::write(dir.join("owner.pid"), std::process::id().to_string()).map_err(io_error("write owner.pid"))?;

        let dns_domain = options.realm.to_lowercase();
        write_tls_files(&dir, &format!("{}.{dns_domain}", options.host_name))?;
        let admin_password = format!("Adm1n!{}", unique_name("pw"));
        let domain_sid = provision(&options, &dir, &admin_password)?;
        // Provisioning drops this option from the generated smb.conf, so it is added afterwards:
        // rotation tests need an old password to stop working at once (Samba's default grace is 60 min).
        let smb_conf = dir.join("etc/smb.conf");
        if let Some(minutes) = options.old_password_allowed_period {
            add_global_option(&smb_conf, &format!("old password allowed period = {minutes}"))?;
        }
        without_netbios_name_service(&smb_conf)?;
        if options.internal_dns {
            add_own_address_record(&dir, &options.host_name.to_lowercase(), &dns_domain)?;
        }
        tracing::info!(elapsed = ?started.elapsed(), dir = %dir.display(), "samba domain provisioned");

        let (child, stdin) = spawn_samba(&dir)?;
        let mut dc = SambaDc { options, dir, admin_password, domain_sid, child, stdin, _port_lock: port_lock };
        dc.wait_ready(START_TIMEOUT)?;
        tracing::info!(elapsed = ?started.elapsed(), "samba DC accepting LDAPS");
        Ok(dc)
    }

    /// Runs `samba-tool dns ARGS -U Administrator` against the running DC (an edit of its zone
    /// over DNS RPC) and fails with samba-tool's message unless it succeeds.
    ///
    /// The DC answers LDAPS before its DNS RPC server listens, and under load the RPC server has
    /// been seen refusing connections for minutes (the full suite once saw three): a refused
    /// connection is retried until [`DNS_RPC_TIMEOUT`], any other failure is final.
    pub fn dns(&self, args: &[&str]) -> Result<(), SambaError> {
        let password = format!("--password={}", self.admin_password);
        let mut all = vec!["dns"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-U", "Administrator", &password]);
        let deadline = Instant::now() + DNS_RPC_TIMEOUT;
        loop {
            let output = self.samba_tool(&all).map_err(io_error("run samba-tool dns"))?;
            if output.status.success() {
                return Ok(());
            }
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            if !stderr.contains("refused") || Instant::now() >= deadline {
                return Err(SambaError::Dns { args: args.join(" "), stderr });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), SambaError> {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(
                &"127.0.0.1:636".parse().expect("literal address"),
                Duration::from_millis(200),
            )
            .is_ok()
            {
                return Ok(());
            }
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                return Err(SambaError::NotReady { waited: timeout, log: self.log_tail() });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join("samba.out")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Kerberos realm (`CONTOSO.TEST`).
    pub fn realm(&self) -> &str {
        &self.options.realm
    }

    /// DNS domain name (`contoso.test`).
    pub fn dns_domain(&self) -> String {
        self.options.realm.to_lowercase()
    }

    /// NetBIOS domain name (`CONTOSO`).
    pub fn netbios_domain(&self) -> &str {
        &self.options.netbios_domain
    }

    /// The domain's distinguished name (`DC=contoso,DC=test`).
    pub fn base_dn(&self) -> String {
        base_dn_of(&self.dns_domain())
    }

    /// The domain SID as `samba-tool domain provision` reported it.
    pub fn domain_sid(&self) -> &str {
        &self.domain_sid
    }

    /// `Administrator@contoso.test`, for a simple bind.
    pub fn admin_principal(&self) -> String {
        format!("Administrator@{}", self.dns_domain())
    }

    /// The Administrator password chosen at provisioning.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// `ldaps://127.0.0.1:636`.
    pub fn ldaps_url(&self) -> String {
        "ldaps://127.0.0.1:636".to_string()
    }

    /// `ldap://127.0.0.1:389` (plain; for StartTLS and refusal tests).
    pub fn ldap_url(&self) -> String {
        "ldap://127.0.0.1:389".to_string()
    }

    /// PEM file of the test CA that issued the DC's LDAPS certificate: the trust anchor to configure.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// The DC's `smb.conf`.
    pub fn smb_conf(&self) -> PathBuf {
        self.dir.join("etc/smb.conf")
    }

    /// The DC's SAM database, for `ldbsearch -H`.
    pub fn sam_ldb(&self) -> PathBuf {
        sam_ldb_in(&self.dir)
    }

    /// The DC's directory (provisioned files, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `samba-tool ARGS -s smb.conf` against this DC's configuration and returns its output:
    /// an independent view of the domain for assertions.
    pub fn samba_tool(&self, args: &[&str]) -> std::io::Result<Output> {
        Command::new("samba-tool").args(args).arg("-s").arg(self.smb_conf()).output()
    }

    /// Runs `ldbsearch -H sam.ldb -b BASE -s SCOPE FILTER ATTRS` directly on the database (bypassing
    /// LDAP) and returns the value of each requested attribute as `ldbsearch` decodes it (GUIDs and
    /// SIDs in string form), in output order.
    pub fn ldbsearch(
        &self,
        base: &str,
        scope: &str,
        filter: &str,
        attrs: &[&str],
    ) -> std::io::Result<Vec<(String, String)>> {
        let output = Command::new("ldbsearch")
            .arg("-H")
            .arg(self.sam_ldb())
            .args(["-s", scope, "-b", base, filter])
            .args(attrs)
            .output()?;
        let text = String::from_utf8_lossy(&output.stdout);
        Ok(text
            .lines()
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .filter(|(name, _)| attrs.iter().any(|attr| attr.eq_ignore_ascii_case(name)))
            .collect())
    }

    /// Stops the DC: closes stdin (samba's shutdown signal in `-i` mode), then kills it if it lingers.
    fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A name no other test of this process (or a recent run) has used: `PREFIX` + process-unique counter
/// + a time-derived suffix, at most 15 characters for prefixes up to 5 characters (NetBIOS-safe for gMSAs).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let suffix = (std::process::id() as u64 * 1_000_003 + nanos as u64) % 0xFFFFFF;
    format!("{prefix}{counter:x}{suffix:06x}")
}

fn acquire_port_lock() -> Result<File, SambaError> {
    let path = std::env::temp_dir().join("gmsa-fleet-samba.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error(format!("open {}", path.display())))?;
    file.lock().map_err(io_error(format!("lock {}", path.display())))?;
    Ok(file)
}

/// Removes DC directories of processes that have exited. Called with the port lock held, so no
/// live DC owns any of them; a samba they left still shutting down is waited for on its ports.
fn sweep_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with(DIR_PREFIX) || entry.path().extension().is_some() {
            continue;
        }
        let _ = fs::remove_dir_all(entry.path());
    }
}

fn wait_for_ports_free(timeout: Duration) -> Result<(), SambaError> {
    let deadline = Instant::now() + timeout;
    // LDAP, LDAPS, Kerberos, and the RPC endpoint mapper the DNS management calls go through.
    for port in [389u16, 636, 88, 135] {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            if Instant::now() > deadline {
                return Err(SambaError::PortBusy(port));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Writes the DC's A record (`<host>.<domain>` → 127.0.0.1) into the provisioned zone with
/// `ldbadd`, before `samba` starts. A real DC registers its own address at start; Samba skips
/// loopback addresses, so without this the SRV targets would not resolve. Written offline rather
/// than with `samba-tool dns add`, which waits on the DC's DNS RPC server: that was seen refusing
/// connections for minutes in a loaded suite, failing the start of the shared DC.
fn add_own_address_record(dir: &Path, host: &str, dns_domain: &str) -> Result<(), SambaError> {
    // The record as the zone stores it (`dnsp_DnssrvRpcRecord`): data length 4, type A (1),
    // version 5, rank zone (0xF0), flags 0, serial 1, TTL 900 s (big-endian), reserved and
    // timestamp 0 (static), then 127.0.0.1. Provisioning writes its own records in this form.
    const LOOPBACK_A_RECORD: &str = "BAABAAXwAAABAAAAAAADhAAAAAAAAAAAfwAAAQ==";
    let ldif = format!(
        "dn: DC={host},DC={dns_domain},CN=MicrosoftDNS,DC=DomainDnsZones,{zone_dn}\n\
         objectClass: top\n\
         objectClass: dnsNode\n\
         dnsRecord:: {LOOPBACK_A_RECORD}\n",
        zone_dn = base_dn_of(dns_domain),
    );
    let ldif_path = dir.join("own-address.ldif");
    fs::write(&ldif_path, ldif).map_err(io_error("write own-address.ldif"))?;
    let ldb = sam_ldb_in(dir);
    let output = Command::new("ldbadd")
        .arg("-H")
        .arg(&ldb)
        .arg(&ldif_path)
        .output()
        .map_err(io_error("run ldbadd (is ldb-tools installed?)"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(SambaError::AddressRecord {
        ldb: ldb.display().to_string(),
        output: format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
            .trim()
            .to_string(),
    })
}

/// `DC=contoso,DC=test` for `contoso.test`.
fn base_dn_of(dns_domain: &str) -> String {
    dns_domain.split('.').map(|label| format!("DC={label}")).collect::<Vec<_>>().join(",")
}

/// The SAM database of the DC provisioned in `dir`.
fn sam_ldb_in(dir: &Path) -> PathBuf {
    dir.join("private/sam.ldb")
}

/// Starts `samba` in the foreground on the provisioned `dir`, its output appended to `samba.out`.
fn spawn_samba(dir: &Path) -> Result<(Child, Option<ChildStdin>), SambaError> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("samba.out"))
        .map_err(io_error("open samba.out"))?;
    let log_err = log.try_clone().map_err(io_error("clone samba.out"))?;
    let mut child = Command::new("samba")
        .args(["-i", "-M", "single", "-s"])
        .arg(dir.join("etc/smb.conf"))
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(io_error("spawn samba (is the samba-ad-dc package installed?)"))?;
    let stdin = child.stdin.take();
    Ok((child, stdin))
}

/// Issues a test CA and a server certificate for the DC into `DIR/tls`.
fn write_tls_files(dir: &Path, dc_fqdn: &str) -> Result<(), SambaError> {
    match crate::tls::issue(&dir.join("tls"), dc_fqdn) {
        Ok(_) => Ok(()),
        Err(crate::tls::TlsError::Certificate(err)) => Err(SambaError::Certificate(err)),
        Err(crate::tls::TlsError::Io(what, source)) => Err(SambaError::Io { what, source }),
    }
}

/// Drops the NetBIOS name service (`nbt`) from `server services`: Samba 4.22 puts its socket in
/// a compiled-in `/run/samba/nmbd`, which exists only where the packaged service ran, and exits
/// when it cannot create it. No test uses NetBIOS (LDAP, Kerberos and DNS are unaffected).
fn without_netbios_name_service(smb_conf: &Path) -> Result<(), SambaError> {
    let text = fs::read_to_string(smb_conf).map_err(io_error("read smb.conf"))?;
    let mut found = false;
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        match line.trim().strip_prefix("server services") {
            Some(rest) if rest.trim_start().starts_with('=') => {
                found = true;
                let services: Vec<&str> = rest.trim_start()[1..]
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|service| !service.is_empty() && *service != "nbt")
                    .collect();
                lines.push(format!("\tserver services = {}", services.join(", ")));
            }
            _ => lines.push(line.to_string()),
        }
    }
    fs::write(smb_conf, lines.join("\n") + "\n").map_err(io_error("write smb.conf"))?;
    if !found {
        add_global_option(smb_conf, "server services = -nbt")?;
    }
    Ok(())
}

/// Inserts `line` at the top of the `[global]` section of `smb_conf`.
fn add_global_option(smb_conf: &Path, line: &str) -> Result<(), SambaError> {
    let text = fs::read_to_string(smb_conf).map_err(io_error("read smb.conf"))?;
    let updated = text.replacen("[global]\n", &format!("[global]\n\t{line}\n"), 1);
    fs::write(smb_conf, updated).map_err(io_error("write smb.conf"))
}

/// Runs `samba-tool domain provision` and returns the domain SID it reports.
fn provision(options: &SambaOptions, dir: &Path, admin_password: &str) -> Result<String, SambaError> {
    let dir_text = dir.display().to_string();
    let dns_backend = if options.internal_dns { "SAMBA_INTERNAL" } else { "NONE" };
    let mut command = Command::new("samba-tool");
    command
        .args(["domain", "provision", "--server-role=dc", "--use-rfc2307"])
        .arg(format!("--realm={}", options.realm))
        .arg(format!("--domain={}", options.netbios_domain))
        .arg(format!("--host-name={}", options.host_name))
        .arg(format!("--dns-backend={dns_backend}"))
        .arg(format!("--targetdir={dir_text}"))
        .arg("--host-ip=127.0.0.1")
        .arg(format!("--adminpass={admin_password}"));
    for option in [
        "interfaces = lo".to_string(),
        "bind interfaces only = yes".to_string(),
        format!("pid directory = {dir_text}/run"),
        // Sockets in the DC's directory too: the packaged defaults live under /run/samba, which
        // exists only where the packaged service ran.
        format!("ncalrpc dir = {dir_text}/run/ncalrpc"),
        format!("winbindd socket directory = {dir_text}/run/winbindd"),
        format!("ntp signd socket directory = {dir_text}/run/ntp_signd"),
        format!("log file = {dir_text}/log.%m"),
        "tls enabled = yes".to_string(),
        format!("tls keyfile = {dir_text}/tls/key.pem"),
        format!("tls certfile = {dir_text}/tls/cert.pem"),
        format!("tls cafile = {dir_text}/tls/ca.pem"),
    ] {
        command.arg(format!("--option={option}"));
    }
    let output = command.output().map_err(io_error("run samba-tool (is samba installed?)"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(10).collect();
        return Err(SambaError::Provision {
            status: output.status.to_string(),
            output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    text.lines().find_map(|line| line.split("DOMAIN SID:").nth(1).map(|sid| sid.trim().to_string())).ok_or_else(|| {
        SambaError::Provision { status: "ok".to_string(), output: "no DOMAIN SID line in the output".to_string() }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_fit_netbios() {
        let first = unique_name("gm");
        let second = unique_name("gm");
        assert_ne!(first, second);
        assert!(first.len() <= 15, "{first}");
    }

    #[test]
    fn dc_serves_ldaps_with_the_test_ca_and_is_gone_after_drop() {
        let dc = SambaDc::start(SambaOptions::default()).expect("samba DC starts");
        let dir = dc.dir().to_path_buf();
        assert!(dc.domain_sid().starts_with("S-1-5-21-"), "{}", dc.domain_sid());
        assert!(fs::read_to_string(dc.ca_cert_path()).expect("ca.pem").contains("BEGIN CERTIFICATE"));
        let smb_conf = fs::read_to_string(dc.smb_conf()).expect("smb.conf");
        assert!(smb_conf.contains("old password allowed period = 0"), "{smb_conf}");
        assert!(TcpStream::connect("127.0.0.1:636").is_ok());
        drop(dc);
        assert!(!dir.exists(), "the DC directory is removed");
        assert!(TcpStream::connect("127.0.0.1:636").is_err(), "samba stopped listening");
    }
}
