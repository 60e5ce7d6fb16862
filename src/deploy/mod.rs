//! Deployments: a creator's upload becomes the tenant's script in the dispatch namespace.
//!
//! `PUT /__platform/tenants/{slug}/deployment` takes Cloudflare's own script-upload layout
//! (`multipart/form-data`: a `metadata` JSON part, then one part per module named by its
//! file name). The rules here are pure and tested natively:
//! - [`read_upload`]: the multipart body ([`multipart`]) and its `metadata` part;
//! - [`validate_function`]: bounds (total, per module, count), allowed types, safe names,
//!   the entry exists and is an ES module, text is UTF-8, JSON parses, Wasm has its magic.
//!   Whether the JavaScript *parses* is Cloudflare's upload API's to say: it compiles the
//!   script and refuses a broken one (`10021 Uncaught SyntaxError ...`), which the platform
//!   passes on as 422 `deployment_rejected`; a Worker cannot compile JavaScript itself (no
//!   `eval`), and a second parser would disagree with the runtime's. The local stand-in
//!   compiles the upload in workerd the same way (`tests/fakes/wfp_scripts_api.js`);
//! - [`validate_dataset`]: one data part (`text/csv` or `application/json`), parsed and
//!   typed here ([`dataset`]) into a JSON module for the fixed query Worker
//!   (`dataset_worker.js`);
//! - [`policy_wrapper`]: the platform's entry module around the creator's code: the time
//!   budget (`maxDurationMs`) and the env the code sees (`exposeEnv`); outbound hosts stay
//!   the egress Worker's;
//! - [`Bundle`]: the multipart body sent to Cloudflare (tags carrying the slug,
//!   `keep_bindings` so secrets survive a redeploy).
//!
//! The Cloudflare API's wire is [`cloudflare`]; the glue is `api.rs` (routes) and `edge.rs`
//! (the API client and the history object's client). The history is
//! `claw_durable::deploy`.

use claw_durable::deploy::{ModuleInfo, VersionDraft};
use claw_durable::problem::{Code, Problem};
use claw_durable::tenant::{TenantConfig, MAX_DURATION_MS};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub mod cloudflare;
pub mod dataset;
pub mod multipart;

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod edge;

const MIB: usize = 1024 * 1024;
/// A function's modules together (Cloudflare's paid-plan script limit is 10 MB).
pub const MAX_FUNCTION_BYTES: usize = 10 * MIB;
/// One module of a function.
pub const MAX_MODULE_BYTES: usize = 5 * MIB;
pub const MAX_MODULES: usize = 32;
pub const MAX_MODULE_NAME: usize = 128;
/// A dataset's data file.
pub const MAX_DATASET_BYTES: usize = 16 * MIB;
/// The request body: the largest payload plus room for the multipart framing.
pub const MAX_UPLOAD_BYTES: usize = MAX_DATASET_BYTES + MIB;
/// The metadata part.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Module names the platform's own modules use: refused in uploads.
pub const RESERVED_PREFIX: &str = "__claw";

const _: () = assert!(MAX_FUNCTION_BYTES + MIB <= MAX_UPLOAD_BYTES);
const _: () = assert!(MAX_MODULE_BYTES <= MAX_FUNCTION_BYTES);

/// The platform's modules in every bundle.
pub const POLICY_MODULE: &str = "__claw_policy.js";
pub const DATASET_ENGINE_MODULE: &str = "__claw_dataset.js";
pub const DATASET_DATA_MODULE: &str = "__claw_data.json";
/// The fixed dataset query Worker (its data is the JSON module [`DATASET_DATA_MODULE`]).
pub const DATASET_ENGINE: &str = include_str!("dataset_worker.js");
/// The compatibility date the dataset query Worker is written for.
pub const DATASET_COMPATIBILITY_DATE: &str = "2026-04-20";
/// Secrets set through the secrets API survive a redeploy.
pub const KEEP_BINDINGS: &[&str] = &["secret_text", "secret_key"];

/// Module types of Cloudflare's upload, by their part's content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleType {
    EsModule,
    Text,
    Json,
    Wasm,
    Data,
}

