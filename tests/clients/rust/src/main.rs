//! The official MCP Rust SDK's client (rmcp) against a running QuDAG MCP server.
//!
//! usage: qudag-mcp-client-tests-rmcp URL
//!
//! For every protocol revision rmcp speaks (2025-03-26, 2025-06-18 and 2025-11-25
//! through the `initialize` handshake, 2026-07-28 through `server/discover`) it
//! connects, lists tools, calls `echo`, reads `test://static-text` and gets
//! `test_prompt_with_arguments`, printing one `PASS <name>` or `FAIL <name>: <why>`
//! line per check. Exit status 0 only when every check passed.

use std::{process::ExitCode, time::Duration};

use rmcp::{
    ClientLifecycleMode, ClientServiceExt, RoleClient,
    model::{
        CallToolRequestParams, ClientConfig, GetPromptRequestParams, Implementation, ProtocolVersion,
        ReadResourceRequestParams,
    },
    service::RunningService,
    transport::{StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig},
};
use serde_json::{Value, json};

const CLIENT: &str = "rmcp";
const STATIC_TEXT: &str = "This is the content of the static text resource.";
const TIMEOUT: Duration = Duration::from_secs(20);

type Client = RunningService<RoleClient, ClientConfig>;

struct Report {
    passed: usize,
    failed: usize,
}

impl Report {
    fn check(&mut self, era: &str, name: &str, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("PASS {CLIENT} {era} {name}");
            }
            Err(why) => {
                self.failed += 1;
                println!("FAIL {CLIENT} {era} {name}: {}", why.replace('\n', " "));
            }
        }
    }
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

async fn timed<T, E: std::fmt::Display>(fut: impl Future<Output = Result<T, E>>) -> Result<T, String> {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out after {TIMEOUT:?}")),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

async fn connect(url: &str, version: &ProtocolVersion) -> Result<Client, String> {
    let transport =
        StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(url.to_owned()));
    let mut config = ClientConfig::default();
    config.client_info = Implementation::new("qudag-client-tests-rmcp", "0.0.0");
    let lifecycle = if version.has_initialize() {
        config.protocol_version = version.clone();
        ClientLifecycleMode::Initialize
    } else {
        ClientLifecycleMode::Discover { preferred_versions: vec![version.clone()] }
    };
    timed(config.serve_with_lifecycle(transport, lifecycle)).await
}

async fn check_connect(client: &Client, version: &ProtocolVersion) -> Result<(), String> {
    let info = client.peer_info().ok_or("no server info after connecting")?;
    ensure(info.protocol_version == *version, || {
        format!("negotiated protocol version {} instead of {version}", info.protocol_version)
    })?;
    if version.has_initialize() {
        // The handshake's serverInfo is required before 2026-07-28.
        let name = info.server_info.as_ref().map(|i| i.name.clone());
        ensure(name.as_deref() == Some("qudag-mcp"), || {
            format!("serverInfo.name is {name:?}, expected \"qudag-mcp\"")
        })?;
    }
    ensure(info.capabilities.tools.is_some(), || "server did not advertise tools".into())
}

async fn check_tools_list(client: &Client) -> Result<(), String> {
    let tools = timed(client.list_all_tools()).await?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for want in ["echo", "test_simple_text"] {
        ensure(names.contains(&want), || format!("tool {want} missing from {names:?}"))?;
    }
    Ok(())
}

async fn check_tools_call(client: &Client) -> Result<(), String> {
    let mut args = serde_json::Map::new();
    args.insert("text".into(), json!("hello"));
    let result = timed(client.call_tool(CallToolRequestParams::new("echo").with_arguments(args))).await?;
    let v = to_json(&result)?;
    ensure(v["isError"] != json!(true), || format!("tool reported an error: {v}"))?;
    ensure(v["content"] == json!([{"type": "text", "text": "hello"}]), || {
        format!("content is {}, expected one text block \"hello\"", v["content"])
    })
}

async fn check_resources_read(client: &Client) -> Result<(), String> {
    let result = timed(client.read_resource(ReadResourceRequestParams::new("test://static-text"))).await?;
    let v = to_json(&result)?;
    let contents = v["contents"].as_array().cloned().unwrap_or_default();
    ensure(contents.len() == 1, || format!("expected one content item, got {}", v["contents"]))?;
    ensure(contents[0]["uri"] == json!("test://static-text"), || format!("content uri is {}", contents[0]["uri"]))?;
    ensure(contents[0]["text"] == json!(STATIC_TEXT), || {
        format!("text is {}, expected {STATIC_TEXT:?}", contents[0]["text"])
    })
}

async fn check_prompts_get(client: &Client) -> Result<(), String> {
    let mut args = serde_json::Map::new();
    args.insert("arg1".into(), json!("alpha-rmcp"));
    args.insert("arg2".into(), json!("beta-rmcp"));
    let result =
        timed(client.get_prompt(GetPromptRequestParams::new("test_prompt_with_arguments").with_arguments(args)))
            .await?;
    let v = to_json(&result)?;
    let messages = v["messages"].as_array().cloned().unwrap_or_default();
    ensure(!messages.is_empty(), || format!("no messages in {v}"))?;
    let text: String = messages.iter().filter_map(|m| m["content"]["text"].as_str()).collect::<Vec<_>>().join("\n");
    for want in ["alpha-rmcp", "beta-rmcp"] {
        ensure(text.contains(want), || format!("messages do not mention {want:?}: {text:?}"))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: qudag-mcp-client-tests-rmcp URL");
        return ExitCode::from(2);
    };
    let mut report = Report { passed: 0, failed: 0 };
    let eras = [
        ProtocolVersion::V_2025_03_26,
        ProtocolVersion::V_2025_06_18,
        ProtocolVersion::V_2025_11_25,
        ProtocolVersion::V_2026_07_28,
    ];
    for version in &eras {
        let era = version.to_string();
        let client = match connect(&url, version).await {
            Ok(client) => client,
            Err(why) => {
                report.check(&era, "connect", Err(why));
                for name in ["tools/list", "tools/call", "resources/read", "prompts/get"] {
                    report.check(&era, name, Err("not run: connect failed".into()));
                }
                continue;
            }
        };
        report.check(&era, "connect", check_connect(&client, version).await);
        report.check(&era, "tools/list", check_tools_list(&client).await);
        report.check(&era, "tools/call", check_tools_call(&client).await);
        report.check(&era, "resources/read", check_resources_read(&client).await);
        report.check(&era, "prompts/get", check_prompts_get(&client).await);
        if let Err(e) = timed(client.cancel()).await {
            eprintln!("{CLIENT} {era}: closing the client failed: {e}");
        }
    }
    eprintln!("{CLIENT}: {} passed, {} failed", report.passed, report.failed);
    if report.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
