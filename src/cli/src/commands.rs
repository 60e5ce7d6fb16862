//! Each command: the request(s) it makes ([`request`] maps the simple ones, unit tested) and
//! what it prints. Reads print a table, or with `--json` the API's JSON as received.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::api::{enc, with_query, Client, Failure, Req};
use crate::args::{Cli, Cmd, Deploy, KeysCmd, SecretsCmd, TenantsCmd, Wrap};
use crate::bundle::{self, Source};
use crate::config::{self, Source as CfgSource, Token};
use crate::multipart::{self, Part};
use crate::table::{cell, money, render, time_cell, whole};
use crate::tenant;

const P: &str = "/__platform";

fn usage(m: impl Into<String>) -> Failure {
    Failure::Usage(m.into())
}

/// The request of each command that is one request; `None` for the others.
pub fn request(cmd: &Cmd) -> Result<Option<Req>, Failure> {
    let slug_ok = |s: &str| tenant::check_slug(s).map_err(usage);
    let days = |d: &Option<u32>| d.map(|d| d.to_string());
    Ok(Some(match cmd {
        Cmd::Whoami => Req::get(format!("{P}/whoami")),
        Cmd::Tenants(t) => match t {
            TenantsCmd::Ls { after, limit } => Req::get(with_query(
                &format!("{P}/tenants"),
                &[
                    ("after", after.clone()),
                    ("limit", limit.map(|l| l.to_string())),
                ],
            )),
            TenantsCmd::Show { slug } => {
                slug_ok(slug)?;
                Req::get(format!("{P}/tenants/{slug}"))
            }
            TenantsCmd::Suspend { slug } => {
                slug_ok(slug)?;
                Req::new("POST", format!("{P}/tenants/{slug}/suspend"))
            }
            TenantsCmd::Resume { slug } => {
                slug_ok(slug)?;
                Req::new("POST", format!("{P}/tenants/{slug}/resume"))
            }
            TenantsCmd::Rm { slug, .. } => {
                slug_ok(slug)?;
                Req::new("DELETE", format!("{P}/tenants/{slug}"))
            }
        },
        Cmd::Versions { slug } => {
            slug_ok(slug)?;
            Req::get(format!("{P}/tenants/{slug}/deployment"))
        }
        Cmd::Rollback { slug } => {
            slug_ok(slug)?;
            Req::new("POST", format!("{P}/tenants/{slug}/deployment/rollback"))
        }
        Cmd::Secrets(s) => match s {
            SecretsCmd::Ls { slug } => {
                slug_ok(slug)?;
                Req::get(format!("{P}/tenants/{slug}/secrets"))
            }
            SecretsCmd::Rm { slug, name } => {
                slug_ok(slug)?;
                Req::new(
                    "DELETE",
                    format!("{P}/tenants/{slug}/secrets/{}", enc(name)),
                )
            }
            SecretsCmd::Put { .. } => return Ok(None),
        },
        Cmd::Keys(k) => match k {
            KeysCmd::Create {
                tenants,
                label,
                expires_in_days,
                expires_at,
            } => {
                for t in tenants {
                    slug_ok(t)?;
                }
                let expires = match (expires_in_days, expires_at) {
                    (Some(d), _) => json!(now_s() + u64::from(*d) * 86_400),
                    (None, Some(at)) => json!(at),
                    (None, None) => Value::Null,
                };
                Req::json(
                    "POST",
                    format!("{P}/keys"),
                    &json!({"tenants": tenants, "label": label, "expiresAt": expires}),
                )
            }
            KeysCmd::Ls => Req::get(format!("{P}/keys")),
            KeysCmd::Revoke { id } => Req::new("DELETE", format!("{P}/keys/{}", enc(id))),
        },
        Cmd::Earnings { slug, days: d } => match slug {
            Some(slug) => {
                slug_ok(slug)?;
                Req::get(with_query(
                    &format!("{P}/earnings/{slug}"),
                    &[("days", days(d))],
                ))
            }
            None => Req::get(with_query(&format!("{P}/earnings"), &[("days", days(d))])),
        },
        Cmd::Ledger { slug, after, limit } => {
            slug_ok(slug)?;
            Req::get(with_query(
                &format!("{P}/ledger/{slug}/entries"),
                &[
                    ("after", after.map(|a| a.to_string())),
                    ("limit", limit.map(|l| l.to_string())),
                ],
            ))
        }
        Cmd::Payouts { slug, after, limit } => {
            slug_ok(slug)?;
            Req::get(with_query(
                &format!("{P}/ledger/{slug}/payouts"),
                &[
                    ("after", after.map(|a| a.to_string())),
                    ("limit", limit.map(|l| l.to_string())),
                ],
            ))
        }
        Cmd::Events {
            slug,
            stage,
            since,
            limit,
            ..
        } => {
            slug_ok(slug)?;
            events_req(slug, stage.as_deref(), since.clone(), *limit)
        }
        Cmd::Trending { window, limit } => Req::get(with_query(
            &format!("{P}/trending"),
            &[
                ("window", Some(window.clone())),
                ("limit", limit.map(|l| l.to_string())),
            ],
        )),
        Cmd::Login | Cmd::Deploy(_) | Cmd::Wrap(_) => return Ok(None),
    }))
}

