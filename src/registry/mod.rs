//! The tenant registry, the dispatcher's side: configs cached in the isolate ([`cache`]),
//! the registry object's client (`edge`), and the tenant admin routes (`api`). The registry
//! object itself, and the config grammar, are `claw_durable::registry` and
//! `claw_durable::tenant`. The creator keys' routes and checks are `keys`.

use claw_durable::problem::{Code, Problem};
use claw_durable::tenant::TenantConfig;

pub mod cache;
pub mod offer;

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod edge;
#[cfg(target_arch = "wasm32")]
pub mod keys;

/// The script a tenant's deployment runs in the dispatch namespace.
pub fn script_name(slug: &str) -> String {
    format!("tenant-{slug}")
}

/// A creator's tenant runs its own script: a config written with a creator key names no
/// Worker but `tenant-<slug>` ([`script_name`]), so a key cannot point its tenant at another
/// tenant's code (and the secrets bound to it). 403 `forbidden` otherwise.
pub fn check_creator_config(config: &TenantConfig) -> Result<(), Problem> {
    match config.worker_name.as_deref() {
        Some(name) if name != script_name(&config.slug) => Err(Problem::new(Code::Forbidden)
            .field("workerName")
            .detail(format!(
                "a creator key's tenant runs its own script: workerName must be {:?}",
                script_name(&config.slug)
            ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_creator_config_names_only_its_own_script() {
        let config = |worker: &str| {
            let json =
                format!(r#"{{"resourceType":"function","workerName":"{worker}","plan":"free"}}"#);
            TenantConfig::parse(json.as_bytes(), "acme").unwrap()
        };
        assert_eq!(check_creator_config(&config("tenant-acme")), Ok(()));
        for other in ["tenant-b-co", "demo-fn", "tenant-acme2"] {
            let p = check_creator_config(&config(other)).unwrap_err();
            assert_eq!(
                (p.code, p.field.as_deref()),
                (Code::Forbidden, Some("workerName"))
            );
        }
    }
}
