//! Wire-level tests: raw HTTPS (reqwest) against a running simulator, checking status codes,
//! headers and body shapes against Microsoft's specs; plus the official Key Vault `SecretClient`
//! and `ClientSecretCredential` against the simulator, the combination the agent uses.

use std::time::Duration;

use azsim::{
    AccessPolicyEntry, ArmBudget, AzureSim, ClusterSeed, FaultKind, FaultRule, Faults, Frequency, Operation,
    Permissions, SeededCluster, SimConfig, Target, TokenBucketSpec, VaultSeed,
};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";
const AKS_API: &str = "api-version=2024-09-01";
const KV_MGMT_API: &str = "api-version=2023-07-01";
const AGENT_CLIENT: &str = "11111111-1111-1111-1111-111111111111";
const AGENT_OBJECT: &str = "22222222-2222-2222-2222-222222222222";
const AGENT_SECRET: &str = "agent-client-secret";

struct Fixture {
    sim: AzureSim,
    http: Client,
    arm_token: String,
}

async fn mk_fixture(config: SimConfig) -> Fixture {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = AzureSim::start(config).await.expect("simulator starts");
    sim.add_service_principal(AGENT_CLIENT, AGENT_SECRET, AGENT_OBJECT);
    let certificate = reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).expect("CA PEM parses");
    let http = Client::builder().tls_certs_only([certificate]).build().expect("reqwest client");
    let arm_token = request_token(&http, &sim, "https://management.azure.com/.default").await;
    Fixture { sim, http, arm_token }
}

fn mk_config() -> SimConfig {
    SimConfig {
        lro_duration: Duration::from_millis(300),
        faults: Faults { arm_budget: ArmBudget::unlimited(), ..Faults::default() },
        ..SimConfig::default()
    }
}

async fn request_token(http: &Client, sim: &AzureSim, scope: &str) -> String {
    let url = format!("{}{}/oauth2/v2.0/token", sim.authority_host(), sim.tenant_id());
    let form = format!(
        "client_id={AGENT_CLIENT}&client_secret={AGENT_SECRET}&grant_type=client_credentials&scope={}",
        scope.replace(':', "%3A").replace('/', "%2F")
    );
    let response = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token JSON");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().is_some_and(|seconds| seconds > 0));
    body["access_token"].as_str().expect("access_token").to_string()
}

impl Fixture {
    async fn call(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") };
        (status, headers, body)
    }

    async fn arm(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let url = format!("{}{path_and_query}", self.sim.arm_endpoint());
        self.call(method, &url, Some(&self.arm_token), body).await
    }

    fn mk_cluster(&self, name: &str) -> SeededCluster {
        self.sim.add_managed_cluster(SUBSCRIPTION, "rg1", name, ClusterSeed::windows())
    }
}

fn cluster_url(cluster: &SeededCluster, api: &str) -> String {
    format!("{}?{api}", cluster.id)
}

mod arm_clusters {
    use super::*;

    #[tokio::test]
    async fn get_returns_the_spec_shape_with_etag() {
        let fixture = mk_fixture(mk_config()).await;
        let cluster = fixture.mk_cluster("aks1");
        let (status, headers, body) = fixture.arm(Method::GET, &cluster_url(&cluster, AKS_API), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["type"], "Microsoft.ContainerService/ManagedClusters");
        assert_eq!(body["properties"]["provisioningState"], "Succeeded");
        assert_eq!(body["properties"]["windowsProfile"]["adminUsername"], "azureuser");
        assert_eq!(body["properties"]["agentPoolProfiles"][1]["osType"], "Windows");
        assert_eq!(body["properties"]["nodeResourceGroup"], cluster.node_resource_group);
        let kubelet = &body["properties"]["identityProfile"]["kubeletidentity"];
        assert_eq!(kubelet["objectId"], cluster.kubelet.object_id.as_str());
        assert_eq!(kubelet["clientId"], cluster.kubelet.client_id.as_str());
        assert_eq!(kubelet["resourceId"], cluster.kubelet.resource_id.as_str());
        let etag = body["eTag"].as_str().expect("eTag");
        assert_eq!(headers["etag"].to_str().expect("ETag header"), format!("\"{etag}\""));
        assert!(headers.contains_key("x-ms-request-id"));
    }

    #[tokio::test]
    async fn authentication_and_api_version_errors_use_arm_bodies() {
        let fixture = mk_fixture(mk_config()).await;
        let cluster = fixture.mk_cluster("aks1");
        let url = format!("{}{}", fixture.sim.arm_endpoint(), cluster_url(&cluster, AKS_API));
        let (status, headers, body) = fixture.call(Method::GET, &url, None, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("AuthenticationFailed")));
        assert!(headers.contains_key("www-authenticate"));