fn events_req(slug: &str, stage: Option<&str>, since: Option<String>, limit: Option<u32>) -> Req {
    Req::get(with_query(
        &format!("{P}/events"),
        &[
            ("tenant", Some(slug.to_owned())),
            ("stage", stage.map(str::to_owned)),
            ("since", since),
            ("limit", limit.map(|l| l.to_string())),
        ],
    ))
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The settings in force: flags, then the environment, then the config file.
pub fn settings(cli: &Cli) -> Result<config::Resolved, Failure> {
    let path = config::default_file_path();
    let file = match &path {
        Some(p) => config::read_file(p).map_err(usage)?,
        None => config::FileConfig::default(),
    };
    Ok(config::resolve(
        CfgSource {
            url: cli.global.url.clone(),
            token: cli.global.token.clone().map(Token::new),
        },
        CfgSource {
            url: std::env::var(config::ENV_URL).ok(),
            token: std::env::var(config::ENV_TOKEN).ok().map(Token::new),
        },
        CfgSource {
            url: file.url,
            token: file.token,
        },
    ))
}

fn check_url(url: &str) -> Result<(), Failure> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(usage(format!(
            "the platform URL {url:?} must start with http:// or https://"
        )))
    }
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    let resolved = settings(&cli)?;
    if let Cmd::Login = cli.command {
        return login(&cli, resolved);
    }
    // Local checks first: a bad argument never reaches the network.
    let simple = request(&cli.command)?;
    let url = resolved
        .url
        .clone()
        .ok_or_else(|| usage("no platform URL: set CLAW_URL, pass --url, or run `claw login`"))?;
    check_url(&url)?;
    let client = Client::new(url, resolved.token.clone());
    let json_out = cli.global.json;
    match cli.command {
        Cmd::Login => unreachable!("handled above"),
        Cmd::Deploy(d) => deploy(&client, &d, json_out),
        Cmd::Wrap(w) => wrap(&client, &w, json_out),
        Cmd::Secrets(SecretsCmd::Put { slug, name, value }) => {
            secret_put(&client, &slug, &name, value)
        }
        Cmd::Events {
            follow: true,
            slug,
            stage,
            since,
            limit,
        } => follow_events(&client, &slug, stage.as_deref(), since, limit, json_out),
        Cmd::Tenants(TenantsCmd::Rm { slug, yes }) => {
            confirm_rm(&slug, yes)?;
            let req = simple.ok_or_else(|| usage("no request"))?;
            let (_, text) = client.send_json(&req)?;
            done(json_out, &text, &format!("{slug}: deleted"))
        }
        cmd => {
            let req = simple.ok_or_else(|| usage("no request"))?;
            let (value, text) = client.send_json(&req)?;
            if json_out {
                println!("{}", text.trim_end());
                return Ok(());
            }
            print!("{}", human(&cmd, &value, &resolved));
            Ok(())
        }
    }
}

fn done(json_out: bool, text: &str, human: &str) -> Result<(), Failure> {
    if json_out {
        println!("{}", text.trim_end());
    } else {
        println!("{human}");
    }
    Ok(())
}

fn confirm_rm(slug: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(usage(format!("deleting {slug}: pass --yes to confirm")));
    }
    eprint!("Delete tenant {slug}? Type its slug to confirm: ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| usage(e.to_string()))?;
    if line.trim() == slug {
        Ok(())
    } else {
        Err(usage("not confirmed; nothing deleted"))
    }
}

