//! The QuDAG tools through `/mcp`: every tool with good and bad arguments, their results
//! checked against the output schemas they list, resources and prompts, and the vault's
//! isolation between principals (with real tokens from the developer key).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use qudag_application::ports::AuditFilter;
use qudag_test_support::temp::temp_dir;
use qudag_tests::{TestApp, spawn_app_with};
use serde_json::{Value, json};

/// A tool call's result.
#[derive(Debug)]
struct Called {
    is_error: bool,
    structured: Value,
    text: String,
}

struct Client<'a> {
    app: &'a TestApp,
    token: Option<String>,
    schemas: std::collections::HashMap<String, Value>,
}

impl<'a> Client<'a> {
    async fn new(app: &'a TestApp, token: Option<String>) -> Self {
        let mut client = Self { app, token, schemas: Default::default() };
        let listed = client.request("tools/list", json!({})).await;
        for tool in listed["result"]["tools"].as_array().unwrap() {
            client.schemas.insert(tool["name"].as_str().unwrap().to_owned(), tool["outputSchema"].clone());
        }
        client
    }

    async fn request(&self, method: &str, params: Value) -> Value {
        let mut req = self.app.stateless(1, method, params);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{method}");
        resp.json().await.unwrap()
    }

    /// Call `tool`; a successful result's `structuredContent` must validate against the
    /// tool's listed output schema.
    async fn call(&self, tool: &str, arguments: Value) -> Called {
        let body = self.request("tools/call", json!({"name": tool, "arguments": arguments})).await;
        let result = &body["result"];
        assert!(result.is_object(), "{tool}: not a result: {body}");
        let called = Called {
            is_error: result["isError"] == json!(true),
            structured: result["structuredContent"].clone(),
            text: result["content"][0]["text"].as_str().unwrap_or_default().to_owned(),
        };
        if !called.is_error {
            let schema = self.schemas.get(tool).unwrap_or_else(|| panic!("{tool} is not listed"));
            let validator = jsonschema::validator_for(schema).unwrap();
            let errors: Vec<String> = validator.iter_errors(&called.structured).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{tool}: structuredContent does not match its outputSchema: {errors:?}\n{}",
                called.structured
            );
        }
        called
    }

    async fn ok(&self, tool: &str, arguments: Value) -> Value {
        let c = self.call(tool, arguments).await;
        assert!(!c.is_error, "{tool} failed: {}", c.text);
        assert!(!c.text.is_empty(), "{tool}: no text rendering");
        c.structured
    }

    /// The call fails as a tool error whose text names `argument`.
    async fn bad(&self, tool: &str, arguments: Value, argument: &str) -> String {
        let c = self.call(tool, arguments).await;
        assert!(c.is_error, "{tool} should have failed, got {}", c.structured);
        assert!(c.text.contains(&format!("`{argument}`")), "{tool}: error does not name `{argument}`: {}", c.text);
        c.text
    }
}

/// Every tool, in catalog order.
const TOOLS: [&str; 15] = [
    "execute_quantum_dag",
    "optimize_circuit",
    "analyze_complexity",
    "benchmark_performance",
    "quantum_key_exchange",
    "quantum_sign",
    "quantum_verify",
    "vault_quantum_store",
    "vault_quantum_retrieve",
    "vault_quantum_list",
    "vault_quantum_delete",
    "dark_address_resolve",
    "dark_address_register",
    "peer_discovery",
    "system_health_check",
];

fn bell() -> Value {
    json!({"qubits": 2, "gates": [{"type": "H", "target": 0}, {"type": "CNOT", "control": 0, "target": 1}]})
}

