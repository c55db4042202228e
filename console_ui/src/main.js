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
  { path: "/:rest(.*)*", redirect: "/" },
];
const router = createRouter({ history: createWebHashHistory(), routes });

router.beforeEach(async (to) => {
  if (!to.meta.roles) return true;
  if (!session.token) return { path: "/login", query: { next: to.fullPath } };
  if (!session.me) {
    try {
      session.me = await api("/api/me");
    } catch {
      return { path: "/login", query: { next: to.fullPath } };
    }
  }
  if (to.path === "/" || !to.meta.roles.includes(session.me.role)) return home(session.me.role);
  return true;
});
router.beforeResolve((to) => {
  if (to.path === "/") return session.me ? home(session.me.role) : "/login";
  return true;
});

// ?lang=en and ?token=… in the address (as the map accepts them), then out of the address bar
const params = new URLSearchParams(location.search);
if (params.has("lang")) setLang(params.get("lang"));
else setLang(lang.value);
if (params.has("token")) {
  localStorage.setItem("sitewatch.token", params.get("token"));
  session.token = params.get("token");
}
if (params.has("lang") || params.has("token")) history.replaceState(null, "", location.pathname + location.hash);

createApp(App).use(router).mount("#app");
window.sitewatchConsole = { session, router };