impl ModuleType {
    pub const ALL: [ModuleType; 5] = [
        ModuleType::EsModule,
        ModuleType::Text,
        ModuleType::Json,
        ModuleType::Wasm,
        ModuleType::Data,
    ];

    pub fn content_type(self) -> &'static str {
        match self {
            ModuleType::EsModule => "application/javascript+module",
            ModuleType::Text => "text/plain",
            ModuleType::Json => "application/json",
            ModuleType::Wasm => "application/wasm",
            ModuleType::Data => "application/octet-stream",
        }
    }

    /// From a part's content type, parameters (`; charset=utf-8`) ignored.
    pub fn parse(content_type: &str) -> Option<ModuleType> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        ModuleType::ALL
            .into_iter()
            .find(|t| t.content_type().eq_ignore_ascii_case(essence))
    }
}

/// The `metadata` part, as far as creators may set it: bindings, tags and the rest are the
/// platform's (secrets go through the secrets API).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub main_module: String,
    pub compatibility_date: String,
    #[serde(default)]
    pub compatibility_flags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub kind: ModuleType,
    pub bytes: Vec<u8>,
}

/// A validated upload (the creator's modules, as uploaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub metadata: Metadata,
    pub modules: Vec<Module>,
    /// For datasets, the data part's own content type (`text/csv`).
    pub data_type: Option<String>,
}

pub fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    Problem::new(Code::DeploymentInvalid)
        .field(field)
        .detail(detail)
}

fn too_large(field: &str, detail: impl Into<String>) -> Problem {
    Problem::new(Code::DeploymentTooLarge)
        .field(field)
        .detail(detail)
}

/// The upload's parts and its metadata. The content type must be `multipart/form-data`.
pub fn read_upload(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(Metadata, Vec<multipart::Part>), Problem> {
    let boundary = multipart::boundary(content_type.unwrap_or(""))
        .map_err(|e| invalid("content-type", e.to_string()))?;
    let mut parts =
        multipart::parse(body, &boundary).map_err(|e| invalid("body", e.to_string()))?;
    let at = parts
        .iter()
        .position(|p| p.name == "metadata")
        .ok_or_else(|| invalid("metadata", "the upload needs a metadata part (JSON)"))?;
    let meta = parts.remove(at);
    if parts.iter().any(|p| p.name == "metadata") {
        return Err(invalid("metadata", "only one metadata part"));
    }
    if meta.body.len() > MAX_METADATA_BYTES {
        return Err(too_large(
            "metadata",
            format!("at most {MAX_METADATA_BYTES} bytes"),
        ));
    }
    let metadata: Metadata = serde_json::from_slice(&meta.body)
        .map_err(|e| invalid("metadata", format!("not valid metadata JSON: {e}")))?;
    check_metadata(&metadata)?;
    Ok((metadata, parts))
}

fn check_metadata(m: &Metadata) -> Result<(), Problem> {
    let d = m.compatibility_date.as_bytes();
    let date_ok = d.len() == 10
        && d.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !date_ok {
        return Err(invalid(
            "metadata.compatibility_date",
            "must be a date, YYYY-MM-DD",
        ));
    }
    if m.compatibility_flags.len() > 16 {
        return Err(invalid("metadata.compatibility_flags", "at most 16 flags"));
    }
    for f in &m.compatibility_flags {
        let ok = (1..=64).contains(&f.len())
            && f.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(invalid(
                "metadata.compatibility_flags",
                format!("{f:?} is not a compatibility flag"),
            ));
        }
    }
    check_name(&m.main_module).map_err(|e| invalid("metadata.main_module", e))
}

/// A module name: a relative path of `A-Z a-z 0-9 . _ - /`, no `.`/`..` segment, no empty
/// segment, not the platform's (`__claw*`), at most [`MAX_MODULE_NAME`] bytes.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_MODULE_NAME {
        return Err(format!(
            "module names are 1 to {MAX_MODULE_NAME} characters"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
    {
        return Err(format!(
            "{name:?}: module names use only A-Z a-z 0-9 . _ - /"
        ));
    }
    if name
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!("{name:?}: no empty, '.' or '..' path segment"));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(format!(
            "{name:?}: names starting with {RESERVED_PREFIX} are the platform's"
        ));
    }
    Ok(())
}

