//! Entra ID token endpoint (`POST /{tenant}/oauth2/v2.0/token`, the client-credentials grant that
//! azure_identity 1.x `ClientSecretCredential` sends without any prior discovery request, and the
//! client-assertion form `ClientAssertionCredential`/`WorkloadIdentityCredential` send) and the
//! tokens it issues.
//!
//! Tokens are JWT-shaped but unsigned (`alg: none`): header and claims (`aud`, `iss`, `tid`, `oid`,
//! `appid`, `sub`, `iat`, `nbf`, `exp`, `jti`) are base64url JSON, so the simulated services read the
//! caller's object id from them. A token is valid only if this simulator issued its `jti`, so a test
//! cannot forge one by accident. Error bodies follow Entra's
//! `{"error","error_description","error_codes",...}` shape with the real AADSTS codes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Claims of an issued token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Audience: the resource part of the requested scope (`https://vault.azure.net`).
    pub aud: String,
    /// Issuer (`https://sts.windows.net/{tenant}/`).
    pub iss: String,
    /// Tenant id.
    pub tid: String,
    /// Object id of the caller: what access policies and role assignments name.
    pub oid: String,
    /// Client (application) id of the caller.
    pub appid: String,
    /// Subject (same as `oid` for app tokens).
    pub sub: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Token id the simulator remembers.
    pub jti: String,
}

/// Why a bearer token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The `Authorization` header is absent or not `Bearer <token>`.
    #[error("the Authorization header is missing or is not a Bearer token")]
    Missing,
    /// The token is not three base64url parts with JSON claims.
    #[error("the access token is malformed")]
    Malformed,
    /// The simulator did not issue this token.
    #[error("the access token was not issued by this simulator")]
    Unknown,
    /// The token's `exp` has passed.
    #[error("the access token expired at {exp}")]
    Expired {
        /// The token's expiry, Unix seconds.
        exp: i64,
    },
    /// The token is for another resource.
    #[error("the access token audience '{audience}' is not accepted here")]
    WrongAudience {
        /// The token's `aud`.
        audience: String,
    },
}

/// Encodes `claims` as an unsigned JWT.
pub fn encode(claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signature = URL_SAFE_NO_PAD.encode(claims.jti.as_bytes());
    format!("{header}.{payload}.{signature}")
}

/// Decodes the claims of a token produced by [`encode`] (no issuance or expiry check).
pub fn decode(token: &str) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Extracts the token from an `Authorization: Bearer <token>` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, TokenError> {
    let value = header.ok_or(TokenError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(TokenError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(TokenError::Missing);
    }
    Ok(token.trim())
}

/// The audience a `scope` parameter asks for: `https://vault.azure.net/.default` → `https://vault.azure.net`.
pub fn audience_of_scope(scope: &str) -> Option<&str> {
    let first = scope.split_whitespace().next()?;
    first.strip_suffix("/.default").filter(|audience| !audience.is_empty())
}

/// Parses an `application/x-www-form-urlencoded` body into pairs.
pub fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        decoded.push(byte);
                        index += 2;
                    }
                    None => decoded.push(b'%'),
                }
            }
            other => decoded.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// An Entra error answer: HTTP status, OAuth `error`, AADSTS code and description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntraError {
    /// HTTP status (400 or 401).
    pub status: u16,
    /// OAuth error (`invalid_client`, `unauthorized_client`, `invalid_request`, `invalid_scope`).
    pub error: &'static str,
    /// AADSTS number.
    pub code: u32,
    /// Description after `AADSTS<code>: `.
    pub description: String,
}

impl EntraError {
    /// The JSON body Entra sends.
    pub fn body(&self, trace_id: &str, timestamp: &str) -> serde_json::Value {
        serde_json::json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {trace_id}\r\nTimestamp: {timestamp}",
                self.code, self.description
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": trace_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        })
    }
}

/// How a known client authenticates. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// A client secret (service principal).
    Secret(String),
    /// A federated credential: any client assertion is accepted (workload identity; not verified).
    Federated,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::Secret(_) => formatter.write_str("Secret(<redacted>)"),
            ClientAuth::Federated => formatter.write_str("Federated"),
        }
    }
}

/// A known client: its credential and the object id tokens carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// Object id of the principal.
    pub object_id: String,
    /// How it proves itself.
    pub auth: ClientAuth,
}

