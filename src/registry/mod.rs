//! The tenant registry, the dispatcher's side: configs cached in the isolate ([`cache`]),
//! the registry object's client (`edge`), and the tenant admin routes (`api`). The registry
//! object itself, and the config grammar, are `claw_durable::registry` and
//! `claw_durable::tenant`. The creator keys' routes and checks are `keys`.

use claw_durable::problem::{Code, Problem};
use claw_durable::tenant::{deployed_script_name as script_name, Plan, TenantConfig};

pub mod cache;
pub mod offer;

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod edge;
#[cfg(target_arch = "wasm32")]
pub mod keys;

/// A creator's tenant runs its own script: a config written with a creator key names no
/// Worker but `tenant-<slug>` ([`script_name`]), so a key cannot point its tenant at another
/// tenant's code (and the secrets bound to it). 403 `forbidden` otherwise.
pub fn check_creator_config(config: &TenantConfig, current: Option<Plan>) -> Result<(), Problem> {
    match config.worker_name.as_deref() {
        Some(name) if name != script_name(&config.slug) => {
            return Err(Problem::new(Code::Forbidden)
                .field("workerName")
                .detail(format!(
                    "a creator key's tenant runs its own script: workerName must be {:?}",
                    script_name(&config.slug)
                )))
        }
        _ => {}
    }
    // The plan sets the platform's fee and the dispatch limits: the operator's to choose. A
    // creator keeps the tenant's plan (a new tenant starts on `free`).
    let allowed = current.unwrap_or(Plan::Free);
    if config.plan != allowed {
        return Err(Problem::new(Code::Forbidden).field("plan").detail(format!(
            "the plan is the operator's to change: a creator key keeps {}",
            serde_json::to_string(&allowed).unwrap_or_default()
        )));
    }
    Ok(())
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
        assert_eq!(check_creator_config(&config("tenant-acme"), None), Ok(()));
        for other in ["demo-fn", "acme-worker", "acme2"] {
            let p = check_creator_config(&config(other), None).unwrap_err();
            assert_eq!(
                (p.code, p.field.as_deref()),
                (Code::Forbidden, Some("workerName"))
            );
        }
    }

    #[test]
    fn a_creator_keeps_the_plan_the_operator_chose() {
        let config = |plan: &str| {
            let json = format!(r#"{{"resourceType":"function","plan":"{plan}"}}"#);
            TenantConfig::parse(json.as_bytes(), "acme").unwrap()
        };
        // A new tenant starts on free; an existing one keeps its plan.
        assert_eq!(check_creator_config(&config("free"), None), Ok(()));
        assert_eq!(
            check_creator_config(&config("pro"), Some(Plan::Pro)),
            Ok(())
        );
        for (wanted, current) in [
            ("pro", None),
            ("business", Some(Plan::Pro)),
            ("free", Some(Plan::Business)),
        ] {
            let p = check_creator_config(&config(wanted), current).unwrap_err();
            assert_eq!(
                (p.code, p.field.as_deref()),
                (Code::Forbidden, Some("plan"))
            );
        }
    }
}
