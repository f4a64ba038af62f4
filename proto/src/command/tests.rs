use super::*;
use crate::version::SchemaVersion;
use time::macros::datetime;

fn mk_envelope(command: Command) -> CommandEnvelope {
    CommandEnvelope {
        schema: SchemaVersion::CURRENT,
        command_id: CommandId("c0ffee".into()),
        rollout_id: Some("r1".into()),
        cluster: "aks-1".into(),
        issued_at: datetime!(2026-11-23 10:00 UTC),
        deadline: datetime!(2026-11-23 11:00 UTC),
        issuer: None,
        command,
    }
}

#[test]
fn envelope_round_trips_with_kind_and_payload_tags() {
    let envelope = mk_envelope(Command::EnableGmsa(EnableGmsa {
        dns_server: Some("10.0.0.4".into()),
        root_domain: Some("contoso.com".into()),
        mode: crate::outcome::Mode::Apply,
    }));
    let json = serde_json::to_value(&envelope).unwrap();
    assert_eq!(json["command"]["kind"], "enable-gmsa");
    assert_eq!(json["command"]["payload"]["dns_server"], "10.0.0.4");
    assert_eq!(json["schema"], SchemaVersion::CURRENT.to_string());
    assert_eq!(json["issued_at"], "2026-11-23T10:00:00Z");
    let back: CommandEnvelope = serde_json::from_value(json).unwrap();
    assert_eq!(back, envelope);
}

#[test]
fn unknown_optional_fields_are_tolerated() {
    let mut json = serde_json::to_value(mk_envelope(Command::DisableGmsa(DisableGmsa {}))).unwrap();
    json["added_in_1_1"] = serde_json::json!({"anything": true});
    json["command"]["payload"]["also_new"] = serde_json::json!(3);
    let back: CommandEnvelope = serde_json::from_value(json).unwrap();
    assert_eq!(back.command.kind(), CommandKind::DisableGmsa);
}

#[test]
fn head_is_readable_when_the_kind_is_not() {
    let mut json = serde_json::to_value(mk_envelope(Command::DisableGmsa(DisableGmsa {}))).unwrap();
    json["command"]["kind"] = "launch-rockets".into();
    json["schema"] = "2.0".into();
    assert!(serde_json::from_value::<CommandEnvelope>(json.clone()).is_err());
    let head: EnvelopeHead = serde_json::from_value(json).unwrap();
    assert_eq!(head.command_id.as_str(), "c0ffee");
    assert_eq!(head.cluster, "aks-1");
}

#[test]
fn kind_names_parse_back() {
    for kind in CommandKind::ALL {
        assert_eq!(kind.name().parse::<CommandKind>().unwrap(), kind);
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
    }
    let err = "enable".parse::<CommandKind>().unwrap_err();
    assert!(err.contains("enable-gmsa"), "{err}");
}

#[test]
fn rollout_command_ids_are_stable_and_distinct() {
    let a = CommandId::for_rollout("r1", "aks-1");
    assert_eq!(a, CommandId::for_rollout("r1", "aks-1"));
    assert_ne!(a, CommandId::for_rollout("r1", "aks-2"));
    assert!(crate::subjects::is_valid_token(a.as_str()));
}
