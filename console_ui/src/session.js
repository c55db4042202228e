// Who is signed in: the token (shared with the live map under the same key) and /api/me.
import { reactive } from "vue";

const KEY = "sitewatch.token";
export const session = reactive({ token: localStorage.getItem(KEY) || "", me: null });

export function setToken(token) {
  session.token = token;
  localStorage.setItem(KEY, token);
}

export function signOut() {
  session.token = "";
  session.me = null;
  localStorage.removeItem(KEY);
  if (!location.hash.startsWith("#/login")) location.hash = "#/login";
}

export function can(...roles) {
  return !!session.me && roles.includes(session.me.role);
}

// the page each role starts on
export function home(role) {
  return { admin: "/dashboard", regulator: "/dashboard", engineer: "/me", vendor: "/devices" }[role] || "/login";
}
