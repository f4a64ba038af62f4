//! The reachability checks against a real Samba AD DC serving its internal DNS on 127.0.0.1:53:
//! real SRV records, real ports.

use ad::reachability::{ReachabilityConfig, Verdict, check};
use std::time::Duration;
use testkit::samba::{SambaDc, SambaOptions};

fn verdict_of<'a>(report: &'a ad::reachability::ReachabilityReport, prefix: &str) -> Vec<&'a Verdict> {
    report.checks.iter().filter(|c| c.name.starts_with(prefix)).map(|c| &c.verdict).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dc_is_found_over_udp_and_tcp_and_each_missing_piece_fails_its_own_check() {
    let dc =
        tokio::task::spawn_blocking(|| SambaDc::start(SambaOptions { internal_dns: true, ..SambaOptions::default() }))
            .await
            .unwrap()
            .expect("a Samba DC with internal DNS");
    let config = ReachabilityConfig {
        dns_server: "127.0.0.1:53".parse().unwrap(),
        domain: dc.dns_domain(),
        adws_optional: true,
        timeout: Duration::from_secs(3),
    };
    let report = check(&config).await;
    for name in ["dns-srv-ldap-udp", "dns-srv-ldap-tcp", "dns-srv-kerberos-udp", "dns-srv-kerberos-tcp"] {
        let found =
            report.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("{name} missing: {report:?}"));
        assert_eq!(found.verdict, Verdict::Passed, "{found:?}");
    }
    assert_eq!(verdict_of(&report, "dc-kerberos-88"), [&Verdict::Passed]);
    assert_eq!(verdict_of(&report, "dc-ldap-389"), [&Verdict::Passed]);
    assert_eq!(verdict_of(&report, "dc-ldaps-636"), [&Verdict::Passed]);
    // Samba serves no AD Web Services: a warning when the operator says so, a failure otherwise.
    assert_eq!(verdict_of(&report, "dc-adws-9389"), [&Verdict::Warning]);
    assert!(report.failed().is_empty(), "{:?}", report.failed());

    let strict = check(&ReachabilityConfig { adws_optional: false, ..config.clone() }).await;
    let failed: Vec<&str> = strict.failed().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].starts_with("dc-adws-9389"));

    // A domain without records: every SRV check fails with its own name, and no DC is probed.
    let unknown = check(&ReachabilityConfig { domain: "nowhere.test".into(), ..config.clone() }).await;
    let failed: Vec<&str> = unknown.failed().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["dns-srv-ldap-udp", "dns-srv-ldap-tcp", "dns-srv-kerberos-udp", "dns-srv-kerberos-tcp"]);

    // A DNS server that does not answer: the same checks fail, with the timeout named.
    let silent = check(&ReachabilityConfig {
        dns_server: "127.0.0.1:5".parse().unwrap(),
        timeout: Duration::from_millis(300),
        ..config.clone()
    })
    .await;
    assert_eq!(silent.failed().len(), 4);

    // Records taken away from the real zone, one at a time: only their own checks fail.
    let domain = dc.dns_domain();
    let host = format!("{}.{domain}", SambaOptions::default().host_name.to_lowercase());
    let dns = |args: &[&str]| dc.dns(args).unwrap_or_else(|error| panic!("{error}"));
    // A second DC (127.0.0.3) published in the real zone, whose ports are test listeners: with one
    // port taken away at a time, exactly that port's check fails.
    let dc2 = format!("dc2.{domain}");
    dns(&["add", "127.0.0.1", &domain, "dc2", "A", "127.0.0.3"]);
    dns(&["add", "127.0.0.1", &format!("_msdcs.{domain}"), "_ldap._tcp.dc", "SRV", &format!("{dc2} 389 0 100")]);
    let strict = ReachabilityConfig { adws_optional: false, ..config.clone() };
    for (closed, service) in [(88u16, "kerberos"), (389, "ldap"), (636, "ldaps"), (9389, "adws")] {
        let mut listeners = Vec::new();
        for port in [88u16, 389, 636, 9389].into_iter().filter(|port| *port != closed) {
            listeners.push(tokio::net::TcpListener::bind(("127.0.0.3", port)).await.unwrap());
        }
        let report = check(&strict).await;
        let failed: Vec<&str> =
            report.failed().iter().map(|c| c.name.as_str()).filter(|name| name.ends_with(&dc2)).collect();
        assert_eq!(failed, [format!("dc-{service}-{closed}:{dc2}")], "{report:?}");
        drop(listeners);
    }
    dns(&["delete", "127.0.0.1", &format!("_msdcs.{domain}"), "_ldap._tcp.dc", "SRV", &format!("{dc2} 389 0 100")]);
    dns(&["delete", "127.0.0.1", &domain, "dc2", "A", "127.0.0.3"]);

    let srv = format!("{host} 88 0 100");
    dns(&["delete", "127.0.0.1", &domain, "_kerberos._tcp", "SRV", &srv]);
    let no_kerberos = check(&config).await;
    let failed: Vec<&str> = no_kerberos.failed().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["dns-srv-kerberos-udp", "dns-srv-kerberos-tcp"], "{no_kerberos:?}");
    let short = host.trim_end_matches(&format!(".{domain}")).to_string();
    dns(&["delete", "127.0.0.1", &domain, &short, "A", "127.0.0.1"]);
    let no_address = check(&config).await;
    let failed: Vec<&str> = no_address.failed().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(failed.len(), 3, "{no_address:?}");
    assert!(failed.contains(&format!("dns-a:{host}").as_str()), "the A check names the DC: {failed:?}");
}
