//! What the server offers, as handler traits, and the catalog that holds them in a fixed
//! order (list results are deterministic, as 2026-07-28 `tools/list` asks).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use qudag_domain::quota::Cost;
use qudag_domain::rbac::Permission;
use rmcp::model::{
    CallToolResult, CompleteRequestParams, CompletionInfo, ErrorData, GetPromptResult, Implementation,
    InputRequiredResult, JsonObject, Prompt, ReadResourceResult, Resource, ResourceTemplate, Tool,
};

use crate::mcp::context::CallContext;
use crate::usecases::Unavailable;

/// Which wire eras an entry is offered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Availability {
    /// Both.
    #[default]
    Both,
    /// Only to sessions of the stateful era (2025-03-26 … 2025-11-25).
    StatefulOnly,
    /// Only to stateless (2026-07-28) requests.
    StatelessOnly,
}

impl Availability {
    /// Whether the entry is offered in the given era.
    pub fn includes(self, stateless: bool) -> bool {
        match self {
            Self::Both => true,
            Self::StatefulOnly => !stateless,
            Self::StatelessOnly => stateless,
        }
    }
}

/// What a tool call produced.
#[derive(Debug)]
pub enum ToolResponse {
    /// The final result (which may itself report a tool error with `isError`).
    Complete(CallToolResult),
    /// The tool needs input from the client first (2026-07-28 input-required result).
    InputRequired(InputRequiredResult),
    /// A backend the tool needs cannot be reached. Not a result: the request is refused as
    /// retryable (HTTP 503 with `Retry-After`) and counted as that backend's error.
    Unavailable(Unavailable),
}

/// A tool.
#[async_trait]
pub trait ToolHandler: Send + Sync + 'static {
    /// Its definition, as listed. Read once, when the tool joins a catalog.
    fn tool(&self) -> Tool;
    /// The permission a caller needs.
    fn permission(&self) -> Permission;
    /// Its quota cost.
    fn cost(&self) -> Cost {
        Cost::ONE
    }
    /// The eras it is offered in.
    fn availability(&self) -> Availability {
        Availability::Both
    }
    /// Whether its effect cannot be undone (deleting, registering): then its attempt is
    /// recorded durably (`tool.started`) before it runs.
    fn irreversible(&self) -> bool {
        false
    }
    /// Run it. Bad arguments and business failures are a result with `isError`; an
    /// `Err` is a protocol error (e.g. -32602, or -32021 for a missing client capability).
    async fn call(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ErrorData>;
}

/// What a prompt produced.
#[derive(Debug, Clone)]
pub enum PromptResponse {
    /// The messages.
    Complete(GetPromptResult),
    /// Input needed from the client first.
    InputRequired(InputRequiredResult),
}

/// A prompt.
#[async_trait]
pub trait PromptHandler: Send + Sync + 'static {
    /// Its definition, as listed. Read once, when the prompt joins a catalog.
    fn prompt(&self) -> Prompt;
    /// The permission a caller needs.
    fn permission(&self) -> Permission {
        Permission::SystemRead
    }
    /// The eras it is offered in.
    fn availability(&self) -> Availability {
        Availability::Both
    }
    /// Render it with `arguments`.
    async fn get(&self, cx: &CallContext, arguments: JsonObject) -> Result<PromptResponse, ErrorData>;
}

/// A source of resources.
#[async_trait]
pub trait ResourceProvider: Send + Sync + 'static {
    /// The concrete resources it lists.
    fn resources(&self) -> Vec<Resource>;
    /// The URI templates it lists.
    fn templates(&self) -> Vec<ResourceTemplate> {
        Vec::new()
    }
    /// The permission a caller needs to read.
    fn permission(&self) -> Permission {
        Permission::SystemRead
    }
    /// Whether `uri` is one of this provider's: a listed resource, or a match of one of its
    /// templates' literal parts. Asked before reading, so the caller is authorized for the
    /// provider before it is touched.
    fn serves(&self, uri: &str) -> bool {
        self.resources().iter().any(|r| r.uri == uri)
            || self.templates().iter().any(|t| {
                let template = t.uri_template.as_str();
                let head = template.split('{').next().unwrap_or(template);
                let tail = template.rsplit('}').next().unwrap_or("");
                template.contains('{')
                    && uri.len() > head.len() + tail.len()
                    && uri.starts_with(head)
                    && uri.ends_with(tail)
            })
    }
    /// Read `uri`; `Ok(None)` when this provider does not know it. A backend outage is
    /// [`ResourceError::Unavailable`], never a JSON-RPC error of its own.
    async fn read(&self, cx: &CallContext, uri: &str) -> Result<Option<ReadResourceResult>, ResourceError>;
}