/// The table (or lines) for a read command's answer.
pub fn human(cmd: &Cmd, v: &Value, resolved: &config::Resolved) -> String {
    let arr = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match cmd {
        Cmd::Whoami => {
            let mut s = match v.get("kind").and_then(Value::as_str) {
                Some("operator") => "operator (full access)\n".to_owned(),
                Some("creator") => format!(
                    "creator key {} ({}) for {}; expires {}\n",
                    cell(v.get("prefix")),
                    cell(v.get("id")),
                    cell(v.get("tenants")),
                    match v.get("expiresAt") {
                        Some(Value::Number(_)) => time_cell(v.get("expiresAt"), 1000),
                        _ => "never".into(),
                    }
                ),
                _ => format!("{v}\n"),
            };
            s.push_str(&format!(
                "url from {}, token from {}\n",
                resolved.url_from, resolved.token_from
            ));
            s
        }
        Cmd::Tenants(TenantsCmd::Ls { .. }) => {
            let rows: Vec<Vec<String>> = arr("tenants")
                .iter()
                .map(|t| {
                    let c = t.get("config").cloned().unwrap_or_default();
                    vec![
                        cell(c.get("slug")),
                        cell(c.get("resourceType")),
                        cell(c.get("plan")),
                        c.get("price")
                            .map(|p| money(p.get("amountAtomic")))
                            .unwrap_or_else(|| "free".into()),
                        cell(t.get("status")),
                        time_cell(t.get("updatedAtMs"), 1),
                    ]
                })
                .collect();
            let mut s = render(
                &["SLUG", "TYPE", "PLAN", "PRICE", "STATUS", "UPDATED"],
                &rows,
            );
            if let Some(n) = v.get("nextCursor").and_then(Value::as_str) {
                s.push_str(&format!("more: claw tenants ls --after {n}\n"));
            }
            s
        }
        Cmd::Tenants(TenantsCmd::Show { .. }) => {
            let c = v.get("config").cloned().unwrap_or_default();
            let mut s = format!(
                "{}  {}  {}  status {}  version {}  updated {}\n",
                cell(c.get("slug")),
                cell(c.get("resourceType")),
                cell(c.get("plan")),
                cell(v.get("status")),
                cell(v.get("version")),
                time_cell(v.get("updatedAtMs"), 1),
            );
            if let Some(p) = c.get("price") {
                s.push_str(&format!(
                    "price {} per call on {} to {}\n",
                    money(p.get("amountAtomic")),
                    cell(p.get("network")),
                    cell(p.get("payTo"))
                ));
            }
            s.push_str(&serde_json::to_string_pretty(&c).unwrap_or_default());
            s.push('\n');
            s
        }
        Cmd::Tenants(TenantsCmd::Suspend { slug }) => format!("{slug}: suspended\n"),
        Cmd::Tenants(TenantsCmd::Resume { slug }) => format!("{slug}: active\n"),
        Cmd::Tenants(TenantsCmd::Rm { slug, .. }) => format!("{slug}: deleted\n"),
        Cmd::Versions { .. } => {
            let live = v.get("live").and_then(|l| l.get("version")).cloned();
            let rows: Vec<Vec<String>> = arr("history")
                .iter()
                .map(|h| {
                    let is_live = live.is_some() && h.get("version") == live.as_ref();
                    vec![
                        cell(h.get("version")),
                        if is_live {
                            "live".into()
                        } else {
                            String::new()
                        },
                        cell(h.get("mainModule")),
                        cell(h.get("size")),
                        cell(h.get("hash")).chars().take(12).collect(),
                        time_cell(h.get("createdAt"), 1000),
                    ]
                })
                .collect();
            render(
                &["VERSION", "", "MAIN", "BYTES", "SHA256", "CREATED"],
                &rows,
            )
        }
        Cmd::Rollback { slug } => format!(
            "{slug}: version {} is live\n",
            cell(v.get("live").and_then(|l| l.get("version")))
        ),
        Cmd::Secrets(SecretsCmd::Ls { .. }) => {
            let rows: Vec<Vec<String>> = arr("secrets")
                .iter()
                .map(|s| vec![cell(s.get("name"))])
                .collect();
            render(&["NAME"], &rows)
        }
        Cmd::Secrets(SecretsCmd::Rm { slug, name }) => format!("{slug}: secret {name} removed\n"),
        Cmd::Keys(KeysCmd::Create { .. }) => format!(
            "{}\nid {}  prefix {}  tenants {}\nThis key is shown once: store it now.\n",
            cell(v.get("key")),
            cell(v.get("id")),
            cell(v.get("prefix")),
            cell(v.get("tenants"))
        ),
        Cmd::Keys(KeysCmd::Ls) => {
            let rows: Vec<Vec<String>> = arr("keys")
                .iter()
                .map(|k| {
                    vec![
                        cell(k.get("id")),
                        cell(k.get("prefix")),
                        cell(k.get("tenants")),
                        cell(k.get("label")),
                        time_cell(k.get("createdAt"), 1000),
                        time_cell(k.get("expiresAt"), 1000),
                        time_cell(k.get("revokedAt"), 1000),
                    ]
                })
                .collect();
            render(
                &[
                    "ID", "PREFIX", "TENANTS", "LABEL", "CREATED", "EXPIRES", "REVOKED",
                ],
                &rows,
            )
        }
        Cmd::Keys(KeysCmd::Revoke { id }) => format!("{id}: revoked\n"),
        Cmd::Earnings {
            slug: Some(slug), ..
        } => earnings_lines(slug, v),
        Cmd::Earnings { slug: None, .. } => {
            let rows: Vec<Vec<String>> = arr("tenants")
                .iter()
                .map(|t| {
                    let e = t.get("earnings");
                    let f = |k: &str| match e {
                        Some(e) => whole(e.get(k)),
                        None => "-".into(),
                    };
                    vec![
                        cell(t.get("slug")),
                        f("gross"),
                        f("fees"),
                        f("net"),
                        f("available"),
                        e.map(|e| cell(e.get("settledCount")))
                            .unwrap_or_else(|| cell(t.get("error"))),
                    ]
                })
                .collect();
            let mut s = render(
                &["TENANT", "GROSS", "FEES", "NET", "AVAILABLE", "CALLS"],
                &rows,
            );
            if let Some(t) = v.get("totals") {
                s.push_str(&format!(
                    "totals: gross {}  fees {}  net {}  (whole units; atomic in --json)\n",
                    money(t.get("gross")),
                    money(t.get("fees")),
                    money(t.get("net"))
                ));
            }
            if let Some(n) = v.get("nextCursor").and_then(Value::as_str) {
                s.push_str(&format!("more tenants after {n}\n"));
            }
            s
        }
        Cmd::Ledger { slug, .. } => {
            let rows: Vec<Vec<String>> = arr("entries")
                .iter()
                .map(|e| {
                    vec![
                        cell(e.get("seq")),
                        time_cell(e.get("atMs"), 1),
                        cell(e.get("kind")),
                        whole(e.get("amount")),
                        cell(e.get("amount")),
                        whole(e.get("net")),
                        e.get("payer")
                            .or(e.get("destination"))
                            .map(|x| cell(Some(x)))
                            .unwrap_or_else(|| "-".into()),
                        cell(e.get("txRef").or(e.get("payoutId"))),
                    ]
                })
                .collect();
            let mut s = render(
                &[
                    "SEQ",
                    "TIME",
                    "KIND",
                    "AMOUNT",
                    "ATOMIC",
                    "NET",
                    "PAYER/TO",
                    "TX/PAYOUT",
                ],
                &rows,
            );
            if v.get("hasMore") == Some(&Value::Bool(true)) {
                s.push_str(&format!(
                    "more: claw ledger {slug} --after {}\n",
                    cell(v.get("nextCursor"))
                ));
            }
            s
        }
        Cmd::Payouts { slug, .. } => payouts_human(slug, v),
        Cmd::Events { .. } => events_table(&arr("events")),
        Cmd::Trending { .. } => {
            let rows: Vec<Vec<String>> = arr("entries")
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    vec![
                        (i + 1).to_string(),
                        cell(e.get("tenant")),
                        cell(e.get("score")),
                        cell(e.get("calls")),
                        cell(e.get("payers")),
                        money(e.get("revenueAtomic")),
                    ]
                })
                .collect();
            format!(
                "window {}\n{}",
                cell(v.get("window")),
                render(
                    &["#", "TENANT", "SCORE", "CALLS", "PAYERS", "REVENUE"],
                    &rows
                )
            )
        }
        _ => format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default()),
    }
}

