//! The command line: every command, its flags, and its help with an example.

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "claw",
    version,
    about = "Deploy and run paid APIs on 402claw: functions, datasets and wrapped upstreams, paid per call with x402",
    after_help = "Examples:\n  claw login --url https://402claw.example\n  claw deploy worker.ts --slug weather --price 0.001 --pay-to 0xYOU\n  claw earnings weather --days 7\n\nConfiguration: --url/--token, else CLAW_URL/CLAW_TOKEN, else the file `claw login` writes\n($XDG_CONFIG_HOME/claw/config.json or ~/.config/claw/config.json).\n",
    after_long_help = concat!(
        "Examples:\n  claw login --url https://402claw.example\n  claw deploy worker.ts --slug weather --price 0.001 --pay-to 0xYOU\n  claw earnings weather --days 7\n\n",
        "Configuration: --url/--token, else CLAW_URL/CLAW_TOKEN, else the file `claw login` writes\n($XDG_CONFIG_HOME/claw/config.json or ~/.config/claw/config.json).\n\n",
        "Exit codes: 0 done, 1 usage or local validation (nothing sent), 2 refused (401/403),\n3 not found (404), 4 other API error, 5 network."
    )
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// Platform base URL (overrides CLAW_URL and the config file)
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token: an operator token or a creator key (overrides CLAW_TOKEN and the config
    /// file; prefer CLAW_TOKEN or `claw login`, which keep it out of shell history)
    #[arg(long, global = true, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON answer as received instead of a table
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Save the platform URL and a token to the config file (0600)
    #[command(
        after_help = "Example:\n  echo \"$TOKEN\" | claw login --url https://402claw.example\n  claw login --url http://127.0.0.1:8787   # prompts for the token, not echoed"
    )]
    Login,
    /// Show who the token is (operator, or a creator key and its tenants)
    #[command(after_help = "Example:\n  claw whoami --json")]
    Whoami,
    /// Deploy a function (.js/.mjs/.ts) or a dataset (.csv/.json): create or update the
    /// tenant, upload, print the URL to call
    #[command(
        after_help = "Examples:\n  claw deploy worker.ts --slug weather --price 0.001 --network base-sepolia --pay-to 0xYOU\n  claw deploy cities.csv --slug cities --plan pro --rate-limit-caller 100/60s\n  claw deploy worker.js --slug hello          # free, plain single-file module\n\nTypeScript and code with imports are bundled with esbuild (CLAW_ESBUILD, node_modules, PATH).\nAn existing tenant keeps every setting not given as a flag."
    )]
    Deploy(Deploy),
    /// Wrap an upstream HTTP API as a paid proxy tenant
    #[command(
        after_help = "Example:\n  claw wrap https://api.example.com/v1 --slug weather --method GET \\\n    --inject-header-secret x-api-key=API_KEY --cache-ttl 60 --transform-select id,name \\\n    --price 0.001 --pay-to 0xYOU\n\nSECRET names a secret of the platform's dispatcher holding the upstream credential (set\nby the operator); a tenant may only name its own: API_KEY on `weather` is WEATHER__API_KEY."
    )]
    Wrap(Wrap),
    /// List, show, suspend, resume or remove tenants
    #[command(subcommand)]
    Tenants(TenantsCmd),
    /// A tenant's deployed versions, newest first
    #[command(after_help = "Example:\n  claw versions weather")]
    Versions { slug: String },
    /// Make the previous version live again
    #[command(after_help = "Example:\n  claw rollback weather")]
    Rollback { slug: String },
    /// Set, list or remove a tenant's secrets (values are never shown)
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// Create, list or revoke creator keys (operators)
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Earnings of one tenant, or of all tenants (operators)
    #[command(
        after_help = "Examples:\n  claw earnings weather --days 7\n  claw earnings              # every tenant, operators only"
    )]
    Earnings {
        slug: Option<String>,
        /// Day buckets to include (UTC days)
        #[arg(long)]
        days: Option<u32>,
    },
    /// A tenant's ledger journal, after a sequence number
    #[command(after_help = "Example:\n  claw ledger weather --after 120 --limit 50 --json")]
    Ledger {
        slug: String,
        /// Entries after this seq (the previous page's nextCursor)
        #[arg(long)]
        after: Option<i64>,
        /// Page size, 1 to 500
        #[arg(long)]
        limit: Option<u32>,
    },
    /// A tenant's payouts, in creation order
    #[command(after_help = "Example:\n  claw payouts weather --limit 20")]
    Payouts {
        slug: String,
        /// Payouts created after this journal seq (a previous nextCursor)
        #[arg(long)]
        after: Option<i64>,
        /// Page size, 1 to 500
        #[arg(long)]
        limit: Option<u32>,
    },
    /// A tenant's usage events (calls), oldest first; --follow keeps polling
    #[command(
        after_help = "Examples:\n  claw events weather --limit 20\n  claw events weather --follow --stage settled"
    )]
    Events {
        slug: String,
        /// Keep polling for new events (every 2 s) until interrupted
        #[arg(long)]
        follow: bool,
        /// Only events of this stage (settled, served, challenged, error, ...)
        #[arg(long)]
        stage: Option<String>,
        /// Events after this cursor (a previous nextCursor)
        #[arg(long)]
        since: Option<String>,
        /// Page size, 1 to 500
        #[arg(long)]
        limit: Option<u32>,
    },
    /// The trending tenants ranking (public)
    #[command(after_help = "Example:\n  claw trending --window 24h")]
    Trending {
        /// 1h, 24h or 7d
        #[arg(long, default_value = "24h", value_parser = ["1h", "24h", "7d"])]
        window: String,
        /// Entries, 1 to 100
        #[arg(long)]
        limit: Option<u32>,
    },
}

