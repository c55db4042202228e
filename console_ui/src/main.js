import { createApp } from "vue";
import { createRouter, createWebHashHistory } from "vue-router";
import "leaflet/dist/leaflet.css";
import "./console.css";
import App from "./App.vue";
import { api } from "./api.js";
import { home, session } from "./session.js";
import { setLang, lang } from "./i18n.js";

const page = (name) => () => import(`./pages/${name}.vue`);
const routes = [
  { path: "/login", component: page("Login"), meta: { roles: null } },
  { path: "/dashboard", component: page("Dashboard"), meta: { roles: ["admin", "regulator"] } },
  { path: "/alerts", component: page("Alerts"), meta: { roles: ["admin", "regulator"] } },
  { path: "/engineers", component: page("Engineers"), meta: { roles: ["admin", "regulator"] } },
  { path: "/engineers/:id", component: page("Engineer"), meta: { roles: ["admin", "regulator"] } },
  { path: "/projects", component: page("Projects"), meta: { roles: ["admin", "regulator"] } },
  { path: "/projects/:id", component: page("Project"), meta: { roles: ["admin", "regulator"] } },
  { path: "/filings", component: page("Filings"), meta: { roles: ["admin", "regulator"] } },
  { path: "/registry", component: page("Registry"), meta: { roles: ["admin"] } },
  { path: "/map", component: page("LiveMap"), meta: { roles: ["admin", "regulator", "engineer", "vendor"] } },
  { path: "/me", component: page("Me"), meta: { roles: ["engineer"] } },
  { path: "/devices", component: page("Devices"), meta: { roles: ["vendor", "admin"] } },
  { path: "/", component: page("Login"), meta: { roles: null, home: true } },
  { path: "/:rest(.*)*", redirect: "/login" },
];
const router = createRouter({ history: createWebHashHistory(), routes });

router.beforeEach(async (to) => {
  if (to.meta.home) {
    if (!session.token) return "/login";
    try {
      session.me ??= await api("/api/me");
      return home(session.me.role);
    } catch {
      return "/login";
    }
  }
  if (!to.meta.roles) return true;
  if (!session.token) return { path: "/login", query: { next: to.fullPath } };
  if (!session.me) {
    try {
      session.me = await api("/api/me");
    } catch {
      return { path: "/login", query: { next: to.fullPath } };
    }
  }
  if (!to.meta.roles.includes(session.me.role)) return home(session.me.role);
  return true;
});

// ?lang=en in the address, then out of the address bar. A token is never taken from the
// address: a link must not sign its reader in as someone else (people sign in with the form)
const params = new URLSearchParams(location.search);
if (params.has("lang")) setLang(params.get("lang"));
else setLang(lang.value);
if (location.search) history.replaceState(null, "", location.pathname + location.hash);

createApp(App).use(router).mount("#app");