fn earnings_lines(slug: &str, v: &Value) -> String {
    let mut s = format!("{slug} (whole units, atomic in parentheses)\n");
    for (label, k, count) in [
        ("gross", "gross", Some("settledCount")),
        ("fees", "fees", None),
        ("net", "net", None),
        ("pending", "pending", Some("pendingCount")),
        ("unknown", "unknown", Some("unknownCount")),
        ("paid out", "paidOut", Some("paidOutCount")),
        (
            "payouts pending",
            "payoutsPending",
            Some("payoutsPendingCount"),
        ),
        ("available", "available", None),
    ] {
        s.push_str(&format!("  {label:<16}{}", money(v.get(k))));
        if let Some(c) = count {
            s.push_str(&format!("  [{}]", cell(v.get(c))));
        }
        s.push('\n');
    }
    let days = v
        .get("days")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !days.is_empty() {
        let rows: Vec<Vec<String>> = days
            .iter()
            .map(|d| {
                vec![
                    cell(d.get("day")),
                    whole(d.get("gross")),
                    whole(d.get("fee")),
                    whole(d.get("net")),
                    cell(d.get("count")),
                ]
            })
            .collect();
        s.push_str(&render(&["DAY", "GROSS", "FEE", "NET", "CALLS"], &rows));
    }
    s
}