/// Price flags (deploy and wrap).
#[derive(Args, Debug, Clone)]
pub struct PriceFlags {
    /// Price per call in whole units of the asset, e.g. 0.001 (USDC has 6 decimals)
    #[arg(long, value_name = "AMOUNT", conflicts_with_all = ["price_atomic", "free"])]
    pub price: Option<String>,
    /// Price per call in atomic units, e.g. 1000
    #[arg(long, value_name = "ATOMIC", conflicts_with = "free")]
    pub price_atomic: Option<String>,
    /// Make the tenant free (remove its price)
    #[arg(long)]
    pub free: bool,
    /// base, base-sepolia, eip155:8453 or eip155:84532 (default base-sepolia)
    #[arg(long)]
    pub network: Option<String>,
    /// The address paid (your wallet)
    #[arg(long, value_name = "0x...")]
    pub pay_to: Option<String>,
    /// The token contract (default: USDC on the network)
    #[arg(long, value_name = "0x...")]
    pub asset: Option<String>,
    /// The token's EIP-712 domain name (needed for an asset other than USDC)
    #[arg(long)]
    pub asset_name: Option<String>,
    /// The token's EIP-712 domain version
    #[arg(long)]
    pub asset_version: Option<String>,
    /// The token's decimals, for --price
    #[arg(long, default_value_t = crate::amount::DEFAULT_DECIMALS)]
    pub decimals: u32,
}

impl Default for PriceFlags {
    fn default() -> Self {
        PriceFlags {
            price: None,
            price_atomic: None,
            free: false,
            network: None,
            pay_to: None,
            asset: None,
            asset_name: None,
            asset_version: None,
            decimals: crate::amount::DEFAULT_DECIMALS,
        }
    }
}

/// Plan and rate limit flags (deploy and wrap).
#[derive(Args, Debug, Clone, Default)]
pub struct LimitFlags {
    /// free, pro or business
    #[arg(long, value_parser = ["free", "pro", "business"])]
    pub plan: Option<String>,
    /// Per-caller limit, e.g. 100/60s
    #[arg(long, value_name = "RATE")]
    pub rate_limit_caller: Option<String>,
    /// Limit over all callers, e.g. 10000/1h
    #[arg(long, value_name = "RATE")]
    pub rate_limit_global: Option<String>,
    /// Requests allowed at once above the steady rate
    #[arg(long, value_name = "N")]
    pub rate_limit_burst: Option<u32>,
}

