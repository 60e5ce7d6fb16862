//! `claw`: the 402claw command line for creators and operators. It talks to the platform API
//! (`/__platform`, see src/platform/mod.rs ROUTES) and checks what it sends with the
//! platform's own rules first (the `claw-durable` crate, natively).
//!
//! A native tool: on wasm32 (the Worker build's clippy over the workspace) it compiles to an
//! empty `main` and pulls in none of its dependencies.

#[cfg(not(target_arch = "wasm32"))]
mod amount;
#[cfg(not(target_arch = "wasm32"))]
mod api;
#[cfg(not(target_arch = "wasm32"))]
mod args;
#[cfg(not(target_arch = "wasm32"))]
mod bundle;
#[cfg(not(target_arch = "wasm32"))]
mod commands;
#[cfg(not(target_arch = "wasm32"))]
mod config;
#[cfg(not(target_arch = "wasm32"))]
mod multipart;
#[cfg(not(target_arch = "wasm32"))]
mod table;
#[cfg(not(target_arch = "wasm32"))]
mod tenant;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and succeed; a usage error is exit 1 (clap's own
            // default is 2, which here means "refused by the platform").
            let code = if e.use_stderr() { api::EXIT_USAGE } else { 0 };
            let _ = e.print();
            return std::process::ExitCode::from(code);
        }
    };
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{}", f.message());
            std::process::ExitCode::from(f.exit_code())
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {}