fn check_content(m: &Module) -> Result<(), Problem> {
    let field = format!("modules.{}", m.name);
    match m.kind {
        ModuleType::EsModule | ModuleType::Text => {
            std::str::from_utf8(&m.bytes).map_err(|_| invalid(&field, "text must be UTF-8"))?;
        }
        ModuleType::Json => {
            serde_json::from_slice::<serde::de::IgnoredAny>(&m.bytes)
                .map_err(|e| invalid(&field, format!("not valid JSON: {e}")))?;
        }
        ModuleType::Wasm => {
            if !m.bytes.starts_with(b"\0asm") {
                return Err(invalid(&field, "not a WebAssembly module"));
            }
        }
        ModuleType::Data => {}
    }
    Ok(())
}

/// A function tenant's upload: every rule but whether the JavaScript compiles.
pub fn validate_function(
    metadata: Metadata,
    parts: Vec<multipart::Part>,
) -> Result<Upload, Problem> {
    if parts.is_empty() {
        return Err(invalid("modules", "the upload has no module"));
    }
    if parts.len() > MAX_MODULES {
        return Err(invalid("modules", format!("at most {MAX_MODULES} modules")));
    }
    let mut total = 0usize;
    let mut modules: Vec<Module> = Vec::with_capacity(parts.len());
    for p in parts {
        check_name(&p.name).map_err(|e| invalid("modules", e))?;
        if modules.iter().any(|m| m.name == p.name) {
            return Err(invalid(
                "modules",
                format!("{:?} is uploaded twice", p.name),
            ));
        }
        let ct = p.content_type.as_deref().unwrap_or("");
        let kind = ModuleType::parse(ct).ok_or_else(|| {
            invalid(
                &format!("modules.{}", p.name),
                format!(
                    "content type {ct:?} is not one of application/javascript+module, text/plain, \
                     application/json, application/wasm, application/octet-stream"
                ),
            )
        })?;
        if p.body.len() > MAX_MODULE_BYTES {
            return Err(too_large(
                &format!("modules.{}", p.name),
                format!("a module is at most {MAX_MODULE_BYTES} bytes"),
            ));
        }
        total += p.body.len();
        if total > MAX_FUNCTION_BYTES {
            return Err(too_large(
                "modules",
                format!("a function's modules are at most {MAX_FUNCTION_BYTES} bytes together"),
            ));
        }
        let m = Module {
            name: p.name,
            kind,
            bytes: p.body,
        };
        check_content(&m)?;
        modules.push(m);
    }
    match modules.iter().find(|m| m.name == metadata.main_module) {
        None => {
            return Err(invalid(
                "metadata.main_module",
                format!("no module named {:?} in the upload", metadata.main_module),
            ))
        }
        Some(m) if m.kind != ModuleType::EsModule => {
            return Err(invalid(
                "metadata.main_module",
                "the main module must be an ES module (application/javascript+module)",
            ))
        }
        Some(_) => {}
    }
    Ok(Upload {
        metadata,
        modules,
        data_type: None,
    })
}