#[tokio::test]
async fn every_tool_is_listed_with_both_schemas() {
    let app = spawn_app_with(|_| {}).await;
    let client = Client::new(&app, None).await;
    let names: BTreeSet<&str> = client.schemas.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = TOOLS.into();
    assert_eq!(names, expected);
    let listed = client.request("tools/list", json!({})).await;
    for tool in listed["result"]["tools"].as_array().unwrap() {
        assert_eq!(tool["inputSchema"]["type"], "object", "{}", tool["name"]);
        assert_eq!(tool["outputSchema"]["type"], "object", "{}", tool["name"]);
        jsonschema::validator_for(&tool["inputSchema"]).unwrap();
        jsonschema::validator_for(&tool["outputSchema"]).unwrap();
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn quantum_tools_compute_real_results() {
    let app = spawn_app_with(|s| s.tools.max_qubits = 12).await;
    let c = Client::new(&app, None).await;

    // Bell state: only 00 and 11, about half each; the same seed gives the same counts.
    let args = json!({"circuit": bell(), "execution": {"shots": 2000, "seed": 7}});
    let run = c.ok("execute_quantum_dag", args.clone()).await;
    let counts = run["results"]["measurements"].as_object().unwrap();
    assert_eq!(counts.keys().collect::<Vec<_>>(), ["00", "11"]);
    let zeros = counts["00"].as_u64().unwrap();
    assert_eq!(zeros + counts["11"].as_u64().unwrap(), 2000);
    assert!((800..1200).contains(&zeros), "{zeros}");
    assert!((run["results"]["probabilities"]["00"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert_eq!(c.ok("execute_quantum_dag", args).await["results"]["measurements"], run["results"]["measurements"]);
    assert_eq!(run["circuit_digest"].as_str().unwrap().len(), 64);

    // GHZ with an optimization level that cancels the redundant pair.
    let ghz = json!({"qubits": 3, "gates": [
        {"type": "H", "target": 0}, {"type": "X", "target": 2}, {"type": "X", "target": 2},
        {"type": "CNOT", "control": 0, "target": 1}, {"type": "cx", "target": [1, 2]}]});
    let run = c
        .ok("execute_quantum_dag", json!({"circuit": ghz, "execution": {"shots": 100, "optimization_level": "2"}}))
        .await;
    assert_eq!(run["metrics"]["gate_count"], 3);
    assert_eq!(run["metrics"]["original_gate_count"], 5);
    let keys: Vec<_> = run["results"]["probabilities"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["000", "111"]);

    // Bad arguments name the argument; nothing panics.
    c.bad(
        "execute_quantum_dag",
        json!({"circuit": {"qubits": 2, "gates": [{"type": "H", "target": 0}, {"type": "X", "target": 5}]}}),
        "circuit.gates[1].target",
    )
    .await;
    c.bad(
        "execute_quantum_dag",
        json!({"circuit": {"qubits": 2, "gates": [{"type": "FOO", "target": 0}]}}),
        "circuit.gates[0].type",
    )
    .await;
    c.bad("execute_quantum_dag", json!({"circuit": {"qubits": 13, "gates": []}}), "circuit.qubits").await;
    c.bad(
        "execute_quantum_dag",
        json!({"circuit": {"qubits": 2, "gates": [{"type": "RX", "target": 0}]}}),
        "circuit.gates[0].params",
    )
    .await;
    c.bad("execute_quantum_dag", json!({"circuit": bell(), "execution": {"shots": -1}}), "execution.shots").await;
    c.bad("execute_quantum_dag", json!({"circuit": bell(), "execution": {"backend": "qpu"}}), "execution.backend")
        .await;
    c.bad(
        "execute_quantum_dag",
        json!({"circuit": bell(), "execution": {"optimization_level": 9}}),
        "execution.optimization_level",
    )
    .await;
    c.bad("execute_quantum_dag", json!({}), "circuit").await;

    // Optimization: H H X → X, verified equivalent.
    let redundant = json!({"qubits": 1, "gates": [{"type": "H", "target": 0}, {"type": "H", "target": 0}, {"type": "X", "target": 0}]});
    let opt = c
        .ok("optimize_circuit", json!({"circuit": redundant, "optimization": {"level": 2, "preserve_semantics": true}}))
        .await;
    assert_eq!(opt["original"]["gate_count"], 3);
    assert_eq!(opt["optimized"]["gate_count"], 1);
    assert_eq!(opt["optimized"]["circuit"]["gates"][0]["type"], "X");
    assert_eq!(opt["verification"]["equivalent"], true);
    c.bad("optimize_circuit", json!({"circuit": bell(), "optimization": {"level": "max"}}), "optimization.level").await;

    // Analysis with hand-computed numbers.
    let t_circuit = json!({"qubits": 3, "gates": [
        {"type": "H", "target": 0}, {"type": "T", "target": 0}, {"type": "TDG", "target": 1},
        {"type": "CNOT", "control": 0, "target": 1}, {"type": "SWAP", "target": [1, 2]}]});
    let a = c.ok("analyze_complexity", json!({"circuit": t_circuit})).await;
    assert_eq!(a["gate_count"], 5);
    assert_eq!(a["depth"], 4);
    assert_eq!(a["two_qubit_gates"], 2);
    assert_eq!(a["t_count"], 2);
    assert_eq!(a["simulable"]["allowed"], true);
    c.bad("analyze_complexity", json!({"circuit": {"qubits": 0, "gates": []}}), "circuit.qubits").await;

    // Benchmark: warm-up plus timed runs with ordered percentiles.
    let b = c
        .ok(
            "benchmark_performance",
            json!({"circuit": bell(), "benchmark": {"iterations": 20, "warmup_iterations": 2}}),
        )
        .await;
    assert_eq!(b["iterations"], 20);
    let l = &b["latency_ms"];
    let v = |k: &str| l[k].as_f64().unwrap();
    assert!(v("min") <= v("p50") && v("p50") <= v("p95") && v("p95") <= v("p99") && v("p99") <= v("max"), "{l}");
    c.bad("benchmark_performance", json!({"circuit": bell(), "benchmark": {"iterations": 0}}), "benchmark.iterations")
        .await;
    c.bad("benchmark_performance", json!({"circuit": {"qubits": 12, "gates": vec![json!({"type": "H", "target": 0}); 5000]}, "benchmark": {"iterations": 1000}}), "benchmark.iterations").await;

    let dag = c.request("resources/read", json!({"uri": "qudag://status/dag"})).await;
    let status: Value = serde_json::from_str(dag["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert!(status["executions"].as_u64().unwrap() >= 25, "{status}");
    assert!(status["rejected"].as_u64().unwrap() >= 3, "{status}");
    app.stop().await.unwrap();
}

/// Work is counted for every run (a circuit without gates is still a pass over its state
/// vector), and results list a bounded number of outcomes however many there are.
#[tokio::test]
async fn simulation_work_and_results_are_bounded() {
    let app = spawn_app_with(|s| {
        s.tools.max_qubits = 14;
        s.tools.max_amplitude_updates = 1 << 20;
    })
    .await;
    let c = Client::new(&app, None).await;
    // 2¹² amplitudes × 2 000 runs, without a gate: counted as nothing before.
    let text = c
        .bad(
            "benchmark_performance",
            json!({"circuit": {"qubits": 12, "gates": []}, "benchmark": {"iterations": 1000, "warmup_iterations": 1000}}),
            "benchmark.iterations",
        )
        .await;
    assert!(text.contains("QUDAG_MAX_AMPLITUDE_UPDATES = 1048576"), "{text}");
    assert!(text.contains("8192000 amplitude updates"), "{text}");

    // H on each of 14 qubits: 16 384 equally likely outcomes, 4096 listed.
    let gates: Vec<Value> = (0..14).map(|q| json!({"type": "H", "target": q})).collect();
    let run = c
        .ok(
            "execute_quantum_dag",
            json!({"circuit": {"qubits": 14, "gates": gates}, "execution": {"shots": 50000, "seed": 1}}),
        )
        .await;
    let results = &run["results"];
    assert_eq!(results["probabilities"].as_object().unwrap().len(), 4096);
    assert_eq!(results["probabilities_truncated"], true);
    let counts = results["measurements"].as_object().unwrap();
    assert!(counts.len() <= 4096, "{} outcomes listed", counts.len());
    let listed: u64 = counts.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(listed + results["unlisted_shots"].as_u64().unwrap(), 50000);
    assert!(results["unlisted_shots"].as_u64().unwrap() > 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn key_exchange_sign_and_verify() {
    let app = spawn_app_with(|_| {}).await;
    let c = Client::new(&app, None).await;
    for algorithm in ["ml-kem-512", "ml-kem-768", "ml-kem-1024"] {
        let first = c.ok("quantum_key_exchange", json!({"algorithm": algorithm, "role": "initiator"})).await;
        assert!(first.get("private_key").is_none(), "private keys are not returned unasked");
        let handle = first["key_handle"].as_str().unwrap();
        let resp = c
            .ok("quantum_key_exchange", json!({"algorithm": algorithm, "role": "responder", "public_key": first["public_key"], "options": {"derive_shared_secret": true}}))
            .await;
        let back = c
            .ok("quantum_key_exchange", json!({"algorithm": algorithm, "role": "initiator", "key_handle": handle, "encapsulated_key": resp["encapsulated_key"], "options": {"derive_shared_secret": true, "store_in_vault": false}}))
            .await;
        assert_eq!(back["shared_secret"], resp["shared_secret"], "{algorithm}: both sides agree");
        assert_eq!(back["shared_secret_id"], resp["shared_secret_id"]);
        assert!(resp["shared_secret_entry"].is_string(), "stored in the vault by default");
        // A flipped bit in the ciphertext: implicit rejection, a different secret.
        let mut ct = B64.decode(resp["encapsulated_key"].as_str().unwrap()).unwrap();
        ct[10] ^= 1;
        let tampered = c
            .ok("quantum_key_exchange", json!({"algorithm": algorithm, "role": "initiator", "key_handle": handle, "encapsulated_key": B64.encode(&ct), "options": {"store_in_vault": false}}))
            .await;
        assert_ne!(tampered["shared_secret_id"], resp["shared_secret_id"]);
    }
    c.bad("quantum_key_exchange", json!({"algorithm": "ml-kem-768", "role": "responder"}), "public_key").await;
    c.bad(
        "quantum_key_exchange",
        json!({"algorithm": "ml-kem-768", "role": "responder", "public_key": B64.encode([1u8; 10])}),
        "public_key",
    )
    .await;
    c.bad("quantum_key_exchange", json!({"algorithm": "ml-kem-2048", "role": "initiator"}), "algorithm").await;
    c.bad("quantum_key_exchange", json!({"algorithm": "ml-kem-768", "role": "observer"}), "role").await;
    c.bad(
        "quantum_key_exchange",
        json!({"algorithm": "ml-kem-768", "role": "initiator", "encapsulated_key": "AAAA"}),
        "key_handle",
    )
    .await;
    c.bad(
        "quantum_key_exchange",
        json!({"algorithm": "ml-kem-768", "role": "initiator", "key_handle": "vlt_00", "encapsulated_key": "AAAA"}),
        "key_handle",
    )
    .await;

    for algorithm in ["ml-dsa-44", "ml-dsa-65", "ml-dsa-87"] {
        let signed = c
            .ok("quantum_sign", json!({"data": "hello", "algorithm": algorithm, "options": {"context": "test"}}))
            .await;
        let verify = |sig: &str, ctx: &str, data: &str| json!({"data": data, "algorithm": algorithm, "signature": sig, "public_key": signed["public_key"], "options": {"context": ctx}});
        let sig = signed["signature"].as_str().unwrap();
        assert_eq!(c.ok("quantum_verify", verify(sig, "test", "hello")).await["valid"], true);
        assert_eq!(c.ok("quantum_verify", verify(sig, "other", "hello")).await["valid"], false);
        assert_eq!(c.ok("quantum_verify", verify(sig, "test", "hellO")).await["valid"], false);
        let mut flipped = B64.decode(sig).unwrap();
        flipped[100] ^= 0x20;
        assert_eq!(c.ok("quantum_verify", verify(&B64.encode(&flipped), "test", "hello")).await["valid"], false);
        // Signing again with the handle uses the same key.
        let again = c
            .ok(
                "quantum_sign",
                json!({"data": "00ff", "encoding": "hex", "algorithm": algorithm, "key_handle": signed["key_handle"]}),
            )
            .await;
        assert_eq!(again["public_key"], signed["public_key"]);
        assert!(again.get("private_key").is_none());
    }
    c.bad(
        "quantum_sign",
        json!({"data": "x", "algorithm": "ml-dsa-65", "options": {"context": "c".repeat(256)}}),
        "options.context",
    )
    .await;
    c.bad("quantum_sign", json!({"data": "zz", "encoding": "hex", "algorithm": "ml-dsa-65"}), "data").await;
    c.bad(
        "quantum_sign",
        json!({"data": "x", "algorithm": "ml-dsa-65", "private_key": B64.encode([7u8; 5])}),
        "private_key",
    )
    .await;
    c.bad("quantum_sign", json!({"data": "x"}), "algorithm").await;
    c.bad(
        "quantum_verify",
        json!({"data": "x", "algorithm": "ml-dsa-65", "signature": "AAAA", "public_key": "AAAA"}),
        "public_key",
    )
    .await;
    app.stop().await.unwrap();
}

fn dev_settings(dir: &std::path::Path) -> impl FnOnce(&mut qudag_mcp::Settings) + use<> {
    let key = dir.join("dev.key");
    move |s| {
        s.auth.dev_mode = true;
        s.auth.dev_key_path = Some(key);
    }
}

fn token(dir: &std::path::Path, role: &str, subject: &str) -> String {
    let mut settings = qudag_mcp::Settings::default();
    dev_settings(dir)(&mut settings);
    qudag_mcp::dev::token(&settings, &[role.to_owned()], None, Some(subject), 600).unwrap()
}

#[tokio::test]
async fn the_vault_keeps_each_principal_to_itself() {
    let tmp = temp_dir("tools");
    let dir = tmp.path();
    let app = spawn_app_with(dev_settings(dir)).await;
    let alice = Client::new(&app, Some(token(dir, "developer", "alice"))).await;
    let bob = Client::new(&app, Some(token(dir, "admin", "bob"))).await;

    let secret = "correct horse battery staple";
    let stored = bob
        .ok("vault_quantum_store", json!({"secret": {"label": "db", "data": secret, "category": "credential", "tags": ["prod"]}, "encryption": {"algorithm": "ml-kem-1024"}}))
        .await;
    let id = stored["entry_id"].as_str().unwrap();
    assert_eq!(stored["algorithm"], "ml-kem-1024");
    assert_eq!(stored["size"], secret.len());
    let back = bob.ok("vault_quantum_retrieve", json!({"entry": {"entry_id": id}})).await;
    assert_eq!(back["data"], secret);
    assert_eq!(bob.ok("vault_quantum_retrieve", json!({"entry": {"label": "db"}})).await["data"], secret);
    let binary =
        bob.ok("vault_quantum_store", json!({"secret": {"label": "bin", "data": "AP8A", "encoding": "base64"}})).await;
    let back = bob.ok("vault_quantum_retrieve", json!({"entry": {"entry_id": binary["entry_id"]}})).await;
    assert_eq!((back["data"].as_str(), back["encoding"].as_str()), (Some("AP8A"), Some("base64")));

    // Carol, an operator, may read vaults — but only her own.
    let carol = Client::new(&app, Some(token(dir, "operator", "carol"))).await;
    let refused = carol.call("vault_quantum_retrieve", json!({"entry": {"entry_id": id}})).await;
    assert!(refused.is_error && refused.text.contains("no such vault entry"), "{}", refused.text);
    assert!(!refused.text.contains(secret));
    let listed = carol.ok("vault_quantum_list", json!({})).await;
    assert_eq!(listed["entries"], json!([]));
    // The developer role has no vault permission at all: refused by authorization.
    let denied = app
        .tool_call(9, "vault_quantum_list", json!({}))
        .bearer_auth(alice.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    let denied: Value = denied.json().await.unwrap();
    assert_eq!(denied["error"]["data"]["requiredPermission"], "vault:read", "{denied}");

    let audit = app.audit.query(&AuditFilter::default(), None, 1000).await.unwrap();
    let denial = audit.events.iter().find(|e| e.record.action.as_str() == "vault.access_denied").expect("audited");
    assert_eq!(denial.record.target.as_deref(), Some(id));
    assert!(denial.record.actor.as_deref().unwrap().ends_with("#carol"));
    let everything = serde_json::to_string(&audit.events).unwrap();
    assert!(!everything.contains(secret), "a vault plaintext reached the audit trail");

    // Listing, paging and deletion; labels are unique per owner; reserved key categories.
    for i in 0..5 {
        bob.ok("vault_quantum_store", json!({"secret": {"label": format!("item-{i}"), "data": "x"}})).await;
    }
    let page = bob.ok("vault_quantum_list", json!({"limit": 4})).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 4);
    let rest = bob.ok("vault_quantum_list", json!({"limit": 4, "cursor": page["next_cursor"]})).await;
    assert_eq!(rest["entries"].as_array().unwrap().len(), 3);
    assert!(rest["next_cursor"].is_null());
    bob.bad("vault_quantum_store", json!({"secret": {"label": "db", "data": "again"}}), "secret.label").await;
    bob.bad(
        "vault_quantum_store",
        json!({"secret": {"label": "h", "data": "x"}, "encryption": {"algorithm": "hqc-128"}}),
        "encryption.algorithm",
    )
    .await;
    bob.bad(
        "vault_quantum_store",
        json!({"secret": {"label": "k", "data": "x", "category": "key/ml-dsa-65"}}),
        "secret.category",
    )
    .await;
    bob.bad("vault_quantum_store", json!({"secret": {"label": "big", "data": "x".repeat(70_000)}}), "secret.data")
        .await;
    bob.bad(
        "vault_quantum_store",
        json!({"secret": {"label": "old", "data": "x"}, "access_control": {"expiry_time": "2001-01-01T00:00:00Z"}}),
        "access_control.expiry_time",
    )
    .await;
    bob.bad("vault_quantum_store", json!({"secret": {"data": "x"}}), "secret.label").await;
    bob.bad("vault_quantum_retrieve", json!({"entry": {}}), "entry").await;
    bob.bad("vault_quantum_list", json!({"limit": 0}), "limit").await;
    bob.bad("vault_quantum_delete", json!({"entry": {"entry_id": "a", "label": "b"}}), "entry").await;
    bob.bad("vault_quantum_delete", json!({"entry": {"entry_id": "vlt_missing"}}), "entry.entry_id").await;
    let signed = bob.ok("quantum_sign", json!({"data": "x", "algorithm": "ml-dsa-65"})).await;
    bob.bad("vault_quantum_retrieve", json!({"entry": {"entry_id": signed["key_handle"]}}), "entry").await;
    let deleted = bob.ok("vault_quantum_delete", json!({"entry": {"label": "db"}})).await;
    assert_eq!(deleted["entry_id"], id);
    bob.bad("vault_quantum_retrieve", json!({"entry": {"entry_id": id}}), "entry.entry_id").await;

    // Only an admin may export a private key, and that is audited.
    let exported = bob
        .ok("quantum_sign", json!({"data": "x", "algorithm": "ml-dsa-44", "options": {"export_private_key": true}}))
        .await;
    assert!(exported["private_key"].is_string());
    let carol_sign = carol
        .call("quantum_sign", json!({"data": "x", "algorithm": "ml-dsa-44", "options": {"export_private_key": true}}))
        .await;
    assert!(carol_sign.is_error && carol_sign.text.contains("`options.export_private_key`"), "{}", carol_sign.text);
    let audit = app.audit.query(&AuditFilter::default(), None, 1000).await.unwrap();
    assert!(audit.events.iter().any(|e| e.record.action.as_str() == "admin.action"
        && e.record.details["action"] == "private_key.exported"));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn dark_names_are_signed_and_verified() {
    let app = spawn_app_with(|_| {}).await;
    let c = Client::new(&app, None).await;
    let signed = c.ok("quantum_sign", json!({"data": "x", "algorithm": "ml-dsa-65"})).await;
    let registered = c
        .ok("dark_address_register", json!({"name": "Alice.dark", "address": "quic://203.0.113.7:4001", "public_key": signed["public_key"], "key_algorithm": "ml-dsa-65"}))
        .await;
    assert_eq!(registered["name"], "alice.dark");
    let resolved = c.ok("dark_address_resolve", json!({"address": "alice.dark"})).await;
    assert_eq!(resolved["found"], true);
    assert_eq!(resolved["record"]["address"], "quic://203.0.113.7:4001");
    assert_eq!(resolved["record"]["public_key"], signed["public_key"]);
    assert_eq!(resolved["record"]["signature"]["verified"], true);
    // A resolver is not told who owns the name, nor given the signature that would let it
    // confirm a guess; the owner sees both when it registers.
    assert!(resolved["record"].get("owner").is_none(), "{resolved}");
    assert!(resolved["record"]["signature"].get("value").is_none(), "{resolved}");
    assert!(registered["owner"].is_string() && registered["signature"]["value"].is_string(), "{registered}");
    assert!(!resolved.to_string().contains(registered["owner"].as_str().unwrap()), "{resolved}");

    // The record's signature verifies against the server key published as a resource.
    let key = c.request("resources/read", json!({"uri": "qudag://keys/signing"})).await;
    let key: Value = serde_json::from_str(key["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(key["key_id"], resolved["record"]["signature"]["signer_key_id"]);

    assert_eq!(c.ok("dark_address_resolve", json!({"address": "nobody.dark"})).await["found"], false);
    c.bad("dark_address_resolve", json!({"address": "alice.com"}), "address").await;
    c.bad("dark_address_register", json!({"name": "bad_name.dark", "address": "a", "public_key": signed["public_key"], "key_algorithm": "ml-dsa-65"}), "name").await;
    c.bad(
        "dark_address_register",
        json!({"name": "b.dark", "address": "a b", "public_key": signed["public_key"], "key_algorithm": "ml-dsa-65"}),
        "address",
    )
    .await;
    c.bad(
        "dark_address_register",
        json!({"name": "b.dark", "address": "a", "public_key": signed["public_key"], "key_algorithm": "ml-dsa-44"}),
        "public_key",
    )
    .await;
    c.bad(
        "dark_address_register",
        json!({"name": "b.dark", "address": "a", "public_key": signed["public_key"], "key_algorithm": "rsa"}),
        "key_algorithm",
    )
    .await;
    app.stop().await.unwrap();
}

/// Names under a name belong to its owner; vault entries and names are bounded per
/// principal; a key is a vault entry, and making one needs `vault:write`.
#[tokio::test]
async fn ownership_and_per_principal_quotas() {
    let tmp = temp_dir("tools");
    let dir = tmp.path();
    let app = spawn_app_with({
        let dev = dev_settings(dir);
        move |s| {
            dev(s);
            s.tools.max_vault_entries_per_principal = 3;
            s.tools.max_names_per_principal = 2;
        }
    })
    .await;
    let alice = Client::new(&app, Some(token(dir, "admin", "alice"))).await;
    let mallory = Client::new(&app, Some(token(dir, "admin", "mallory"))).await;
    let key = alice.ok("quantum_sign", json!({"data": "x", "algorithm": "ml-dsa-65"})).await;
    let register = |name: &str| json!({"name": name, "address": "quic://203.0.113.7:4001", "public_key": key["public_key"], "key_algorithm": "ml-dsa-65"});

    // Sub-names: only the owner of alice.dark registers under it.
    alice.ok("dark_address_register", register("alice.dark")).await;
    let text = mallory.bad("dark_address_register", register("x.alice.dark"), "name").await;
    assert!(text.contains("alice.dark") && text.contains("someone else"), "{text}");
    mallory.bad("dark_address_register", register("a.b.alice.dark"), "name").await;
    assert_eq!(mallory.ok("dark_address_resolve", json!({"address": "x.alice.dark"})).await["found"], false);
    alice.ok("dark_address_register", register("x.alice.dark")).await;

    // Names per principal: alice holds two; a third is refused, a renewal is not.
    let third = alice.call("dark_address_register", register("other.dark")).await;
    assert!(third.is_error && third.text.contains("QUDAG_MAX_NAMES_PER_PRINCIPAL"), "{}", third.text);
    alice.ok("dark_address_register", register("alice.dark")).await;
    mallory.ok("dark_address_register", register("mallory.dark")).await;

    // Vault entries per principal, the minted key included.
    alice.ok("vault_quantum_store", json!({"secret": {"label": "a", "data": "x"}})).await;
    alice.ok("vault_quantum_store", json!({"secret": {"label": "b", "data": "x"}})).await;
    let over = alice.call("vault_quantum_store", json!({"secret": {"label": "c", "data": "x"}})).await;
    assert!(over.is_error && over.text.contains("QUDAG_MAX_VAULT_ENTRIES_PER_PRINCIPAL"), "{}", over.text);
    let over = alice.call("quantum_sign", json!({"data": "x", "algorithm": "ml-dsa-44"})).await;
    assert!(over.is_error && over.text.contains("QUDAG_MAX_VAULT_ENTRIES_PER_PRINCIPAL"), "{}", over.text);
    mallory.ok("vault_quantum_store", json!({"secret": {"label": "c", "data": "x"}})).await;
    alice.ok("vault_quantum_delete", json!({"entry": {"label": "a"}})).await;
    alice.ok("vault_quantum_store", json!({"secret": {"label": "c", "data": "x"}})).await;

    // Making a key is a vault write: a developer (crypto:execute, no vault:write) is refused
    // before anything is stored, and may still sign with its own key or exchange without
    // keeping the secret.
    let dev = Client::new(&app, Some(token(dir, "developer", "dev"))).await;
    let refused = dev.call("quantum_sign", json!({"data": "x", "algorithm": "ml-dsa-65"})).await;
    assert!(refused.is_error && refused.text.contains("vault:write"), "{}", refused.text);
    let refused = dev.call("quantum_key_exchange", json!({"algorithm": "ml-kem-768", "role": "initiator"})).await;
    assert!(refused.is_error && refused.text.contains("vault:write"), "{}", refused.text);
    let pk = mallory.ok("quantum_key_exchange", json!({"algorithm": "ml-kem-512", "role": "initiator"})).await;
    let kept = dev
        .call(
            "quantum_key_exchange",
            json!({"algorithm": "ml-kem-512", "role": "responder", "public_key": pk["public_key"]}),
        )
        .await;
    assert!(kept.is_error && kept.text.contains("store_in_vault"), "{}", kept.text);
    let exchanged = dev
        .ok("quantum_key_exchange", json!({"algorithm": "ml-kem-512", "role": "responder", "public_key": pk["public_key"], "options": {"store_in_vault": false}}))
        .await;
    assert!(exchanged["shared_secret_entry"].is_null());
    let own = mallory
        .ok("quantum_sign", json!({"data": "x", "algorithm": "ml-dsa-44", "options": {"export_private_key": true}}))
        .await;
    dev.ok("quantum_sign", json!({"data": "x", "algorithm": "ml-dsa-44", "private_key": own["private_key"]})).await;
    let status = alice.request("resources/read", json!({"uri": "qudag://status/vault"})).await;
    let counts: Value = serde_json::from_str(status["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(counts["owners"], 2, "the developer stored nothing: {counts}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn peers_health_resources_and_prompts() {
    let app = spawn_app_with(|s| s.tools.node_id = Some("node-test-1".into())).await;
    let c = Client::new(&app, None).await;
    let mut peers = Value::Null;
    for _ in 0..50 {
        peers = c.ok("peer_discovery", json!({})).await;
        if peers["count"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(peers["this_node"], "node-test-1");
    assert_eq!(peers["nodes"][0]["id"], "node-test-1");
    assert_eq!(peers["nodes"][0]["self"], true);
    assert_eq!(c.ok("peer_discovery", json!({"include_self": false})).await["count"], 0);
    c.bad("peer_discovery", json!({"include_self": "yes"}), "include_self").await;

    let health = c.ok("system_health_check", json!({"depth": "detailed"})).await;
    for component in
        ["session_store", "rate_limiter", "audit", "vault_store", "name_registry", "membership", "key_material"]
    {
        assert!(health["components"][component]["status"].is_string(), "{component} missing: {health}");
    }
    assert_eq!(health["components"]["key_material"]["status"], "degraded", "ephemeral keys are reported");
    let checks = health["self_test"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    assert!(checks.iter().all(|c| c["ok"] == true));
    c.bad("system_health_check", json!({"depth": "deep"}), "depth").await;

    let resources = c.request("resources/list", json!({})).await;
    let uris: BTreeSet<&str> =
        resources["result"]["resources"].as_array().unwrap().iter().map(|r| r["uri"].as_str().unwrap()).collect();
    assert_eq!(uris, ["qudag://keys/signing", "qudag://status/dag", "qudag://status/vault"].into());
    let vault = c.request("resources/read", json!({"uri": "qudag://status/vault"})).await;
    let vault: Value = serde_json::from_str(vault["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(vault["entries"], 0);

    let prompts = c.request("prompts/list", json!({})).await;
    let names: BTreeSet<&str> =
        prompts["result"]["prompts"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["build_circuit", "sign_and_verify"].into());
    let prompt = c.request("prompts/get", json!({"name": "sign_and_verify", "arguments": {"message": "hi"}})).await;
    assert!(prompt["result"]["messages"][0]["content"]["text"].as_str().unwrap().contains("quantum_sign"));
    let bad = c.request("prompts/get", json!({"name": "build_circuit", "arguments": {}})).await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    app.stop().await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_keeps_vault_entries_and_names_across_restarts_with_the_same_key_file() {
    use qudag_mcp::settings::DataStore;

    let database = qudag_test_support::postgres::FreshDatabase::create("tools");
    let url = database.url().to_owned();
    let tmp = temp_dir("tools");
    let dir = tmp.path();
    let key_file = dir.join("keys.json");
    let configure = |key_file: std::path::PathBuf, url: String| {
        move |s: &mut qudag_mcp::Settings| {
            s.tools.store = DataStore::Postgres;
            s.tools.key_file = Some(key_file);
            s.database.url = Some(url);
        }
    };

    let app = spawn_app_with(configure(key_file.clone(), url.clone())).await;
    let c = Client::new(&app, None).await;
    let stored = c.ok("vault_quantum_store", json!({"secret": {"label": "api", "data": "s3cr3t"}})).await;
    let signed = c.ok("quantum_sign", json!({"data": "x", "algorithm": "ml-dsa-65"})).await;
    c.ok("dark_address_register", json!({"name": "node.dark", "address": "quic://203.0.113.7:4001", "public_key": signed["public_key"], "key_algorithm": "ml-dsa-65"})).await;
    let health = c.ok("system_health_check", json!({})).await;
    assert_eq!(health["components"]["database"]["status"], "up", "{health}");
    assert_eq!(health["components"]["key_material"]["status"], "up");
    app.stop().await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Same database, same key file: everything is still there and still opens.
    let app = spawn_app_with(configure(key_file.clone(), url.clone())).await;
    let c = Client::new(&app, None).await;
    let back = c.ok("vault_quantum_retrieve", json!({"entry": {"entry_id": stored["entry_id"]}})).await;
    assert_eq!(back["data"], "s3cr3t");
    let again =
        c.ok("quantum_sign", json!({"data": "x", "algorithm": "ml-dsa-65", "key_handle": signed["key_handle"]})).await;
    assert_eq!(again["public_key"], signed["public_key"]);
    let resolved = c.ok("dark_address_resolve", json!({"address": "node.dark"})).await;
    assert_eq!(resolved["record"]["address"], "quic://203.0.113.7:4001");
    app.stop().await.unwrap();

    // Another key file: the sealed entries and signed records cannot be read, and say so.
    let app = spawn_app_with(configure(dir.join("other-keys.json"), url.clone())).await;
    let c = Client::new(&app, None).await;
    let refused = c.call("vault_quantum_retrieve", json!({"entry": {"entry_id": stored["entry_id"]}})).await;
    assert!(refused.is_error && refused.text.contains("integrity check"), "{}", refused.text);
    let refused = c.call("dark_address_resolve", json!({"address": "node.dark"})).await;
    assert!(refused.is_error && refused.text.contains("signature verification"), "{}", refused.text);
    app.stop().await.unwrap();
}

/// PostgreSQL cut off under the vault (through a TCP proxy): a vault call is not a tool
/// error but the request's retryable refusal — HTTP 503, JSON-RPC -31003, `Retry-After` —
/// counted in `qudag_backend_errors_total{component="vault_store"}`, and so is a read of the
/// vault counts (`qudag://status/vault`, read from the same store); once the database is
/// back the same call and the same read succeed.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_vault_call_or_read_while_postgres_is_unreachable_is_answered_503_and_counted() {
    use qudag_application::testkit::proxy::TcpProxy;
    use qudag_mcp::settings::DataStore;

    let database = qudag_test_support::postgres::FreshDatabase::create("tools");
    let (scheme_user, rest) = database.url().split_once('@').unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let proxy = TcpProxy::start(host).await;
    let proxied = format!("{scheme_user}@{}/{path}", proxy.addr());
    let tmp = temp_dir("tools");
    let key_file = tmp.path().join("keys.json");
    let app = spawn_app_with(move |s| {
        s.tools.store = DataStore::Postgres;
        s.tools.key_file = Some(key_file);
        s.database.url = Some(proxied);
    })
    .await;
    let c = Client::new(&app, None).await;
    c.ok("vault_quantum_store", json!({"secret": {"label": "api", "data": "s3cr3t"}})).await;

    let refused = |resp: reqwest::Response, id: u64| async move {
        assert_eq!(resp.status(), 503);
        let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        assert!(retry_after.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)), "no Retry-After");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["id"], id, "{body}");
        assert_eq!(body["error"]["code"], -31003, "{body}");
        assert_eq!(body["error"]["message"], "vault_store unavailable", "{body}");
        assert!(body.get("result").is_none(), "an outage is no result: {body}");
    };
    let backend_errors = || async {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("qudag_backend_errors_total{component=\"vault_store\"} "))
            .map(|n| n.parse::<u64>().unwrap())
    };

    proxy.cut();
    refused(app.tool_call(7, "vault_quantum_list", json!({})).send().await.unwrap(), 7).await;
    assert_eq!(backend_errors().await, Some(1));
    let read = app.stateless(8, "resources/read", json!({"uri": "qudag://status/vault"}));
    refused(read.send().await.unwrap(), 8).await;
    assert_eq!(backend_errors().await, Some(2));

    proxy.restore();
    let listed = c.ok("vault_quantum_list", json!({})).await;
    assert_eq!(listed["entries"][0]["label"], "api");
    let counts = c.request("resources/read", json!({"uri": "qudag://status/vault"})).await;
    let text = counts["result"]["contents"][0]["text"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), json!({"entries": 1, "owners": 1}), "{counts}");
    app.stop().await.unwrap();
    drop(proxy);
}

/// Which roles may call which tool: a literal table, checked through the transport with a
/// token per role (each carrying every scope its role can use). Allowed calls get an
/// answer (here a tool error, for the empty arguments); refused ones HTTP 403.
#[tokio::test]
async fn roles_by_tools() {
    // One row per role, one character per tool above: Y allowed, - refused.
    #[rustfmt::skip]
    const TABLE: [(&str, &str); 5] = [
        ("admin",     "YYYYYYYYYYYYYYY"),
        ("developer", "YYYYYYY-------Y"),
        ("operator",  "Y-YYYYY-YY-Y-YY"),
        ("auditor",   "--Y-----YY-Y-YY"),
        ("readonly",  "--------------Y"),
    ];
    let tmp = temp_dir("tools");
    let dir = tmp.path();
    let app = spawn_app_with(dev_settings(dir)).await;
    let mut mismatches = Vec::new();
    for (role, row) in TABLE {
        let token = token(dir, role, &format!("table-{role}"));
        for (tool, expected) in TOOLS.iter().zip(row.chars()) {
            let resp = app.tool_call(1, tool, json!({"circuit": 1})).bearer_auth(&token).send().await.unwrap();
            let got = match resp.status().as_u16() {
                200 => 'Y',
                403 => '-',
                other => panic!("{role} {tool}: HTTP {other}"),
            };
            if got != expected {
                mismatches.push(format!("{role} {tool}: expected {expected}, got {got}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn auditors_read_the_audit_trail_over_admin_audit() {
    let tmp = temp_dir("tools");
    let dir = tmp.path();
    let app = spawn_app_with(dev_settings(dir)).await;
    let dev = Client::new(&app, Some(token(dir, "developer", "dana"))).await;
    for _ in 0..3 {
        dev.ok("analyze_complexity", json!({"circuit": bell()})).await;
    }
    let get = |role: &str, query: &str| {
        let token = token(dir, role, &format!("reader-{role}"));
        let url = app.url(&format!("/admin/audit{query}"));
        let client = app.client.clone();
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    let resp = get("auditor", "?action=tool.called&limit=2").await;
    assert_eq!(resp.status(), 200);
    let page: Value = resp.json().await.unwrap();
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["action"] == "tool.called" && e["hash"].as_str().unwrap().len() == 64));
    assert!(events[0]["seq"].as_u64() < events[1]["seq"].as_u64(), "oldest first");
    let cursor = page["next_cursor"].as_str().expect("more pages");
    let next: Value =
        get("auditor", &format!("?action=tool.called&limit=2&cursor={cursor}")).await.json().await.unwrap();
    assert!(next["events"][0]["seq"].as_u64() > events[1]["seq"].as_u64());
    let mine: Value = get("admin", "?actor=urn:qudag-mcp:dev%23dana&outcome=success").await.json().await.unwrap();
    let mine = mine["events"].as_array().unwrap();
    assert!(mine.len() >= 3 && mine.iter().all(|e| e["actor"] == "urn:qudag-mcp:dev#dana"), "{mine:?}");

    assert_eq!(get("developer", "").await.status(), 403);
    let bad = get("auditor", "?from=yesterday").await;
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["reason"], "bad_from", "{bad}");
    let forged = get("auditor", "?cursor=forged").await;
    assert_eq!(forged.status(), 404, "a cursor this server did not hand out names no page");
    assert_eq!(forged.json::<Value>().await.unwrap()["reason"], "unknown_cursor");
    // Empty parameters are absent; a reversed range is an empty one.
    // (Each read is audited too, so compare reads that cannot see one another.)
    let dana = "?action=tool.called&actor=urn:qudag-mcp:dev%23dana";
    let all: Value = get("auditor", dana).await.json().await.unwrap();
    let empty = get("auditor", &format!("{dana}&from=&to=&outcome=&cursor=&limit=")).await;
    assert_eq!(empty.status(), 200);
    assert_eq!(empty.json::<Value>().await.unwrap()["events"], all["events"]);
    let reversed = get("auditor", "?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z").await;
    assert_eq!(reversed.status(), 200);
    assert_eq!(reversed.json::<Value>().await.unwrap()["events"], json!([]));
    assert_eq!(app.client.get(app.url("/admin/audit")).send().await.unwrap().status(), 401);
    // Reading the audit trail is itself audited.
    let reads: Value = get("admin", "?action=tool.called").await.json().await.unwrap();
    assert!(reads["events"].as_array().unwrap().iter().any(|e| e["target"] == "GET /admin/audit"));
    app.stop().await.unwrap();
}