/// Why a resource could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// A backend the resource is read from cannot be reached. Not an answer: the request is
    /// refused as retryable, exactly as a tool's outage (HTTP 503 with `Retry-After`,
    /// JSON-RPC -31003) and counted as that backend's error.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// A JSON-RPC error for the client, sent as it is (e.g. -32602 for a bad URI).
    #[error("{}", .0.message)]
    Rpc(ErrorData),
}

impl From<ErrorData> for ResourceError {
    fn from(e: ErrorData) -> Self {
        Self::Rpc(e)
    }
}

/// Argument completion.
#[async_trait]
pub trait Completer: Send + Sync + 'static {
    /// Suggestions for the argument in `params`.
    async fn complete(&self, cx: &CallContext, params: &CompleteRequestParams) -> Result<CompletionInfo, ErrorData>;
}

/// Everything the server offers, in a fixed order.
#[derive(Clone)]
pub struct Catalog {
    server_info: Implementation,
    instructions: Option<String>,
    tools: Vec<(Tool, Arc<dyn ToolHandler>)>,
    tool_index: HashMap<String, usize>,
    prompts: Vec<(Prompt, Arc<dyn PromptHandler>)>,
    prompt_index: HashMap<String, usize>,
    resources: Vec<Arc<dyn ResourceProvider>>,
    completer: Option<Arc<dyn Completer>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("server_info", &self.server_info.name)
            .field("tools", &self.tool_index.len())
            .field("prompts", &self.prompt_index.len())
            .field("resources", &self.resources.len())
            .finish()
    }
}

impl Catalog {
    /// Start a catalog for a server describing itself as `server_info`.
    pub fn builder(server_info: Implementation) -> CatalogBuilder {
        CatalogBuilder {
            catalog: Self {
                server_info,
                instructions: None,
                tools: Vec::new(),
                tool_index: HashMap::new(),
                prompts: Vec::new(),
                prompt_index: HashMap::new(),
                resources: Vec::new(),
                completer: None,
            },
        }
    }

    /// How the server names itself.
    pub fn server_info(&self) -> &Implementation {
        &self.server_info
    }

    /// Instructions for clients, if any.
    pub fn instructions(&self) -> Option<&str> {
        self.instructions.as_deref()
    }

    /// The tools offered in an era, in registration order.
    pub fn tools(&self, stateless: bool) -> impl Iterator<Item = &Arc<dyn ToolHandler>> {
        self.tools.iter().map(|(_, t)| t).filter(move |t| t.availability().includes(stateless))
    }

    /// The definitions of the tools offered in an era, in registration order.
    pub fn tool_definitions(&self, stateless: bool) -> impl Iterator<Item = &Tool> {
        self.tool_entries(stateless).map(|(d, _)| d)
    }

    /// The tools offered in an era with their definitions, in registration order.
    pub fn tool_entries(&self, stateless: bool) -> impl Iterator<Item = (&Tool, &Arc<dyn ToolHandler>)> {
        self.tools.iter().filter(move |(_, t)| t.availability().includes(stateless)).map(|(d, t)| (d, t))
    }

    /// The tool called `name` in an era.
    pub fn tool(&self, name: &str, stateless: bool) -> Option<&Arc<dyn ToolHandler>> {
        self.tool_entry(name, stateless).map(|(_, t)| t)
    }

    /// The definition of the tool called `name` in an era.
    pub fn tool_definition(&self, name: &str, stateless: bool) -> Option<&Tool> {
        self.tool_entry(name, stateless).map(|(d, _)| d)
    }

    fn tool_entry(&self, name: &str, stateless: bool) -> Option<&(Tool, Arc<dyn ToolHandler>)> {
        self.tool_index.get(name).map(|&i| &self.tools[i]).filter(|(_, t)| t.availability().includes(stateless))
    }