/// A dataset tenant's upload: exactly one data part, named by `main_module`, `text/csv` or
/// `application/json`; parsed and typed into the table the query Worker serves.
pub fn validate_dataset(
    metadata: Metadata,
    mut parts: Vec<multipart::Part>,
) -> Result<(Upload, dataset::Table), Problem> {
    if parts.len() != 1 {
        return Err(invalid(
            "modules",
            "a dataset upload has exactly one data part (text/csv or application/json)",
        ));
    }
    let p = parts.remove(0);
    if p.name != metadata.main_module {
        return Err(invalid(
            "metadata.main_module",
            format!("no data part named {:?}", metadata.main_module),
        ));
    }
    check_name(&p.name).map_err(|e| invalid("modules", e))?;
    let field = format!("modules.{}", p.name);
    if p.body.len() > MAX_DATASET_BYTES {
        return Err(too_large(
            &field,
            format!("a dataset file is at most {MAX_DATASET_BYTES} bytes"),
        ));
    }
    let ct = p.content_type.as_deref().unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let table = match essence.as_str() {
        "text/csv" => dataset::parse_csv(&p.body),
        "application/json" => dataset::parse_json(&p.body),
        _ => {
            return Err(invalid(
                &field,
                format!("a dataset is text/csv or application/json, not {ct:?}"),
            ))
        }
    }
    .map_err(|e| match e {
        dataset::DatasetError::TooManyRows => too_large(&field, e.to_string()),
        e => invalid(&field, e.to_string()),
    })?;
    let upload = Upload {
        metadata,
        modules: vec![Module {
            name: p.name,
            kind: ModuleType::Data,
            bytes: p.body,
        }],
        data_type: Some(essence),
    };
    Ok((upload, table))
}

impl Upload {
    /// Bytes the creator uploaded (modules, not the framing).
    pub fn size(&self) -> u64 {
        self.modules.iter().map(|m| m.bytes.len() as u64).sum()
    }

    fn type_name(&self, m: &Module) -> String {
        match &self.data_type {
            Some(t) => t.clone(),
            None => m.kind.content_type().to_owned(),
        }
    }

    /// SHA-256 (hex) over the metadata the creator set and each module's name, type and
    /// bytes, in upload order: the same upload has the same hash.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        let m = &self.metadata;
        h.update(format!(
            "402claw-upload-v1\n{}\n{}\n{}\n",
            m.main_module,
            m.compatibility_date,
            m.compatibility_flags.join(",")
        ));
        for module in &self.modules {
            h.update(module.name.as_bytes());
            h.update([0]);
            h.update(self.type_name(module).as_bytes());
            h.update([0]);
            h.update((module.bytes.len() as u64).to_be_bytes());
            h.update(&module.bytes);
        }
        hex::encode(h.finalize())
    }

    /// The version record's draft.
    pub fn draft(&self) -> VersionDraft {
        VersionDraft {
            hash: self.hash(),
            size: self.size(),
            main_module: self.metadata.main_module.clone(),
            modules: self
                .modules
                .iter()
                .map(|m| ModuleInfo {
                    name: m.name.clone(),
                    kind: self.type_name(m),
                    size: m.bytes.len() as u64,
                })
                .collect(),
        }
    }
}

/// What the policy wrapper enforces, from the tenant's config at deploy time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub max_duration_ms: u32,
    pub expose_env: Vec<String>,
}

impl Policy {
    pub fn of(config: &TenantConfig) -> Policy {
        Policy {
            max_duration_ms: config.max_duration_ms.unwrap_or(MAX_DURATION_MS),
            expose_env: config.expose_env.clone(),
        }
    }
}

/// The entry module wrapped around `main` (an ES module of the bundle): the creator's
/// `fetch` gets an env holding only the names in `exposeEnv`, and a call that has not
/// answered within `maxDurationMs` is answered 504 `tenant_timeout` (the CPU limit of the
/// plan still bounds a busy loop, which a timer cannot interrupt). A module without a
/// `fetch` handler answers 502 `tenant_worker_failed`.
pub fn policy_wrapper(main: &str, policy: &Policy) -> String {
    let import = serde_json::to_string(&format!("./{main}")).unwrap_or_default();
    let names = serde_json::to_string(&policy.expose_env).unwrap_or_else(|_| "[]".into());
    format!(
        r#"// 402claw policy wrapper (generated): the tenant's Worker sees only the env names it
// declared (exposeEnv) and has maxDurationMs to answer.
import tenant from {import};
const EXPOSE_ENV = {names};
const MAX_DURATION_MS = {ms};
function problem(status, code, title, detail) {{
  const body = {{ type: `https://402claw.dev/problems/${{code}}`, title, status, code, detail }};
  return new Response(JSON.stringify(body), {{ status, headers: {{ "content-type": "application/problem+json" }} }});
}}
// Checked at startup, so the upload itself is refused (Cloudflare runs the global scope).
if (typeof tenant?.fetch !== "function") {{
  throw new Error("the main module's default export has no fetch handler");
}}
export default {{
  async fetch(request, env, ctx) {{
    const view = {{}};
    for (const name of EXPOSE_ENV) if (env && name in env) view[name] = env[name];
    let timer;
    const budget = new Promise((resolve) => {{
      timer = setTimeout(
        () => resolve(problem(504, "tenant_timeout", "Tenant did not answer in time", `no answer within ${{MAX_DURATION_MS}} ms`)),
        MAX_DURATION_MS,
      );
    }});
    try {{
      return await Promise.race([tenant.fetch(request, Object.freeze(view), ctx), budget]);
    }} finally {{
      clearTimeout(timer);
    }}
  }},
}};
"#,
        ms = policy.max_duration_ms
    )
}