        let vault_token = request_token(&fixture.http, &fixture.sim, "https://vault.azure.net/.default").await;
        let (status, _, body) = fixture.call(Method::GET, &url, Some(&vault_token), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("InvalidAuthenticationTokenAudience"))
        );

        let (status, _, body) = fixture.arm(Method::GET, &cluster_url(&cluster, "api-version=2099-01-01"), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("NoRegisteredProviderFound"))
        );
        let (status, _, body) = fixture.arm(Method::GET, &cluster.id, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("MissingApiVersionParameter"))
        );
        let missing = cluster.id.replace("aks1", "nope");
        let (status, _, body) = fixture.arm(Method::GET, &format!("{missing}?{AKS_API}"), None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("ResourceNotFound")));
    }

    #[tokio::test]
    async fn authentication_comes_before_the_api_version_on_arm_and_key_vault() {
        let fixture = mk_fixture(mk_config()).await;
        let cluster = fixture.mk_cluster("aks1");
        for query in ["api-version=1999-01-01", "api-version=bogus", ""] {
            let url = format!("{}{}?{query}", fixture.sim.arm_endpoint(), cluster.id);
            let (status, headers, body) = fixture.call(Method::GET, &url, None, None).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("AuthenticationFailed"))
            );
            assert!(headers.contains_key("www-authenticate"), "{query}");
        }
        let (status, _, body) = fixture.arm(Method::GET, &cluster_url(&cluster, "api-version=2024-9-1"), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("InvalidApiVersionParameter"))
        );
        let vault = fixture.sim.add_vault(SUBSCRIPTION, "rg1", "kv1", VaultSeed::default()).await.expect("vault");
        let url = format!("{}secrets/s?api-version=1.0", vault.vault_uri);
        let (status, headers, _) = fixture.call(Method::GET, &url, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let challenge = headers["www-authenticate"].to_str().expect("challenge");
        assert!(challenge.contains("resource=\"https://vault.azure.net\""), "{challenge}");
    }

    #[tokio::test]
    async fn entra_discovery_and_subscription_reads_answer_as_azure_does() {
        let fixture = mk_fixture(mk_config()).await;
        let cluster = fixture.mk_cluster("aks1");
        let tenant = fixture.sim.tenant_id();
        let url = format!("{}{tenant}/v2.0/.well-known/openid-configuration", fixture.sim.authority_host());
        let (status, _, body) = fixture.call(Method::GET, &url, None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["token_endpoint"], format!("{}{tenant}/oauth2/v2.0/token", fixture.sim.authority_host()));
        let url = format!("{}not-a-tenant/v2.0/.well-known/openid-configuration", fixture.sim.authority_host());
        assert_eq!(fixture.call(Method::GET, &url, None, None).await.0, StatusCode::BAD_REQUEST);
        let (status, _, body) = fixture.arm(Method::GET, "/subscriptions?api-version=2022-12-01", None).await;
        assert_eq!((status, body["value"][0]["subscriptionId"].as_str()), (StatusCode::OK, Some(SUBSCRIPTION)));
        let filter = "$filter=resourceType%20eq%20%27Microsoft.ContainerService%2FmanagedClusters%27%20and%20name%20eq%20%27AKS1%27";
        let path = format!("/subscriptions/{SUBSCRIPTION}/resources?{filter}&api-version=2015-11-01");
        let (status, _, body) = fixture.arm(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["value"].as_array().map(Vec::len), Some(1));
        assert_eq!(body["value"][0]["id"], cluster.id);
    }

    #[tokio::test]
    async fn put_runs_a_long_running_operation_with_etag_and_conflict() {
        let fixture = mk_fixture(mk_config()).await;
        let cluster = fixture.mk_cluster("aks1");
        let url = cluster_url(&cluster, AKS_API);
        let (_, _, mut resource) = fixture.arm(Method::GET, &url, None).await;
        let etag = resource["eTag"].as_str().expect("eTag").to_string();
        resource["properties"]["windowsProfile"]["gmsaProfile"] =
            json!({"enabled": true, "dnsServer": "10.0.0.4", "rootDomainName": "contoso.com"});

        // A stale etag is refused with 412 and changes nothing.
        let stale = fixture
            .http
            .put(format!("{}{url}", fixture.sim.arm_endpoint()))
            .bearer_auth(&fixture.arm_token)
            .header("If-Match", "\"stale\"")
            .json(&resource)
            .send()
            .await
            .expect("send");
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
        let body: Value = stale.json().await.expect("json");
        assert_eq!(body["error"]["code"], "PreconditionFailed");
        assert!(fixture.sim.mutations().is_empty());

        let response = fixture
            .http
            .put(format!("{}{url}", fixture.sim.arm_endpoint()))
            .bearer_auth(&fixture.arm_token)
            .header("If-Match", format!("\"{etag}\""))
            .json(&resource)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::OK);
        let status_url = response.headers()["azure-asyncoperation"].to_str().expect("Azure-AsyncOperation").to_string();
        assert!(response.headers().contains_key("location"));
        assert_eq!(response.headers()["retry-after"], "1");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["properties"]["provisioningState"], "Updating");
        assert_ne!(body["eTag"], etag.as_str());

        // While it runs, another PUT is refused as AKS refuses it.
        let (status, _, conflict) = fixture.arm(Method::PUT, &url, Some(resource.clone())).await;
        assert_eq!((status, conflict["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("OperationNotAllowed")));

        let (status, _, first_poll) = fixture.call(Method::GET, &status_url, Some(&fixture.arm_token), None).await;
        assert_eq!((status, first_poll["status"].as_str()), (StatusCode::OK, Some("InProgress")));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let final_status = loop {
            let (_, _, poll) = fixture.call(Method::GET, &status_url, Some(&fixture.arm_token), None).await;
            if poll["status"] != "InProgress" || tokio::time::Instant::now() > deadline {
                break poll;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(final_status["status"], "Succeeded");
        assert!(final_status["endTime"].is_string());
        let (_, _, after) = fixture.arm(Method::GET, &url, None).await;
        assert_eq!(after["properties"]["provisioningState"], "Succeeded");
        let gmsa = fixture.sim.gmsa_profile(&cluster.id).expect("gmsa profile");
        assert_eq!((gmsa.enabled, gmsa.dns_server.as_deref()), (Some(true), Some("10.0.0.4")));
        let mutations = fixture.sim.mutations();
        assert_eq!(mutations.len(), 1);
        assert_eq!((mutations[0].operation, mutations[0].changed), (Operation::ClusterPut, true));
    }

    #[tokio::test]
    async fn gmsa_validation_and_injected_operation_conflict() {
        let fixture = mk_fixture(mk_config()).await;
        let cluster = fixture.mk_cluster("aks1");
        let url = cluster_url(&cluster, AKS_API);
        let (_, _, mut resource) = fixture.arm(Method::GET, &url, None).await;
        resource["properties"]["windowsProfile"]["gmsaProfile"] = json!({"enabled": true, "dnsServer": "10.0.0.4"});
        let (status, _, body) = fixture.arm(Method::PUT, &url, Some(resource.clone())).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidParameter")));

        fixture.sim.begin_cluster_operation(&cluster.id, Duration::from_secs(60)).expect("cluster exists");
        resource["properties"]["windowsProfile"]["gmsaProfile"] = json!({"enabled": true});
        let (status, _, body) = fixture.arm(Method::PUT, &url, Some(resource)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("OperationNotAllowed")));
        assert!(fixture.sim.mutations().is_empty());
    }
}

mod arm_faults {
    use super::*;

    #[tokio::test]
    async fn injected_throttle_answers_429_with_retry_after_then_recovers() {
        let fixture = mk_fixture(mk_config()).await;
        let cluster = fixture.mk_cluster("aks1");
        fixture.sim.set_faults(Faults {
            rules: vec![FaultRule {
                target: Target::Only(vec![Operation::ClusterGet]),
                kind: FaultKind::Throttle { retry_after_secs: 7 },
                frequency: Frequency::Next(2),
            }],
            arm_budget: ArmBudget::unlimited(),
            fail_next_cluster_operations: 0,
        });
        for _ in 0..2 {
            let (status, headers, body) = fixture.arm(Method::GET, &cluster_url(&cluster, AKS_API), None).await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(headers["retry-after"], "7");
            assert!(body["error"]["code"].is_string());
        }
        let (status, _, _) = fixture.arm(Method::GET, &cluster_url(&cluster, AKS_API), None).await;
        assert_eq!(status, StatusCode::OK);

        fixture.sim.set_faults(Faults {
            rules: vec![FaultRule {
                target: Target::Arm,
                kind: FaultKind::ServerError { status: 503 },
                frequency: Frequency::Next(1),
            }],
            arm_budget: ArmBudget::unlimited(),
            fail_next_cluster_operations: 0,
        });
        let (status, _, body) = fixture.arm(Method::GET, &cluster_url(&cluster, AKS_API), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("ServiceUnavailable"))
        );
        let (status, _, _) = fixture.arm(Method::GET, &cluster_url(&cluster, AKS_API), None).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn write_budget_throttles_per_subscription() {
        let fixture = mk_fixture(mk_config()).await;
        let identity_path = |name: &str| {
            format!(
                "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?api-version=2023-01-31"
            )
        };
        fixture.sim.add_resource_group(SUBSCRIPTION, "rg1");
        fixture.sim.set_faults(Faults {
            rules: Vec::new(),
            arm_budget: ArmBudget { writes: Some(TokenBucketSpec { burst: 2, refill_per_second: 0.1 }), reads: None },
            fail_next_cluster_operations: 0,
        });
        for name in ["id1", "id2"] {
            let (status, headers, _) =
                fixture.arm(Method::PUT, &identity_path(name), Some(json!({"location": "eastus"}))).await;
            assert_eq!(status, StatusCode::CREATED);
            assert!(headers.contains_key("x-ms-ratelimit-remaining-subscription-writes"));
        }
        let (status, headers, body) =
            fixture.arm(Method::PUT, &identity_path("id3"), Some(json!({"location": "eastus"}))).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("SubscriptionRequestsThrottled"))
        );
        assert_eq!(headers["retry-after"], "10");
        // Reads have their own (unlimited) budget.
        let (status, _, _) = fixture.arm(Method::GET, &identity_path("id1"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(fixture.sim.identity(&format!("/subscriptions/{SUBSCRIPTION}/resourcegroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id3")).is_none());
    }
}

mod key_vault {
    use super::*;

    fn mk_policy(object_id: &str, secrets: &[&str], tenant_id: &str) -> AccessPolicyEntry {
        AccessPolicyEntry {
            tenant_id: tenant_id.to_string(),
            object_id: object_id.to_string(),
            application_id: None,
            permissions: Permissions {
                secrets: secrets.iter().map(|text| text.to_string()).collect(),
                ..Permissions::default()
            },
        }
    }

    #[tokio::test]
    async fn challenge_then_403_until_the_access_policy_grants_get() {
        let fixture = mk_fixture(mk_config()).await;
        let cluster = fixture.mk_cluster("aks1");
        let tenant = fixture.sim.tenant_id();
        let vault = fixture
            .sim
            .add_vault(
                SUBSCRIPTION,
                "rg1",
                "kv1",
                VaultSeed {
                    access_policies: vec![mk_policy(AGENT_OBJECT, &["get", "set", "list"], &tenant)],
                    ..VaultSeed::default()
                },
            )
            .await
            .expect("vault");
        let secret_url = format!("{}secrets/GMSADomainUserCred?api-version=7.5", vault.vault_uri);

        let (status, headers, body) = fixture.call(Method::GET, &secret_url, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let challenge = headers["www-authenticate"].to_str().expect("challenge");
        assert!(challenge.starts_with("Bearer authorization=\""), "{challenge}");
        assert!(challenge.contains(&format!("/{tenant}\"")), "{challenge}");
        assert!(challenge.contains("resource=\"https://vault.azure.net\""), "{challenge}");
        assert_eq!(body["error"]["code"], "Unauthorized");

        let agent_token = request_token(&fixture.http, &fixture.sim, "https://vault.azure.net/.default").await;
        let (status, _, body) = fixture
            .call(Method::PUT, &secret_url, Some(&agent_token), Some(json!({"value": "CONTOSO\\svc:pw1"})))
            .await;
        assert_eq!(status, StatusCode::OK);
        let secret_id = body["id"].as_str().expect("id");
        assert!(secret_id.starts_with(&format!("{}secrets/GMSADomainUserCred/", vault.vault_uri)));
        assert!(body["attributes"]["created"].is_i64());

        let kubelet_token = fixture.sim.issue_token(&cluster.kubelet.object_id, "https://vault.azure.net");
        let (status, _, body) = fixture.call(Method::GET, &secret_url, Some(&kubelet_token), None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("Forbidden")));
        assert_eq!(body["error"]["innererror"]["code"], "AccessDenied");

        let add_url = format!("{}/accessPolicies/add?{KV_MGMT_API}", vault.id);
        let add_body =
            json!({"properties": {"accessPolicies": [mk_policy(&cluster.kubelet.object_id, &["get"], &tenant)]}});
        for _ in 0..2 {
            let (status, _, body) = fixture.arm(Method::PUT, &add_url, Some(add_body.clone())).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["type"], "Microsoft.KeyVault/vaults/accessPolicies");
        }
        let policies = fixture.sim.access_policies(&vault.id);
        assert_eq!(policies.len(), 2, "the agent's policy is kept, the kubelet's added once");
        let (status, _, body) = fixture.call(Method::GET, &secret_url, Some(&kubelet_token), None).await;
        assert_eq!((status, body["value"].as_str()), (StatusCode::OK, Some("CONTOSO\\svc:pw1")));

        let (status, _, body) =
            fixture.call(Method::PUT, &secret_url, Some(&kubelet_token), Some(json!({"value": "x"}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "get does not allow set: {body}");

        let versions_url = format!("{}secrets/GMSADomainUserCred/versions?api-version=7.5", vault.vault_uri);
        let (status, _, body) = fixture.call(Method::GET, &versions_url, Some(&agent_token), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["value"].as_array().map(Vec::len), Some(1));
        assert!(body["value"][0].get("value").is_none(), "version listings never carry values");

        let changes: Vec<bool> = fixture
            .sim
            .mutations()
            .iter()
            .filter(|mutation| mutation.operation == Operation::AccessPolicyUpdate)
            .map(|mutation| mutation.changed)
            .collect();
        assert_eq!(changes, vec![true, false]);
        let log = format!("{:?}", fixture.sim.mutations());
        assert!(!log.contains("pw1"), "secret value leaked into the mutation log");
    }

    #[tokio::test]
    async fn rbac_vault_uses_role_assignments_and_rejects_duplicates() {
        let fixture = mk_fixture(mk_config()).await;
        let cluster = fixture.mk_cluster("aks1");
        let vault = fixture
            .sim
            .add_vault(
                SUBSCRIPTION,
                "rg1",
                "kv2",
                VaultSeed { enable_rbac_authorization: true, ..VaultSeed::default() },
            )
            .await
            .expect("vault");
        fixture.sim.add_role_assignment(
            &format!("/subscriptions/{SUBSCRIPTION}"),
            AGENT_OBJECT,
            azsim::KEY_VAULT_SECRETS_OFFICER,
        );
        let agent_token = request_token(&fixture.http, &fixture.sim, "https://vault.azure.net/.default").await;
        let secret_url = format!("{}secrets/cred?api-version=2025-07-01", vault.vault_uri);
        let (status, _, _) =
            fixture.call(Method::PUT, &secret_url, Some(&agent_token), Some(json!({"value": "v1"}))).await;
        assert_eq!(status, StatusCode::OK, "subscription-scope Secrets Officer may set");

        let kubelet_token = fixture.sim.issue_token(&cluster.kubelet.object_id, "https://vault.azure.net");
        let (status, _, body) = fixture.call(Method::GET, &secret_url, Some(&kubelet_token), None).await;
        assert_eq!(
            (status, body["error"]["innererror"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("ForbiddenByRbac"))
        );

        let role = azsim::role_definition_id(SUBSCRIPTION, azsim::KEY_VAULT_SECRETS_USER);
        let assignment = json!({"properties": {"roleDefinitionId": role, "principalId": cluster.kubelet.object_id, "principalType": "ServicePrincipal"}});
        let name = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
        let url =
            format!("{}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01", vault.id);
        let (status, _, body) = fixture.arm(Method::PUT, &url, Some(assignment.clone())).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body["type"], "Microsoft.Authorization/roleAssignments");
        assert_eq!(body["properties"]["scope"], vault.id.as_str());
        let (status, _, _) = fixture.arm(Method::PUT, &url, Some(assignment.clone())).await;
        assert_eq!(status, StatusCode::OK, "same name, same grant: idempotent");
        let other = url.replace(name, "9a7f1c2e-0000-4000-8000-000000000001");
        let (status, _, body) = fixture.arm(Method::PUT, &other, Some(assignment)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("RoleAssignmentExists")));

        let list_url = format!(
            "{}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=principalId%20eq%20'{}'",
            vault.id, cluster.kubelet.object_id
        );
        let (status, _, body) = fixture.arm(Method::GET, &list_url, None).await;
        assert_eq!((status, body["value"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));

        let (status, _, body) = fixture.call(Method::GET, &secret_url, Some(&kubelet_token), None).await;
        assert_eq!((status, body["value"].as_str()), (StatusCode::OK, Some("v1")));
        let (status, _, _) =
            fixture.call(Method::PUT, &secret_url, Some(&kubelet_token), Some(json!({"value": "v2"}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "Secrets User may not set");
    }
}

mod identities_and_scale_sets {
    use super::*;

    #[tokio::test]
    async fn identity_put_and_scale_set_identity_patch() {
        let fixture = mk_fixture(mk_config()).await;
        let cluster = fixture.mk_cluster("aks1");
        let identity_url = format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/gmsa-mi?api-version=2023-01-31"
        );
        let (status, _, identity) = fixture.arm(Method::PUT, &identity_url, Some(json!({"location": "eastus"}))).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(identity["properties"]["principalId"].is_string() && identity["properties"]["clientId"].is_string());
        let (status, _, again) = fixture.arm(Method::PUT, &identity_url, Some(json!({"location": "eastus"}))).await;
        assert_eq!(
            (status, &again["properties"]["principalId"]),
            (StatusCode::OK, &identity["properties"]["principalId"])
        );

        let list_url = format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets?api-version=2024-07-01",
            cluster.node_resource_group
        );
        let (status, _, list) = fixture.arm(Method::GET, &list_url, None).await;
        assert_eq!(status, StatusCode::OK);
        let windows = list["value"]
            .as_array()
            .expect("value")
            .iter()
            .find(|scale_set| scale_set["tags"]["aks-managed-poolName"] == "npwin")
            .expect("Windows pool scale set")
            .clone();
        let identity_id = identity["id"].as_str().expect("id");
        let patch = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {identity_id: {}}}});
        let scale_set_url = format!("{}?api-version=2024-07-01", windows["id"].as_str().expect("id"));
        let (status, _, updated) = fixture.arm(Method::PATCH, &scale_set_url, Some(patch)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            updated["identity"]["userAssignedIdentities"][identity_id]["principalId"],
            identity["properties"]["principalId"]
        );
        let mut expected = vec![identity_id.to_string(), cluster.kubelet.resource_id.clone()];
        expected.sort();
        assert_eq!(fixture.sim.scale_set_identities(windows["id"].as_str().expect("id")), expected);

        // Detaching by `null` keeps the kubelet identity; the type stays UserAssigned.
        let detach = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {identity_id: null}}});
        let (status, _, updated) = fixture.arm(Method::PATCH, &scale_set_url, Some(detach)).await;
        assert_eq!((status, updated["identity"]["type"].as_str()), (StatusCode::OK, Some("UserAssigned")));
        assert_eq!(
            fixture.sim.scale_set_identities(windows["id"].as_str().expect("id")),
            vec![cluster.kubelet.resource_id.clone()]
        );
    }

    #[tokio::test]
    async fn seeded_pools_carry_the_kubelet_identity_as_aks_attaches_it() {
        let fixture = mk_fixture(mk_config()).await;
        let cluster = fixture.mk_cluster("aks1");
        for scale_set in &cluster.scale_sets {
            assert_eq!(fixture.sim.scale_set_identities(scale_set), vec![cluster.kubelet.resource_id.clone()]);
            let (status, _, body) =
                fixture.arm(Method::GET, &format!("{scale_set}?api-version=2024-07-01"), None).await;
            assert_eq!((status, body["identity"]["type"].as_str()), (StatusCode::OK, Some("UserAssigned")));
            let attached = &body["identity"]["userAssignedIdentities"][&cluster.kubelet.resource_id];
            assert_eq!(attached["principalId"].as_str(), Some(cluster.kubelet.object_id.as_str()));
            assert_eq!(attached["clientId"].as_str(), Some(cluster.kubelet.client_id.as_str()));
        }
    }

    #[tokio::test]
    async fn identity_delete_answers_200_then_204_and_the_principal_is_gone() {
        let fixture = mk_fixture(mk_config()).await;
        fixture.sim.add_resource_group(SUBSCRIPTION, "rg1");
        let identity_url = format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/gmsa-mi?api-version=2023-01-31"
        );
        let (_, _, identity) = fixture.arm(Method::PUT, &identity_url, Some(json!({"location": "eastus"}))).await;
        let principal = identity["properties"]["principalId"].as_str().expect("principalId").to_string();
        let before = fixture.sim.mutations().len();

        let (status, _, body) = fixture.arm(Method::DELETE, &identity_url, None).await;
        assert_eq!((status, body), (StatusCode::OK, Value::Null));
        let (status, _, body) = fixture.arm(Method::DELETE, &identity_url, None).await;
        assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
        let (status, _, body) = fixture.arm(Method::GET, &identity_url, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("ResourceNotFound")));
        let deletes: Vec<Operation> = fixture.sim.mutations()[before..].iter().map(|m| m.operation).collect();
        assert_eq!(deletes, vec![Operation::IdentityDelete], "only the real delete is a mutation");

        // A deleted identity is no longer an Entra principal: role assignments to it are refused.
        let assignment_url = format!(
            "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
            "0b0c0d0e-0000-4000-8000-000000000001"
        );
        let properties = json!({"properties": {
            "roleDefinitionId": azsim::role_definition_id(SUBSCRIPTION, azsim::KEY_VAULT_SECRETS_USER),
            "principalId": principal}});
        let (status, _, body) = fixture.arm(Method::PUT, &assignment_url, Some(properties)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("PrincipalNotFound")));
    }
}