fn events_table(events: &[Value]) -> String {
    let rows: Vec<Vec<String>> = events.iter().map(event_row).collect();
    render(
        &[
            "SEQ", "TIME", "STAGE", "STATUS", "ROUTE", "AMOUNT", "MS", "CODE",
        ],
        &rows,
    )
}

fn event_row(e: &Value) -> Vec<String> {
    vec![
        cell(e.get("seq")),
        time_cell(e.get("timeMs"), 1),
        cell(e.get("stage")),
        cell(e.get("statusCode")),
        cell(e.get("route")),
        whole(e.get("amountAtomic")),
        cell(e.get("latencyMs")),
        cell(e.get("errorCode")),
    ]
}

fn follow_events(
    client: &Client,
    slug: &str,
    stage: Option<&str>,
    mut since: Option<String>,
    limit: Option<u32>,
    json_out: bool,
) -> Result<(), Failure> {
    let mut header = !json_out;
    loop {
        let (v, text) = client.send_json(&events_req(slug, stage, since.clone(), limit))?;
        let events = v
            .get("events")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if json_out {
            if !events.is_empty() {
                println!("{}", text.trim_end());
            }
        } else {
            if header {
                // The header once; rows as they come.
                print!("{}", events_table(&[]));
                header = false;
            }
            for r in events.iter().map(event_row) {
                println!("{}", r.join("  "));
            }
        }
        std::io::stdout().flush().ok();
        if let Some(c) = v.get("nextCursor") {
            since = Some(cell(Some(c)));
        }
        if v.get("hasMore") != Some(&Value::Bool(true)) {
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
    }
}

fn payouts_human(slug: &str, v: &Value) -> String {
    let list = v
        .get("payouts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            vec![
                cell(p.get("id")),
                cell(p.get("state")),
                money(p.get("amount")),
                cell(p.get("destination")),
                time_cell(p.get("createdAtMs"), 1),
                cell(p.get("txRef").or(p.get("voidReason"))),
            ]
        })
        .collect();
    let mut s = render(
        &[
            "ID",
            "STATE",
            "AMOUNT",
            "DESTINATION",
            "CREATED",
            "TX/REASON",
        ],
        &rows,
    );
    if v.get("hasMore") == Some(&Value::Bool(true)) {
        s.push_str(&format!(
            "more: claw payouts {slug} --after {}\n",
            cell(v.get("nextCursor"))
        ));
    }
    s
}

fn read_secret_value(name: &str, value: Option<String>) -> Result<String, Failure> {
    if let Some(v) = value {
        return Ok(v);
    }
    let v = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Value of {name} (not echoed): "))
            .map_err(|e| usage(format!("reading the value: {e}")))?
    } else {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| usage(format!("reading the value from stdin: {e}")))?;
        // One trailing newline (from echo or a file) is not part of the value.
        if s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        s
    };
    if v.is_empty() {
        return Err(usage("empty secret value; nothing sent"));
    }
    Ok(v)
}

fn secret_put(
    client: &Client,
    slug: &str,
    name: &str,
    value: Option<String>,
) -> Result<(), Failure> {
    tenant::check_slug(slug).map_err(usage)?;
    let value = read_secret_value(name, value)?;
    let req = Req::json(
        "PUT",
        format!("{P}/tenants/{slug}/secrets/{}", enc(name)),
        &json!({ "value": value }),
    );
    let (v, _) = client.send_json(&req)?;
    // The answer names the secret; the value is never printed.
    println!(
        "{slug}: secret {} set",
        v.get("name").and_then(Value::as_str).unwrap_or(name)
    );
    Ok(())
}

fn login(cli: &Cli, resolved: config::Resolved) -> Result<(), Failure> {
    let path = config::default_file_path()
        .ok_or_else(|| usage("no config directory: set XDG_CONFIG_HOME or HOME"))?;
    let url = cli
        .global
        .url
        .clone()
        .or(resolved.url)
        .ok_or_else(|| usage("claw login needs --url (or CLAW_URL)"))?;
    check_url(&url)?;
    let token = match &cli.global.token {
        Some(t) => Token::new(t.clone()),
        None => Token::new(read_secret_value("the token", None)?.trim().to_owned()),
    };
    let client = Client::new(url.trim_end_matches('/').to_owned(), Some(token.clone()));
    // Checked before it is saved: a wrong token is refused here, not on first use.
    let who = client.send_json(&Req::get(format!("{P}/whoami")));
    let kind = match who {
        Ok((v, _)) => cell(v.get("kind")),
        // A platform without whoami: a tenant listing proves the token (admin or creator).
        Err(f) if f.code() == Some("route_not_found") => {
            client.send_json(&Req::get(format!("{P}/tenants?limit=1")))?;
            "a valid token".into()
        }
        Err(e) => return Err(e),
    };
    config::write_file(
        &path,
        &config::FileConfig {
            url: Some(client.base().to_owned()),
            token: Some(token),
        },
    )
    .map_err(usage)?;
    println!(
        "logged in to {} as {kind}; saved to {}",
        client.base(),
        path.display()
    );
    Ok(())
}

