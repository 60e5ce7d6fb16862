// The platform API, same origin, with the signed-in bearer token from this tab's session
// storage (never a cookie). Errors carry the problem's code and an explanation a person
// can act on.

const TOKEN_KEY = "claw.token";
const BASE = "/__platform";

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem("claw.who");
  },
  get who() {
    try {
      return JSON.parse(sessionStorage.getItem("claw.who") ?? "null");
    } catch {
      return null;
    }
  },
  setWho(who) {
    sessionStorage.setItem("claw.who", JSON.stringify(who));
  },
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(explain(status, problem));
    this.status = status;
    this.code = problem?.code ?? null;
  }
}

function explain(status, p) {
  if (status === 401)
    return "This key or token is not accepted: it may have expired, been revoked, or been mistyped. Sign in again.";
  if (status === 403 && p?.code === "forbidden") return "Your key does not give access to this.";
  if (status === 0) return "The platform could not be reached. Check your connection and retry.";
  const what = p?.detail ?? p?.title ?? `HTTP ${status}`;
  return p?.code ? `${what} (${p.code})` : what;
}

/** GET (or `method`) `path` under /__platform; JSON in and out. `auth: false` sends no token. */
export async function api(path, { method = "GET", body, auth = true } = {}) {
  const headers = { accept: "application/json" };
  if (auth && session.token) headers.authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, null);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && auth) window.dispatchEvent(new CustomEvent("claw:unauthorized", { detail: err.message }));
    throw err;
  }
  return data;
}

/**
 * Who the token is: `{kind: "operator"}` or `{kind: "creator", tenants: [...]}`. Uses
 * `GET /whoami`; on a platform without it, a token the tenant list accepts is an operator's.
 */
export async function whoami() {
  try {
    return await api("/whoami");
  } catch (e) {
    if (e.status !== 404) throw e;
  }
  await api("/tenants?limit=1");
  return { kind: "operator", tenants: null };
}
