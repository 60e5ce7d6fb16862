//! From flags to a tenant config: the flags are laid over the tenant's current config (an
//! existing tenant keeps every setting not given), and the result is validated with the
//! platform's own rules (`claw_durable::tenant::TenantConfig::parse`) before it is sent, so
//! a bad flag is a usage error (exit 1) naming the field, and nothing changes.

use serde_json::{json, Map, Value};

use crate::amount;
use crate::args::{LimitFlags, PriceFlags, Wrap};
use claw_durable::tenant::{validate_slug, TenantConfig};

/// USDC's contract on the networks the platform knows.
fn usdc(network: &str) -> Option<&'static str> {
    match network {
        "base" | "eip155:8453" => Some("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
        "base-sepolia" | "eip155:84532" => Some("0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
        _ => None,
    }
}

pub const DEFAULT_NETWORK: &str = "base-sepolia";

/// Checks a slug locally (the same rule as the platform's).
pub fn check_slug(slug: &str) -> Result<(), String> {
    validate_slug(slug).map_err(|e| format!("the slug {slug:?} {e}"))
}

/// The tenant's current config out of a `GET /tenants/{slug}` answer (`{config, status, ...}`).
pub fn current_config(record: &Value) -> Map<String, Value> {
    record
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn obj(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

/// Lays the price flags over `config`.
pub fn apply_price(config: &mut Map<String, Value>, f: &PriceFlags) -> Result<(), String> {
    if f.free {
        config.remove("price");
        return Ok(());
    }
    let amount = match (&f.price, &f.price_atomic) {
        (Some(p), _) => {
            Some(amount::to_atomic(p, f.decimals).map_err(|e| format!("--price: {e}"))?)
        }
        (None, Some(a)) => Some(a.clone()),
        (None, None) => None,
    };
    let touched = amount.is_some()
        || f.network.is_some()
        || f.pay_to.is_some()
        || f.asset.is_some()
        || f.asset_name.is_some()
        || f.asset_version.is_some();
    if !touched {
        return Ok(());
    }
    let existed = config.contains_key("price");
    let price = obj(config.entry("price").or_insert(Value::Null));
    if !existed && amount.is_none() {
        return Err("a price needs --price (or --price-atomic)".into());
    }
    if let Some(a) = amount {
        price.insert("amountAtomic".into(), Value::String(a));
    }
    let old_network = price
        .get("network")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let network = f
        .network
        .clone()
        .or(old_network.clone())
        .unwrap_or_else(|| DEFAULT_NETWORK.into());
    let network_changed = old_network.as_deref() != Some(network.as_str());
    price.insert("network".into(), Value::String(network.clone()));
    match &f.asset {
        Some(a) => {
            price.insert("asset".into(), Value::String(a.clone()));
        }
        None if network_changed || !price.contains_key("asset") => {
            let a = usdc(&network).ok_or_else(|| {
                format!("no default asset on {network:?}: give --asset (and --asset-name, --asset-version)")
            })?;
            price.insert("asset".into(), Value::String(a.into()));
            price.remove("assetName");
            price.remove("assetVersion");
        }
        None => {}
    }
    if let Some(n) = &f.asset_name {
        price.insert("assetName".into(), Value::String(n.clone()));
    }
    if let Some(v) = &f.asset_version {
        price.insert("assetVersion".into(), Value::String(v.clone()));
    }
    match &f.pay_to {
        Some(p) => {
            price.insert("payTo".into(), Value::String(p.clone()));
        }
        None if !price.contains_key("payTo") => {
            return Err("a price needs --pay-to (the address you are paid at)".into())
        }
        None => {}
    }
    Ok(())
}

/// Lays the plan and rate limit flags over `config` (plan defaults to free).
pub fn apply_limits(config: &mut Map<String, Value>, f: &LimitFlags) {
    match &f.plan {
        Some(p) => {
            config.insert("plan".into(), Value::String(p.clone()));
        }
        None => {
            config.entry("plan").or_insert_with(|| json!("free"));
        }
    }
    if f.rate_limit_caller.is_none()
        && f.rate_limit_global.is_none()
        && f.rate_limit_burst.is_none()
    {
        return;
    }
    let rl = obj(config.entry("rateLimit").or_insert(Value::Null));
    if let Some(r) = &f.rate_limit_caller {
        rl.insert("perCaller".into(), Value::String(r.clone()));
    }
    if let Some(r) = &f.rate_limit_global {
        rl.insert("global".into(), Value::String(r.clone()));
    }
    if let Some(b) = f.rate_limit_burst {
        rl.insert("burst".into(), json!(b));
    }
}

/// Sets the resource type, dropping what only another type has.
pub fn set_type(config: &mut Map<String, Value>, resource_type: &str) {
    let old = config
        .get("resourceType")
        .and_then(Value::as_str)
        .map(str::to_owned);
    config.insert("resourceType".into(), Value::String(resource_type.into()));
    if resource_type == "proxy" {
        for k in ["workerName", "allowedHosts", "exposeEnv", "maxDurationMs"] {
            config.remove(k);
        }
    } else {
        config.remove("proxy");
        if old.as_deref() != Some(resource_type) {
            config.remove("workerName");
        }
    }
}

/// The proxy part of a `claw wrap`: upstream, methods, injected secrets, cache, transform.
/// Secret names without the tenant's prefix get it (`API_KEY` on `acme-weather` is
/// `ACME_WEATHER__API_KEY`), as the platform only lets a tenant name its own secrets.
pub fn apply_wrap(config: &mut Map<String, Value>, slug: &str, w: &Wrap) -> Result<(), String> {
    set_type(config, "proxy");
    let proxy = obj(config.entry("proxy").or_insert(Value::Null));
    proxy.insert("upstreamUrl".into(), Value::String(w.upstream.clone()));
    if !w.methods.is_empty() {
        let m: Vec<Value> = w
            .methods
            .iter()
            .map(|m| Value::String(m.trim().to_ascii_uppercase()))
            .collect();
        proxy.insert("allowedMethods".into(), Value::Array(m));
    }
    if !w.inject.is_empty() {
        let mut headers = Vec::new();
        for spec in &w.inject {
            let (name, secret) = spec
                .split_once('=')
                .filter(|(n, s)| !n.is_empty() && !s.is_empty())
                .ok_or_else(|| {
                    format!("--inject-header-secret {spec:?}: expected HEADER=SECRET")
                })?;
            headers.push(json!({"name": name, "secret": scoped_secret(slug, secret)}));
        }
        proxy.insert("injectHeaders".into(), Value::Array(headers));
    }
    if let Some(t) = w.cache_ttl {
        proxy.insert("cacheTtlS".into(), json!(t));
    }
    if let Some(t) = w.timeout_ms {
        proxy.insert("timeoutMs".into(), json!(t));
    }
    if !w.transform_select.is_empty()
        || !w.transform_drop.is_empty()
        || !w.transform_rename.is_empty()
    {
        let mut rename = Map::new();
        for spec in &w.transform_rename {
            let (old, new) = spec
                .split_once('=')
                .ok_or_else(|| format!("--transform-rename {spec:?}: expected OLD=NEW"))?;
            rename.insert(old.into(), Value::String(new.into()));
        }
        let t = obj(proxy.entry("transform").or_insert(Value::Null));
        if !w.transform_select.is_empty() {
            t.insert("select".into(), json!(w.transform_select));
        }
        if !w.transform_drop.is_empty() {
            t.insert("drop".into(), json!(w.transform_drop));
        }
        if !rename.is_empty() {
            t.insert("rename".into(), Value::Object(rename));
        }
    }
    Ok(())
}

/// The prefix of the secrets tenant `slug` may name: the slug upper-cased, `-` as `_`, `__`.
pub fn secret_prefix(slug: &str) -> String {
    let mut p: String = slug
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    p.push_str("__");
    p
}

pub fn scoped_secret(slug: &str, name: &str) -> String {
    let prefix = secret_prefix(slug);
    if name.starts_with(&prefix) {
        name.to_owned()
    } else {
        format!("{prefix}{name}")
    }
}

/// Validates with the platform's rules; the problem's field and detail on failure.
pub fn validate(config: &Map<String, Value>, slug: &str) -> Result<TenantConfig, String> {
    let body = serde_json::to_vec(config).map_err(|e| e.to_string())?;
    TenantConfig::parse(&body, slug).map_err(|p| {
        let mut m = format!("invalid tenant config: {}", p.code);
        if let Some(f) = &p.field {
            m.push_str(&format!(" [field {f}]"));
        }
        if let Some(d) = &p.detail {
            m.push_str(&format!(": {d}"));
        }
        m
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAY_TO: &str = "0x1111111111111111111111111111111111111111";

    fn price(p: &str) -> PriceFlags {
        PriceFlags {
            price: Some(p.into()),
            pay_to: Some(PAY_TO.into()),
            decimals: 6,
            ..PriceFlags::default()
        }
    }

    #[test]
    fn a_new_paid_tenant_gets_usdc_on_base_sepolia() {
        let mut c = Map::new();
        set_type(&mut c, "function");
        apply_price(&mut c, &price("0.001")).unwrap();
        apply_limits(
            &mut c,
            &LimitFlags {
                rate_limit_caller: Some("100/60s".into()),
                rate_limit_burst: Some(20),
                ..LimitFlags::default()
            },
        );
        assert_eq!(
            Value::Object(c.clone()),
            json!({
                "resourceType": "function", "plan": "free",
                "price": {"amountAtomic": "1000", "network": "base-sepolia",
                          "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "payTo": PAY_TO},
                "rateLimit": {"perCaller": "100/60s", "burst": 20}
            })
        );
        let parsed = validate(&c, "wx").unwrap();
        assert_eq!(parsed.price.unwrap().amount(), 1000);
    }

    #[test]
    fn an_update_keeps_what_is_not_given() {
        let record = json!({"config": {
            "slug": "wx", "resourceType": "function", "workerName": "wx-fn", "plan": "pro",
            "price": {"amountAtomic": "5000", "network": "base", "payTo": PAY_TO,
                      "asset": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
                      "assetName": "USD Coin", "assetVersion": "2"},
            "rateLimit": {"global": "10/1s"}
        }, "status": "active"});
        let mut c = current_config(&record);
        apply_price(
            &mut c,
            &PriceFlags {
                price: Some("0.002".into()),
                decimals: 6,
                ..PriceFlags::default()
            },
        )
        .unwrap();
        apply_limits(&mut c, &LimitFlags::default());
        assert_eq!(c["plan"], "pro");
        assert_eq!(c["price"]["amountAtomic"], "2000");
        assert_eq!(c["price"]["network"], "base");
        assert_eq!(c["price"]["assetName"], "USD Coin");
        assert_eq!(c["rateLimit"], json!({"global": "10/1s"}));
        validate(&c, "wx").unwrap();
        // Changing the network moves to that network's USDC.
        apply_price(
            &mut c,
            &PriceFlags {
                network: Some("base-sepolia".into()),
                decimals: 6,
                ..PriceFlags::default()
            },
        )
        .unwrap();
        assert_eq!(
            c["price"]["asset"],
            "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
        );
        assert!(c["price"].get("assetName").is_none());
        // --free removes the price.
        apply_price(
            &mut c,
            &PriceFlags {
                free: true,
                ..PriceFlags::default()
            },
        )
        .unwrap();
        assert!(!c.contains_key("price"));
    }

    #[test]
    fn local_validation_names_the_field() {
        let mut c = Map::new();
        set_type(&mut c, "function");
        let mut p = price("0.001");
        p.pay_to = Some("0x123".into());
        apply_price(&mut c, &p).unwrap();
        apply_limits(&mut c, &LimitFlags::default());
        let e = validate(&c, "wx").unwrap_err();
        assert!(e.contains("price.payTo"), "{e}");

        apply_price(&mut c, &price("0.001")).unwrap();
        apply_limits(
            &mut c,
            &LimitFlags {
                rate_limit_caller: Some("100/60y".into()),
                ..LimitFlags::default()
            },
        );
        let e = validate(&c, "wx").unwrap_err();
        assert!(e.contains("rateLimit"), "{e}");

        let mut fresh = Map::new();
        let e = apply_price(
            &mut fresh,
            &PriceFlags {
                pay_to: Some(PAY_TO.into()),
                ..PriceFlags::default()
            },
        )
        .unwrap_err();
        assert!(e.contains("--price"), "{e}");
        let e = apply_price(
            &mut Map::new(),
            &PriceFlags {
                price: Some("0.001".into()),
                ..PriceFlags::default()
            },
        )
        .unwrap_err();
        assert!(e.contains("--pay-to"), "{e}");
        assert!(apply_price(&mut Map::new(), &price("1.0000001")).is_err());
        // The deployment policy fields are checked too.
        let mut c = Map::new();
        set_type(&mut c, "function");
        apply_limits(&mut c, &LimitFlags::default());
        validate(&c, "wx").unwrap();
        c.insert("exposeEnv".into(), json!(["api-key"]));
        assert!(validate(&c, "wx").unwrap_err().contains("exposeEnv"));
        c.insert("exposeEnv".into(), json!(["API_KEY"]));
        c.insert("maxDurationMs".into(), json!(0));
        assert!(validate(&c, "wx").unwrap_err().contains("maxDurationMs"));
        assert!(check_slug("Bad_Slug").is_err());
        assert!(check_slug("admin").is_err());
        assert!(check_slug("weather").is_ok());
    }

    fn wrap(args: &[&str]) -> Wrap {
        use clap::Parser;
        let mut v = vec!["claw", "wrap"];
        v.extend_from_slice(args);
        match crate::args::Cli::try_parse_from(v).unwrap().command {
            crate::args::Cmd::Wrap(w) => w,
            _ => unreachable!(),
        }
    }

    #[test]
    fn wrap_builds_a_proxy_config() {
        let w = wrap(&[
            "https://api.example.com/v1",
            "--slug",
            "acme-weather",
            "--method",
            "get,post",
            "--inject-header-secret",
            "x-api-key=API_KEY",
            "--cache-ttl",
            "60",
            "--transform-select",
            "id,name",
            "--transform-rename",
            "name=title",
        ]);
        let mut c = Map::new();
        c.insert("workerName".into(), json!("old"));
        apply_wrap(&mut c, "acme-weather", &w).unwrap();
        apply_limits(&mut c, &w.limits);
        assert_eq!(
            Value::Object(c.clone()),
            json!({
                "resourceType": "proxy", "plan": "free",
                "proxy": {
                    "upstreamUrl": "https://api.example.com/v1",
                    "allowedMethods": ["GET", "POST"],
                    "injectHeaders": [{"name": "x-api-key", "secret": "ACME_WEATHER__API_KEY"}],
                    "cacheTtlS": 60,
                    "transform": {"select": ["id", "name"], "rename": {"name": "title"}}
                }
            })
        );
        validate(&c, "acme-weather").unwrap();
        // An already scoped name is kept.
        assert_eq!(
            scoped_secret("acme-weather", "ACME_WEATHER__K"),
            "ACME_WEATHER__K"
        );
        let bad = wrap(&[
            "https://x",
            "--slug",
            "ab",
            "--inject-header-secret",
            "nope",
        ]);
        assert!(apply_wrap(&mut Map::new(), "ab", &bad).is_err());
        let bad = wrap(&["ftp://x", "--slug", "ab"]);
        let mut c = Map::new();
        apply_wrap(&mut c, "ab", &bad).unwrap();
        apply_limits(&mut c, &bad.limits);
        assert!(validate(&c, "ab")
            .unwrap_err()
            .contains("proxy.upstreamUrl"));
    }
}