/// The grant decision: which client and audience a token request is for, or Entra's error.
/// `lookup` finds a client by client id.
pub fn grant<'a>(
    tenant_in_path: &str,
    tenant_id: &str,
    form: &[(String, String)],
    lookup: impl Fn(&str) -> Option<&'a Client>,
) -> Result<(String, &'a Client, String), EntraError> {
    let field = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    if !tenant_in_path.eq_ignore_ascii_case(tenant_id) {
        return Err(EntraError {
            status: 400,
            error: "invalid_request",
            code: 90002,
            description: format!(
                "Tenant '{tenant_in_path}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        });
    }
    if field("grant_type") != Some("client_credentials") {
        return Err(EntraError {
            status: 400,
            error: "unsupported_grant_type",
            code: 70003,
            description: "The app requested an unsupported grant type.".to_string(),
        });
    }
    let client_id = field("client_id").unwrap_or_default();
    let Some(client) = lookup(client_id) else {
        return Err(EntraError {
            status: 400,
            error: "unauthorized_client",
            code: 700016,
            description: format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant_id}'."
            ),
        });
    };
    let authenticated = match &client.auth {
        ClientAuth::Secret(expected) => field("client_secret") == Some(expected.as_str()),
        ClientAuth::Federated => {
            field("client_assertion_type") == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                && field("client_assertion").is_some_and(|assertion| !assertion.is_empty())
        }
    };
    if !authenticated {
        return Err(EntraError {
            status: 401,
            error: "invalid_client",
            code: 7000215,
            description: "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.".to_string(),
        });
    }
    let scope = field("scope").unwrap_or_default();
    let Some(audience) = audience_of_scope(scope) else {
        return Err(EntraError {
            status: 400,
            error: "invalid_scope",
            code: 1002012,
            description: format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        });
    };
    Ok((client_id.to_string(), client, audience.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_claims() -> Claims {
        Claims {
            aud: "https://vault.azure.net".to_string(),
            iss: "https://sts.windows.net/t/".to_string(),
            tid: "t".to_string(),
            oid: "oid-1".to_string(),
            appid: "app-1".to_string(),
            sub: "oid-1".to_string(),
            iat: 1,
            nbf: 1,
            exp: 2,
            jti: "j".to_string(),
        }
    }

    fn mk_form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
    }

    #[test]
    fn encode_then_decode_round_trips_claims() {
        let claims = mk_claims();
        let token = encode(&claims);
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(decode(&token), Ok(claims));
        assert_eq!(decode("a.b"), Err(TokenError::Malformed));
    }

    #[test]
    fn bearer_and_scope_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("Basic abc")), Err(TokenError::Missing));
        assert_eq!(bearer(None), Err(TokenError::Missing));
        assert_eq!(audience_of_scope("https://vault.azure.net/.default"), Some("https://vault.azure.net"));
        assert_eq!(audience_of_scope("https://vault.azure.net"), None);
        assert_eq!(
            parse_form("scope=https%3A%2F%2Fvault.azure.net%2F.default&a=b+c"),
            mk_form(&[("scope", "https://vault.azure.net/.default"), ("a", "b c")])
        );
    }

    #[test]
    fn grant_checks_tenant_client_secret_and_scope() {
        let client = Client { object_id: "oid".to_string(), auth: ClientAuth::Secret("s3".to_string()) };
        assert!(!format!("{client:?}").contains("s3"), "Debug shows the client secret");
        let lookup = |id: &str| (id == "app").then_some(&client);
        let good = mk_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("client_secret", "s3"),
            ("scope", "https://management.azure.com/.default"),
        ]);
        let (client_id, found, audience) = grant("T", "t", &good, lookup).expect("grant");
        assert_eq!(
            (client_id.as_str(), found.object_id.as_str(), audience.as_str()),
            ("app", "oid", "https://management.azure.com")
        );

        let mut wrong_secret = good.clone();
        wrong_secret[2].1 = "nope".to_string();
        assert_eq!(grant("t", "t", &wrong_secret, lookup).map(|_| ()).unwrap_err().code, 7000215);
        let mut unknown = good.clone();
        unknown[1].1 = "other".to_string();
        assert_eq!(grant("t", "t", &unknown, lookup).map(|_| ()).unwrap_err().code, 700016);
        assert_eq!(grant("x", "t", &good, lookup).map(|_| ()).unwrap_err().code, 90002);
        let federated = Client { object_id: "wi".to_string(), auth: ClientAuth::Federated };
        let assertion = mk_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "wi-app"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", "eyJ.projected.token"),
            ("scope", "https://vault.azure.net/.default"),
        ]);
        let federated_lookup = |id: &str| (id == "wi-app").then_some(&federated);
        assert!(grant("t", "t", &assertion, federated_lookup).is_ok());
        assert_eq!(grant("t", "t", &assertion[..3], federated_lookup).map(|_| ()).unwrap_err().code, 7000215);
        let mut bad_scope = good;
        bad_scope[3].1 = "https://management.azure.com".to_string();
        assert_eq!(grant("t", "t", &bad_scope, lookup).map(|_| ()).unwrap_err().error, "invalid_scope");
    }
}