/// The tenant's current config (empty for a new tenant) and whether it exists.
fn current(client: &Client, slug: &str) -> Result<(Map<String, Value>, bool), Failure> {
    match client.send_json(&Req::get(format!("{P}/tenants/{slug}"))) {
        Ok((v, _)) => Ok((tenant::current_config(&v), true)),
        Err(f) if f.code() == Some("tenant_not_found") => Ok((Map::new(), false)),
        Err(f) => Err(f),
    }
}

/// Saves the config when it differs from the stored one (by the platform's reading of both).
fn save_config(
    client: &Client,
    slug: &str,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    existed: bool,
) -> Result<&'static str, Failure> {
    let parsed = tenant::validate(after, slug).map_err(usage)?;
    if existed && tenant::validate(before, slug).ok().as_ref() == Some(&parsed) {
        return Ok("unchanged");
    }
    client.send_json(&Req::json(
        "PUT",
        format!("{P}/tenants/{slug}"),
        &Value::Object(after.clone()),
    ))?;
    Ok(if existed { "updated" } else { "created" })
}

/// The module(s) to upload for a code file.
fn code_modules(
    file: &Path,
    source: Source,
    bytes: Vec<u8>,
) -> Result<(String, Vec<u8>, bool), Failure> {
    let name = bundle::module_name(file, source).map_err(usage)?;
    let text =
        String::from_utf8(bytes).map_err(|_| usage(format!("{}: not UTF-8", file.display())))?;
    if source == Source::JavaScript && !bundle::has_imports(&text) {
        return Ok((name, text.into_bytes(), false));
    }
    let cwd = std::env::current_dir().map_err(|e| usage(e.to_string()))?;
    let exe = std::env::current_exe().ok();
    let exe_dir = exe.as_deref().and_then(Path::parent);
    let mut starts: Vec<&Path> = vec![cwd.as_path()];
    if let Some(d) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        starts.push(d);
    }
    if let Some(d) = exe_dir {
        starts.push(d);
    }
    let esbuild = bundle::find_esbuild(
        std::env::var("CLAW_ESBUILD").ok().as_deref(),
        &starts,
        std::env::var_os("PATH").as_deref(),
        &|p: &Path| p.is_file(),
    )
    .map_err(usage)?;
    let bundled = bundle::run_esbuild(&esbuild, file).map_err(usage)?;
    Ok((name, bundled, true))
}

fn deploy(client: &Client, d: &Deploy, json_out: bool) -> Result<(), Failure> {
    let slug = &d.slug;
    tenant::check_slug(slug).map_err(usage)?;
    let source = Source::detect(&d.file).map_err(usage)?;
    let bytes = std::fs::read(&d.file)
        .map_err(|e| usage(format!("cannot read {}: {e}", d.file.display())))?;
    let (module, body, bundled) = if source.is_dataset() {
        let name = bundle::module_name(&d.file, source).map_err(usage)?;
        (name, bytes, false)
    } else {
        code_modules(&d.file, source, bytes)?
    };
    let (before, existed) = current(client, slug)?;
    let mut config = before.clone();
    tenant::set_type(
        &mut config,
        if source.is_dataset() {
            "dataset"
        } else {
            "function"
        },
    );
    // The deployment API's script (`tenant-{slug}`) serves a tenant without a workerName.
    config.remove("workerName");
    tenant::apply_price(&mut config, &d.price).map_err(usage)?;
    tenant::apply_limits(&mut config, &d.limits);
    if !d.allowed_hosts.is_empty() {
        config.insert("allowedHosts".into(), json!(d.allowed_hosts));
    }
    if !d.expose_env.is_empty() {
        config.insert("exposeEnv".into(), json!(d.expose_env));
    }
    if let Some(ms) = d.max_duration_ms {
        config.insert("maxDurationMs".into(), json!(ms));
    }
    // Everything is checked before anything is written.
    tenant::validate(&config, slug).map_err(usage)?;
    let form = upload_form(&module, source, body, d)?;
    let what = save_config(client, slug, &before, &config, existed)?;
    eprintln!("tenant {slug}: {what}");
    if bundled {
        eprintln!("bundled {} with esbuild into {module}", d.file.display());
    }
    let req = Req {
        method: "PUT",
        path: format!("{P}/tenants/{slug}/deployment"),
        body: Some((form.content_type, form.body)),
        progress: true,
    };
    let (v, text) = client.send_json(&req)?;
    if json_out {
        println!("{}", text.trim_end());
        return Ok(());
    }
    println!(
        "deployed {slug} version {} ({} bytes, sha256 {})",
        cell(v.get("version")),
        cell(v.get("size")),
        cell(v.get("hash")).chars().take(12).collect::<String>()
    );
    print_call_hint(client.base(), slug, &config);
    Ok(())
}

