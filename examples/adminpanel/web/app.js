// The admin panel page: the fleet, one service's instances and the
// incidents log, kept live from the server's events.
//
// Every string that comes from the API is data. It reaches the page only
// as text (textContent, text nodes) or as the value of a harmless
// attribute (title, data-*): never as markup.
"use strict";

(function () {
  // Instances read and shown at first, a page of the server's (by id, in
  // the state chosen): a service of 10,000 instances would take seconds
  // to send and lay out. "Show more" reads the next page. MAX_PAGE is the
  // most the server gives at once.
  const ROW_PAGE = 500;
  const MAX_PAGE = 5000;

  const $ = (id) => document.getElementById(id);

  // el builds an element; props holds className, text and attributes,
  // children are nodes or strings (which become text nodes).
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null) continue;
        if (k === "className") e.className = v;
        else if (k === "text") e.textContent = v;
        else e.setAttribute(k, v);
      }
    }
    for (const c of children) e.append(c); // append makes strings text nodes
    return e;
  }

  function setText(node, s) {
    s = String(s);
    if (node.textContent !== s) node.textContent = s;
  }

  // The server's clock: ages are computed against it, not the browser's.
  let skew = 0; // server time - browser time, ms
  function observeServerTime(stampStr) {
    const t = Date.parse(stampStr);
    if (!isNaN(t)) skew = t - Date.now();
  }
  const serverNow = () => Date.now() + skew;

  function fmtDuration(sec) {
    if (sec === null || sec === undefined || isNaN(sec)) return "—";
    sec = Math.max(0, sec);
    if (sec < 10) return sec.toFixed(1) + " s";
    if (sec < 60) return Math.floor(sec) + " s";
    const m = Math.floor(sec / 60), s = Math.floor(sec % 60);
    if (m < 60) return m + " min " + s + " s";
    const h = Math.floor(m / 60);
    if (h < 24) return h + " h " + (m % 60) + " min";
    return Math.floor(h / 24) + " d " + (h % 24) + " h";
  }

  function fmtPercent(u) {
    if (u === null || u === undefined) return "—";
    if (u >= 1) return "100%";
    // Never round a short outage up to 100%.
    return (Math.floor(u * 10000) / 100).toFixed(2) + "%";
  }

  // Times are shown in the browser's zone, and say which: the offset
  // from UTC ("UTC" alone when there is none), with the whole of it, in
  // ISO 8601 with the offset and the zone's name, and in UTC, in the title.
  const pad = (n, w) => String(n).padStart(w || 2, "0");
  let zoneName = "";
  try { zoneName = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (_) { /* no Intl */ }

  function offsetOf(d, utc, sep) {
    const off = -d.getTimezoneOffset(); // minutes east of UTC
    if (off === 0) return utc;
    const a = Math.abs(off);
    return (off > 0 ? "+" : "-") + pad(Math.floor(a / 60)) + sep + pad(a % 60);
  }

  // zonedTime returns the parts of a time as the page shows it.
  function zonedTime(stampStr) {
    const t = Date.parse(stampStr);
    if (isNaN(t)) return null;
    const d = new Date(t);
    const date = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
    const clock = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    const off = offsetOf(d, "", ":");
    const iso = date + "T" + clock + "." + pad(d.getMilliseconds(), 3) + (off || "Z");
    return {
      date, time: clock + " UTC" + off,
      title: iso + (zoneName ? " (" + zoneName + ")" : "") + (off ? ", " + d.toISOString() : ""),
      datetime: d.toISOString(),
    };
  }

  // timeEl is a time as a <time> element: its date and its time with the
  // zone, each kept on one line, and the whole in its title.
  function timeEl(stampStr) {
    const z = zonedTime(stampStr);
    if (!z) return el("span", { text: String(stampStr) });
    return el("time", { datetime: z.datetime, title: z.title }, el("span", { text: z.date }), " ", el("span", { text: z.time }));
  }

  function fmtNumber(v, digits, unit) {
    if (v === null || v === undefined) return "—";
    return Number(v).toFixed(digits) + unit;
  }

  function fmtValue(v) {
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  function shortID(id) {
    return id.length > 13 ? id.slice(0, 8) + "…" : id;
  }

  // visible shows the characters that display as nothing or turn text
  // around (zero-width, bidi controls) as their code, so that a field
  // named "\u202egnp.exe" cannot pass for "exe.png".
  function visible(s) {
    return String(s).replace(/[\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]/g,
      (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  }

  // verdict is what the page shows of an instance: its state, or
  // "degraded" when it is up and breaks a health rule of its service.
  function verdict(inst) {
    const up = inst.state === "alive" || inst.state === "stale";
    return up && inst.health && inst.health.verdict === "degraded" ? "degraded" : inst.state;
  }

  // A link the server built from the operator's template: shown only as
  // an http(s) URL, in a new tab, telling the other side nothing.
  function externalLink(href, text, label) {
    if (typeof href !== "string" || !/^https?:\/\//i.test(href)) return null;
    return el("a", { className: "metrics", href, target: "_blank", rel: "noopener noreferrer", text, "aria-label": label });
  }

  // A rule as a row shows it: without its "SERVICE: " (the row is the
  // service's).
  function ruleText(rule) {
    const i = rule.indexOf(": ");
    return i >= 0 ? rule.slice(i + 2) : rule;
  }

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    let body = null;
    try { body = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) {
      const err = new Error((body && body.error) || ("HTTP " + r.status));
      err.status = r.status;
      throw err;
    }
    return body;
  }

  // ---- state ----

  const fleet = { windows: [], services: new Map(), watching: true, loaded: false };
  const cards = new Map(); // service name -> card parts
  // detail.instances are the pages read so far: every instance of the
  // state chosen up to detail.next (the first id not read; null when all
  // are), of detail.matched in that state.
  const detail = { name: null, summary: null, instances: new Map(), rows: new Map(), loaded: false, gen: 0, next: null, matched: 0 };
  // Whether an instance falls in the pages read: one past them is left
  // for "Show more", where the server has it in order.
  const inPages = (id) => detail.next === null || cmpIds(id, detail.next) < 0;

  // cmpIds orders instance ids as the server does, by code point (UTF-8's
  // byte order), not by JavaScript's UTF-16 units: a character above
  // U+FFFF (a surrogate pair) comes after every one below it.
  function cmpIds(a, b) {
    if (a === b) return 0;
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const x = a.charCodeAt(i), y = b.charCodeAt(i);
      if (x !== y) {
        const sx = x >= 0xd800 && x <= 0xdfff, sy = y >= 0xd800 && y <= 0xdfff;
        if (sx !== sy) return sx ? 1 : -1;
        return x < y ? -1 : 1;
      }
    }
    return a.length - b.length;
  }
  let route = { view: "fleet" };

  // ---- live updates, applied once per frame ----

  let pending = [];
  let frameQueued = false;
  const dirtyCards = new Set();
  const dirtyRows = new Set();
  let summaryDirty = false;
  let orderDirty = false;

  // Alerts follow transitions by up to a second (the rules run every
  // second): after one, the list is read again on the next two ticks.
  let alertsDirty = 0;
  function queue(update) {
    if (update.transitions && update.transitions.length) alertsDirty = 2;
    pending.push(update);
    if (!frameQueued) {
      frameQueued = true;
      // A hidden tab gets no frames: apply on a timer instead, so the
      // queue does not grow without bound.
      if (document.hidden) setTimeout(frame, 250);
      else requestAnimationFrame(frame);
    }
  }

  function frame() {
    frameQueued = false;
    const updates = pending;
    pending = [];
    for (const u of updates) apply(u);
    render();
  }

  function apply(u) {
    observeServerTime(u.at);
    setWatching(u.watching);
    setRole(u.role);
    for (const s of u.services || []) {
      const old = fleet.services.get(s.name);
      fleet.services.set(s.name, s);
      dirtyCards.add(s.name);
      if (!old) orderDirty = true;
      if (detail.name === s.name && detail.loaded) {
        const changed = !detail.summary || detail.summary.state !== s.state ||
          !!detail.summary.open_incident !== !!s.open_incident;
        detail.summary = Object.assign({}, detail.summary, s);
        summaryDirty = true;
        if (changed) refetchDetailSoon();
      }
    }
    if (detail.name !== null && detail.loaded) {
      for (const inst of u.instances || []) {
        if (inst.service !== detail.name) continue;
        if (!detail.instances.has(inst.instance) && !inPages(inst.instance)) continue;
        detail.instances.set(inst.instance, inst);
        dirtyRows.add(inst.instance);
      }
      for (const k of u.removed || []) {
        if (k.service !== detail.name) continue;
        detail.instances.delete(k.instance);
        dirtyRows.add(k.instance);
      }
    }
  }

  function render() {
    if (dirtyCards.size) {
      if (orderDirty) { renderAllCards(); orderDirty = false; }
      else for (const name of dirtyCards) renderCard(name);
      dirtyCards.clear();
    }
    if (summaryDirty && route.view === "service") { renderServiceSummary(); summaryDirty = false; }
    if (dirtyRows.size && route.view === "service") {
      for (const id of dirtyRows) renderRow(id);
      dirtyRows.clear();
      renderInstancesCount();
    }
  }

  // ---- fleet overview ----

  function setWatching(w) {
    fleet.watching = !!w;
    $("banner").hidden = fleet.watching;
  }

  // role says whether this replica records or stands by: a standby shows
  // the same verdicts, and says what it is.
  function setRole(role) {
    if (role) $("role").hidden = role !== "standby";
  }

  function newCard(name) {
    const parts = {};
    parts.li = el("li");
    parts.a = el("a", { className: "card", href: "#/services/" + encodeURIComponent(name), "data-service": name });
    parts.name = el("span", { className: "card-name", text: name });
    parts.state = el("span", { className: "state" });
    parts.counts = el("span", { className: "counts" });
    parts.uptime = el("dl", { className: "uptime" });
    parts.uptimeCells = new Map();
    parts.incident = el("span", { className: "incident" });
    parts.incidentDur = el("span");
    parts.a.append(el("span", { className: "card-head" }, parts.name, parts.state), parts.counts, parts.uptime, parts.incident);
    parts.li.append(parts.a);
    return parts;
  }

  function renderCard(name) {
    const s = fleet.services.get(name);
    let c = cards.get(name);
    if (!s) {
      if (c) { c.li.remove(); cards.delete(name); }
      return;
    }
    if (!c) {
      c = newCard(name);
      cards.set(name, c);
      $("cards").append(c.li);
    }
    c.a.dataset.state = s.state;
    c.state.dataset.state = s.state;
    setText(c.state, s.state);
    const n = s.counts || {};
    const total = (n.alive || 0) + (n.stale || 0) + (n.dead || 0) + (n.stopped || 0);
    setText(c.counts, total + " instance" + (total === 1 ? "" : "s") + ": " + (n.alive || 0) + " alive, " +
      (n.stale || 0) + " stale, " + (n.dead || 0) + " dead, " + (n.stopped || 0) + " stopped" +
      (n.degraded ? "; " + n.degraded + " degraded" : ""));
    for (const w of fleet.windows) {
      let cell = c.uptimeCells.get(w);
      if (!cell) {
        cell = el("dd");
        c.uptime.append(el("div", null, el("dt", { text: w }), cell));
        c.uptimeCells.set(w, cell);
      }
      setText(cell, fmtPercent(s.uptime ? s.uptime[w] : null));
    }
    c.openIncident = s.open_incident;
    renderCardIncident(c);
    c.a.setAttribute("aria-label", name + ", " + s.state + ", " + total + " instances" +
      (s.open_incident ? ", incident open" : ""));
  }

  function renderCardIncident(c) {
    const inc = c.openIncident;
    c.incident.hidden = !inc;
    if (!inc) return;
    if (c.incidentSince !== inc.started_at) {
      c.incidentSince = inc.started_at;
      c.incident.replaceChildren("Incident open since ", timeEl(inc.started_at), " (", c.incidentDur, ")");
    }
    const dur = (serverNow() - Date.parse(inc.started_at)) / 1000;
    setText(c.incidentDur, fmtDuration(isNaN(dur) ? inc.duration_seconds : dur));
  }

  function renderAllCards() {
    const names = [...fleet.services.keys()].sort();
    for (const [name, c] of cards) if (!fleet.services.has(name)) { c.li.remove(); cards.delete(name); }
    const list = $("cards");
    for (const name of names) {
      renderCard(name);
      list.append(cards.get(name).li); // moves it into order
    }
    $("fleet-empty").hidden = names.length > 0 || !fleet.loaded;
  }

  async function loadFleet() {
    const f = await getJSON("api/v1/services");
    observeServerTime(f.generated_at);
    fleet.windows = f.windows || [];
    fleet.services = new Map((f.services || []).map((s) => [s.name, s]));
    fleet.loaded = true;
    setWatching(f.watching);
    setRole(f.role);
    for (const c of cards.values()) c.li.remove();
    cards.clear();
    renderAllCards();
    fillServiceFilter();
  }

  // ---- service view ----

  let refetchTimer = 0;
  function refetchDetailSoon() {
    if (refetchTimer) return;
    refetchTimer = setTimeout(() => {
      refetchTimer = 0;
      if (route.view === "service") loadDetail(route.name, true).catch(showError);
    }, 1000);
  }

  // detailURL asks for a page of the service's instances in the state
  // chosen: limit of them after the id after.
  function detailURL(name, limit, after) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (stateFilter) q.set("state", stateFilter);
    if (after) q.set("after", after);
    return "api/v1/services/" + encodeURIComponent(name) + "?" + q.toString();
  }

  // loadDetail reads the service's summary and its first pages: as many
  // as were read already when keep says the view stays (a change of
  // state, a reconnection read them again), else one.
  async function loadDetail(name, keep) {
    const gen = ++detail.gen;
    // Every page read: all of them again when the last was read.
    const want = !keep || detail.name !== name ? ROW_PAGE
      : detail.loaded && detail.next === null ? Infinity : Math.max(ROW_PAGE, detail.instances.size);
    if (!keep || detail.name !== name) {
      if (detail.name !== name) {
        stateFilter = "";
        $("state-filter").value = "";
      }
      detail.name = name;
      detail.loaded = false;
      detail.summary = null;
      detail.instances = new Map();
      for (const r of detail.rows.values()) r.tr.remove();
      detail.rows.clear();
      setText($("service-name"), name);
      clearCharts();
      setText($("service-state"), "");
      $("service-summary").replaceChildren();
      $("service-missing").hidden = true;
      setText($("instances-count"), "");
    }
    let d;
    try {
      d = await getJSON(detailURL(name, Math.min(want, MAX_PAGE), ""));
      while (d.next && (d.instances || []).length < want) {
        const more = await getJSON(detailURL(name, Math.min(want - d.instances.length, MAX_PAGE), d.next));
        if (gen !== detail.gen) return;
        d = Object.assign({}, more, { instances: d.instances.concat(more.instances || []) });
      }
    } catch (e) {
      if (gen !== detail.gen) return;
      if (e.status === 404 || e.status === 400) {
        $("service-missing").hidden = false;
        detail.loaded = true;
        markRendered("service", 0);
        return;
      }
      throw e;
    }
    if (gen !== detail.gen) return; // a newer route or reload won
    const { instances, incidents, restarts, lost, matched, next, ...summary } = d;
    detail.summary = summary;
    detail.matched = matched || 0;
    detail.next = next || null;
    detail.restarts = restarts || {};
    detail.lost = lost || {};
    detail.incidents = incidents || [];
    detail.loaded = true;
    const fresh = new Map((instances || []).map((i) => [i.instance, i]));
    for (const id of detail.instances.keys()) if (!fresh.has(id)) dirtyRows.add(id);
    detail.instances = fresh;
    renderServiceSummary();
    renderServiceTables();
    renderAllRows();
    markRendered("service", detail.instances.size);
    loadChartsSoon(0);
  }

  // moreRows reads the next page of instances and shows it below.
  let readingMore = false;
  async function moreRows() {
    if (readingMore || detail.next === null || !detail.loaded) return;
    readingMore = true;
    const gen = detail.gen;
    try {
      const d = await getJSON(detailURL(detail.name, ROW_PAGE, detail.next));
      if (gen !== detail.gen) return;
      for (const i of d.instances || []) detail.instances.set(i.instance, i);
      detail.matched = d.matched || 0;
      detail.next = d.next || null;
      renderAllRows();
    } finally {
      readingMore = false;
    }
  }

  function renderServiceSummary() {
    const s = detail.summary;
    if (!s) return;
    const st = $("service-state");
    st.dataset.state = s.state;
    setText(st, s.state);
    const n = s.counts || {};
    const items = [
      ["Alive", n.alive || 0], ["Stale", n.stale || 0], ["Dead", n.dead || 0], ["Stopped", n.stopped || 0],
      ["Must be up", s.min_alive],
    ];
    if (n.degraded) items.splice(4, 0, ["Degraded", n.degraded]);
    if (s.open_incident) {
      items.push(["Open incident", el("span", null, "since ", timeEl(s.open_incident.started_at))]);
    }
    const dl = $("service-summary");
    dl.replaceChildren(...items.map(([k, v]) => el("div", null, el("dt", { text: k }),
      v instanceof Node ? el("dd", null, v) : el("dd", { text: String(v) }))));
    renderInstancesCount();
  }

  function renderServiceTables() {
    const s = detail.summary;
    const wins = fleet.windows.length ? fleet.windows : Object.keys((s && s.uptime) || {});
    $("service-windows").tBodies[0].replaceChildren(...wins.map((w) => el("tr", null,
      el("th", { scope: "row", text: w }),
      el("td", { text: fmtPercent(s && s.uptime ? s.uptime[w] : null) }),
      el("td", { text: w in detail.restarts ? String(detail.restarts[w]) : "—" }),
      el("td", { text: w in detail.lost ? String(detail.lost[w]) : "—" }))));
    $("service-incidents-empty").hidden = detail.incidents.length > 0;
    $("service-incidents").hidden = detail.incidents.length === 0;
    $("service-incidents").tBodies[0].replaceChildren(...detail.incidents.map((i) => incidentRow(i, false)));
  }

  function incidentRow(i, withService) {
    const tr = el("tr");
    if (withService) {
      tr.append(el("th", { scope: "row" }, el("a", { href: "#/services/" + encodeURIComponent(i.service), text: i.service })));
    }
    tr.append(
      withService ? el("td", null, timeEl(i.started_at)) : el("th", { scope: "row" }, timeEl(i.started_at)),
      i.ended_at ? el("td", null, timeEl(i.ended_at)) : el("td", { text: "open" }),
      el("td", { text: fmtDuration(i.duration_seconds) }),
      incidentInstances(i));
    return tr;
  }

  // The instances of an incident, each with its link to its own metrics
  // when the panel has a template, and the values of the hour before
  // the incident began (their last heartbeats are in it) on demand.
  function incidentInstances(i) {
    const ids = i.instances || [];
    const links = i.metrics_links || {};
    const td = el("td", { className: "incident-instances" });
    ids.forEach((id, n) => {
      if (n) td.append(", ");
      td.append(el("span", { className: "mono", text: id }));
      const a = externalLink(links[id], "metrics ↗", "metrics of " + id);
      if (a) td.append(" ", a);
    });
    if (ids.length && window.uPlot && i.started_at && !view.off) {
      // The charts take a row of their own under the incident's, as wide
      // as the table's box, not a cell's.
      const d = el("details", { className: "before" }, el("summary", { text: "Values in the hour before" }));
      const box = el("div", { className: "charts" });
      let row = null;
      d.addEventListener("toggle", () => {
        const tr = td.closest("tr");
        if (!d.open) { if (row) row.hidden = true; return; }
        if (!row && tr) {
          const cell = el("td", { colspan: String(tr.children.length), className: "before-cell" }, box);
          row = el("tr", { className: "before-row" }, cell);
          tr.after(row);
        }
        if (row) row.hidden = false;
        if (!box.dataset.loaded) {
          box.dataset.loaded = "1";
          loadIncidentCharts(i, box).catch((e) => { box.replaceChildren(el("p", { className: "muted", text: "Values could not be read: " + e.message })); });
        }
      });
      td.append(d);
    }
    return td;
  }

  function compareRows(a, b) {
    return cmpIds(a.instance, b.instance);
  }

  // A row is a table row on a wide screen and a card on a narrow one,
  // where each cell shows its label (data-label, from the CSS).
  function newRow(inst) {
    const r = {};
    r.tr = el("tr", { role: "row", "data-instance": inst.instance });
    r.id = el("th", { scope: "row", role: "rowheader", className: "mono id", title: inst.instance, text: shortID(inst.instance) });
    r.state = el("span", { className: "state" });
    r.health = el("ul", { className: "health" });
    r.healthCell = el("td", { role: "cell", className: "health-cell", "data-label": "Health" }, r.health);
    const cell = (cls, label) => el("td", { role: "cell", className: cls, "data-label": label });
    r.age = cell("num", "Age");
    r.uptime = cell("num", "Uptime (24h)");
    r.beats = cell("num", "Heartbeats");
    r.lost = cell("num", "Lost");
    r.mem = cell("num", "Memory");
    r.cpu = cell("num", "CPU");
    r.interval = cell("num interval", "Interval");
    r.addr = cell("mono addr", "Address");
    r.fields = cell("fields", "Fields");
    r.bars = el("span", { className: "bars", role: "img" });
    const barsCell = cell("beats", "Recent heartbeats");
    barsCell.append(r.bars);
    const stateCell = cell("state-cell", null);
    stateCell.append(r.state);
    r.tr.append(r.id, stateCell, r.age, r.uptime, r.beats, r.lost, r.mem, r.cpu, r.interval, r.addr, barsCell, r.healthCell, r.fields);
    return r;
  }

  // Service fields shown in a row; the rest are behind "n more", so that a
  // heartbeat with dozens of fields keeps its row a few lines tall.
  const FIELDS_SHOWN = 6;

  // breakable returns s as text nodes with <wbr> where a long value may
  // wrap sensibly: after the T of a timestamp, before its zone, and after
  // the separators of paths, queries and lists. The text stays the same
  // (textContent) and is never parsed as markup.
  function breakable(s) {
    const out = [];
    let from = 0;
    const re = /\d{4}-\d\d-\d\dT|\d(?=[+-]\d\d:\d\d\b)|[/?&,;=_]/g;
    let m;
    while ((m = re.exec(s)) !== null) {
      const to = m.index + m[0].length;
      if (to > from && to < s.length) {
        out.push(document.createTextNode(s.slice(from, to)), document.createElement("wbr"));
        from = to;
      }
      if (out.length > 400) break; // enough places to wrap; the rest is one piece
    }
    out.push(document.createTextNode(s.slice(from)));
    return out;
  }

  // A field is a list of one term, so that the fields and "n more" flow
  // as one line of items.
  function fieldItem(key, value, cls) {
    const dd = el("dd", { title: value });
    dd.append(...breakable(value));
    return el("dl", { className: cls }, el("dt", { text: visible(key), title: visible(key) }), dd);
  }

  function fillRow(r, inst) {
    r.inst = inst;
    const v = verdict(inst);
    r.tr.dataset.state = v;
    r.state.dataset.state = v;
    setText(r.state, v);
    fillHealth(r, inst);
    if (r.linkOf !== (inst.metrics_link || "")) {
      r.linkOf = inst.metrics_link || "";
      if (r.link) r.link.remove();
      r.link = externalLink(inst.metrics_link, "metrics ↗", "metrics of " + inst.instance);
      if (r.link) r.id.append(" ", r.link);
    }
    renderAge(r);
    fillAgeTitle(r);
    setText(r.uptime, fmtPercent(inst.uptime));
    setText(r.beats, inst.heartbeats);
    setText(r.lost, inst.lost);
    setText(r.mem, fmtNumber(inst.memory_mb, 1, " MB"));
    setText(r.cpu, fmtNumber(inst.cpu_percent, 1, "%"));
    setText(r.interval, fmtDuration(inst.interval_seconds) + " (" + inst.interval_source + ")");
    setText(r.addr, inst.address || "—");
    if (r.addr.title !== (inst.address || "")) r.addr.title = inst.address || "";
    // Service fields, as the API lists them: the heartbeat's own, in its order.
    const fields = Array.isArray(inst.fields) ? inst.fields : [];
    const cut = inst.fields_cut || 0;
    const sig = JSON.stringify([cut, fields]);
    if (r.fieldsSig !== sig) {
      r.fieldsSig = sig;
      const items = fields.map((f) => fieldItem(f.key, fmtValue(f.value)));
      // What the panel's memory bound cut or left out, said rather than hidden.
      if (cut > 0) items.push(fieldItem("cut", cut + " fields cut short or left out", "cut"));
      r.fields.classList.toggle("empty", items.length === 0);
      if (items.length <= FIELDS_SHOWN + 1) { // "1 more" would save nothing
        r.more = null;
        r.fields.replaceChildren(...items);
      } else {
        // Kept open across updates once opened.
        const open = r.more ? r.more.open : false;
        const rest = items.splice(FIELDS_SHOWN);
        r.more = el("details", { className: "more" }, el("summary", { text: rest.length + " more fields" }), el("div", { className: "rest" }, ...rest));
        r.more.open = open;
        r.fields.replaceChildren(...items, r.more);
      }
    }
    // The heartbeat bars, oldest first. After a graceful stop nothing is
    // expected: the intervals since the last heartbeat (the one that said
    // it was stopping) are the stop's, not misses, and look it: the
    // stopped state's colour, a low line rather than a bar, and the strip
    // ends in its symbol, as a crash's ends in the dead one's.
    const bars = inst.bars || [];
    const spans = r.bars.children;
    while (spans.length > bars.length) r.bars.lastChild.remove();
    while (spans.length < bars.length) r.bars.append(el("span"));
    const stopped = inst.state === "stopped";
    const last = bars.lastIndexOf(1);
    let got = 0, missed = 0, off = 0;
    for (let i = 0; i < bars.length; i++) {
      let cls = "bn";
      if (bars[i] === 1) { cls = "b1"; got++; }
      else if (bars[i] === 0 && stopped && i > last) { cls = "bs"; off++; }
      else if (bars[i] === 0) { cls = "b0"; missed++; }
      if (spans[i].className !== cls) spans[i].className = cls;
    }
    const end = stopped || inst.state === "dead" ? inst.state : "";
    if (r.bars.dataset.end !== end) r.bars.dataset.end = end;
    let label = "last " + bars.length + " intervals: " + got + " received, " + missed + " missed";
    if (off) label += ", " + off + " since it stopped gracefully";
    if (end) label += "; " + end;
    if (r.bars.getAttribute("aria-label") !== label) {
      r.bars.setAttribute("aria-label", label);
      r.bars.title = label;
    }
  }

  // The rules an instance breaks, or may soon (pending), or whose field
  // it does not send (unknown): each named, its state in its class.
  function fillHealth(r, inst) {
    const checks = (inst.health && inst.health.checks) || [];
    const shown = checks.filter((c) => c.status !== "holds");
    const sig = JSON.stringify(shown);
    if (r.healthSig === sig) return;
    r.healthSig = sig;
    r.health.replaceChildren(...shown.map((c) => {
      const what = c.status === "unknown" ? ruleText(c.rule) + ": not sent" : ruleText(c.rule);
      const li = el("li", { className: c.status, text: what });
      const z = c.since ? zonedTime(c.since) : null;
      li.title = c.rule + " — " + c.status + (z ? " since " + z.title : "") +
        (c.value !== undefined && c.value !== null ? "; value " + fmtValue(c.value) : "");
      return li;
    }));
    r.healthCell.classList.toggle("empty", shown.length === 0);
  }

  function fillAgeTitle(r) {
    if (r.seenTitleOf === r.inst.last_seen) return;
    r.seenTitleOf = r.inst.last_seen;
    const z = zonedTime(r.inst.last_seen);
    r.age.title = z ? "last heartbeat received " + z.date + " " + z.time + " (" + z.title + ")" : "";
  }

  function renderAge(r) {
    const seen = Date.parse(r.inst.last_seen);
    const age = isNaN(seen) ? r.inst.age_seconds : (serverNow() - seen) / 1000;
    setText(r.age, fmtDuration(age));
  }

  let stateFilter = "";
  const matches = (inst) => !stateFilter || verdict(inst) === stateFilter;

  // The rows shown: the pages read, those still in the state chosen (an
  // instance leaves the filter live), by id.
  function shownInstances() {
    let list = [...detail.instances.values()];
    if (stateFilter) list = list.filter(matches);
    list.sort(compareRows);
    return list;
  }

  // The instances count is the service's, not the pages read.
  function renderInstancesCount() {
    const n = (detail.summary && detail.summary.counts) || {};
    const total = (n.alive || 0) + (n.stale || 0) + (n.dead || 0) + (n.stopped || 0);
    setText($("instances-count"), "(" + Math.max(total, detail.instances.size) + ")");
  }

  // An update that changes which rows are shown re-renders them all, at
  // most once a second: existing rows are kept, only moved.
  let rowsTimer = 0;
  function renderAllRowsSoon() {
    if (rowsTimer) return;
    rowsTimer = setTimeout(() => {
      rowsTimer = 0;
      if (route.view === "service" && detail.loaded) renderAllRows();
    }, 1000);
  }

  function renderRow(id) {
    const inst = detail.instances.get(id);
    let r = detail.rows.get(id);
    if (!inst) {
      if (r) { r.tr.remove(); detail.rows.delete(id); renderAllRowsSoon(); }
      return;
    }
    if (!matches(inst)) {
      // It left the state chosen: gone at once, the note follows.
      if (r) { r.tr.remove(); detail.rows.delete(id); renderAllRowsSoon(); }
      return;
    } else if (!r) {
      r = newRow(inst);
      detail.rows.set(id, r);
      insertRowInOrder(r, inst);
    }
    fillRow(r, inst);
  }

  function insertRowInOrder(r, inst) {
    const tbody = $("instances").tBodies[0];
    // Rows are kept sorted by instance id; a new one is rare, so a scan
    // is fine.
    for (const other of tbody.rows) {
      const o = detail.rows.get(other.dataset.instance);
      if (o && o.inst && compareRows(inst, o.inst) < 0) { tbody.insertBefore(r.tr, other); return; }
    }
    tbody.append(r.tr);
  }

  function renderAllRows() {
    const tbody = $("instances").tBodies[0];
    const shown = shownInstances();
    const keep = new Set(shown.map((i) => i.instance));
    for (const [id, r] of detail.rows) if (!keep.has(id)) { r.tr.remove(); detail.rows.delete(id); }
    const frag = document.createDocumentFragment();
    for (const inst of shown) {
      let r = detail.rows.get(inst.instance);
      if (!r) { r = newRow(inst); detail.rows.set(inst.instance, r); }
      fillRow(r, inst);
      frag.append(r.tr);
    }
    tbody.append(frag); // in sorted order, existing rows moved
    dirtyRows.clear();
    renderInstancesCount();
    const total = Math.max(detail.matched, shown.length);
    setText($("rows-note"), detail.next !== null
      ? "Showing the first " + shown.length + " of " + total + (stateFilter ? " " + stateFilter : "") + " instances, by id."
      : shown.length === 0 && stateFilter ? "No " + stateFilter + " instances." : "");
    $("more-rows").hidden = detail.next === null;
  }

  // ---- values over time ----

  // Each numeric field of the service's heartbeats over the last hour or
  // day (the recorder's rollups: GET .../series), one chart a field drawn
  // by uPlot, a line an instance (or, past CHART_LINES instances, the
  // service's greatest and sum), with deaths, stops and restarts marked
  // on the time axis. The charts follow the service live: read again
  // every 15 s and soon after a change of state.
  const CHART_LINES = 8;
  const CHART_FIELDS = 16;
  const PALETTE = ["#0b57d0", "#16794a", "#c2410c", "#7b1fa2", "#00838f", "#c2185b", "#5d4037", "#455a64"];
  const MARKS = { dead: "--down", stopped: "--stopped", replaced: "--link", recovered: "--up", started: "--up" };
  const MARK_SYMBOL = { dead: "✕", stopped: "■", replaced: "↻", recovered: "✓", started: "▶" };
  const FIELD_TITLES = { memory_usage_mb: "Memory (MB)", cpu_usage_percent: "CPU (%)" };
  const view = { span: "1h", charts: new Map(), gen: 0, timer: 0 };

  const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";

  // The fields to chart: those whose values are kept (the panel lists
  // them), memory and CPU first.
  function orderFields(kept) {
    const first = ["memory_usage_mb", "cpu_usage_percent"].filter((k) => kept.includes(k));
    return first.concat(kept.filter((k) => !first.includes(k))).slice(0, CHART_FIELDS);
  }

  async function keptFields(service, ids) {
    const q = new URLSearchParams();
    for (const id of ids || []) q.append("instance", id);
    const body = await getJSON("api/v1/services/" + encodeURIComponent(service) + "/series/fields?" + q.toString());
    return orderFields((body && body.fields) || []);
  }

  function seriesURL(name, field, params) {
    return "api/v1/services/" + encodeURIComponent(name) + "/series?" + new URLSearchParams(Object.assign({ field }, params)).toString();
  }

  // lines picks what a chart draws of one answer, and aligns it for uPlot:
  // one x (the steps' starts), a y per line, null where a line has no point.
  function chartLines(s) {
    const many = s.series.length > CHART_LINES;
    const lines = many
      ? [{ label: "greatest of " + s.series.length + " instances", points: s.aggregate.max },
         { label: "sum of " + s.series.length + " instances", points: s.aggregate.sum }]
      : s.series.map((x) => ({ label: x.instance, points: x.points }));
    const xs = [...new Set(lines.flatMap((l) => l.points.map((p) => p[0])))].sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const ys = lines.map((l) => {
      const y = new Array(xs.length).fill(null);
      for (const [t, v] of l.points) y[at.get(t)] = v;
      return y;
    });
    return { lines, data: [xs, ...ys], many };
  }

  // marksPlugin draws the events as vertical lines across the plot, in
  // their state's colour (a stop dashed).
  function marksPlugin(chart) {
    return {
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx;
          ctx.save();
          for (const e of chart.events) {
            const x = Math.round(u.valToPos(e.at, "x", true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.strokeStyle = cssVar(MARKS[e.event] || "--muted");
            ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
            ctx.setLineDash(e.event === "stopped" ? [6, 4] : []);
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          }
          ctx.restore();
        }],
      },
    };
  }

  // offsetName is the browser's offset from UTC as the page names zones.
  function offsetName() {
    return "UTC" + offsetOf(new Date(), "", ":");
  }

  // drawChart draws (or redraws) one field's chart in box from one answer.
  function drawChart(charts, box, field, s) {
    let c = charts.get(field);
    if (!c) {
      c = { field, events: [] };
      c.fig = el("figure", { className: "chart", "data-field": field });
      const title = FIELD_TITLES[field] || visible(field);
      c.cap = el("figcaption", { title }, el("span", { className: "chart-title", text: title }));
      c.plot = el("div", { className: "plot" });
      c.legend = el("ul", { className: "chart-legend" });
      c.fig.append(c.cap, c.plot, c.legend);
      charts.set(field, c);
    }
    box.append(c.fig); // in the order asked
    const { lines, data, many } = chartLines(s);
    c.events = s.events || [];
    const since = Date.parse(s.since) / 1000, until = Date.parse(s.until) / 1000;
    const sig = JSON.stringify(lines.map((l) => l.label)) + many;
    const width = Math.max(240, Math.floor(c.plot.clientWidth || box.clientWidth || 320));
    if (!c.u || c.sig !== sig) {
      if (c.u) c.u.destroy();
      c.sig = sig;
      const fg = cssVar("--fg"), grid = cssVar("--border");
      c.u = new window.uPlot({
        width, height: 170,
        legend: { show: false },
        cursor: { drag: { x: false, y: false }, points: { show: false } },
        scales: { x: { time: true } },
        axes: [
          { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, label: offsetName(), labelSize: 18, labelFont: "11px system-ui, sans-serif", font: "11px system-ui, sans-serif" },
          { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 56, font: "11px system-ui, sans-serif" },
        ],
        // Points are drawn where there is room for them (uPlot's default),
        // so that a lone value shows.
        series: [{}, ...lines.map((l, i) => ({ label: l.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false }))],
        plugins: [marksPlugin(c)],
      }, data, c.plot);
      c.legend.replaceChildren(...lines.map((l, i) => {
        const sw = el("span", { className: "swatch", "aria-hidden": "true" });
        sw.style.background = PALETTE[i % PALETTE.length];
        return el("li", { title: visible(l.label) }, sw, el("span", { className: many ? "" : "mono", text: many ? l.label : shortID(visible(l.label)) }));
      }));
    } else {
      c.u.setData(data, false);
    }
    c.u.setScale("x", { min: since, max: until });
    const points = data[0].length;
    c.fig.dataset.points = String(points);
    c.fig.dataset.lines = String(lines.length);
    c.fig.dataset.marks = String(c.events.length);
    c.fig.setAttribute("aria-label", (FIELD_TITLES[field] || visible(field)) + ": " + lines.length + " line" + (lines.length === 1 ? "" : "s") +
      ", " + points + " points, a point every " + fmtDuration(s.step) + (c.events.length ? ", " + c.events.length + " marked changes" : ""));
    if (!points) c.legend.replaceChildren(el("li", { className: "muted", text: "no values kept in this span" }));
  }

  function marksList(events) {
    return events.slice(-20).map((e) => {
      const li = el("li", { "data-event": e.event },
        el("span", { className: "mark-symbol", "aria-hidden": "true", text: MARK_SYMBOL[e.event] || "•" }), " " + e.event + " ",
        el("span", { className: "mono", title: e.instance, text: shortID(e.instance) }),
        e.by ? el("span", null, " by ", el("span", { className: "mono", title: e.by, text: shortID(e.by) })) : "", " ",
        timeEl(new Date(e.at * 1000).toISOString()));
      li.querySelector(".mark-symbol").style.color = cssVar(MARKS[e.event] || "--muted");
      return li;
    });
  }

  async function loadCharts() {
    if (route.view !== "service" || !detail.loaded || !window.uPlot || view.off) return;
    const gen = ++view.gen;
    const name = detail.name;
    let fields;
    try {
      fields = await keptFields(name);
    } catch (e) {
      if (e.status === 404) { chartsOff(); return; }
      throw e;
    }
    const answers = await Promise.all(fields.map((f) => getJSON(seriesURL(name, f, { since: view.span })).catch((e) => e)));
    if (gen !== view.gen || route.view !== "service" || detail.name !== name) return;
    const box = $("charts");
    for (const [f, c] of view.charts) {
      if (!fields.includes(f)) { c.u && c.u.destroy(); c.fig.remove(); view.charts.delete(f); }
    }
    let events = [];
    fields.forEach((f, i) => {
      const a = answers[i];
      if (a instanceof Error || !a) return;
      drawChart(view.charts, box, f, a);
      events = a.events || events;
    });
    const first = answers.find((a) => a && !(a instanceof Error));
    const n = first ? first.series.length : 0;
    const unread = answers.some((a) => a && !(a instanceof Error) && a.events_unread);
    setText($("charts-note"), !fields.length ? "No values kept yet." : !first ? "Values could not be read." :
      (first.truncated ? "The first " + n + " instances. " : "") +
      (n > CHART_LINES ? "More than " + CHART_LINES + " instances: each chart shows the service's greatest value and its sum. " : "") +
      "A point every " + fmtDuration(first.step) + "." +
      (unread ? " History could not be read: deaths, stops and restarts are not marked." : ""));
    $("charts-note").dataset.unread = String(unread);
    $("charts-marks").replaceChildren(...marksList(events));
    box.dataset.rendered = String(view.charts.size);
  }

  // chartsOff hides the charts of a panel that keeps no values, and stops
  // asking for them.
  function chartsOff() {
    view.off = true;
    clearTimeout(view.timer);
    clearCharts();
    for (const id of ["charts-title", "charts-controls", "charts-marks", "charts"]) $(id).hidden = true;
  }

  function loadChartsSoon(delay) {
    clearTimeout(view.timer);
    if (view.off) return;
    view.timer = setTimeout(() => {
      loadCharts().catch(() => {}).finally(() => {
        if (route.view === "service" && !view.off) loadChartsSoon(15000);
      });
    }, delay);
  }

  function clearCharts() {
    for (const c of view.charts.values()) if (c.u) c.u.destroy();
    view.charts.clear();
    $("charts").replaceChildren();
    $("charts-marks").replaceChildren();
    setText($("charts-note"), "");
  }

  // An incident's charts: each affected instance's values in the hour
  // before the incident began.
  async function loadIncidentCharts(i, box) {
    const ids = (i.instances || []).slice(0, CHART_LINES);
    const until = new Date(Date.parse(i.started_at)).toISOString();
    const fields = await keptFields(i.service, ids);
    const params = (f) => {
      const q = new URLSearchParams({ field: f, since: "1h", until });
      for (const id of ids) q.append("instance", id);
      return "api/v1/services/" + encodeURIComponent(i.service) + "/series?" + q.toString();
    };
    const answers = await Promise.all(fields.map((f) => getJSON(params(f)).catch((e) => e)));
    const charts = new Map();
    box.replaceChildren();
    let drawn = 0;
    fields.forEach((f, n) => {
      const a = answers[n];
      if (a instanceof Error || !a || !a.series.length) return;
      drawChart(charts, box, f, a);
      drawn++;
    });
    if (!drawn) box.append(el("p", { className: "muted", text: "No values were kept for these instances in the hour before." }));
    box.dataset.rendered = String(drawn);
  }

  function resizeCharts() {
    for (const c of view.charts.values()) {
      const w = Math.max(240, Math.floor(c.plot.clientWidth));
      if (c.u && Math.abs(c.u.width - w) > 1) c.u.setSize({ width: w, height: 170 });
    }
  }

  // ---- incidents log ----

  function fillServiceFilter() {
    const sel = $("inc-service");
    const cur = sel.value;
    const names = [...fleet.services.keys()].sort();
    sel.replaceChildren(el("option", { value: "", text: "all" }), ...names.map((n) => el("option", { value: n, text: n })));
    sel.value = names.includes(cur) ? cur : "";
  }

  let incGen = 0;
  async function loadIncidents() {
    const gen = ++incGen;
    const q = new URLSearchParams({ since: $("inc-since").value });
    if ($("inc-service").value) q.set("service", $("inc-service").value);
    const body = await getJSON("api/v1/incidents?" + q.toString());
    if (gen !== incGen) return;
    const list = (body && body.incidents) || [];
    $("incidents-empty").hidden = list.length > 0;
    $("incidents").hidden = list.length === 0;
    $("incidents").tBodies[0].replaceChildren(...list.map((i) => incidentRow(i, true)));
    markRendered("incidents", list.length);
  }

  // ---- alerts ----

  let alertsGen = 0;
  async function loadAlerts() {
    const gen = ++alertsGen;
    const body = await getJSON("api/v1/alerts");
    if (gen !== alertsGen) return;
    const active = (body && body.active) || [], recent = (body && body.recent) || [], receivers = (body && body.receivers) || [];
    // In a stable order, so that reading them again does not move rows.
    const key = (a) => [a.starts_at || "", a.alertname || "", a.service || "", a.instance || ""].join("\u0000");
    active.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    const count = $("alerts-count");
    count.hidden = active.length === 0;
    setText(count, active.length ? "(" + active.length + ")" : "");
    if (route.view !== "alerts") return;
    $("alerts-none").hidden = active.length > 0;
    $("alerts-active").hidden = active.length === 0;
    $("alerts-active").tBodies[0].replaceChildren(...active.map((a) => el("tr", { "data-alert": a.alertname },
      el("td", { text: a.alertname }), el("td", { text: a.service || "—" }), el("td", { text: a.instance ? shortID(a.instance) : "—", title: a.instance }),
      el("td", null, timeEl(a.starts_at)), el("td", { text: a.summary || "" }))));
    $("alerts-recent").tBodies[0].replaceChildren(...recent.map((a) => el("tr", { "data-status": a.status },
      el("td", { text: a.status }), el("td", { text: a.alertname }), el("td", { text: a.service || "—" }),
      el("td", { text: a.instance ? shortID(a.instance) : "—", title: a.instance }),
      el("td", null, timeEl(a.starts_at)), a.ends_at ? el("td", null, timeEl(a.ends_at)) : el("td", { text: "—" }))));
    $("receivers-none").hidden = receivers.length > 0;
    $("receivers").hidden = receivers.length === 0;
    $("receivers").tBodies[0].replaceChildren(...receivers.map((r) => el("tr", null,
      el("td", { text: r.name }), el("td", { text: String(r.sent) }), el("td", { text: String(r.failed) }),
      el("td", { text: String(r.dropped) }), el("td", { text: String(r.queued) }))));
    markRendered("alerts", active.length);
  }

  // ---- routing ----

  function parseRoute() {
    const h = location.hash.replace(/^#/, "");
    const m = /^\/services\/([^/?]+)/.exec(h);
    if (m) {
      let name;
      try { name = decodeURIComponent(m[1]); } catch (_) { name = m[1]; }
      return { view: "service", name };
    }
    if (/^\/incidents/.test(h)) return { view: "incidents" };
    if (/^\/alerts/.test(h)) return { view: "alerts" };
    return { view: "fleet" };
  }

  function markRendered(view, n) {
    const main = $("app");
    main.dataset.view = view;
    main.dataset.rendered = String(n);
  }

  function show(view) {
    $("fleet-view").hidden = view !== "fleet";
    $("service-view").hidden = view !== "service";
    $("incidents-view").hidden = view !== "incidents";
    $("alerts-view").hidden = view !== "alerts";
    for (const [id, v] of [["nav-fleet", "fleet"], ["nav-incidents", "incidents"], ["nav-alerts", "alerts"]]) {
      if (v === view) $(id).setAttribute("aria-current", "page");
      else $(id).removeAttribute("aria-current");
    }
  }

  let loadedOnce = false;
  async function load(full) {
    loadedOnce = true;
    route = parseRoute();
    show(route.view);
    $("app").dataset.rendered = "";
    if (route.view === "fleet") {
      if (full || !fleet.loaded) await loadFleet();
      else renderAllCards();
      document.title = "Heartbeats: fleet";
      markRendered("fleet", fleet.services.size);
    } else if (route.view === "service") {
      document.title = "Heartbeats: " + route.name;
      if (!fleet.loaded) await loadFleet();
      // The same service keeps the pages read, read again.
      await loadDetail(route.name, detail.name === route.name);
    } else if (route.view === "alerts") {
      document.title = "Heartbeats: alerts";
      await loadAlerts();
    } else {
      document.title = "Heartbeats: incidents";
      if (!fleet.loaded || full) await loadFleet();
      await loadIncidents();
    }
    if (route.view !== "alerts") loadAlerts().catch(() => {}); // the count in the navigation
  }

  function showError(e) {
    setText($("conn"), "Error: " + (e && e.message ? e.message : String(e)));
    $("conn").dataset.state = "error";
  }

  function reload(full) {
    load(full).catch(showError);
  }

  // ---- the event stream ----

  // The stream of the fleet carries service summaries; the stream of a
  // service carries its instances too. Each view subscribes to what it
  // shows, so that a fleet of 50,000 instances is not sent to every tab.
  let es = null;
  function streamURL() {
    const r = parseRoute();
    return r.view === "service" ? "api/v1/events?service=" + encodeURIComponent(r.name) : "api/v1/events";
  }
  function connect() {
    if (es) es.close();
    const url = streamURL();
    es = new EventSource(url);
    es.url_ = url;
    es.addEventListener("open", () => {
      setText($("conn"), "Live");
      $("conn").dataset.state = "live";
      // Reload on every (re)connection: updates sent while the stream
      // was down are lost, the current view is not.
      reload(true);
    });
    es.addEventListener("error", () => {
      setText($("conn"), "Reconnecting…");
      $("conn").dataset.state = "reconnecting";
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (the server answered with an error):
        // retry by hand.
        setTimeout(connect, 2000);
      }
    });
    es.addEventListener("update", (ev) => {
      let u;
      try { u = JSON.parse(ev.data); } catch (_) { return; }
      queue(u);
    });
  }

  // Ages and open incidents tick every second without server updates.
  function tick() {
    if (route.view === "service") for (const r of detail.rows.values()) renderAge(r);
    else if (route.view === "fleet") for (const c of cards.values()) if (c.openIncident) renderCardIncident(c);
  }

  function start() {
    window.addEventListener("hashchange", () => {
      // Another subscription: reconnect, and the stream's opening reloads.
      if (es && es.url_ !== streamURL()) connect();
      else reload(false);
    });
    $("inc-since").addEventListener("change", () => loadIncidents().catch(showError));
    $("inc-service").addEventListener("change", () => loadIncidents().catch(showError));
    $("state-filter").addEventListener("change", () => {
      // Another state is other pages: read them from the first.
      stateFilter = $("state-filter").value;
      if (route.view === "service" && detail.name !== null) {
        detail.instances = new Map();
        detail.next = null;
        renderAllRows();
        loadDetail(detail.name, false).catch(showError);
      }
    });
    $("more-rows").addEventListener("click", () => moreRows().catch(showError));
    for (const b of document.querySelectorAll("#charts-controls [data-span]")) {
      b.addEventListener("click", () => {
        view.span = b.dataset.span;
        for (const o of document.querySelectorAll("#charts-controls [data-span]")) o.setAttribute("aria-pressed", String(o === b));
        loadChartsSoon(0);
      });
    }
    if (window.ResizeObserver) new ResizeObserver(resizeCharts).observe($("charts"));
    show(parseRoute().view);
    setInterval(tick, 1000);
    // Alerts change with transitions, which the events carry: refresh the
    // list (and the count in the navigation) on the next two ticks after
    // one. A rule with a "for" fires later, and a page loaded just after a
    // transition never saw it: the open Alerts view is read again every
    // 3 s all the same, and the count every 15 s.
    let alertsTick = 0;
    setInterval(() => {
      alertsTick++;
      if (alertsDirty > 0) alertsDirty--;
      else if (!(route.view === "alerts" ? alertsTick % 2 === 0 : alertsTick % 10 === 0)) return;
      loadAlerts().catch(() => {});
    }, 1500);
    connect();
    // The first load waits for the stream to open, so that no update
    // falls between the two; if it does not open soon, load anyway.
    setTimeout(() => { if (!loadedOnce) reload(true); }, 3000);
  }

  start();
})();