#[derive(Args, Debug, Clone)]
pub struct Deploy {
    /// The file: .js, .mjs or .ts (a function), .csv or .json (a dataset)
    pub file: std::path::PathBuf,
    /// The tenant's slug (2-63 of a-z 0-9 -)
    #[arg(long)]
    pub slug: String,
    #[command(flatten)]
    pub price: PriceFlags,
    #[command(flatten)]
    pub limits: LimitFlags,
    /// A host the function may fetch (repeatable; *.example.com for subdomains)
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
    /// An env name (a tenant secret) the function sees (repeatable)
    #[arg(long = "expose-env", value_name = "NAME")]
    pub expose_env: Vec<String>,
    /// The function's time budget per call, in milliseconds
    #[arg(long, value_name = "MS")]
    pub max_duration_ms: Option<u32>,
    /// The Workers compatibility date of the upload
    #[arg(long, default_value = "2026-04-20")]
    pub compatibility_date: String,
    /// A Workers compatibility flag (repeatable), e.g. nodejs_compat
    #[arg(long = "compatibility-flag", value_name = "FLAG")]
    pub compatibility_flags: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct Wrap {
    /// The upstream base URL (https)
    pub upstream: String,
    /// The tenant's slug
    #[arg(long)]
    pub slug: String,
    /// An allowed method (repeatable, or comma-separated); default GET
    #[arg(long = "method", value_delimiter = ',')]
    pub methods: Vec<String>,
    /// HEADER=SECRET: send the tenant secret SECRET as HEADER upstream (repeatable)
    #[arg(long = "inject-header-secret", value_name = "HEADER=SECRET")]
    pub inject: Vec<String>,
    /// Cache GET 200 answers for this many seconds
    #[arg(long, value_name = "SECONDS")]
    pub cache_ttl: Option<u32>,
    /// Upstream timeout in milliseconds
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u32>,
    /// Keep only these top-level JSON fields (comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "FIELDS")]
    pub transform_select: Vec<String>,
    /// Drop these top-level JSON fields (comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "FIELDS")]
    pub transform_drop: Vec<String>,
    /// Rename a field, OLD=NEW (repeatable)
    #[arg(long, value_name = "OLD=NEW")]
    pub transform_rename: Vec<String>,
    #[command(flatten)]
    pub price: PriceFlags,
    #[command(flatten)]
    pub limits: LimitFlags,
}

#[derive(Subcommand, Debug)]
pub enum TenantsCmd {
    /// List tenants (a creator key sees its own)
    #[command(after_help = "Example:\n  claw tenants ls --limit 20")]
    Ls {
        /// Start after this slug (a previous nextCursor)
        #[arg(long)]
        after: Option<String>,
        /// Page size, 1 to 100
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show one tenant's config and status
    #[command(after_help = "Example:\n  claw tenants show weather --json")]
    Show { slug: String },
    /// Suspend a tenant: its callers get 403 tenant_suspended (operators)
    #[command(after_help = "Example:\n  claw tenants suspend weather")]
    Suspend { slug: String },
    /// Resume a suspended tenant (operators)
    #[command(after_help = "Example:\n  claw tenants resume weather")]
    Resume { slug: String },
    /// Delete a tenant
    #[command(after_help = "Example:\n  claw tenants rm weather --yes")]
    Rm {
        slug: String,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretsCmd {
    /// Set a secret; the value comes from stdin or a prompt (not echoed)
    #[command(
        after_help = "Examples:\n  claw secrets put weather API_KEY            # prompts, nothing echoed\n  printf %s \"$KEY\" | claw secrets put weather API_KEY\n  claw secrets put weather API_KEY --value x  # lands in shell history: avoid"
    )]
    Put {
        slug: String,
        name: String,
        /// The value on the command line (visible in shell history and ps; prefer stdin)
        #[arg(long)]
        value: Option<String>,
    },
    /// List secret names (never values)
    #[command(after_help = "Example:\n  claw secrets ls weather")]
    Ls { slug: String },
    /// Remove a secret
    #[command(after_help = "Example:\n  claw secrets rm weather API_KEY")]
    Rm { slug: String, name: String },
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a creator key scoped to tenants; the key is shown once
    #[command(
        after_help = "Example:\n  claw keys create --tenant weather --tenant cities --label alice --expires-in-days 90"
    )]
    Create {
        /// A tenant the key may manage (repeatable)
        #[arg(long = "tenant", value_name = "SLUG", required = true)]
        tenants: Vec<String>,
        /// A label for people
        #[arg(long, default_value = "")]
        label: String,
        /// Expire after this many days (default: never)
        #[arg(long, conflicts_with = "expires_at")]
        expires_in_days: Option<u32>,
        /// Expire at this unix time (seconds)
        #[arg(long)]
        expires_at: Option<u64>,
    },
    /// List creator keys (never the keys themselves)
    #[command(after_help = "Example:\n  claw keys ls")]
    Ls,
    /// Revoke a creator key: refused at once afterwards
    #[command(after_help = "Example:\n  claw keys revoke ck_0123456789abcdef")]
    Revoke { id: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_an_example() {
        fn walk(cmd: &clap::Command, path: &str) {
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.has_subcommands() {
                    walk(sub, &path);
                } else {
                    let help = sub
                        .get_after_help()
                        .map(|h| h.to_string())
                        .unwrap_or_default();
                    assert!(help.contains("Example"), "{path} has no example");
                    assert!(help.contains("claw "), "{path}'s example does not run claw");
                }
            }
        }
        walk(&Cli::command(), "claw");
    }