/// What is uploaded to Cloudflare for a version: a multipart body and its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// The `metadata` part of the upload to Cloudflare.
pub fn cloudflare_metadata(slug: &str, main_module: &str, m: &Metadata) -> serde_json::Value {
    serde_json::json!({
        "main_module": main_module,
        "compatibility_date": m.compatibility_date,
        "compatibility_flags": m.compatibility_flags,
        "tags": ["402claw", format!("tenant-{slug}")],
        "keep_bindings": KEEP_BINDINGS,
    })
}

fn bundle(
    slug: &str,
    seed: &str,
    metadata: serde_json::Value,
    modules: &[(&str, &str, &[u8])],
) -> Bundle {
    let meta = metadata.to_string();
    let mut parts = vec![multipart::OutPart {
        name: "metadata",
        content_type: "application/json",
        body: meta.as_bytes(),
    }];
    parts.extend(modules.iter().map(|(name, ct, body)| multipart::OutPart {
        name,
        content_type: ct,
        body,
    }));
    let (content_type, body) = multipart::build(&parts, &format!("{slug}-{seed}"));
    Bundle { content_type, body }
}

/// A function's bundle: the policy wrapper as the main module, then the creator's modules.
pub fn function_bundle(slug: &str, upload: &Upload, policy: &Policy) -> Bundle {
    let wrapper = policy_wrapper(&upload.metadata.main_module, policy);
    let mut modules: Vec<(&str, &str, &[u8])> = vec![(
        POLICY_MODULE,
        ModuleType::EsModule.content_type(),
        wrapper.as_bytes(),
    )];
    modules.extend(
        upload
            .modules
            .iter()
            .map(|m| (m.name.as_str(), m.kind.content_type(), m.bytes.as_slice())),
    );
    let meta = cloudflare_metadata(slug, POLICY_MODULE, &upload.metadata);
    bundle(slug, &upload.hash()[..16], meta, &modules)
}

/// A dataset's bundle: the policy wrapper around the fixed query Worker, and the typed
/// table as a JSON module.
pub fn dataset_bundle(
    slug: &str,
    upload: &Upload,
    table: &dataset::Table,
    policy: &Policy,
) -> Bundle {
    let wrapper = policy_wrapper(DATASET_ENGINE_MODULE, policy);
    let data = table.to_module_json();
    let modules: Vec<(&str, &str, &[u8])> = vec![
        (
            POLICY_MODULE,
            ModuleType::EsModule.content_type(),
            wrapper.as_bytes(),
        ),
        (
            DATASET_ENGINE_MODULE,
            ModuleType::EsModule.content_type(),
            DATASET_ENGINE.as_bytes(),
        ),
        (DATASET_DATA_MODULE, ModuleType::Json.content_type(), &data),
    ];
    // The query Worker is the platform's code: its own date, no flags.
    let mut metadata = upload.metadata.clone();
    metadata.compatibility_date = DATASET_COMPATIBILITY_DATE.to_owned();
    metadata.compatibility_flags.clear();
    let meta = cloudflare_metadata(slug, POLICY_MODULE, &metadata);
    bundle(slug, &upload.hash()[..16], meta, &modules)
}

#[cfg(test)]
mod tests;