mod soft_delete {
    use super::*;

    async fn mk_vault(fixture: &Fixture, seed: VaultSeed) -> azsim::SeededVault {
        fixture.sim.add_vault(SUBSCRIPTION, "rg1", "kv1", seed).await.expect("vault")
    }

    fn mk_officer_policy(tenant_id: &str) -> AccessPolicyEntry {
        AccessPolicyEntry {
            tenant_id: tenant_id.to_string(),
            object_id: AGENT_OBJECT.to_string(),
            application_id: None,
            permissions: Permissions {
                secrets: ["get", "set", "list", "delete", "purge"].iter().map(|p| p.to_string()).collect(),
                ..Permissions::default()
            },
        }
    }

    #[tokio::test]
    async fn delete_keeps_a_deleted_secret_until_purge_and_blocks_the_name_meanwhile() {
        let fixture = mk_fixture(mk_config()).await;
        let tenant = fixture.sim.tenant_id();
        let vault =
            mk_vault(&fixture, VaultSeed { access_policies: vec![mk_officer_policy(&tenant)], ..VaultSeed::default() })
                .await;
        let token = request_token(&fixture.http, &fixture.sim, "https://vault.azure.net/.default").await;
        let secret_url = format!("{}secrets/cred?api-version=7.5", vault.vault_uri);
        let deleted_url = format!("{}deletedsecrets/cred?api-version=7.5", vault.vault_uri);
        for value in ["CONTOSO\\svc:first", "CONTOSO\\svc:second"] {
            let (status, _, _) =
                fixture.call(Method::PUT, &secret_url, Some(&token), Some(json!({"value": value}))).await;
            assert_eq!(status, StatusCode::OK);
        }
        let latest = fixture.sim.secret_versions(&vault.id, "cred").last().expect("latest").id.clone();

        let (status, _, body) = fixture.call(Method::DELETE, &secret_url, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["recoveryId"].as_str(), Some(format!("{}deletedsecrets/cred", vault.vault_uri).as_str()));
        assert_eq!(body["id"].as_str(), Some(latest.as_str()));
        assert!(body["deletedDate"].is_i64() && body["scheduledPurgeDate"].is_i64(), "{body}");
        assert_eq!(body["attributes"]["recoveryLevel"], "Recoverable+Purgeable");
        assert!(body.get("value").is_none(), "a deleted secret's value is never returned");
        assert!(fixture.sim.secret_versions(&vault.id, "cred").is_empty());
        assert_eq!(fixture.sim.deleted_secret_names(&vault.id), vec!["cred".to_string()]);

        let (status, _, body) = fixture.call(Method::GET, &secret_url, Some(&token), None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("SecretNotFound")));
        let (status, _, body) =
            fixture.call(Method::PUT, &secret_url, Some(&token), Some(json!({"value": "again"}))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("Conflict")));
        let (status, _, body) = fixture.call(Method::GET, &deleted_url, Some(&token), None).await;
        assert_eq!((status, body["recoveryId"].is_string()), (StatusCode::OK, true));
        assert!(body.get("value").is_none());

        let (status, _, body) = fixture.call(Method::DELETE, &deleted_url, Some(&token), None).await;
        assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
        assert!(fixture.sim.deleted_secret_names(&vault.id).is_empty());
        let (status, _, body) = fixture.call(Method::DELETE, &deleted_url, Some(&token), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], json!({"code": "SecretNotFound", "message": "Deleted Secret not found: cred"}));
        let (status, _, body) = fixture.call(Method::DELETE, &secret_url, Some(&token), None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("SecretNotFound")));

        let operations: Vec<Operation> = fixture.sim.mutations().iter().map(|m| m.operation).collect();
        assert_eq!(
            operations,
            vec![Operation::SecretSet, Operation::SecretSet, Operation::SecretDelete, Operation::DeletedSecretPurge]
        );
        let (status, _, _) = fixture.call(Method::PUT, &secret_url, Some(&token), Some(json!({"value": "v"}))).await;
        assert_eq!(status, StatusCode::OK, "the name is free again after the purge");
    }

    #[tokio::test]
    async fn delete_and_purge_need_their_own_permissions() {
        let fixture = mk_fixture(mk_config()).await;
        let tenant = fixture.sim.tenant_id();
        let mut policy = mk_officer_policy(&tenant);
        policy.permissions.secrets = vec!["get".to_string(), "set".to_string()];
        let vault = mk_vault(&fixture, VaultSeed { access_policies: vec![policy], ..VaultSeed::default() }).await;
        let token = request_token(&fixture.http, &fixture.sim, "https://vault.azure.net/.default").await;
        let secret_url = format!("{}secrets/cred?api-version=7.5", vault.vault_uri);
        fixture.call(Method::PUT, &secret_url, Some(&token), Some(json!({"value": "v"}))).await;
        let (status, _, body) = fixture.call(Method::DELETE, &secret_url, Some(&token), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("secrets delete permission")), "{body}");
    }

    #[tokio::test]
    async fn snapshot_shows_secrets_by_hash_and_is_stable() {
        let fixture = mk_fixture(mk_config()).await;
        let tenant = fixture.sim.tenant_id();
        let cluster = fixture.mk_cluster("aks1");
        let vault =
            mk_vault(&fixture, VaultSeed { access_policies: vec![mk_officer_policy(&tenant)], ..VaultSeed::default() })
                .await;
        let empty = fixture.sim.snapshot();
        assert_eq!(empty, fixture.sim.snapshot(), "two snapshots of the same world are equal");
        assert_eq!(empty["secrets"], json!({}));
        assert!(empty["clusters"][cluster.id.to_ascii_lowercase()]["properties"].get("provisioningState").is_none());

        let token = request_token(&fixture.http, &fixture.sim, "https://vault.azure.net/.default").await;
        let secret_url = format!("{}secrets/cred?api-version=7.5", vault.vault_uri);
        fixture.call(Method::PUT, &secret_url, Some(&token), Some(json!({"value": "hunter2-secret"}))).await;
        let with_secret = fixture.sim.snapshot();
        let text = with_secret.to_string();
        assert!(!text.contains("hunter2"), "the snapshot never carries a value");
        let versions = &with_secret["secrets"][vault.id.to_ascii_lowercase()]["cred"]["versions"];
        assert!(versions[0]["valueHash"].as_str().is_some_and(|hash| hash.starts_with("sha256:")), "{versions}");
        assert_ne!(with_secret, empty);

        fixture.call(Method::DELETE, &secret_url, Some(&token), None).await;
        let deleted = fixture.sim.snapshot();
        assert_eq!(deleted["secrets"], json!({}));
        assert!(deleted["deletedSecrets"][vault.id.to_ascii_lowercase()]["cred"].is_object());
        fixture
            .call(
                Method::DELETE,
                &format!("{}deletedsecrets/cred?api-version=7.5", vault.vault_uri),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(fixture.sim.snapshot(), empty, "delete + purge leaves the world as it was");
    }
}

