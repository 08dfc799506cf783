// Background Jobs Monitor: one snapshot on connect, then live changes over the
// websocket. Each card's DOM is built once and updated in place; nothing is
// re-rendered wholesale, so updates do not flicker. No build step, no inline code.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);

  const STATUS = {
    running: { text: "Running" },
    success: { text: "Success" },
    failed: { text: "Failed" },
    pending: { text: "Pending" },
  };
  // The guide: "If a job is Running for >60 seconds [without a sign of life], it may be stuck."
  const STUCK_AFTER_MS = 60_000;
  // The server sends a health frame every 20 s; silence for much longer means a dead link.
  const SILENCE_MS = 65_000;
  const MAX_BACKOFF_MS = 30_000;

  // The job whose verdict the automation line under the header repeats.
  const HEALTH_JOB = "automation-health-check";

  const state = {
    me: null,
    tz: "",
    offset: 0, // server clock minus ours, from each frame's server_time
    cards: new Map(), // job name → card as the API shapes it, kept current by frames
    views: new Map(), // job name → the card's DOM nodes
    sending: new Set(), // jobs whose Run Now request is on its way
    mineTriggers: new Map(), // trigger id → job, for Run Now pressed in this tab
    mineRuns: new Map(), // run id → job
    results: new Map(), // run id → {job, result, summary}: finished runs seen live
    toasted: new Set(),
    refreshTimers: new Map(),
    lastRefresh: new Map(),
    ws: null,
    live: false,
    attempt: 0,
    retryTimer: 0,
    retryAt: 0,
    lastFrame: 0,
    signedOut: false,
    history: null, // {job, cursor, ids, opener}
  };

  // ---- time -------------------------------------------------------------------------
  const now = () => Date.now() + state.offset;
  const ms = (t) => (t ? Date.parse(t) : NaN);

  function relative(t) {
    const d = now() - t;
    const abs = Math.abs(d);
    const future = d < 0;
    if (abs < 45_000) return future ? "in a moment" : "just now";
    let s;
    const min = Math.max(1, Math.floor(abs / 60_000));
    if (min < 60) s = `${min} min`;
    else {
      const hrs = Math.floor(abs / 3_600_000);
      if (hrs < 24) s = `${hrs} ${hrs === 1 ? "hr" : "hrs"}`;
      else {
        const days = Math.floor(abs / 86_400_000);
        s = `${days} ${days === 1 ? "day" : "days"}`;
      }
    }
    return future ? `in ${s}` : `${s} ago`;
  }

  function span(msec) {
    const s = Math.round(msec / 1000);
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${s % 60} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  function duration(msec) {
    if (msec == null) return "";
    if (msec < 1000) return `${msec} ms`;
    if (msec < 60_000) return `${(msec / 1000).toFixed(1)} s`;
    return span(msec);
  }

  function within(seconds) {
    if (seconds % 3600 === 0) return `${seconds / 3600} hours`;
    if (seconds % 60 === 0) return `${seconds / 60} minutes`;
    return `${seconds} seconds`;
  }

  const formatters = new Map();
  function formatter(opts) {
    const key = state.tz + JSON.stringify(opts);
    let f = formatters.get(key);
    if (!f) {
      try {
        f = new Intl.DateTimeFormat("en-IN", { ...opts, timeZone: state.tz || undefined });
      } catch {
        f = new Intl.DateTimeFormat("en-IN", opts);
      }
      formatters.set(key, f);
    }
    return f;
  }
  const amPm = (s) => s.replace(/\b(am|pm)\b/g, (m) => m.toUpperCase());
  const absTime = (t) => amPm(formatter({ day: "numeric", month: "short", year: "numeric", hour: "numeric", minute: "2-digit", second: "2-digit", hour12: true, timeZoneName: "short" }).format(new Date(t)));
  const clockTime = (t) => amPm(formatter({ weekday: "short", hour: "numeric", minute: "2-digit", hour12: true }).format(new Date(t)));
  function tzLabel() {
    if (!state.tz) return "your firm's time zone";
    const part = formatter({ timeZoneName: "short" }).formatToParts(new Date()).find((p) => p.type === "timeZoneName");
    return part ? `${state.tz} (${part.value})` : state.tz;
  }

  // ---- DOM helpers: touch a node only when its content changes --------------------------
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }
  function setAttr(node, name, value) {
    if (value == null) {
      if (node.hasAttribute(name)) node.removeAttribute(name);
    } else if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  }
  function show(node, visible) {
    if (node.hidden === visible) node.hidden = !visible;
  }
  function setBadge(node, status) {
    const kind = status in STATUS ? status : "pending";
    const cls = `badge ${kind}`;
    if (node.className !== cls) node.className = cls;
    const icon = node.querySelector(".badge-icon");
    const iconCls = `badge-icon icon icon-${kind}`;
    if (icon.className !== iconCls) icon.className = iconCls;
    setText(node.querySelector(".badge-text"), STATUS[kind].text);
  }
  const humanKey = (k) => (k.charAt(0).toUpperCase() + k.slice(1)).replace(/_/g, " ").replace(/\bsla\b/gi, "SLA");

  // ---- API -------------------------------------------------------------------------
  async function api(method, path, body) {
    let res;
    try {
      res = await fetch(path, {
        method,
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch {
      throw Object.assign(new Error("The server cannot be reached. Check your connection and try again."), { status: 0 });
    }
    let data = null;
    try {
      data = await res.json();
    } catch {
      /* not JSON */
    }
    if (res.status === 401) signedOut(data && data.error);
    if (!res.ok) {
      throw Object.assign(new Error((data && data.error) || `${res.status} ${res.statusText}`), { status: res.status, data });
    }
    return data;
  }

  // ---- cards -------------------------------------------------------------------------
  function buildView(card) {
    const el = $("#card-template").content.firstElementChild.cloneNode(true);
    const name = card.name;
    el.dataset.job = name;
    el.id = `job-${name}`;
    const v = {
      el,
      title: $(".title-btn", el),
      tip: $(".tip", el),
      tipText: $(".tip-text", el),
      desc: $(".desc", el),
      freq: $(".freq-text", el),
      paused: $(".paused-chip", el),
      badge: $(".badge", el),
      last: $(".last", el),
      next: $(".next", el),
      runState: $(".run-state", el),
      runNow: $(".run-now", el),
      stale: $(".stale", el),
      stuck: $(".stuck", el),
      outcome: $(".outcome", el),
    };
    v.tipText.id = `tip-${name}`;
    v.tip.setAttribute("aria-describedby", v.tipText.id);
    v.title.setAttribute("aria-describedby", v.tipText.id);
    v.title.addEventListener("click", () => openHistory(name));
    el.addEventListener("click", (e) => {
      if (e.target.closest("button, a, input, textarea, .tip")) return;
      if (window.getSelection && String(window.getSelection()).length > 0) return;
      openHistory(name);
    });
    v.runNow.addEventListener("click", () => openRunDialog(name));
    return v;
  }

  function busy(c) {
    return Boolean(c.current || c.queued) || state.sending.has(c.name);
  }

  function statusOf(c) {
    if (busy(c)) return "running";
    return c.last_run ? c.last_run.status : "pending";
  }

  const operator = () => Boolean(state.me && state.me.user && state.me.user.operator);

  function pausedWords(c) {
    if (operator()) return c.paused_for_everyone ? "Paused for every firm" : "";
    if (c.paused_for_everyone) return "Paused for every firm";
    return c.paused_for_firm ? "Paused for your firm" : "";
  }

  // The tip is the catalog's, served on the card; the thresholds are the catalog's too.
  function tipFor(c) {
    const tip = c.tip || c.description;
    return `${tip} It should run at least every ${within(c.max_age_seconds)}; the card warns after ${within(c.stale_after_seconds)}. Click the card for its history; the ℹ️ opens its help.`;
  }

  // headline is a run's one line, as the server writes it (RunView.headline); for a
  // run seen live, before the server's card arrives, the same words from the catalog's
  // rules the card carries (catalog.Job.Summarize).
  function headline(c, r) {
    if (!r) return "";
    if (typeof r.headline === "string") return r.headline;
    if (r.status === "failed") return r.error_message || "The run failed.";
    if (r.status !== "success") return "";
    const results = r.results || {};
    let lead = "";
    const parts = [];
    const fallback = [];
    for (const k of (c && c.result_info) || []) {
      if (!k.show || !(k.key in results)) continue;
      const v = results[k.key];
      if (k.show === "lead") {
        if (typeof v === "string" && v) lead = v;
        continue;
      }
      if (typeof v !== "number") continue;
      const part = `${String(v)} ${v === 1 && k.one ? k.one : k.words}`;
      if (k.show === "always" || (k.show === "nonzero" && v !== 0)) parts.push(part);
      else if (k.show === "fallback") fallback.push(part);
    }
    const line = (parts.length ? parts : fallback).join(" · ");
    if (lead && line) return `${lead}: ${line}`;
    return lead || line;
  }

  // The viewer's last automation verdict, when it was not healthy.
  function automationVerdict(c) {
    const r = c && c.last_run;
    if (!r || r.status !== "success") return "";
    const h = r.results && r.results.health;
    return typeof h === "string" && h && h !== "healthy" ? h : "";
  }

  function renderAutomation() {
    const c = state.cards.get(HEALTH_JOB);
    const verdict = automationVerdict(c);
    if (verdict) setText($("#automation-text"), `Automation ${headline(c, c.last_run)}`);
    show($("#automation"), verdict !== "");
  }

  function renderCard(name) {
    const c = state.cards.get(name);
    const v = state.views.get(name);
    if (!c || !v) return;
    const t = now();
    const status = statusOf(c);

    setText(v.title, c.title);
    setText(v.tipText, tipFor(c));
    setAttr(v.tip, "href", c.help_url || "/help");
    setAttr(v.tip, "aria-label", `Help: ${c.title}`);
    setText(v.desc, c.description);
    setText(v.freq, c.frequency);
    setAttr(v.freq, "title", `${c.schedule} (${tzLabel()})`);
    const chip = pausedWords(c) || (operator() && c.paused_firms ? `${c.paused_firms} ${c.paused_firms === 1 ? "firm" : "firms"} paused` : "");
    show(v.paused, chip !== "");
    setText(v.paused, chip);
    setBadge(v.badge, status);
    setAttr(v.el, "data-status", status);

    // Last run: while a run is executing, that run ("just now"), as the guide shows.
    const startedAt = c.current ? ms(c.current.started_at) : NaN;
    const lastAt = !isNaN(startedAt) ? startedAt : ms(c.last_run_at);
    if (isNaN(lastAt)) {
      setText(v.last, "Never");
      setAttr(v.last, "datetime", null);
      setAttr(v.last, "title", "This job has not run yet");
    } else {
      setText(v.last, relative(lastAt));
      setAttr(v.last, "datetime", new Date(lastAt).toISOString());
      setAttr(v.last, "title", (isNaN(startedAt) ? "" : "Started ") + absTime(lastAt));
    }

    const nextAt = ms(c.next_run_at);
    if (c.paused) {
      setText(v.next, "Paused");
      setAttr(v.next, "title", c.paused_for_everyone
        ? "Scheduled runs are off for every firm until the platform operator resumes them; Run Now still works"
        : "Scheduled runs skip your firm until an admin resumes them; Run Now still works");
      setAttr(v.next, "datetime", null);
    } else if (isNaN(nextAt)) {
      setText(v.next, "—");
      setAttr(v.next, "datetime", null);
    } else {
      setText(v.next, nextAt <= t ? "due now" : `${relative(nextAt)} · ${clockTime(nextAt)}`);
      setAttr(v.next, "datetime", new Date(nextAt).toISOString());
      setAttr(v.next, "title", absTime(nextAt));
    }

    let line = "";
    if (c.current) {
      line = `Started ${relative(startedAt)}`;
      if (c.current.requested_by) line += ` by ${c.current.requested_by}`;
      if (c.queued) line += "; another run is queued";
    } else if (c.queued) line = "Queued: starts in a moment";
    else if (state.sending.has(name)) line = "Sending the request…";
    else if (c.retry) line = `Failed · retrying ${relative(ms(c.retry.at))} (attempt ${c.retry.attempt} of ${c.retry.max_attempts})`;
    setText(v.runState, line);
    show(v.runState, line !== "");

    // Spam-safe: no second press while a run is queued or executing (triggers coalesce anyway).
    const isBusy = busy(c);
    if (v.runNow.disabled !== isBusy) v.runNow.disabled = isBusy;
    setText(v.runNow, !isBusy ? "Run Now" : c.current ? "Running…" : "Queued…");
    setAttr(v.runNow, "aria-label", isBusy ? `${c.title} is running` : `Run ${c.title} now`);
    show(v.runNow, Boolean(state.me ? state.me.permissions.run_now : true));

    const lastFinished = ms(c.last_run_at);
    const stale = !c.paused && !isNaN(lastFinished) && t - lastFinished > c.stale_after_seconds * 1000;
    setAttr(v.el, "data-stale", String(stale));
    if (stale) setText(v.stale, `Last run was ${relative(lastFinished)}: more than ${within(c.stale_after_seconds)} ago. The job may not be running; try Run Now, and escalate if it fails.`);
    show(v.stale, stale);

    let stuck = false;
    if (c.current) {
      const beat = ms(c.current.heartbeat_at) || startedAt;
      if (!isNaN(beat) && t - beat > STUCK_AFTER_MS) {
        stuck = true;
        setText(v.stuck, `Possibly stuck: running for ${span(t - startedAt)} with no heartbeat for ${span(t - beat)}.`);
      }
    }
    show(v.stuck, stuck);

    // What the last run found, for this viewer: "5 overdue · 0 SLA breaches · 0 rules fired".
    const found = c.last_run ? headline(c, c.last_run) : "";
    const verdict = automationVerdict(c);
    setText(v.outcome, found);
    setAttr(v.outcome, "data-kind", c.last_run && c.last_run.status === "failed" ? "failed" : verdict ? "warn" : "ok");
    show(v.outcome, found !== "");
    setAttr(v.el, "data-health", verdict || null);
    if (name === HEALTH_JOB) renderAutomation();
  }

  // A card from the server, merged with what this page has already seen live (the
  // audit log can trail the live feed by a moment).
  function merge(prev, fresh) {
    const same = prev && prev.last_run && fresh.last_run && prev.last_run.run_id && prev.last_run.run_id === fresh.last_run.run_id;
    if (!same && prev && prev.last_run && (!fresh.last_run || ms(prev.last_run_at) > ms(fresh.last_run_at))) {
      fresh.last_run = prev.last_run;
      fresh.last_run_at = prev.last_run_at;
    }
    for (const k of ["current", "queued"]) {
      if (fresh[k] && state.results.has(fresh[k].run_id)) fresh[k] = null;
    }
    return fresh;
  }

  function applySnapshot(f) {
    const container = $("#cards");
    const names = f.jobs.map((c) => c.name);
    f.jobs.forEach((c, i) => {
      state.cards.set(c.name, merge(state.cards.get(c.name), c));
      if (!state.views.has(c.name)) state.views.set(c.name, buildView(c));
      const el = state.views.get(c.name).el;
      if (container.children[i] !== el) container.insertBefore(el, container.children[i] || null);
      if (!state.tz && c.timezone) setTimezone(c.timezone);
    });
    for (const [name, v] of state.views) {
      if (!names.includes(name)) {
        v.el.remove();
        state.views.delete(name);
        state.cards.delete(name);
      }
    }
    names.forEach(renderCard);
    container.setAttribute("aria-busy", "false");
    setHealth(f.health);
    if (state.history) renderControls();
  }

  function refreshCard(name, delay = 800) {
    clearTimeout(state.refreshTimers.get(name));
    state.refreshTimers.set(name, setTimeout(async () => {
      state.lastRefresh.set(name, Date.now());
      try {
        const fresh = await api("GET", `/api/jobs/${encodeURIComponent(name)}`);
        state.cards.set(name, merge(state.cards.get(name), fresh));
        renderCard(name);
        if (state.history && state.history.job === name) renderControls();
      } catch {
        /* the next frame or snapshot brings it */
      }
    }, delay));
  }

  // ---- live frames ---------------------------------------------------------------------
  function onFrame(f) {
    switch (f.type) {
      case "snapshot":
        applySnapshot(f);
        setLive();
        break;
      case "status":
        onStatus(f.job, f.status);
        break;
      case "result":
        onResult(f.job, f.result, f.summary);
        break;
      case "config":
        onConfig(f.job, f.config, f.for_firm);
        break;
      case "health":
        setHealth(f.health);
        break;
    }
  }

  function onStatus(job, s) {
    const c = state.cards.get(job);
    if (!s || !c) return;
    if (s.state === "queued" && s.trigger_id && state.mineTriggers.has(s.trigger_id)) {
      state.mineRuns.set(s.run_id, job);
    }
    if (state.results.has(s.run_id)) return; // a late status of a run already finished
    const info = {
      run_id: s.run_id, trigger: s.trigger, requested_by: s.requested_by, reason: s.reason,
      queued_at: s.queued_at || s.at, started_at: s.started_at || s.at, heartbeat_at: s.at, attempt: s.attempt,
    };
    if (s.trigger === "retry" || s.state === "running") c.retry = null; // the retry has begun
    switch (s.state) {
      case "queued":
        if (!(c.current && c.current.run_id === s.run_id) && !(c.queued && c.queued.run_id === s.run_id)) c.queued = info;
        break;
      case "running":
      case "heartbeat":
        if (c.current && c.current.run_id === s.run_id) c.current.heartbeat_at = s.at;
        else c.current = info;
        if (c.queued && c.queued.run_id === s.run_id) c.queued = null;
        break;
      default:
        return;
    }
    renderCard(job);
  }

  function runFromResult(r) {
    return {
      run_id: r.run_id, job_name: r.job_name, status: r.status, trigger: r.trigger, source: r.source,
      requested_by: r.requested_by, reason: r.reason, execution_time_ms: r.execution_time_ms,
      results: r.results, errors: r.errors, error_message: r.error_message, error_details: r.error_details,
      started_at: r.started_at, finished_at: r.finished_at, triggers: r.triggers, timestamp: r.finished_at,
      retry_of: r.retry_of, series_attempt: r.series_attempt, next_retry: r.next_retry,
    };
  }

  function isMine(r) {
    if (state.mineRuns.has(r.run_id) || state.mineTriggers.has(r.trigger_id)) return true;
    return (r.triggers || []).some((t) => state.mineTriggers.has(t.id));
  }

  function toastResult(runID) {
    const seen = runID && state.results.get(runID);
    if (!seen || state.toasted.has(runID) || !isMine(seen.result)) return;
    state.toasted.add(runID);
    const c = state.cards.get(seen.job);
    toast(seen.summary, seen.result.status === "success" ? "success" : "failed", c ? c.title : seen.job);
  }

  function onResult(job, r, summary) {
    if (!r) return;
    if (r.status === "rejected") {
      if (isMine(r)) toast(summary, "failed", job);
      return;
    }
    state.results.set(r.run_id, { job, result: r, summary });
    if (state.results.size > 500) state.results.delete(state.results.keys().next().value);
    const c = state.cards.get(job);
    const run = runFromResult(r);
    if (c) {
      if (c.current && c.current.run_id === r.run_id) c.current = null;
      if (c.queued && c.queued.run_id === r.run_id) c.queued = null;
      c.retry = r.next_retry ? { at: r.next_retry.at, attempt: r.next_retry.attempt, max_attempts: r.next_retry.max_attempts } : null;
      if (!c.last_run_at || ms(run.timestamp) >= ms(c.last_run_at)) {
        c.last_run = run;
        c.last_run_at = run.timestamp;
      }
      renderCard(job);
      refreshCard(job);
    }
    toastResult(r.run_id);
    if (state.history && state.history.job === job) addRun(run, true);
    refreshHealth();
  }

  function onConfig(job, cfg, forFirm) {
    const c = state.cards.get(job);
    if (!c || !cfg) return;
    if (!forFirm) c.paused_for_everyone = cfg.paused;
    else if (!operator()) c.paused_for_firm = cfg.paused;
    // (For the operator a firm's pause changes only the count, which the refresh brings.)
    c.paused = Boolean(c.paused_for_everyone || c.paused_for_firm);
    renderCard(job);
    if (state.history && state.history.job === job) renderControls();
    refreshCard(job, 0); // frequency words and the next run come from the server
  }

  // ---- health and connection ----------------------------------------------------------
  function setHealth(h) {
    if (!h) return;
    const bad = h.status !== "healthy";
    if (bad) {
      let problem = h.problem || "Some checks are failing";
      for (const [name, c] of state.cards) problem = problem.split(name).join(c.title); // job names → card titles
      problem = problem.charAt(0).toUpperCase() + problem.slice(1);
      if (!/[.!?]$/.test(problem)) problem += ".";
      setText($("#health-text"), `${problem} If this persists, escalate to the development team.`);
    }
    show($("#health"), bad);
  }

  let healthTimer = 0;
  function refreshHealth() {
    clearTimeout(healthTimer);
    healthTimer = setTimeout(async () => {
      try {
        const res = await fetch("/api/health", { cache: "no-store" });
        setHealth(await res.json());
      } catch {
        /* the connection indicator tells */
      }
    }, 1500);
  }

  function setConn(kind, text) {
    const el = $("#conn");
    setAttr(el, "data-state", kind);
    setText($("#conn-text"), text);
    setAttr(el, "title", kind === "live" ? "Connected: changes appear as they happen" : "Not connected: press to reconnect now");
  }

  function setLive() {
    state.live = true;
    state.attempt = 0;
    setConn("live", "Live");
  }

  function connect() {
    clearTimeout(state.retryTimer);
    state.retryAt = 0;
    if (state.signedOut || state.ws) return;
    setConn(state.attempt ? "reconnecting" : "connecting", state.attempt ? "Reconnecting…" : "Connecting…");
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`);
    state.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      state.lastFrame = Date.now();
    };
    ws.onmessage = (e) => {
      state.lastFrame = Date.now();
      let f;
      try {
        f = JSON.parse(e.data);
      } catch {
        return;
      }
      if (f.server_time) state.offset = Date.parse(f.server_time) - Date.now();
      onFrame(f);
    };
    ws.onclose = async (e) => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.live = false;
      // The server's close codes (services/gateway/sessions.go). Access gone, signed
      // out, or this tab displaced by newer ones: say so and stop, as no retry would help.
      if (e.code === 4003 || e.code === 4008) {
        stopped(closedText(e));
        return;
      }
      if (e.code === 4002) {
        signedOut("you signed out of the dashboard in this browser");
        return;
      }
      // Refused at the door, or the session ran out: find out which before retrying.
      if (e.code === 4001 || !opened) {
        if (!(await sessionOK())) return;
      }
      retry();
    };
  }

  // closedText is what a person reads when the server closed the live connection for
  // good: 4003 "your access changed: <what>", 4008 more tabs than the server keeps live.
  function closedText(e) {
    if (e.code === 4008) {
      return "This dashboard is open in too many tabs or windows, and this was the oldest, so it has stopped updating. Close the ones you do not need, then reload this page to use it here.";
    }
    const what = (e.reason || "").replace(/^your access changed:\s*/, "");
    const admins = (state.me && state.me.admins) || [];
    const ask = admins.length
      ? `If this is a mistake, ask your firm's admin${admins.length > 1 ? "s" : ""}: ${admins.map((a) => (a.email ? `${a.name} (${a.email})` : a.name)).join(", ")}.`
      : "If this is a mistake, ask your firm's admin.";
    return `Your access to Background Jobs has changed${what ? ` (${what})` : ""}. The dashboard is for Admins and Partners, so this page has stopped updating. ${ask}`;
  }

  // stopped ends the live connection for good (no retry, no reconnect) and says why.
  function stopped(text) {
    if (state.signedOut) return;
    state.signedOut = true;
    clearTimeout(state.retryTimer);
    setConn("offline", "Stopped");
    setText($("#signed-out-text"), text);
    show($("#signed-out"), true);
  }

  function retry() {
    if (state.signedOut) return;
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** state.attempt);
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    state.attempt++;
    state.retryAt = Date.now() + delay;
    state.retryTimer = setTimeout(connect, delay);
    showRetry();
  }

  function showRetry() {
    if (!state.retryAt) return;
    const secs = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
    setConn(state.attempt > 4 ? "offline" : "reconnecting", `${state.attempt > 4 ? "Offline" : "Reconnecting"}: retry in ${secs} s`);
  }

  async function sessionOK() {
    try {
      const res = await fetch("/api/me", { cache: "no-store", credentials: "same-origin" });
      if (res.status === 401) {
        let msg = "";
        try {
          msg = (await res.json()).error;
        } catch {
          /* ignore */
        }
        signedOut(msg);
        return false;
      }
      if (res.status === 403) {
        location.reload(); // the server explains why on the page
        return false;
      }
    } catch {
      /* offline: retry */
    }
    return true;
  }

  function signedOut(reason) {
    if (state.signedOut) return;
    state.signedOut = true;
    clearTimeout(state.retryTimer);
    if (state.ws) state.ws.close();
    setConn("offline", "Signed out");
    setText($("#signed-out-text"), `Your session has ended${reason ? ` (${reason})` : ""}. Sign in again to keep watching: open the dashboard from the product, or in development use a sign-in link.`);
    show($("#signed-out"), true);
    for (const v of state.views.values()) v.runNow.disabled = true;
  }

  // ---- toasts ---------------------------------------------------------------------------
  function toast(text, kind, job) {
    const box = $("#toasts");
    const el = document.createElement("div");
    el.className = `toast ${kind}`;
    el.setAttribute("role", kind === "failed" ? "alert" : "status");
    const icon = document.createElement("span");
    icon.setAttribute("aria-hidden", "true");
    icon.className = `icon icon-${kind === "success" ? "success" : kind === "failed" ? "failed" : "info"}`;
    const body = document.createElement("span");
    body.className = "toast-text";
    if (job) {
      const j = document.createElement("span");
      j.className = "toast-job";
      j.textContent = job;
      body.append(j);
    }
    body.append(document.createTextNode(text));
    const close = document.createElement("button");
    close.type = "button";
    close.className = "icon-btn";
    close.setAttribute("aria-label", "Dismiss");
    const x = document.createElement("span");
    x.className = "icon icon-close";
    x.setAttribute("aria-hidden", "true");
    close.append(x);
    close.addEventListener("click", () => el.remove());
    el.append(icon, body, close);
    box.append(el);
    while (box.children.length > 4) box.firstElementChild.remove();
    setTimeout(() => el.remove(), kind === "failed" ? 20_000 : 10_000);
  }

  // ---- Run Now ----------------------------------------------------------------------------
  let runJob = "";
  function openRunDialog(name) {
    const c = state.cards.get(name);
    if (!c || busy(c)) return;
    runJob = name;
    setText($("#run-dialog-title"), `Run ${c.title} now`);
    setText($("#run-dialog-text"), `${c.description} Most jobs finish in a few seconds; the card updates when it is done.`);
    $("#run-reason").value = "";
    setText($("#run-reason-count"), "0");
    show($("#run-error"), false);
    $("#run-dialog").showModal();
    $("#run-reason").focus();
  }

  async function runNow(name, reason) {
    state.sending.add(name);
    renderCard(name); // Running at once
    try {
      const acc = await api("POST", `/api/jobs/${encodeURIComponent(name)}/run`, { reason });
      state.mineTriggers.set(acc.trigger_id, name);
      const c = state.cards.get(name);
      if (acc.run_id) {
        state.mineRuns.set(acc.run_id, name);
        if (c && !state.results.has(acc.run_id) && !c.current && !c.queued) {
          c.queued = { run_id: acc.run_id, trigger: "manual", queued_at: new Date(now()).toISOString() };
        }
      }
      if (acc.coalesced) toast("A run was already queued: your request joined it.", "info", c && c.title);
      else if (!acc.run_id) toast(acc.message, "info", c && c.title);
      toastResult(acc.run_id); // the result may have come before this answer
    } catch (err) {
      toast(`Run Now failed: ${err.message}`, "failed", name);
    } finally {
      state.sending.delete(name);
      renderCard(name);
    }
  }

  // ---- history, pause, schedule --------------------------------------------------------------
  async function openHistory(name) {
    const c = state.cards.get(name);
    if (!c) return;
    state.history = { job: name, cursor: "", ids: new Set(), opener: document.activeElement };
    setText($("#history-title"), `${c.title}: history`);
    $("#runs").replaceChildren();
    show($("#runs-empty"), false);
    show($("#runs-error"), false);
    show($("#runs-more"), false);
    show($("#schedule-error"), false);
    show($("#hours-error"), false);
    delete $("#schedule-input").dataset.dirty;
    delete $("#hours-input").dataset.dirty;
    $("#admin-controls").open = false;
    renderControls();
    const dlg = $("#history-dialog");
    if (!dlg.open) dlg.showModal();
    $("#history-close").focus();
    await loadRuns(name, "");
  }

  async function loadRuns(name, before) {
    const q = new URLSearchParams({ limit: "10" });
    if (before) q.set("before", before);
    const more = $("#runs-more");
    more.disabled = true;
    try {
      const data = await api("GET", `/api/jobs/${encodeURIComponent(name)}/runs?${q}`);
      if (!state.history || state.history.job !== name) return;
      for (const r of data.runs) addRun(r, false);
      if (!before) {
        // Runs this page saw finish live may not be in the audit log yet: show them too.
        const oldest = data.runs.length ? ms(data.runs[data.runs.length - 1].timestamp) : -Infinity;
        const live = [...state.results.values()]
          .filter((e) => e.job === name && !state.history.ids.has(e.result.run_id))
          .map((e) => runFromResult(e.result))
          .filter((r) => data.runs.length < 10 || ms(r.timestamp) > oldest)
          .sort((a, b) => ms(a.timestamp) - ms(b.timestamp));
        for (const r of live) addRun(r, true);
      }
      state.history.cursor = data.next_cursor || "";
      show(more, Boolean(data.next_cursor));
      show($("#runs-empty"), state.history.ids.size === 0);
    } catch (err) {
      setText($("#runs-error"), `Cannot load the history: ${err.message}`);
      show($("#runs-error"), true);
    } finally {
      more.disabled = false;
    }
  }

  // Who asked, as the server lets this viewer see it: a developer's client is named by
  // what it is (its requested_by is whatever it typed: the operator sees it, marked so).
  function who(t) {
    if (t.source === "nats" && operator() && t.requested_by) return `${t.requested_by} (typed into a developer's client, not verified)`;
    if (t.operator && !operator()) return "the platform operator";
    return t.requested_by || "someone";
  }

  function triggerWords(r) {
    let s;
    if (r.trigger === "manual") {
      s = `Manual: ${who(r)}`;
      if (r.reason) s += `, “${r.reason}”`;
    } else if (r.trigger === "schedule") s = "Scheduled";
    else if (r.trigger === "retry") s = `Retry: attempt ${r.series_attempt || 2} of a run that failed for a temporary reason`;
    else s = r.trigger || "Unknown trigger";
    const others = (r.triggers || []).slice(1).filter((t) => t.kind === "manual");
    if (others.length) {
      s += `. Also requested by ${others.map(who).join(", ")}`;
    }
    return s;
  }

  function addRun(r, atTop) {
    const h = state.history;
    if (!h || h.ids.has(r.run_id)) return;
    h.ids.add(r.run_id);
    const li = $("#run-template").content.firstElementChild.cloneNode(true);
    li.dataset.runId = r.run_id;
    li.dataset.status = r.status;
    setBadge($(".badge", li), r.status);
    const at = ms(r.finished_at || r.timestamp);
    const time = $(".run-time", li);
    time.dateTime = new Date(at).toISOString();
    time.dataset.at = String(at);
    time.textContent = `${absTime(at)} (${relative(at)})`;
    $(".run-duration", li).textContent = r.execution_time_ms != null ? `took ${duration(r.execution_time_ms)}` : "";
    $(".run-trigger", li).textContent = triggerWords(r);
    const dl = $(".run-results", li);
    const c = state.cards.get(h.job) || {};
    const info = new Map((c.result_info || []).map((k) => [k.key, k]));
    const order = (c.result_info || []).map((k) => k.key);
    const withItems = new Set(c.item_keys || []);
    const rank = (k) => (order.includes(k) ? order.indexOf(k) : order.length);
    const entries = Object.entries(r.results || {}).sort((a, b) => rank(a[0]) - rank(b[0]));
    const box = $(".run-items", li);
    box.id = `items-${r.run_id || h.ids.size}`;
    for (const [k, val] of entries) {
      const ki = info.get(k);
      if (ki && ki.detail) continue; // a list the items show
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      dt.textContent = ki ? ki.label : humanKey(k);
      if (ki) dt.title = ki.meaning;
      const dd = document.createElement("dd");
      if (withItems.has(k) && r.run_id && typeof val === "number" && val > 0) {
        // The number opens what is behind it: the viewer's own items.
        const b = document.createElement("button");
        b.type = "button";
        b.className = "count";
        b.textContent = String(val);
        b.dataset.key = k;
        b.setAttribute("aria-expanded", "false");
        b.setAttribute("aria-controls", box.id);
        b.setAttribute("aria-label", `${val} ${ki ? ki.label.toLowerCase() : k}: show them`);
        b.addEventListener("click", () => toggleItems(li, h.job, r.run_id, k, b));
        dd.append(b);
      } else if (Array.isArray(val)) dd.textContent = val.length ? val.join(", ") : "none";
      else if (typeof val === "boolean") dd.textContent = val ? "yes" : "no";
      else dd.textContent = typeof val === "object" && val !== null ? JSON.stringify(val) : String(val);
      if (k === "health" && val !== "healthy") dd.classList.add("warn-value");
      div.append(dt, dd);
      dl.append(div);
    }
    show(dl, dl.children.length > 0);
    if (r.status === "failed") {
      $(".error-message", li).textContent = r.error_message || "The job failed.";
      const det = $(".error-details", li);
      det.textContent = r.error_details || "";
      show(det, Boolean(r.error_details));
      show($(".run-error", li), true);
    }
    if (r.errors && r.errors.length) {
      const ul = $(".run-errors", li);
      for (const e of r.errors) {
        const item = document.createElement("li");
        item.textContent = e;
        ul.append(item);
      }
      show(ul, true);
    }
    if (operator() && r.run_id) {
      const firms = $(".run-firms", li);
      show(firms, true);
      firms.addEventListener("toggle", () => loadFirms(firms, h.job, r.run_id), { once: true });
    }
    const list = $("#runs");
    if (atTop) {
      li.classList.add("fresh");
      list.prepend(li);
    } else list.append(li);
    show($("#runs-empty"), false);
  }

  // toggleItems opens (or closes) the items behind one number of a run.
  async function toggleItems(li, job, runID, key, btn) {
    const box = $(".run-items", li);
    const wasOpen = btn.getAttribute("aria-expanded") === "true";
    for (const b of li.querySelectorAll(".count")) b.setAttribute("aria-expanded", "false");
    if (wasOpen) {
      show(box, false);
      box.replaceChildren();
      delete box.dataset.key;
      return;
    }
    btn.setAttribute("aria-expanded", "true");
    box.dataset.key = key;
    box.replaceChildren(Object.assign(document.createElement("p"), { className: "hint", textContent: "Loading…" }));
    show(box, true);
    try {
      const q = new URLSearchParams({ key });
      const data = await api("GET", `/api/jobs/${encodeURIComponent(job)}/runs/${encodeURIComponent(runID)}/items?${q}`);
      if (box.dataset.key === key) renderItems(box, data);
    } catch (err) {
      if (box.dataset.key === key) {
        box.replaceChildren(Object.assign(document.createElement("p"), { className: "form-error", textContent: `Cannot load the items: ${err.message}` }));
      }
    }
  }

  function renderItems(box, data) {
    const head = document.createElement("h4");
    head.textContent = `${data.label}: ${data.total}`;
    const about = Object.assign(document.createElement("p"), { className: "hint", textContent: data.about });
    const list = document.createElement("ul");
    list.className = "items-list";
    for (const it of data.items) {
      const item = document.createElement("li");
      item.dataset.kind = it.kind;
      const title = document.createElement("strong");
      title.textContent = it.tenant ? `${it.tenant}: ${it.title}` : it.title;
      item.append(title);
      if (it.status && !["sent", "success"].includes(it.status)) item.append(document.createTextNode(` (${it.status.replace(/_/g, " ")})`));
      if (it.detail) item.append(Object.assign(document.createElement("span"), { className: "item-detail", textContent: it.detail }));
      if (it.error) item.append(Object.assign(document.createElement("span"), { className: "item-error", textContent: `Why: ${it.error}` }));
      list.append(item);
    }
    const parts = [head, about];
    if (data.items.length) parts.push(list);
    else parts.push(Object.assign(document.createElement("p"), { className: "empty", textContent: "Nothing behind this number is recorded any more." }));
    if (data.rest > 0) parts.push(Object.assign(document.createElement("p"), { className: "hint", textContent: `… and ${data.rest} more, not listed.` }));
    if (data.note) parts.push(Object.assign(document.createElement("p"), { className: "hint", textContent: data.note }));
    box.replaceChildren(...parts);
  }

  // loadFirms fills an operator's run entry with every firm's slice, on first open.
  async function loadFirms(box, job, runID) {
    const list = $(".firms-list", box);
    try {
      const data = await api("GET", `/api/jobs/${encodeURIComponent(job)}/runs/${encodeURIComponent(runID)}/firms`);
      const order = (state.cards.get(job) || {}).result_keys || [];
      for (const f of data.firms) {
        const item = document.createElement("li");
        const head = document.createElement("strong");
        head.textContent = `${f.tenant}: ${f.status}`;
        item.append(head);
        const nums = order.filter((k) => k in (f.results || {})).map((k) => `${humanKey(k)} ${typeof f.results[k] === "object" ? JSON.stringify(f.results[k]) : f.results[k]}`);
        if (nums.length) item.append(document.createTextNode(` · ${nums.join(" · ")}`));
        for (const e of [f.error_message, ...(f.errors || [])].filter(Boolean)) {
          const p = document.createElement("div");
          p.className = "firm-error";
          p.textContent = e;
          item.append(p);
        }
        list.append(item);
      }
      if (!data.firms.length) list.append(Object.assign(document.createElement("li"), { textContent: "No firm's part of this run is recorded." }));
    } catch (err) {
      list.append(Object.assign(document.createElement("li"), { textContent: `Cannot load the firms: ${err.message}` }));
    }
  }

  function renderControls() {
    const h = state.history;
    const c = h && state.cards.get(h.job);
    if (!c) return;
    const op = operator();
    const firm = (state.me && state.me.user && state.me.user.tenant_name) || "your firm";
    setText($("#history-sub"), `${c.frequency} · ${c.paused ? pausedWords(c).toLowerCase() || "schedule paused" : "schedule on"} · times in ${tzLabel()}`);
    const admin = Boolean(state.me && state.me.permissions.pause_resume);
    show($("#admin-controls"), admin);
    const note = $("#admin-note");
    if (!admin) {
      const admins = (state.me && state.me.admins) || [];
      const ask = admins.length ? ` Ask ${admins.map((a) => (a.email ? `${a.name} (${a.email})` : a.name)).join(" or ")}.` : "";
      setText(note, `Only admins can pause or resume a job for the firm.${ask}`);
    }
    show(note, !admin);
    if (!admin) return;
    const mine = op ? c.paused_for_everyone : c.paused_for_firm;
    setText($("#admin-summary"), op ? `Schedule settings for every firm: ${c.frequency}${c.paused_for_everyone ? ", paused" : ""}` : `Schedule settings for ${firm}${mine ? ": paused" : ""}`);
    setText($("#pause-btn"), mine ? (op ? "Resume for every firm" : `Resume for ${firm}`) : (op ? "Pause for every firm" : `Pause for ${firm}`));
    let hint = mine ? "Scheduled runs are off; Run Now still works." : "Scheduled runs are on.";
    if (!op && c.paused_for_everyone) hint = "The platform operator has paused this job for every firm; your own pause takes effect when they resume it.";
    if (op && c.paused_firms) hint += ` ${c.paused_firms} ${c.paused_firms === 1 ? "firm has" : "firms have"} paused it for themselves.`;
    setText($("#pause-hint"), hint);
    show($("#schedule-form"), Boolean(state.me.permissions.change_schedule));
    const input = $("#schedule-input");
    if (document.activeElement !== input && !input.dataset.dirty) input.value = c.schedule;
    setText($("#schedule-help"), `Now: ${c.frequency} (${c.schedule}); default: ${c.default_schedule}. Five fields: minute hour day-of-month month day-of-week.`);
    renderFirmHours(c, firm);
    for (const el of document.querySelectorAll(".tz-name")) setText(el, tzLabel());
  }

  // A firm's admin sets the firm's own time of day for a daily job, in the firm's zone;
  // the SLA check runs every 15 minutes for every firm (a firm may pause it, not slow it).
  function renderFirmHours(c, firm) {
    const own = Boolean(state.me.permissions.set_firm_hours);
    show($("#hours-form"), own && Boolean(c.firm_hours));
    for (const el of document.querySelectorAll(".firm-name")) setText(el, firm);
    let note = "";
    if (own && !c.firm_hours) {
      note = c.name === "check-sla-and-overdue"
        ? `Runs every 15 minutes for every firm, so that an overdue task is caught within 15 minutes: you can pause it for ${firm}, not slow it.`
        : `The platform operator runs this job ${c.frequency.toLowerCase()} for every firm; ${firm}'s own time of day holds again when it is daily. You can pause the job for ${firm}.`;
    } else if (!state.me.permissions.change_schedule && !own) {
      note = "The schedule is the same for every firm and is set by the platform operator; you can pause the job for your firm.";
    }
    setText($("#schedule-note"), note);
    show($("#schedule-note"), note !== "");
    if (!own || !c.firm_hours) return;
    const input = $("#hours-input");
    if (document.activeElement !== input && !input.dataset.dirty) input.value = c.at || c.default_at || "";
    show($("#hours-reset"), Boolean(c.at));
    let help = c.at ? `${firm} runs it at ${c.at}; the default is ${c.default_at}.` : `${firm} runs it at the default time, ${c.default_at}.`;
    help += " A run that already happened today is not repeated if you move the time later; a time already past today runs at once if today's run is still to come.";
    if (c.timezone_note) help += ` ${c.timezone_note}`;
    setText($("#hours-help"), help);
  }

  async function saveHours(at) {
    const name = state.history.job;
    const err = $("#hours-error");
    show(err, false);
    try {
      const res = await api("PUT", `/api/jobs/${encodeURIComponent(name)}/schedule`, { at, reason: $("#hours-reason").value.trim() });
      delete $("#hours-input").dataset.dirty;
      $("#hours-reason").value = "";
      const c = state.cards.get(name);
      c.at = res.at;
      c.schedule = res.schedule;
      c.frequency = res.frequency;
      renderCard(name);
      renderControls();
      refreshCard(name, 0);
      toast(res.note || `Time changed: ${res.frequency} (${res.timezone}).`, "info", c.title);
    } catch (e) {
      setText(err, e.message);
      show(err, true);
    }
  }

  let confirmAction = null;
  function confirmPause() {
    const c = state.cards.get(state.history.job);
    const op = operator();
    const firm = (state.me && state.me.user && state.me.user.tenant_name) || "your firm";
    const pausing = !(op ? c.paused_for_everyone : c.paused_for_firm);
    setText($("#confirm-title"), `${pausing ? "Pause" : "Resume"} ${c.title}?`);
    setText($("#confirm-text"), pausing
      ? (op ? "Scheduled runs stop for every firm until you resume them. Run Now keeps working. This is recorded in the audit log."
        : `Scheduled runs stop doing ${firm}'s work until an admin resumes them; other firms are not affected. Run Now keeps working. This is recorded in the audit log.`)
      : `Scheduled runs ${op ? "" : `for ${firm} `}start again: ${c.frequency}. This is recorded in the audit log.`);
    setText($("#confirm-ok"), pausing ? "Pause schedule" : "Resume schedule");
    $("#confirm-reason").value = "";
    show($("#confirm-error"), false);
    confirmAction = async (reason) => {
      const res = await api("POST", `/api/jobs/${encodeURIComponent(c.name)}/${pausing ? "pause" : "resume"}`, { reason });
      if (res.for === "everyone") c.paused_for_everyone = res.paused;
      else c.paused_for_firm = res.paused;
      c.paused = Boolean(c.paused_for_everyone || c.paused_for_firm);
      renderCard(c.name);
      renderControls();
      refreshCard(c.name, 0);
      toast(pausing ? "Schedule paused." : "Schedule resumed.", "info", c.title);
    };
    $("#confirm-dialog").showModal();
    $("#confirm-cancel").focus();
  }

  async function saveSchedule(expr) {
    const name = state.history.job;
    const err = $("#schedule-error");
    show(err, false);
    try {
      const res = await api("PUT", `/api/jobs/${encodeURIComponent(name)}/schedule`, { schedule: expr });
      delete $("#schedule-input").dataset.dirty;
      const c = state.cards.get(name);
      c.schedule = res.schedule;
      c.frequency = res.frequency;
      renderCard(name);
      renderControls();
      refreshCard(name, 0);
      toast(`Schedule changed: ${res.frequency}.`, "info", c.title);
    } catch (e) {
      setText(err, e.message);
      show(err, true);
    }
  }

  // ---- wiring ------------------------------------------------------------------------------
  function wire() {
    $("#run-reason").addEventListener("input", (e) => setText($("#run-reason-count"), String(e.target.value.length)));
    $("#run-reason").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        $("#run-form").requestSubmit();
      }
    });
    $("#run-cancel").addEventListener("click", () => $("#run-dialog").close());
    $("#run-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const reason = $("#run-reason").value.trim();
      $("#run-dialog").close();
      const name = runJob;
      const v = state.views.get(name);
      if (v) v.runNow.focus();
      runNow(name, reason);
    });

    $("#history-close").addEventListener("click", () => $("#history-dialog").close());
    $("#history-dialog").addEventListener("close", () => {
      // The close event is a queued task: by the time it runs the dialog may have been
      // opened again for another job, and that session must survive.
      if ($("#history-dialog").open) return;
      const opener = state.history && state.history.opener;
      state.history = null;
      if (opener && opener.focus && document.contains(opener)) opener.focus();
    });
    $("#runs-more").addEventListener("click", () => {
      if (state.history && state.history.cursor) loadRuns(state.history.job, state.history.cursor);
    });
    $("#pause-btn").addEventListener("click", confirmPause);
    $("#automation-open").addEventListener("click", () => openHistory(HEALTH_JOB));
    $("#confirm-cancel").addEventListener("click", () => $("#confirm-dialog").close());
    $("#confirm-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const ok = $("#confirm-ok");
      ok.disabled = true;
      try {
        await confirmAction($("#confirm-reason").value.trim());
        $("#confirm-dialog").close();
      } catch (err) {
        setText($("#confirm-error"), err.message);
        show($("#confirm-error"), true);
      } finally {
        ok.disabled = false;
      }
    });
    $("#schedule-input").addEventListener("input", (e) => {
      e.target.dataset.dirty = "1";
    });
    $("#schedule-form").addEventListener("submit", (e) => {
      e.preventDefault();
      saveSchedule($("#schedule-input").value.trim());
    });
    $("#schedule-reset").addEventListener("click", () => saveSchedule(""));
    $("#hours-input").addEventListener("input", (e) => {
      e.target.dataset.dirty = "1";
    });
    $("#hours-form").addEventListener("submit", (e) => {
      e.preventDefault();
      saveHours($("#hours-input").value);
    });
    $("#hours-reset").addEventListener("click", () => saveHours(""));

    $("#conn").addEventListener("click", () => {
      if (!state.ws && !state.signedOut) connect();
    });
    window.addEventListener("online", () => {
      if (!state.ws) connect();
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && !state.ws) connect();
    });
  }

  function tick() {
    for (const name of state.views.keys()) {
      renderCard(name);
      const c = state.cards.get(name);
      const next = ms(c.next_run_at);
      if (!c.paused && !isNaN(next) && now() - next > 5_000 && Date.now() - (state.lastRefresh.get(name) || 0) > 30_000) {
        state.lastRefresh.set(name, Date.now());
        refreshCard(name, 0);
      }
    }
    if (state.ws && state.live && Date.now() - state.lastFrame > SILENCE_MS) state.ws.close(); // dead link: reconnect
    if (!state.ws) showRetry();
  }

  let relTick = 0;
  function tickHistory() {
    if (!state.history || ++relTick % 15) return;
    for (const t of document.querySelectorAll("#runs .run-time")) {
      const at = Number(t.dataset.at);
      setText(t, `${absTime(at)} (${relative(at)})`);
    }
  }

  function setTimezone(tz) {
    state.tz = tz;
    formatters.clear();
    setText($("#tz"), tzLabel());
  }

  async function start() {
    wire();
    setInterval(() => {
      tick();
      tickHistory();
    }, 1000);
    try {
      state.me = await api("GET", "/api/me");
      const u = state.me.user;
      const role = { admin: "Admin", partner: "Partner", platform_operator: "Platform operator" }[u.role] || u.role;
      setText($("#me"), u.operator ? `${u.name} · ${role} · every firm` : `${u.name} · ${role} · ${u.tenant_name}`);
      document.body.dataset.viewer = u.operator ? "operator" : "firm";
      setTimezone(state.me.timezone);
    } catch (err) {
      if (err.status === 403) {
        location.reload();
        return;
      }
    }
    connect();
  }

  start();
})();
