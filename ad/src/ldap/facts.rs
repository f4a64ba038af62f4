//! Reading what a credential spec needs (rootDSE, domain head, crossRefs, the gMSA) and the KDS
//! root keys.

use ldap3::{Scope, SearchEntry};

use super::session::{Session, binary, text};
use crate::account::AccountName;
use crate::directory::DomainFacts;
use crate::error::AdError;
use crate::escape::filter_value;
use crate::guid::Guid;
use crate::kds::{KdsRootKey, KdsStatus, filetime_to_system_time};
use crate::sid::Sid;

/// The naming contexts the rootDSE announces.
pub(super) struct NamingContexts {
    /// `defaultNamingContext`: the domain head (`DC=contoso,DC=test`).
    pub domain: String,
    /// `rootDomainNamingContext`: the forest root domain.
    pub forest_root: String,
    /// `configurationNamingContext`.
    pub configuration: String,
}

pub(super) async fn naming_contexts(session: &mut Session) -> Result<NamingContexts, AdError> {
    let attrs = ["defaultNamingContext", "rootDomainNamingContext", "configurationNamingContext"];
    let root_dse = session.read("", &attrs).await?.ok_or_else(|| AdError::NotFound { what: "rootDSE".to_string() })?;
    let context = |attribute: &'static str| {
        text(&root_dse, attribute).map(str::to_string).ok_or_else(|| AdError::Attribute {
            object: "rootDSE".to_string(),
            attribute,
            reason: "missing".to_string(),
        })
    };
    Ok(NamingContexts {
        domain: context("defaultNamingContext")?,
        forest_root: context("rootDomainNamingContext")?,
        configuration: context("configurationNamingContext")?,
    })
}

pub(super) fn required_text(entry: &SearchEntry, attribute: &'static str) -> Result<String, AdError> {
    text(entry, attribute).map(str::to_string).ok_or_else(|| AdError::Attribute {
        object: entry.dn.clone(),
        attribute,
        reason: "missing".to_string(),
    })
}

pub(super) fn required_sid(entry: &SearchEntry) -> Result<Sid, AdError> {
    let bytes = binary(entry, "objectSid").ok_or_else(|| AdError::Attribute {
        object: entry.dn.clone(),
        attribute: "objectSid",
        reason: "missing".to_string(),
    })?;
    Sid::from_bytes(&bytes).map_err(|source| AdError::Sid { object: entry.dn.clone(), source })
}

pub(super) async fn read_domain_facts(session: &mut Session, gmsa: &AccountName) -> Result<DomainFacts, AdError> {
    let contexts = naming_contexts(session).await?;

    let domain_head = session
        .read(&contexts.domain, &["objectGUID", "objectSid"])
        .await?
        .ok_or_else(|| AdError::NotFound { what: format!("domain head {}", contexts.domain) })?;
    let guid_bytes = binary(&domain_head, "objectGUID").ok_or_else(|| AdError::Attribute {
        object: contexts.domain.clone(),
        attribute: "objectGUID",
        reason: "missing".to_string(),
    })?;
    let domain_guid =
        Guid::from_bytes(&guid_bytes).map_err(|source| AdError::Guid { object: contexts.domain.clone(), source })?;
    let domain_sid = required_sid(&domain_head)?;

    // The crossRefs of the domain and of the forest root carry their NetBIOS and DNS names.
    let partitions = format!("CN=Partitions,{}", contexts.configuration);
    let filter = format!(
        "(&(objectClass=crossRef)(|(nCName={})(nCName={})))",
        filter_value(&contexts.domain),
        filter_value(&contexts.forest_root)
    );
    let cross_refs =
        session.search(&partitions, Scope::OneLevel, &filter, &["nCName", "nETBIOSName", "dnsRoot"]).await?;
    let cross_ref_of = |naming_context: &str| {
        cross_refs
            .iter()
            .find(|entry| text(entry, "nCName").is_some_and(|nc| nc.eq_ignore_ascii_case(naming_context)))
            .ok_or_else(|| AdError::NotFound { what: format!("crossRef of {naming_context} under {partitions}") })
    };
    let domain_ref = cross_ref_of(&contexts.domain)?;
    let forest_ref = cross_ref_of(&contexts.forest_root)?;

    let gmsa_filter = format!(
        "(&(objectClass=msDS-GroupManagedServiceAccount)(sAMAccountName={}))",
        filter_value(&gmsa.machine_account())
    );
    let gmsas =
        session.search(&contexts.domain, Scope::Subtree, &gmsa_filter, &["sAMAccountName", "objectSid"]).await?;
    let gmsa_entry = match gmsas.as_slice() {
        [entry] => entry,
        [] => return Err(AdError::NotFound { what: format!("gMSA {}", gmsa.machine_account()) }),
        more => return Err(AdError::Ambiguous { name: gmsa.machine_account(), count: more.len() }),
    };
    let gmsa_sam = required_text(gmsa_entry, "sAMAccountName")?;

    Ok(DomainFacts {
        dns_name: required_text(domain_ref, "dnsRoot")?,
        netbios_name: required_text(domain_ref, "nETBIOSName")?,
        dns_tree_name: required_text(forest_ref, "dnsRoot")?,
        domain_guid,
        domain_sid,
        gmsa_account_name: gmsa_sam.strip_suffix('$').unwrap_or(&gmsa_sam).to_string(),
        gmsa_sid: required_sid(gmsa_entry)?,
    })
}

pub(super) async fn read_kds_status(session: &mut Session) -> Result<KdsStatus, AdError> {
    let contexts = naming_contexts(session).await?;
    let container =
        format!("CN=Master Root Keys,CN=Group Key Distribution Service,CN=Services,{}", contexts.configuration);
    // A forest that never had a root key may lack the container: that is "no key", not an error.
    let entries = session
        .search(&container, Scope::OneLevel, "(objectClass=msKds-ProvRootKey)", &["cn", "msKds-UseStartTime"])
        .await?;
    let mut root_keys = Vec::with_capacity(entries.len());
    for entry in &entries {
        let start = required_text(entry, "msKds-UseStartTime")?;
        let filetime = start.parse::<u64>().map_err(|error| AdError::Attribute {
            object: entry.dn.clone(),
            attribute: "msKds-UseStartTime",
            reason: format!("not a large integer: {error}"),
        })?;
        root_keys
            .push(KdsRootKey { id: required_text(entry, "cn")?, use_start_time: filetime_to_system_time(filetime) });
    }
    Ok(KdsStatus { root_keys })
}
