// SiteWatch live map (docs/map_ui.md). Plain JavaScript on Leaflet and leaflet.heat, both
// bundled from npm and served by the API; nothing is loaded from a CDN.
//
// Data flow: REST for the state (projects, alerts, latest positions, boundaries), the
// WebSocket /ws/live for changes. Each (re)connection of the WebSocket is followed by a REST
// resync, so nothing published while the socket was down is missed.
(function () {
  "use strict";
  const I = window.SW_I18N;
  const t = I.t;
  const $ = (id) => document.getElementById(id);

  const SEVERITY = {
    impossible_travel: "high",
    sensor_threshold: "high",
    cross_region_unfiled: "medium",
    device_offline: "medium",
    missing_log: "low",
    practice_while_suspended: "high",
    chief_absent: "medium",
  };
  const COLOURS = { onSite: "#2da44e", offSite: "#1f6feb", stale: "#8c959f", selected: "#8250df" };
  const ANIMATE_MS = 400;
  const ANIMATE_LIMIT = 60; // with more engineers markers jump: one redraw per batch, not per frame
  const LABEL_LIMIT = 40; // permanent name labels only while there are few engineers
  const TZ = "Asia/Shanghai";

  // ---- settings kept in localStorage ----------------------------------------------------
  const store = {
    get: (k, d) => {
      const v = localStorage.getItem("sitewatch." + k);
      return v === null ? d : v;
    },
    set: (k, v) => (v === null || v === undefined ? localStorage.removeItem("sitewatch." + k) : localStorage.setItem("sitewatch." + k, v)),
  };
  // ?token=, ?lang=, ?region= and ?tiles= are remembered, then taken out of the address bar
  // (the token must not stay in bookmarks and screenshots; a reload keeps what was chosen).
  const params = new URLSearchParams(location.search);
  for (const key of ["token", "lang", "region", "tiles"]) {
    if (params.has(key)) store.set(key, params.get(key) || null);
    params.delete(key);
  }
  history.replaceState(null, "", location.pathname + (params.toString() ? "?" + params : "") + location.hash);
  I.lang = store.get("lang", "zh");

  const state = {
    token: store.get("token", ""),
    me: null,
    region: null, // the region picked, null for "all" (admins only)
    staleMin: Number(store.get("staleMin", "5")) || 5,
    engineers: new Map(), // id -> {pos, marker, from, to, t0, stale, name, receivedAt, movedAt}
    alerts: new Map(), // id -> alert
    projects: new Map(), // id -> {feature, layer}
    ws: null,
    wsState: "connecting",
    retry: 0,
    retryTimer: null,
    generation: 0, // bumps on region change: late answers of an older view are dropped
    stats: { positions: 0, alerts: 0, connects: 0, resyncs: 0, drops: 0 },
  };

  // ---- map and layers -------------------------------------------------------------------
  const map = L.map("map", { zoomControl: true, preferCanvas: false }).setView([22.6, 114.0], 11);
  L.control.scale({ imperial: false }).addTo(map);
  const svg = L.svg({ padding: 0.2 });
  const canvas = L.canvas({ padding: 0.2 });
  let tiles = null;
  const boundaryLayer = L.geoJSON(null, {
    renderer: svg,
    interactive: true,
    style: (f) => {
      const level = f.properties.level;
      const finest = level === "district" || (level === "city" && map.getZoom() < 8) || (level === "province" && map.getZoom() < 5);
      return { color: finest ? "#6e7781" : "#424a53", weight: finest ? 1 : 2.5, fill: finest, fillOpacity: 0.02, dashArray: finest ? "4 3" : null };
    },
    onEachFeature: (f, layer) => {
      const name = f.properties.name || f.properties.code;
      layer.bindTooltip(esc(`${name} ${f.properties.code}`), { sticky: true, className: "region-label" });
      if (f.properties.level === "district" && map.getZoom() >= 10) {
        const c = labelPoint(f.geometry);
        if (c) boundaryLabels.addLayer(L.tooltip({ permanent: true, direction: "center", className: "region-label", interactive: false }).setLatLng(c).setContent(esc(name)));
      }
    },
  }).addTo(map);
  const boundaryLabels = L.layerGroup().addTo(map);

  // Where a region's name goes: the centroid of its largest part (not of an offshore island).
  function labelPoint(geometry) {
    const parts = geometry.type === "MultiPolygon" ? geometry.coordinates : geometry.type === "Polygon" ? [geometry.coordinates] : [];
    let best = null;
    for (const rings of parts) {
      const ring = rings[0];
      let a = 0;
      let cx = 0;
      let cy = 0;
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        const f = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
        a += f;
        cx += (ring[j][0] + ring[i][0]) * f;
        cy += (ring[j][1] + ring[i][1]) * f;
      }
      if (a !== 0 && (!best || Math.abs(a) > best.area)) best = { area: Math.abs(a), lat: cy / (3 * a), lng: cx / (3 * a) };
    }
    return best && L.latLng(best.lat, best.lng);
  }
  const MANY_PROJECTS = 1000;
  const projectLayer = L.geoJSON(null, {
    renderer: svg,
    style: { color: "#0969da", weight: 2, fillOpacity: 0.15 },
    onEachFeature: (f, layer) => {
      layer.bindTooltip(esc(f.properties.name || String(f.id)));
      layer.on("click", () => openProjectPopup(f.properties.id, layer.getBounds().getCenter()));
    },
  }).addTo(map);
  const engineerLayer = L.layerGroup().addTo(map);
  const playbackLayer = L.layerGroup().addTo(map);
  let heatLayer = null;

  function setTiles(url) {
    if (tiles) map.removeLayer(tiles);
    tiles = null;
    if (url) tiles = L.tileLayer(url, { maxZoom: 19, attribution: "tiles: " + new URL(url.replace(/[{}]/g, ""), location.href).host }).addTo(map);
    if (tiles) tiles.bringToBack();
  }

  // ---- REST ----------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, detail) {
      super(typeof detail === "string" ? detail : JSON.stringify(detail));
      this.status = status;
    }
  }
  async function api(path, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = Object.assign({ Authorization: "Bearer " + state.token }, opts.headers || {});
    if (opts.json !== undefined) {
      opts.body = JSON.stringify(opts.json);
      opts.headers["Content-Type"] = "application/json";
      delete opts.json;
    }
    const r = await fetch(path, opts);
    let body = null;
    try {
      body = await r.json();
    } catch (e) {
      body = null;
    }
    if (!r.ok) throw new ApiError(r.status, (body && body.detail) || r.statusText);
    return body;
  }
  const regionQuery = () => (state.region ? "region=" + encodeURIComponent(state.region) : "");
  const withRegion = (path) => path + (state.region ? (path.includes("?") ? "&" : "?") + regionQuery() : "");

  // ---- formatting ----------------------------------------------------------------------
  function esc(s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function fmtTime(iso, withDate) {
    if (!iso) return "";
    const d = new Date(iso);
    const opts = { timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
    if (withDate) Object.assign(opts, { year: "numeric", month: "2-digit", day: "2-digit" });
    return d.toLocaleString(I.lang === "zh" ? "zh-CN" : "en-GB", opts);
  }
  function localToday() {
    return new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
  }
  const regionNames = new Map(); // code -> name, from /api/me and the boundaries seen
  function learnRegionNames(list) {
    let learned = false;
    for (const r of list) {
      if (r.name && regionNames.get(r.code) !== r.name) {
        regionNames.set(r.code, r.name);
        learned = true;
      }
    }
    return learned;
  }
  function regionName(code) {
    if (!code) return "";
    const name = regionNames.get(code);
    return name ? `${name} (${code})` : code;
  }
  function rows(pairs) {
    return "<table>" + pairs.filter((p) => p[1] !== null && p[1] !== undefined && p[1] !== "").map(([k, v]) => `<tr><th>${esc(t(k))}</th><td>${v}</td></tr>`).join("") + "</table>";
  }

  // ---- engineers -----------------------------------------------------------------------
  const pending = new Map(); // engineer id -> latest position not yet applied
  let flushQueued = false;
  const animating = new Set();
  let animFrame = 0;

  function isStale(e, now) {
    return now - Date.parse(e.pos.ts) > state.staleMin * 60_000;
  }
  function styleFor(e) {
    if (e.id === selectedEngineer) return { color: COLOURS.selected, fillColor: COLOURS.selected, radius: 9, dashArray: null, fillOpacity: 0.9 };
    if (e.stale) return { color: "#57606a", fillColor: COLOURS.stale, radius: 6, dashArray: "2 2", fillOpacity: 0.6 };
    const c = e.pos.project_ids && e.pos.project_ids.length ? COLOURS.onSite : COLOURS.offSite;
    return { color: "#ffffff", fillColor: c, radius: 7, dashArray: null, fillOpacity: 0.95 };
  }

  function queuePosition(p) {
    const prev = pending.get(p.engineer_id);
    if (prev && prev.ts > p.ts) return;
    pending.set(p.engineer_id, p);
    if (!flushQueued) {
      flushQueued = true;
      // Apply on the next frame: a burst of messages costs one redraw, not one per message.
      if (document.hidden) setTimeout(flushPositions, 0);
      else requestAnimationFrame(flushPositions);
    }
  }

  function flushPositions() {
    flushQueued = false;
    const now = Date.now();
    for (const p of pending.values()) applyPosition(p, now);
    pending.clear();
    relabel();
    updateCount();
    if (animating.size && !animFrame) animFrame = requestAnimationFrame(animate);
  }

  function applyPosition(p, now) {
    let e = state.engineers.get(p.engineer_id);
    if (e && Date.parse(e.pos.ts) > Date.parse(p.ts)) return; // an older fix (resync or late)
    const target = L.latLng(p.lat, p.lon);
    if (!e) {
      e = { id: p.engineer_id, pos: p, name: p.name || null, stale: false, receivedAt: now, movedAt: now };
      e.marker = L.circleMarker(target, Object.assign({ renderer: canvas, weight: 2 }, styleFor(e)));
      e.marker.on("click", () => openEngineerPopup(e.id));
      bindLabel(e);
      engineerLayer.addLayer(e.marker);
      state.engineers.set(e.id, e);
      if (!e.name) scheduleNames();
      e.stale = isStale(e, now);
      e.marker.setStyle(styleFor(e));
      return;
    }
    if (p.name && p.name !== e.name) {
      e.name = p.name;
      bindLabel(e);
    }
    const wasOnSite = !!(e.pos.project_ids && e.pos.project_ids.length);
    e.pos = p;
    e.receivedAt = now;
    const stale = isStale(e, now);
    const onSite = !!(p.project_ids && p.project_ids.length);
    if (stale !== e.stale || onSite !== wasOnSite) {
      e.stale = stale;
      e.marker.setStyle(styleFor(e));
    }
    const from = e.marker.getLatLng();
    if (from.equals(target)) {
      e.movedAt = now;
      return;
    }
    if (document.hidden || state.engineers.size > ANIMATE_LIMIT || !map.getBounds().pad(0.5).contains(target)) {
      e.marker.setLatLng(target);
      e.movedAt = now;
      animating.delete(e);
      return;
    }
    e.from = from;
    e.to = target;
    e.t0 = now;
    animating.add(e);
  }

  function animate() {
    animFrame = 0;
    const now = Date.now();
    for (const e of animating) {
      const k = Math.min(1, (now - e.t0) / ANIMATE_MS);
      if (k >= 1) {
        e.marker.setLatLng(e.to);
        e.movedAt = now;
        animating.delete(e);
      } else {
        e.marker.setLatLng([e.from.lat + (e.to.lat - e.from.lat) * k, e.from.lng + (e.to.lng - e.from.lng) * k]);
      }
    }
    if (animating.size) animFrame = requestAnimationFrame(animate);
  }

  let permanentLabels = true;
  function bindLabel(e) {
    const label = esc(e.name || e.id); // tooltips are HTML: names are text
    e.marker.unbindTooltip();
    if (permanentLabels) e.marker.bindTooltip(label, { permanent: true, direction: "right", offset: [8, 0], className: "eng-label" });
    else e.marker.bindTooltip(label);
  }
  function relabel() {
    const wanted = state.engineers.size < LABEL_LIMIT;
    if (wanted === permanentLabels) return;
    permanentLabels = wanted;
    for (const e of state.engineers.values()) bindLabel(e);
  }

  // Live positions carry no names: new engineers get theirs from one REST call a few
  // seconds later (the latest positions, which carry `name`), however many appeared.
  let namesTimer = null;
  function scheduleNames() {
    if (namesTimer) return;
    namesTimer = setTimeout(async () => {
      namesTimer = null;
      try {
        const gen = state.generation;
        const list = await api(withRegion("/api/map/positions"));
        if (gen !== state.generation) return;
        for (const p of list) {
          const e = state.engineers.get(p.engineer_id);
          if (e && p.name && p.name !== e.name) {
            e.name = p.name;
            bindLabel(e);
          }
        }
      } catch (err) {
        console.warn("names:", err.message);
      }
    }, 3000);
  }

  function restyleStale() {
    const now = Date.now();
    for (const e of state.engineers.values()) {
      const stale = isStale(e, now);
      if (stale !== e.stale) {
        e.stale = stale;
        e.marker.setStyle(styleFor(e));
      }
    }
    updateCount();
  }

  function updateCount() {
    let stale = 0;
    for (const e of state.engineers.values()) if (e.stale) stale++;
    $("engineer-count").textContent = t("engineers.count", { live: state.engineers.size - stale, stale });
  }

  function clearEngineers() {
    engineerLayer.clearLayers();
    state.engineers.clear();
    animating.clear();
    pending.clear();
    permanentLabels = true;
    updateCount();
  }

  let selectedEngineer = null;
  function select(id) {
    const prev = selectedEngineer && state.engineers.get(selectedEngineer);
    selectedEngineer = id;
    if (prev) prev.marker.setStyle(styleFor(prev));
    const e = id && state.engineers.get(id);
    if (e) e.marker.setStyle(styleFor(e));
  }

  async function openEngineerPopup(id, fallbackLatLng) {
    const e = state.engineers.get(id);
    const at = e ? e.marker.getLatLng() : fallbackLatLng || map.getCenter();
    select(id);
    const popup = L.popup({ maxWidth: 320 }).setLatLng(at).setContent(`<b>${esc(id)}</b> …`).openOn(map);
    popup.on("remove", () => selectedEngineer === id && select(null));
    let info = null;
    let outside = false;
    let minutes = null;
    try {
      info = await api("/api/map/engineers/" + encodeURIComponent(id));
      outside = info.scope !== "registered";
    } catch (err) {
      info = null;
    }
    try {
      const att = await api(`/api/attendance?engineer_id=${encodeURIComponent(id)}&date=${localToday()}`);
      minutes = att.reduce((s, r) => s + (r.minutes_on_site || 0), 0);
    } catch (err) {
      minutes = null;
    }
    const p = e && e.pos;
    const projects = p && p.project_ids && p.project_ids.length ? p.project_ids.map((pid) => `<a data-project="${esc(pid)}">${esc(projectName(pid))}</a>`).join(", ") : esc(t("engineer.offSite"));
    const html =
      `<b>${esc(t("engineer.title"))}</b>` +
      rows([
        ["engineer.id", esc(id)],
        ["engineer.name", esc((info && info.name) || (e && e.name) || "")],
        ["engineer.registered", info ? esc(regionName(info.registered_region)) : ""],
        ["engineer.cert", info ? esc(t("cert." + info.cert_status)) : ""],
        ["engineer.phone", info && info.phone ? esc(info.phone) : ""],
        ["engineer.lastFix", p ? esc(fmtTime(p.ts, true)) + (e.stale ? " " + esc(t("engineer.stale")) : "") : ""],
        ["engineer.accuracy", p && p.acc_m !== null && p.acc_m !== undefined ? esc(Math.round(p.acc_m)) + " m" : ""],
        ["engineer.battery", p && p.battery !== null && p.battery !== undefined ? esc(Math.round(p.battery)) + " %" : ""],
        ["engineer.region", p ? esc(regionName(p.region_code)) : ""],
        ["engineer.onSite", p ? projects : ""],
        ["engineer.attendance", minutes === null ? "" : esc(Math.round(minutes))],
      ]) +
      (outside ? `<p class="muted">${esc(t("engineer.outside"))}</p>` : "") +
      `<p><button type="button" data-playback="${esc(id)}">${esc(t("engineer.playback"))}</button></p>`;
    if (!popup.isOpen()) return;
    popup.setContent(html);
    wirePopup(popup);
  }

  function projectName(id) {
    const p = state.projects.get(id);
    return p ? `${p.feature.properties.name} (${id})` : id;
  }

  function openProjectPopup(id, at) {
    const p = state.projects.get(id);
    if (!p) return;
    const pr = p.feature.properties;
    const onSite = [...state.engineers.values()].filter((e) => !e.stale && (e.pos.project_ids || []).includes(id));
    const link = (eid) => `<a data-engineer="${esc(eid)}">${esc(eid)}</a>`;
    const html =
      `<b>${esc(t("project.title"))}</b>` +
      rows([
        ["project.id", esc(id)],
        ["project.name", esc(pr.name)],
        ["project.region", esc(regionName(pr.region_code))],
        ["project.chief", pr.chief_engineer_id ? link(pr.chief_engineer_id) : ""],
        ["project.engineers", (pr.engineer_ids || []).map(link).join(", ")],
        ["project.requiredDays", esc(pr.required_days_per_month)],
        ["project.onSiteNow", onSite.length ? onSite.map((e) => link(e.id)).join(", ") : esc(t("none"))],
      ]);
    const popup = L.popup({ maxWidth: 320 }).setLatLng(at || p.layer.getBounds().getCenter()).setContent(html).openOn(map);
    wirePopup(popup);
  }

  function wirePopup(popup) {
    const el = popup.getElement();
    if (!el) return;
    el.querySelectorAll("[data-project]").forEach((a) => a.addEventListener("click", () => focusProject(a.dataset.project)));
    el.querySelectorAll("[data-engineer]").forEach((a) => a.addEventListener("click", () => focusEngineer(a.dataset.engineer)));
    el.querySelectorAll("[data-playback]").forEach((b) => b.addEventListener("click", () => openPlayback(b.dataset.playback)));
  }

  function focusEngineer(id, fallbackLatLng) {
    const e = state.engineers.get(id);
    if (e) map.setView(e.marker.getLatLng(), Math.max(map.getZoom(), 15));
    openEngineerPopup(id, fallbackLatLng);
  }
  function focusProject(id) {
    const p = state.projects.get(id);
    if (!p) return;
    map.fitBounds(p.layer.getBounds(), { maxZoom: 16 });
    openProjectPopup(id);
  }

  // ---- alerts --------------------------------------------------------------------------
  function alertFromMessage(m) {
    // {type: "alert", alert_type, id, ..., alert: {...}} (docs/map_ui.md)
    if (m.alert && typeof m.alert === "object") return m.alert;
    return Object.assign({}, m, { type: m.alert_type || m.type });
  }

  function upsertAlert(a, flash) {
    const prev = state.alerts.get(a.id);
    if (prev && prev.status === "resolved" && a.status !== "resolved") return;
    if (prev && prev.status === "acked" && a.status === "open") return;
    state.alerts.set(a.id, Object.assign({}, prev || {}, a));
    renderAlert(state.alerts.get(a.id), flash);
  }

  function alertMeta(a) {
    const who = [a.engineer_id, a.device_id, a.project_id && projectName(a.project_id)].filter(Boolean).join(" · ");
    return `${fmtTime(a.ts, true)} · ${regionName(a.region_code)}${who ? " · " + who : ""}`;
  }

  function renderAlert(a, flash) {
    const list = $("alerts");
    let li = list.querySelector(`li[data-alert-id="${CSS.escape(a.id)}"]`);
    const sev = SEVERITY[a.type] || "medium";
    if (!li) {
      li = document.createElement("li");
      li.dataset.alertId = a.id;
      li.innerHTML = '<div class="a-head"><span class="a-type"></span><span class="a-sev"></span></div><div class="a-meta"></div><div class="a-actions"><span class="a-status"></span></div>';
      li.querySelector(".a-head").addEventListener("click", () => focusAlert(a.id));
      li.querySelector(".a-meta").addEventListener("click", () => focusAlert(a.id));
      // newest first
      const ts = Date.parse(a.ts);
      const after = [...list.children].find((x) => Date.parse(state.alerts.get(x.dataset.alertId).ts) < ts);
      list.insertBefore(li, after || null);
    }
    li.className = `sev-${sev} status-${a.status}` + (flash ? " flash" : "");
    li.dataset.status = a.status;
    li.dataset.severity = sev;
    li.dataset.type = a.type;
    li.querySelector(".a-type").textContent = t("alert." + a.type);
    li.querySelector(".a-sev").textContent = t("severity." + sev);
    li.querySelector(".a-meta").textContent = alertMeta(a);
    li.querySelector(".a-status").textContent = t("status." + a.status);
    const actions = li.querySelector(".a-actions");
    actions.querySelectorAll("button").forEach((b) => b.remove());
    if (state.me && state.me.can_act_on_alerts) {
      if (a.status === "open") actions.appendChild(actionButton(a.id, "ack"));
      if (a.status !== "resolved") actions.appendChild(actionButton(a.id, "resolve"));
    }
    li.hidden = a.status === "resolved" && !$("show-resolved").checked;
    updateAlertCount();
  }

  function actionButton(id, action) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "a-" + action;
    b.dataset.action = action;
    b.textContent = t(action === "ack" ? "alerts.ack" : "alerts.resolve");
    b.addEventListener("click", async (ev) => {
      ev.stopPropagation();
      b.disabled = true;
      $("alert-error").textContent = "";
      try {
        const updated = await api(`/api/alerts/${encodeURIComponent(id)}/${action}`, { method: "POST", json: {} });
        upsertAlert(updated, false);
      } catch (err) {
        b.disabled = false;
        $("alert-error").textContent = t("alerts.failed", { detail: err.message });
        if (err.status === 409) loadAlerts();
      }
    });
    return b;
  }

  function updateAlertCount() {
    let open = 0;
    for (const a of state.alerts.values()) if (a.status === "open") open++;
    $("alert-count").textContent = `(${open})`;
    const visible = [...$("alerts").children].some((li) => !li.hidden);
    $("alerts-empty").hidden = visible;
  }

  function refreshAlertMeta() {
    for (const li of $("alerts").children) {
      const a = state.alerts.get(li.dataset.alertId);
      if (a) li.querySelector(".a-meta").textContent = alertMeta(a);
    }
  }

  function focusAlert(id) {
    const a = state.alerts.get(id);
    if (!a) return;
    if (a.engineer_id) {
      const p = a.project_id && state.projects.get(a.project_id);
      focusEngineer(a.engineer_id, p ? p.layer.getBounds().getCenter() : null);
    } else if (a.project_id) focusProject(a.project_id);
  }

  function rerenderAlerts() {
    $("alerts").innerHTML = "";
    const sorted = [...state.alerts.values()].sort((x, y) => Date.parse(y.ts) - Date.parse(x.ts));
    for (const a of sorted) renderAlert(a, false);
    updateAlertCount();
  }

  async function loadAlerts() {
    const gen = state.generation;
    const list = await api(withRegion("/api/alerts?limit=300"));
    if (gen !== state.generation) return;
    state.alerts.clear();
    for (const a of list) state.alerts.set(a.id, a);
    rerenderAlerts();
  }

  // ---- projects, positions, boundaries, heat -------------------------------------------
  async function loadProjects() {
    const gen = state.generation;
    const fc = await api(withRegion("/api/projects"));
    if (gen !== state.generation) return null;
    projectLayer.clearLayers();
    state.projects.clear();
    // thousands of sites are drawn on one canvas: as SVG every polygon is a DOM node
    projectLayer.options.renderer = fc.features.length > MANY_PROJECTS ? canvas : svg;
    projectLayer.addData(fc);
    projectLayer.eachLayer((layer) => state.projects.set(layer.feature.properties.id, { feature: layer.feature, layer }));
    return fc.features.length ? projectLayer.getBounds() : null;
  }

  async function loadPositions() {
    const gen = state.generation;
    const list = await api(withRegion("/api/map/positions"));
    if (gen !== state.generation) return;
    for (const p of list) queuePosition(p);
  }

  let boundaryAbort = null;
  let boundaryTimer = null;
  let boundaryBusy = false;
  const boundaryTimerPending = () => boundaryTimer !== null || boundaryBusy;
  function scheduleBoundaries() {
    clearTimeout(boundaryTimer);
    boundaryTimer = setTimeout(() => {
      boundaryTimer = null;
      boundaryBusy = true;
      loadBoundaries().finally(() => (boundaryBusy = false));
    }, 250);
  }
  async function loadBoundaries() {
    if (!$("layer-boundaries").checked || !state.token) return;
    if (boundaryAbort) boundaryAbort.abort();
    boundaryAbort = new AbortController();
    const b = map.getBounds();
    const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
    const bbox = [clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90), clamp(b.getEast(), -180, 180), clamp(b.getNorth(), -90, 90)].map((v) => v.toFixed(5)).join(",");
    try {
      const fc = await api(withRegion(`/api/map/boundaries?bbox=${bbox}&zoom=${map.getZoom()}`), { signal: boundaryAbort.signal });
      boundaryLayer.clearLayers();
      boundaryLabels.clearLayers();
      boundaryLayer.addData(fc);
      boundaryLayer.bringToBack();
      if (learnRegionNames(fc.features.map((f) => f.properties))) refreshAlertMeta();
    } catch (err) {
      if (err.name !== "AbortError") console.warn("boundaries:", err.message);
    }
  }

  async function regionBounds() {
    if (!state.region) return null;
    const level = state.region.endsWith("0000") ? "province" : state.region.endsWith("00") ? "city" : "district";
    try {
      const fc = await api(`/api/map/boundaries?region=${state.region}&level=${level}&zoom=8`);
      const own = fc.features.filter((f) => f.properties.code === state.region);
      return own.length ? L.geoJSON({ type: "FeatureCollection", features: own }).getBounds() : null;
    } catch (err) {
      return null;
    }
  }

  let heatTimer = null;
  async function loadHeat() {
    clearTimeout(heatTimer);
    if (!$("layer-heat").checked) {
      if (heatLayer) map.removeLayer(heatLayer);
      heatLayer = null;
      $("heat-info").textContent = "";
      return;
    }
    const date = ($("playback").hidden ? null : $("pb-date").value) || localToday();
    try {
      const h = await api(withRegion(`/api/map/heat?date=${date}`));
      if (!$("layer-heat").checked) return;
      if (heatLayer) map.removeLayer(heatLayer);
      heatLayer = L.heatLayer(h.points, { radius: 22, blur: 18, maxZoom: 16, max: Math.max(1, h.max) }).addTo(map);
      $("heat-info").textContent = t("heat.points", { n: h.points.length }) + " · " + h.date;
    } catch (err) {
      $("heat-info").textContent = t("error.load", { what: "heat" });
    }
    heatTimer = setTimeout(loadHeat, 60_000);
  }

  // ---- WebSocket with reconnect and resync ---------------------------------------------
  function setStatus(s) {
    state.wsState = s;
    const el = $("status");
    el.className = "status " + s;
    el.dataset.i18n = "status." + s;
    el.textContent = t("status." + s);
  }

  function connect() {
    clearTimeout(state.retryTimer);
    if (!state.token) return;
    const gen = state.generation;
    const url = location.origin.replace(/^http/, "ws") + "/ws/live?token=" + encodeURIComponent(state.token) + (state.region ? "&" + regionQuery() : "");
    const ws = new WebSocket(url);
    state.ws = ws;
    ws.onopen = () => {
      if (ws !== state.ws) return;
      state.retry = 0;
      state.stats.connects++;
      setStatus("live");
      resync(gen);
    };
    ws.onmessage = (ev) => {
      if (ws !== state.ws) return;
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch (err) {
        return;
      }
      handle(m);
    };
    ws.onclose = (ev) => {
      if (ws !== state.ws) return;
      state.ws = null;
      if (ev.code === 4401) return showLogin(t("login.invalid"));
      if (ev.code === 4403) {
        // the picked region is outside the token's scope: fall back to the token's own
        store.set("region", null);
        state.region = defaultRegion();
        fillRegionPicker();
      }
      state.stats.drops++;
      setStatus(state.retry > 5 ? "offline" : "reconnecting");
      const delay = Math.max(Math.min(10_000, 500 * 2 ** state.retry++), (state.holdUntil || 0) - Date.now());
      state.retryTimer = setTimeout(connect, delay);
    };
  }

  function disconnect() {
    clearTimeout(state.retryTimer);
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close(1000);
  }

  async function resync(gen) {
    // Everything that changed while the socket was down comes back over REST.
    try {
      state.stats.resyncs++;
      const [bounds] = await Promise.all([loadProjects(), loadAlerts(), loadPositions()]);
      if (gen !== state.generation) return;
      if (!state.fitted) {
        state.fitted = true;
        const fit = bounds || (await regionBounds());
        if (fit && fit.isValid()) map.fitBounds(fit, { maxZoom: 15, padding: [20, 20] });
      }
      scheduleBoundaries();
      if ($("layer-heat").checked) loadHeat();
      state.lastResync = Date.now();
    } catch (err) {
      if (err.status === 401) showLogin(t("login.invalid"));
      else console.warn("resync failed:", err.message);
    }
  }

  function handle(m) {
    switch (m.type) {
      case "position":
        state.stats.positions++;
        queuePosition(m);
        break;
      case "alert":
        state.stats.alerts++;
        upsertAlert(alertFromMessage(m), true);
        break;
      case "transition": {
        const e = state.engineers.get(m.engineer_id);
        if (e && m.kind === "exit" && e.pos.project_ids) e.pos.project_ids = e.pos.project_ids.filter((p) => p !== m.project_id);
        break;
      }
      default:
        break; // attendance, telemetry: not drawn
    }
  }

  // ---- day playback --------------------------------------------------------------------
  const pb = { engineer: null, points: [], times: [], marker: null, timer: null };

  function openPlayback(id) {
    map.closePopup();
    pb.engineer = id;
    $("pb-engineer").textContent = id;
    if (!$("pb-date").value) $("pb-date").value = localToday();
    $("playback").hidden = false;
    loadTrack();
  }

  async function loadTrack() {
    stopPlay();
    playbackLayer.clearLayers();
    pb.points = [];
    pb.times = [];
    const date = $("pb-date").value || localToday();
    $("pb-info").textContent = "…";
    let fc;
    try {
      fc = await api(`/api/engineers/${encodeURIComponent(pb.engineer)}/track?date=${date}`);
    } catch (err) {
      $("pb-info").textContent = t("error.load", { what: err.message });
      return;
    }
    pb.points = fc.features.map((f) => L.latLng(f.geometry.coordinates[1], f.geometry.coordinates[0]));
    pb.times = fc.features.map((f) => Date.parse(f.properties.ts));
    const slider = $("pb-slider");
    if (!pb.points.length) {
      $("pb-info").textContent = t("playback.empty");
      slider.min = slider.max = slider.value = 0;
      $("pb-time").textContent = "--:--:--";
      return;
    }
    $("pb-info").textContent = t("playback.points", { n: pb.points.length });
    const line = L.polyline(pb.points, { color: COLOURS.selected, weight: 3, opacity: 0.7, renderer: svg });
    playbackLayer.addLayer(line);
    for (const ll of pb.points) playbackLayer.addLayer(L.circleMarker(ll, { radius: 2, color: COLOURS.selected, renderer: svg, interactive: false }));
    pb.marker = L.circleMarker(pb.points[0], { radius: 9, color: "#fff", weight: 2, fillColor: COLOURS.selected, fillOpacity: 1, renderer: svg }).bindTooltip(esc(pb.engineer), { permanent: true, direction: "right", offset: [8, 0], className: "eng-label" });
    playbackLayer.addLayer(pb.marker);
    slider.min = Math.floor(pb.times[0] / 1000);
    slider.max = Math.ceil(pb.times[pb.times.length - 1] / 1000);
    slider.value = slider.min;
    seek(Number(slider.value) * 1000);
    map.fitBounds(line.getBounds().pad(0.2), { maxZoom: 16 });
    if ($("layer-heat").checked) loadHeat();
  }

  function positionAt(tMs) {
    const ts = pb.times;
    if (tMs <= ts[0]) return pb.points[0];
    if (tMs >= ts[ts.length - 1]) return pb.points[ts.length - 1];
    let lo = 0;
    let hi = ts.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (ts[mid] <= tMs) lo = mid;
      else hi = mid;
    }
    const k = ts[hi] === ts[lo] ? 0 : (tMs - ts[lo]) / (ts[hi] - ts[lo]);
    const a = pb.points[lo];
    const b = pb.points[hi];
    return L.latLng(a.lat + (b.lat - a.lat) * k, a.lng + (b.lng - a.lng) * k);
  }

  function seek(tMs) {
    if (!pb.points.length) return;
    pb.marker.setLatLng(positionAt(tMs));
    $("pb-time").textContent = fmtTime(new Date(tMs).toISOString());
  }

  function togglePlay() {
    if (pb.timer) return stopPlay();
    const slider = $("pb-slider");
    if (!pb.points.length) return;
    if (Number(slider.value) >= Number(slider.max)) slider.value = slider.min;
    $("pb-play").dataset.i18n = "playback.pause";
    $("pb-play").textContent = t("playback.pause");
    let last = performance.now();
    pb.timer = setInterval(() => {
      const now = performance.now();
      const speed = Number($("pb-speed").value);
      const v = Math.min(Number(slider.max), Number(slider.value) + ((now - last) / 1000) * speed);
      last = now;
      slider.value = v;
      seek(v * 1000);
      if (v >= Number(slider.max)) stopPlay();
    }, 50);
  }
  function stopPlay() {
    clearInterval(pb.timer);
    pb.timer = null;
    $("pb-play").dataset.i18n = "playback.play";
    $("pb-play").textContent = t("playback.play");
  }
  function closePlayback() {
    stopPlay();
    playbackLayer.clearLayers();
    pb.engineer = null;
    pb.points = [];
    $("playback").hidden = true;
    if ($("layer-heat").checked) loadHeat();
  }

  // ---- region picker, login, language, settings ----------------------------------------
  function defaultRegion() {
    const me = state.me;
    if (!me) return null;
    if (me.role === "regulator") return me.region_code;
    return null;
  }

  function fillRegionPicker() {
    const sel = $("region");
    sel.innerHTML = "";
    const me = state.me;
    if (!me) return;
    if (me.role !== "regulator") {
      const o = document.createElement("option");
      o.value = "";
      o.textContent = t("region.all");
      sel.appendChild(o);
    }
    for (const r of me.regions || []) {
      const o = document.createElement("option");
      o.value = r.code;
      const depth = me.role === "regulator" && r.code !== me.region_code ? "　" : r.level === "city" ? "　" : "";
      o.textContent = depth + (r.name ? `${r.name} ${r.code}` : r.code);
      sel.appendChild(o);
    }
    if (state.region && ![...sel.options].some((o) => o.value === state.region)) {
      const o = document.createElement("option");
      o.value = state.region;
      o.textContent = state.region;
      sel.appendChild(o);
    }
    sel.value = state.region || "";
    sel.disabled = sel.options.length < 2;
  }

  function changeRegion(code) {
    state.region = code || defaultRegion();
    store.set("region", code || null);
    state.generation++;
    state.fitted = false;
    clearEngineers();
    state.alerts.clear();
    rerenderAlerts();
    disconnect();
    setStatus("connecting");
    connect();
  }

  function showLogin(message) {
    disconnect();
    setStatus("offline");
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("login-token").focus();
  }

  async function start() {
    state.generation++;
    try {
      state.me = await api("/api/me");
    } catch (err) {
      return showLogin(err.status === 401 ? (state.token ? t("login.invalid") : "") : t("login.unreachable"));
    }
    $("login").hidden = true;
    const me = state.me;
    learnRegionNames(me.regions || []);
    $("who").textContent = `${me.role}${me.region_code ? " · " + regionName(me.region_code) : ""}${me.engineer_id ? " · " + me.engineer_id : ""}`;
    const saved = store.get("region", "");
    const allowed = (code) => !code || me.role !== "regulator" || code === me.region_code || (me.regions || []).some((r) => r.code === code);
    state.region = saved && allowed(saved) ? saved : defaultRegion();
    fillRegionPicker();
    connect();
  }

  function applyLanguage() {
    I.apply();
    updateCount();
    rerenderAlerts();
    if (state.me) fillRegionPicker();
    map.closePopup();
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("login-token").value.trim();
    store.set("token", state.token);
    start();
  });
  $("logout").addEventListener("click", () => {
    store.set("token", null);
    state.token = "";
    state.me = null;
    state.generation++;
    clearEngineers();
    state.alerts.clear();
    rerenderAlerts();
    projectLayer.clearLayers();
    showLogin("");
  });
  $("lang").addEventListener("click", () => {
    I.lang = I.lang === "zh" ? "en" : "zh";
    store.set("lang", I.lang);
    applyLanguage();
  });
  $("region").addEventListener("change", (ev) => changeRegion(ev.target.value));
  $("show-resolved").addEventListener("change", rerenderAlerts);
  $("layer-boundaries").addEventListener("change", (ev) => {
    if (ev.target.checked) return loadBoundaries();
    boundaryLayer.clearLayers();
    boundaryLabels.clearLayers();
  });
  $("layer-projects").addEventListener("change", (ev) => (ev.target.checked ? projectLayer.addTo(map) : map.removeLayer(projectLayer)));
  $("layer-engineers").addEventListener("change", (ev) => (ev.target.checked ? engineerLayer.addTo(map) : map.removeLayer(engineerLayer)));
  $("layer-heat").addEventListener("change", loadHeat);
  $("stale-min").value = state.staleMin;
  $("tile-url").value = store.get("tiles", "");
  $("settings-apply").addEventListener("click", () => {
    state.staleMin = Math.max(1, Number($("stale-min").value) || 5);
    store.set("staleMin", String(state.staleMin));
    const url = $("tile-url").value.trim();
    store.set("tiles", url || null);
    setTiles(url);
    restyleStale();
  });
  $("pb-load").addEventListener("click", loadTrack);
  $("pb-close").addEventListener("click", closePlayback);
  $("pb-play").addEventListener("click", togglePlay);
  $("pb-slider").addEventListener("input", (ev) => seek(Number(ev.target.value) * 1000));
  map.on("moveend", scheduleBoundaries);
  let mapMoving = false;
  map.on("movestart zoomstart", () => (mapMoving = true));
  map.on("moveend zoomend", () => (mapMoving = false));
  setInterval(restyleStale, 15_000);
  // Acknowledgements made elsewhere are not pushed live: refresh the list now and then.
  setInterval(() => state.wsState === "live" && loadAlerts().catch((err) => console.warn("alerts:", err.message)), 60_000);

  // ---- what tests and operators can ask the page ----------------------------------------
  function engineerView(e) {
    const ll = e.marker.getLatLng();
    return { id: e.id, lat: ll.lat, lon: ll.lng, target_lat: e.pos.lat, target_lon: e.pos.lon, ts: e.pos.ts, stale: e.stale, project_ids: e.pos.project_ids, region_code: e.pos.region_code, received_at: e.receivedAt, moved_at: e.movedAt, moving: animating.has(e) };
  }
  window.sitewatch = {
    get state() {
      return { ws: state.wsState, region: state.region, role: state.me && state.me.role, lang: I.lang, stats: Object.assign({}, state.stats), engineers: state.engineers.size, alerts: state.alerts.size, projects: state.projects.size, lastResync: state.lastResync || null };
    },
    engineers: () => [...state.engineers.values()].map(engineerView),
    engineer: (id) => (state.engineers.has(id) ? engineerView(state.engineers.get(id)) : null),
    alert: (id) => state.alerts.get(id) || null,
    projects: () => [...state.projects.keys()],
    // true once the view stands still and nothing is waiting to be drawn (for screenshots)
    settled: () => !mapMoving && !boundaryTimerPending(),
    openEngineer: (id) => focusEngineer(id),
    openProject: (id) => focusProject(id),
    openPlayback,
    seekPlayback: (tMs) => {
      $("pb-slider").value = Math.round(tMs / 1000);
      seek(tMs);
      return pb.marker ? pb.marker.getLatLng() : null;
    },
    playbackRange: () => (pb.times.length ? [pb.times[0], pb.times[pb.times.length - 1]] : null),
    // Close the socket as a network drop would, and stay away for `holdMs` (tests, drills).
    dropSocket: (holdMs) => {
      state.holdUntil = Date.now() + (holdMs || 0);
      if (state.ws) state.ws.close(4000, "dropped on purpose");
    },
    // requestAnimationFrame deltas over `ms`: how smooth the page is while it works.
    frameStats: (ms) =>
      new Promise((resolve) => {
        const deltas = [];
        let longTasks = 0;
        let obs = null;
        try {
          obs = new PerformanceObserver((list) => (longTasks += list.getEntries().length));
          obs.observe({ entryTypes: ["longtask"] });
        } catch (err) {
          obs = null;
        }
        const positions0 = state.stats.positions;
        const t0 = performance.now();
        let last = t0;
        function frame(now) {
          deltas.push(now - last);
          last = now;
          if (now - t0 < ms) return requestAnimationFrame(frame);
          if (obs) obs.disconnect();
          const s = deltas.slice(1).sort((a, b) => a - b);
          const q = (p) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : null);
          resolve({ frames: s.length, mean_ms: s.reduce((x, y) => x + y, 0) / Math.max(1, s.length), p50_ms: q(0.5), p95_ms: q(0.95), p99_ms: q(0.99), max_ms: s.length ? s[s.length - 1] : null, long_tasks: longTasks, positions: state.stats.positions - positions0, engineers: state.engineers.size });
        }
        requestAnimationFrame(frame);
      }),
  };

  I.apply();
  updateCount();
  updateAlertCount();
  setTiles(store.get("tiles", ""));
  if (state.token) start();
  else showLogin("");
})();