mod official_sdk {
    use super::*;
    use std::sync::Arc;

    use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
    use azure_core::http::{ClientOptions, Transport};
    use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
    use azure_security_keyvault_secrets::models::SetSecretParameters;
    use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

    fn mk_client_options(fixture: &Fixture) -> ClientOptions {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = fixture.sim.authority_host();
        ClientOptions {
            transport: Some(Transport::new(Arc::new(fixture.http.clone()))),
            cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
            ..ClientOptions::default()
        }
    }

    #[tokio::test]
    async fn secret_client_sets_and_gets_through_the_challenge() {
        let fixture = mk_fixture(mk_config()).await;
        let tenant = fixture.sim.tenant_id();
        let policy = AccessPolicyEntry {
            tenant_id: tenant.clone(),
            object_id: AGENT_OBJECT.to_string(),
            application_id: None,
            permissions: Permissions { secrets: vec!["get".into(), "set".into()], ..Permissions::default() },
        };
        let vault = fixture
            .sim
            .add_vault(SUBSCRIPTION, "rg1", "kv1", VaultSeed { access_policies: vec![policy], ..VaultSeed::default() })
            .await
            .expect("vault");
        let credential = ClientSecretCredential::new(
            &tenant,
            AGENT_CLIENT.to_string(),
            AGENT_SECRET.to_string().into(),
            Some(ClientSecretCredentialOptions { client_options: mk_client_options(&fixture) }),
        )
        .expect("credential");
        let options = SecretClientOptions {
            client_options: mk_client_options(&fixture),
            verify_challenge_resource: Some(false),
            ..SecretClientOptions::default()
        };
        let client = SecretClient::new(&vault.vault_uri, credential.clone(), Some(options)).expect("client");
        let parameters =
            SetSecretParameters { value: Some("CONTOSO\\svc:pw2".to_string()), ..SetSecretParameters::default() };
        let set = client
            .set_secret("GMSADomainUserCred", parameters.try_into().expect("content"), None)
            .await
            .expect("set_secret")
            .into_model()
            .expect("model");
        let id = set.id.expect("versioned id");
        let version = id.rsplit('/').next().expect("version").to_string();
        assert_eq!(
            fixture.sim.secret_value(&vault.id, "GMSADomainUserCred", Some(&version)).as_deref(),
            Some("CONTOSO\\svc:pw2")
        );
        let got = client.get_secret("GMSADomainUserCred", None).await.expect("get_secret").into_model().expect("model");
        assert_eq!(got.value.as_deref(), Some("CONTOSO\\svc:pw2"));
        assert_eq!(fixture.sim.secret_versions(&vault.id, "GMSADomainUserCred").len(), 1);

        // With the SDK's default verification the loopback host cannot match ".vault.azure.net".
        let strict =
            SecretClientOptions { client_options: mk_client_options(&fixture), ..SecretClientOptions::default() };
        let strict_client = SecretClient::new(&vault.vault_uri, credential, Some(strict)).expect("client");
        let error = strict_client.get_secret("GMSADomainUserCred", None).await.expect_err("challenge resource check");
        assert!(format!("{error:?}").contains("doesn't match"), "{error:?}");
    }
}

#[path = "wire/official_clients.rs"]
mod official_clients;
