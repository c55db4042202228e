// Every call to the API: the bearer token, JSON bodies, errors as ApiError with the server's
// reason, the paging total (X-Total-Count) and the ETag when the server sends them.
import { session, signOut } from "./session.js";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function reason(body, fallback) {
  if (!body) return fallback;
  const d = body.detail ?? body.message ?? body.reason;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map((e) => e.msg || JSON.stringify(e)).join("; ");
  if (d && typeof d === "object") return d.message || d.reason || JSON.stringify(d);
  return fallback;
}

export async function request(path, { method = "GET", body, form, headers = {} } = {}) {
  const h = { ...headers };
  if (session.token) h.Authorization = `Bearer ${session.token}`;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    h["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const r = await fetch(path, { method, headers: h, body: payload });
  if (r.status === 401 && session.token && !path.endsWith("/login")) signOut();
  const type = r.headers.get("content-type") || "";
  const data = r.status === 204 ? null : type.includes("json") ? await r.json() : await r.blob();
  if (!r.ok) throw new ApiError(r.status, reason(data, `${r.status} ${r.statusText}`));
  const total = r.headers.get("X-Total-Count");
  return { data, total: total === null ? null : Number(total), etag: r.headers.get("ETag") };
}

export async function api(path, options) {
  return (await request(path, options)).data;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// a file the API hands out (CSV, PDF, attachments): fetched with the token, saved by the browser
export async function download(path, filename) {
  const blob = await api(path);
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}