/// The deployment form: metadata, then the module (or the dataset file).
pub fn upload_form(
    module: &str,
    source: Source,
    body: Vec<u8>,
    d: &Deploy,
) -> Result<multipart::Form, Failure> {
    let mut meta = json!({
        "main_module": module,
        "compatibility_date": d.compatibility_date,
    });
    if !d.compatibility_flags.is_empty() {
        meta["compatibility_flags"] = json!(d.compatibility_flags);
    }
    let parts = [
        Part {
            name: "metadata".into(),
            filename: None,
            content_type: "application/json".into(),
            body: meta.to_string().into_bytes(),
        },
        Part {
            name: module.into(),
            filename: Some(module.into()),
            content_type: source.content_type().into(),
            body,
        },
    ];
    multipart::build(&parts, multipart::clock_seed()).map_err(usage)
}

fn print_call_hint(base: &str, slug: &str, config: &Map<String, Value>) {
    let url = format!("{base}/t/{slug}/");
    println!("call it: {url}");
    match config.get("price") {
        Some(p) => {
            println!(
                "price: {} per call ({} on {})",
                money(p.get("amountAtomic")),
                cell(p.get("asset")),
                cell(p.get("network"))
            );
            println!("  curl -i {url}            # 402 with the payment requirements");
            println!("paid call with the official x402 client (npm i @x402/fetch @x402/evm viem):");
            println!("  import {{ wrapFetchWithPayment, x402Client }} from \"@x402/fetch\";");
            println!("  import {{ registerExactEvmScheme }} from \"@x402/evm/exact/client\";");
            println!("  import {{ privateKeyToAccount }} from \"viem/accounts\";");
            println!("  const client = new x402Client();");
            println!("  registerExactEvmScheme(client, {{ signer: privateKeyToAccount(process.env.PAYER_KEY) }});");
            println!("  const res = await wrapFetchWithPayment(fetch, client)(\"{url}\");");
        }
        None => println!("  curl {url}"),
    }
}

