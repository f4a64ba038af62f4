//! The named checks of `Confirm-AksADDCConnectivity`: find the domain controllers through the
//! configured DNS server (SRV records, over UDP and over TCP — the seed's troubleshooting names a
//! blocked TCP/53 fallback), then reach each DC on Kerberos 88, LDAP 389, LDAPS 636 and AD Web
//! Services 9389 (a warning, not a failure, when the operator says the DCs have no ADWS).

use super::dns::{Record, TYPE_A, TYPE_SRV};
use super::probe::{self, Transport};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How the checks run.
#[derive(Debug, Clone)]
pub struct ReachabilityConfig {
    /// The DNS server the cluster uses for the domain (the gMSA profile's `dnsServer`).
    pub dns_server: SocketAddr,
    /// The AD DNS domain, e.g. `contoso.com`.
    pub domain: String,
    /// The DCs serve no Active Directory Web Services (e.g. Samba): port 9389 is only a warning.
    pub adws_optional: bool,
    pub timeout: Duration,
}

/// The verdict of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Warning,
    Failed,
}

/// One named check and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Stable name, e.g. `dns-srv-ldap-tcp`, `dc-ldaps-636:dc1.contoso.com`.
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
}

/// All checks; the domain is reachable when none failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReachabilityReport {
    pub checks: Vec<CheckResult>,
}

impl ReachabilityReport {
    pub fn failed(&self) -> Vec<&CheckResult> {
        self.checks.iter().filter(|check| check.verdict == Verdict::Failed).collect()
    }
}

/// The SRV names a Windows client uses to find a DC and a KDC.
pub fn srv_names(domain: &str) -> [(&'static str, String); 2] {
    [("ldap", format!("_ldap._tcp.dc._msdcs.{domain}")), ("kerberos", format!("_kerberos._tcp.{domain}"))]
}

/// The DC ports checked, with whether a failure is only a warning.
fn ports(adws_optional: bool) -> [(&'static str, u16, bool); 4] {
    [("kerberos", 88, false), ("ldap", 389, false), ("ldaps", 636, false), ("adws", 9389, adws_optional)]
}

/// Runs every check.
pub async fn check(config: &ReachabilityConfig) -> ReachabilityReport {
    let mut checks = Vec::new();
    let mut dcs: Vec<(String, u16)> = Vec::new();
    for (service, name) in srv_names(&config.domain) {
        for transport in [Transport::Udp, Transport::Tcp] {
            let check_name = format!("dns-srv-{service}-{}", if transport == Transport::Udp { "udp" } else { "tcp" });
            match probe::lookup(config.dns_server, transport, &name, TYPE_SRV, config.timeout).await {
                Ok(records) => {
                    let targets: Vec<(String, u16)> = records
                        .iter()
                        .filter_map(|record| match record {
                            Record::Srv { target, port, .. } => Some((target.clone(), *port)),
                            _ => None,
                        })
                        .collect();
                    if targets.is_empty() {
                        checks.push(failed(check_name, format!("{name}: no SRV record")));
                    } else {
                        let list: Vec<String> =
                            targets.iter().map(|(target, port)| format!("{target}:{port}")).collect();
                        checks.push(passed(check_name, format!("{name} → {}", list.join(", "))));
                        for (target, _) in targets {
                            if !dcs.iter().any(|(known, _)| *known == target) {
                                dcs.push((target, 0));
                            }
                        }
                    }
                }
                Err(err) => checks.push(failed(check_name, err.to_string())),
            }
        }
    }
    for (dc, _) in &dcs {
        let address = match probe::lookup(config.dns_server, Transport::Udp, dc, TYPE_A, config.timeout).await {
            Ok(records) => records
                .iter()
                .find_map(|record| match record {
                    Record::A { address, .. } => Some(IpAddr::V4(*address)),
                    _ => None,
                })
                .ok_or_else(|| format!("{dc}: no A record")),
            Err(err) => Err(err.to_string()),
        };
        let address = match address {
            Ok(address) => address,
            Err(detail) => {
                checks.push(failed(format!("dns-a:{dc}"), detail));
                continue;
            }
        };
        checks.push(passed(format!("dns-a:{dc}"), format!("{dc} → {address}")));
        for (service, port, optional) in ports(config.adws_optional) {
            let name = format!("dc-{service}-{port}:{dc}");
            match probe::tcp_open(SocketAddr::new(address, port), config.timeout).await {
                Ok(()) => checks.push(passed(name, format!("{address}:{port} open"))),
                Err(detail) if optional => checks.push(CheckResult { name, verdict: Verdict::Warning, detail }),
                Err(detail) => checks.push(failed(name, detail)),
            }
        }
    }
    ReachabilityReport { checks }
}

fn passed(name: String, detail: String) -> CheckResult {
    CheckResult { name, verdict: Verdict::Passed, detail }
}

fn failed(name: String, detail: String) -> CheckResult {
    CheckResult { name, verdict: Verdict::Failed, detail }
}
