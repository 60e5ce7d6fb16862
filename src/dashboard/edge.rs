//! The dashboard's glue: a dashboard path ([`super::asset_path`]) read from the static assets
//! binding, answered with the dashboard's headers ([`super::SECURITY_HEADERS`]).

use claw_durable::problem::{Code, Problem};
use worker::{web_sys, Env, Method, Request, Response};

use super::{asset_path, Asset, ASSETS, PREFIX, SECURITY_HEADERS};

/// Request headers passed to the assets binding (revalidation, compression).
const FORWARDED: [&str; 3] = ["if-none-match", "if-modified-since", "accept-encoding"];

/// `rest` is the path after [`PREFIX`].
pub async fn serve(req: &Request, env: &Env, rest: &str) -> Result<Response, Problem> {
    let method = req.method();
    if !matches!(method, Method::Get | Method::Head) {
        return Err(Problem::new(Code::MethodNotAllowed).detail(format!(
            "{method} is not allowed on the dashboard (GET, HEAD)"
        )));
    }
    let file = match asset_path(rest) {
        None => return Err(crate::platform::not_found()),
        Some(Asset::Redirect) => return Ok(redirect()),
        Some(Asset::File(f)) => f,
    };
    let assets = env.assets(ASSETS).map_err(|_| unavailable())?;
    let headers = web_sys::Headers::new().map_err(|_| unavailable())?;
    for name in FORWARDED {
        if let Ok(Some(v)) = req.headers().get(name) {
            let _ = headers.set(name, &v);
        }
    }
    let init = web_sys::RequestInit::new();
    init.set_method(method.as_ref());
    init.set_headers(&headers);
    let asset_req =
        web_sys::Request::new_with_str_and_init(&format!("https://assets.internal{file}"), &init)
            .map_err(|_| unavailable())?;
    let answer = assets
        .fetch_request(Request::from(asset_req))
        .await
        .map_err(|e| {
            worker::console_error!("dashboard asset {file}: {e}");
            unavailable()
        })?;
    if answer.status_code() == 404 {
        return Err(crate::platform::not_found());
    }
    let answer: web_sys::Response = answer.into();
    let mut out = crate::http::respond::restream(&answer, |name| {
        SECURITY_HEADERS.iter().any(|(n, _)| *n == name) || name == "set-cookie"
    })
    .map_err(|_| unavailable())?;
    with_security_headers(&mut out);
    Ok(out)
}

fn with_security_headers(resp: &mut Response) {
    for (name, value) in SECURITY_HEADERS {
        // Valid names and values: setting them cannot fail.
        let _ = resp.headers_mut().set(name, value);
    }
}

/// `/__platform/dashboard` -> `/__platform/dashboard/` (relative URLs resolve under it).
fn redirect() -> Response {
    let mut resp = crate::http::respond::with_body(308, "text/plain", Vec::new());
    let _ = resp.headers_mut().set("location", &format!("{PREFIX}/"));
    resp
}

fn unavailable() -> Problem {
    Problem::new(Code::DashboardUnavailable)
}