fn wrap(client: &Client, w: &Wrap, json_out: bool) -> Result<(), Failure> {
    let slug = &w.slug;
    tenant::check_slug(slug).map_err(usage)?;
    let (before, existed) = current(client, slug)?;
    let mut config = before.clone();
    tenant::apply_wrap(&mut config, slug, w).map_err(usage)?;
    tenant::apply_price(&mut config, &w.price).map_err(usage)?;
    tenant::apply_limits(&mut config, &w.limits);
    let what = save_config(client, slug, &before, &config, existed)?;
    if json_out {
        let (_, text) = client.send_json(&Req::get(format!("{P}/tenants/{slug}")))?;
        println!("{}", text.trim_end());
        return Ok(());
    }
    println!("proxy tenant {slug}: {what}, wrapping {}", w.upstream);
    print_call_hint(client.base(), slug, &config);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn req(args: &[&str]) -> Req {
        let mut v = vec!["claw"];
        v.extend_from_slice(args);
        let cli = Cli::try_parse_from(v).unwrap();
        request(&cli.command).unwrap().unwrap()
    }

    #[test]
    fn arguments_map_to_requests() {
        let r = req(&["tenants", "ls", "--after", "b c", "--limit", "5"]);
        assert_eq!(
            (r.method, r.path.as_str()),
            ("GET", "/__platform/tenants?after=b%20c&limit=5")
        );
        assert_eq!(
            req(&["tenants", "show", "wx"]).path,
            "/__platform/tenants/wx"
        );
        let r = req(&["tenants", "suspend", "wx"]);
        assert_eq!(
            (r.method, r.path.as_str()),
            ("POST", "/__platform/tenants/wx/suspend")
        );
        let r = req(&["tenants", "rm", "wx", "--yes"]);
        assert_eq!(
            (r.method, r.path.as_str()),
            ("DELETE", "/__platform/tenants/wx")
        );
        assert_eq!(
            req(&["versions", "wx"]).path,
            "/__platform/tenants/wx/deployment"
        );
        let r = req(&["rollback", "wx"]);
        assert_eq!(
            (r.method, r.path.as_str()),
            ("POST", "/__platform/tenants/wx/deployment/rollback")
        );
        let r = req(&["secrets", "rm", "wx", "API_KEY"]);
        assert_eq!(
            (r.method, r.path.as_str()),
            ("DELETE", "/__platform/tenants/wx/secrets/API_KEY")
        );
        assert_eq!(
            req(&["secrets", "ls", "wx"]).path,
            "/__platform/tenants/wx/secrets"
        );
        assert_eq!(
            req(&["earnings", "wx", "--days", "7"]).path,
            "/__platform/earnings/wx?days=7"
        );
        assert_eq!(req(&["earnings"]).path, "/__platform/earnings");
        assert_eq!(
            req(&["ledger", "wx", "--after", "12", "--limit", "3"]).path,
            "/__platform/ledger/wx/entries?after=12&limit=3"
        );
        assert_eq!(
            req(&["payouts", "wx"]).path,
            "/__platform/ledger/wx/payouts"
        );
        assert_eq!(
            req(&["events", "wx", "--stage", "settled", "--limit", "10"]).path,
            "/__platform/events?tenant=wx&stage=settled&limit=10"
        );
        assert_eq!(req(&["trending"]).path, "/__platform/trending?window=24h");
        assert_eq!(
            req(&["trending", "--window", "7d", "--limit", "3"]).path,
            "/__platform/trending?window=7d&limit=3"
        );
        assert_eq!(req(&["whoami"]).path, "/__platform/whoami");
        let r = req(&[
            "keys",
            "create",
            "--tenant",
            "wx",
            "--tenant",
            "cities",
            "--label",
            "alice",
            "--expires-at",
            "1900000000",
        ]);
        assert_eq!((r.method, r.path.as_str()), ("POST", "/__platform/keys"));
        assert_eq!(
            r.body_json(),
            json!({"tenants": ["wx", "cities"], "label": "alice", "expiresAt": 1900000000})
        );
        let r = req(&["keys", "create", "--tenant", "wx"]);
        assert_eq!(r.body_json()["expiresAt"], Value::Null);
        let r = req(&["keys", "revoke", "ck_0123456789abcdef"]);
        assert_eq!(
            (r.method, r.path.as_str()),
            ("DELETE", "/__platform/keys/ck_0123456789abcdef")
        );
        assert_eq!(req(&["keys", "ls"]).path, "/__platform/keys");
    }

    #[test]
    fn a_bad_slug_is_refused_before_any_request() {
        let cli = Cli::try_parse_from(["claw", "tenants", "show", "../admin"]).unwrap();
        let e = request(&cli.command).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        let cli = Cli::try_parse_from(["claw", "keys", "create", "--tenant", "Nope"]).unwrap();
        assert_eq!(request(&cli.command).unwrap_err().exit_code(), 1);
    }

    #[test]
    fn the_upload_form_names_the_module() {
        let cli = Cli::try_parse_from([
            "claw",
            "deploy",
            "w.ts",
            "--slug",
            "wx",
            "--compatibility-flag",
            "nodejs_compat",
        ])
        .unwrap();
        let Cmd::Deploy(d) = cli.command else {
            panic!()
        };
        let form = upload_form(
            "w.js",
            Source::TypeScript,
            b"export default {}".to_vec(),
            &d,
        )
        .unwrap();
        let body = String::from_utf8(form.body).unwrap();
        assert!(body.contains(r#"{"compatibility_date":"2026-04-20","compatibility_flags":["nodejs_compat"],"main_module":"w.js"}"#), "{body}");
        assert!(body.contains(
            "name=\"w.js\"; filename=\"w.js\"\r\nContent-Type: application/javascript+module"
        ));
        let form = upload_form("cities.csv", Source::Csv, b"a,b\n1,2\n".to_vec(), &d).unwrap();
        let body = String::from_utf8(form.body).unwrap();
        assert!(body.contains("Content-Type: text/csv\r\n\r\na,b\n1,2\n\r\n"));
    }

    #[test]
    fn human_tables_show_whole_units_and_atomic() {
        let r = config::resolve(Default::default(), Default::default(), Default::default());
        let cli = Cli::try_parse_from(["claw", "earnings", "wx"]).unwrap();
        let out = human(
            &cli.command,
            &json!({"gross": "3000", "fees": "150", "net": "2850", "settledCount": 3, "available": "2850",
                    "days": [{"day": "2026-12-01", "gross": "3000", "fee": "150", "net": "2850", "count": 3}]}),
            &r,
        );
        assert!(out.contains("gross           0.003 (3000)  [3]"), "{out}");
        assert!(out.contains("net             0.00285 (2850)"), "{out}");
        assert!(
            out.contains("2026-12-01  0.003  0.00015  0.00285  3"),
            "{out}"
        );
    }
}