    /// The prompts offered in an era, in registration order.
    pub fn prompts(&self, stateless: bool) -> impl Iterator<Item = &Arc<dyn PromptHandler>> {
        self.prompts.iter().map(|(_, p)| p).filter(move |p| p.availability().includes(stateless))
    }

    /// The definitions of the prompts offered in an era, in registration order.
    pub fn prompt_definitions(&self, stateless: bool) -> impl Iterator<Item = &Prompt> {
        self.prompt_entries(stateless).map(|(d, _)| d)
    }

    /// The prompts offered in an era with their definitions, in registration order.
    pub fn prompt_entries(&self, stateless: bool) -> impl Iterator<Item = (&Prompt, &Arc<dyn PromptHandler>)> {
        self.prompts.iter().filter(move |(_, p)| p.availability().includes(stateless)).map(|(d, p)| (d, p))
    }

    /// The prompt called `name` in an era.
    pub fn prompt(&self, name: &str, stateless: bool) -> Option<&Arc<dyn PromptHandler>> {
        self.prompt_index
            .get(name)
            .map(|&i| &self.prompts[i])
            .filter(|(_, p)| p.availability().includes(stateless))
            .map(|(_, p)| p)
    }

    /// The resource providers, in registration order.
    pub fn resource_providers(&self) -> &[Arc<dyn ResourceProvider>] {
        &self.resources
    }

    /// The completer, if any.
    pub fn completer(&self) -> Option<&Arc<dyn Completer>> {
        self.completer.as_ref()
    }

    /// Whether anything is offered of each kind (for capabilities).
    pub fn offers(&self) -> (bool, bool, bool) {
        (!self.tools.is_empty(), !self.prompts.is_empty(), !self.resources.is_empty())
    }
}

impl crate::usecases::Permissions for Catalog {
    fn permission_of(&self, name: &str) -> Option<(crate::usecases::TargetKind, Permission)> {
        use crate::usecases::TargetKind;
        // Tools and prompts are looked up across both eras.
        if let Some(t) = self.tool(name, false).or_else(|| self.tool(name, true)) {
            return Some((TargetKind::Tool, t.permission()));
        }
        let prompt = self.prompt(name, false).or_else(|| self.prompt(name, true));
        prompt.map(|p| (TargetKind::Prompt, p.permission()))
    }

    fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for stateless in [false, true] {
            names.extend(self.tool_definitions(stateless).map(|t| t.name.to_string()));
            names.extend(self.prompt_definitions(stateless).map(|p| p.name.clone()));
        }
        names
    }
}

/// Builds a [`Catalog`].
#[derive(Debug)]
pub struct CatalogBuilder {
    catalog: Catalog,
}

impl CatalogBuilder {
    /// Instructions for clients.
    pub fn instructions(mut self, text: impl Into<String>) -> Self {
        self.catalog.instructions = Some(text.into());
        self
    }

    /// Add a tool; a later tool with the same name replaces the earlier one in place.
    pub fn tool(mut self, handler: impl ToolHandler) -> Self {
        let definition = handler.tool();
        let name = definition.name.to_string();
        upsert(&mut self.catalog.tools, &mut self.catalog.tool_index, name, (definition, Arc::new(handler)));
        self
    }

    /// Add a prompt; a later prompt with the same name replaces the earlier one in place.
    pub fn prompt(mut self, handler: impl PromptHandler) -> Self {
        let definition = handler.prompt();
        let name = definition.name.clone();
        upsert(&mut self.catalog.prompts, &mut self.catalog.prompt_index, name, (definition, Arc::new(handler)));
        self
    }

    /// Add a resource provider.
    pub fn resources(mut self, provider: impl ResourceProvider) -> Self {
        self.catalog.resources.push(Arc::new(provider));
        self
    }

    /// Set the completer.
    pub fn completer(mut self, completer: impl Completer) -> Self {
        self.catalog.completer = Some(Arc::new(completer));
        self
    }

    /// The catalog.
    pub fn build(self) -> Catalog {
        self.catalog
    }
}

/// Add `entry` under `name`, or replace the entry of that name in place (keeping list order).
fn upsert<T>(entries: &mut Vec<T>, index: &mut HashMap<String, usize>, name: String, entry: T) {
    match index.get(&name) {
        Some(&i) => entries[i] = entry,
        None => {
            index.insert(name, entries.len());
            entries.push(entry);
        }
    }
}