    #[test]
    fn parses_the_issue_examples() {
        let c = Cli::try_parse_from([
            "claw",
            "deploy",
            "w.ts",
            "--slug",
            "wx",
            "--price",
            "0.001",
            "--network",
            "base-sepolia",
            "--pay-to",
            "0x1111111111111111111111111111111111111111",
            "--plan",
            "pro",
            "--rate-limit-caller",
            "100/60s",
            "--rate-limit-global",
            "10000/1h",
            "--rate-limit-burst",
            "20",
            "--allowed-host",
            "api.example.com",
            "--expose-env",
            "API_KEY",
            "--max-duration-ms",
            "5000",
            "--json",
        ])
        .unwrap();
        assert!(c.global.json);
        let Cmd::Deploy(d) = c.command else { panic!() };
        assert_eq!(d.price.price.as_deref(), Some("0.001"));
        assert_eq!(d.limits.rate_limit_burst, Some(20));
        assert_eq!(d.allowed_hosts, ["api.example.com"]);
        let c = Cli::try_parse_from([
            "claw",
            "wrap",
            "https://api.example.com",
            "--slug",
            "wx",
            "--method",
            "GET",
            "--inject-header-secret",
            "x-api-key=KEY",
            "--cache-ttl",
            "60",
            "--transform-select",
            "id,name",
        ])
        .unwrap();
        let Cmd::Wrap(w) = c.command else { panic!() };
        assert_eq!(w.transform_select, ["id", "name"]);
        assert_eq!(w.inject, ["x-api-key=KEY"]);
        assert!(
            Cli::try_parse_from(["claw", "deploy", "w.ts"]).is_err(),
            "--slug is required"
        );
        assert!(Cli::try_parse_from(["claw", "trending", "--window", "2h"]).is_err());
        assert!(Cli::try_parse_from([
            "claw", "deploy", "w.ts", "--slug", "a", "--price", "1", "--free"
        ])
        .is_err());
    }
}
