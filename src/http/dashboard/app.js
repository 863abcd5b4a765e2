// Overseer's dashboard: a client of the public API (API.md), no framework.
// The jobs table is built once from GET /api/jobs and then patched in place from the /api/ws
// feed (only the rows that changed, once per animation frame), so it stays smooth at 1,000 jobs.
// A job's page shows what happened to its items: the throughput chart starts from the history
// the server keeps (GET /api/jobs/{id}/progress) and goes on from the feed; the items browser
// is re-read at most every ITEMS_REFRESH_MS and the reasons every REASONS_REFRESH_MS while
// progress events arrive.
// The nodes page (#/nodes) re-reads GET /api/nodes every NODES_REFRESH_MS while it is open.
'use strict';

const FINISHED = new Set(['completed', 'failed', 'cancelled']);
const HISTORY_POINTS = 1200;
const ITEMS_PAGE = 50;
// A running job sends up to 4 progress events a second; two page reads a second per viewer
// would cost the database more than the picture gains.
const ITEMS_REFRESH_MS = 2000;
// Grouping reasons reads every skipped or failed item of the job: on a million-item job that
// is a fraction of a second of database time, so it is re-read less often (and at the end).
const REASONS_REFRESH_MS = 10000;
const NODES_REFRESH_MS = 3000;

const S = {
  token: localStorage.getItem('overseer.token') || '',
  jobs: new Map(),      // id -> Job (API shape), kept current from the feed
  rows: new Map(),      // id -> {tr, cells}
  dirty: new Set(),
  history: new Map(),   // id -> [[time ms, items/min, processed]] from the feed
  persisted: new Map(), // id -> [[time ms, items/min, processed]] from the server's history
  limiter: [],          // [[time ms, global rate/s, throttles in that second]]
  lastLimiter: null,
  limiterText: '',     // why the limiter runs where it does (learned quota, bound by, concurrency)
  jobId: null,          // the job page's job
  items: { cursor: [0], next: null, seq: 0 },  // after_id of each page seen, the next one
  refreshTimer: null,
  lastRefresh: 0,
  lastReasons: 0,
  reasonsDue: false,
  view: 'jobs',         // jobs | job | nodes
  ws: null,
  wsDelay: 500,
  frame: 0,
  actorsMissing: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function flash(message, ok) {
  const f = $('flash');
  f.textContent = message;
  f.className = ok ? 'flash ok' : 'flash';
  f.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { f.hidden = true; }, 6000);
}

// ---- API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || ('HTTP ' + status));
    this.status = status;
    this.details = e.details || [];
  }
}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  if (S.token) opts.headers.Authorization = 'Bearer ' + S.token;
  const response = await fetch(path, opts);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401) askToken();
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function askToken() {
  $('token-bar').hidden = false;
}

// ---- formatting ----------------------------------------------------------------------------

const nf = new Intl.NumberFormat('en-US');
function fmtInt(n) { return nf.format(n || 0); }
function fmtRate(r) { return r ? nf.format(Math.round(r)) : '–'; }
function fmtEta(s, status) {
  if (status !== 'running' || s === null || s === undefined) return '–';
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
}
function pct(job) {
  return job.total_items > 0 ? (100 * job.processed / job.total_items) : 100;
}
function fmtTime(t) { return t ? new Date(t).toLocaleString() : '–'; }

// ---- the jobs table ------------------------------------------------------------------------

function makeRow(job) {
  const tr = el('tr');
  tr.dataset.jobId = job.id;
  const cells = {
    id: el('td', 'num', '#' + job.id),
    name: el('td', 'name'),
    operation: el('td', 'muted'),
    status: el('td'),
    progress: el('td'),
    processed: el('td', 'num'),
    failed: el('td', 'num'),
    rate: el('td', 'num'),
    eta: el('td', 'num'),
  };
  cells.badge = el('span', 'badge');
  cells.status.append(cells.badge);
  const wrap = el('div', 'cell-bar');
  const bar = el('div', 'bar');
  cells.fill = el('div', 'fill');
  bar.append(cells.fill);
  cells.pct = el('span', 'pct');
  wrap.append(bar, cells.pct);
  cells.progress.append(wrap);
  for (const k of ['id', 'name', 'operation', 'status', 'progress', 'processed', 'failed', 'rate', 'eta']) {
    tr.append(cells[k]);
  }
  tr.addEventListener('click', () => { location.hash = '#/jobs/' + job.id; });
  return { tr, cells };
}

function paintRow(row, job) {
  const c = row.cells;
  c.name.textContent = job.name || '(unnamed)';
  c.name.title = job.name || '';
  if (job.dry_run === true) c.name.append(' ', el('span', 'badge dry', 'dry run'));
  c.operation.textContent = job.operation || '';
  c.badge.textContent = job.status;
  c.badge.className = 'badge ' + job.status;
  const p = pct(job);
  c.fill.style.width = p.toFixed(2) + '%';
  c.fill.className = 'fill ' + job.status;
  row.tr.dataset.processed = job.processed;
  c.pct.textContent = p.toFixed(1) + '%';
  c.processed.textContent = fmtInt(job.processed) + ' / ' + fmtInt(job.total_items);
  c.failed.textContent = fmtInt(job.failed);
  c.rate.textContent = fmtRate(job.status === 'running' ? job.items_per_minute : 0);
  c.eta.textContent = fmtEta(job.eta_seconds, job.status);
}

function rowVisible(job) {
  const q = $('filter').value.trim().toLowerCase();
  if (!q) return true;
  return String(job.id) === q || (job.name || '').toLowerCase().includes(q) || job.status === q ||
    (job.operation || '').toLowerCase().includes(q);
}

function renderTable() {
  const body = $('jobs-body');
  const fragment = document.createDocumentFragment();
  const jobs = Array.from(S.jobs.values()).sort((a, b) => b.id - a.id);
  S.rows.clear();
  for (const job of jobs) {
    const row = makeRow(job);
    paintRow(row, job);
    row.tr.hidden = !rowVisible(job);
    S.rows.set(job.id, row);
    fragment.append(row.tr);
  }
  body.replaceChildren(fragment);
  $('jobs-empty').hidden = jobs.length > 0;
  renderSummary();
}

function renderSummary() {
  const counts = {};
  let rate = 0;
  for (const job of S.jobs.values()) {
    counts[job.status] = (counts[job.status] || 0) + 1;
    if (job.status === 'running') rate += job.items_per_minute || 0;
  }
  const nav = $('summary');
  nav.replaceChildren();
  for (const status of ['running', 'pending', 'paused', 'completed', 'failed', 'cancelled']) {
    if (!counts[status]) continue;
    const s = el('span');
    s.append(el('b', null, fmtInt(counts[status])), ' ' + status);
    nav.append(s);
  }
  const r = el('span');
  r.append(el('b', null, fmtRate(rate)), ' items/min');
  nav.append(r);
}

async function loadJobs() {
  const list = await api('/api/jobs?limit=1000');
  for (const job of list.jobs) S.jobs.set(job.id, job);
  renderTable();
}

let reloadTimer = null;
function reloadSoon() {
  if (reloadTimer) return;
  reloadTimer = setTimeout(() => {
    reloadTimer = null;
    loadJobs().catch((e) => flash('Could not load jobs: ' + e.message));
  }, 500);
}

// ---- live feed ----------------------------------------------------------------------------

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = S.token ? '?token=' + encodeURIComponent(S.token) : '';
  const ws = new WebSocket(proto + '//' + location.host + '/api/ws' + q);
  S.ws = ws;
  ws.onopen = () => { S.wsDelay = 500; setLive(true); };
  ws.onmessage = (m) => {
    let event;
    try { event = JSON.parse(m.data); } catch (_) { return; }
    onEvent(event);
  };
  ws.onclose = () => {
    setLive(false);
    setTimeout(connect, S.wsDelay);
    S.wsDelay = Math.min(S.wsDelay * 2, 10000);
  };
  ws.onerror = () => {};
}

function setLive(on) {
  const l = $('live');
  l.textContent = on ? 'live' : 'offline';
  l.className = 'live ' + (on ? 'on' : 'off');
}

function onEvent(event) {
  if (event.type === 'limiter') return onLimiter(event.scopes || [], event.concurrency);
  const id = event.type === 'snapshot' ? event.job.id : event.job_id;
  let job = S.jobs.get(id);
  if (event.type === 'snapshot') {
    job = event.job;
  } else if (!job) {
    reloadSoon();
    return;
  } else if (event.type === 'progress') {
    if (event.processed < job.processed && event.status === job.status) return;
    job = Object.assign({}, job, {
      status: event.status, total_items: event.total_items, processed: event.processed,
      succeeded: event.succeeded, failed: event.failed, skipped: event.skipped,
      items_per_minute: event.items_per_minute, eta_seconds: event.eta_seconds,
      progress: event.total_items ? event.processed / event.total_items : 1,
    });
    record(id, event);
    if (S.jobId === id) refreshSoon();
  } else if (event.type === 'status') {
    job = Object.assign({}, job, { status: event.status, error: event.error });
    if (FINISHED.has(event.status) || event.status === 'paused') {
      job.items_per_minute = 0;
      job.eta_seconds = null;
    }
    if (S.jobId === id) { loadJob(id); refreshSoon(true); }
  }
  const isNew = !S.jobs.has(id);
  S.jobs.set(id, job);
  if (isNew) { renderTable(); return; }
  S.dirty.add(id);
  schedule();
}

function record(id, event) {
  let h = S.history.get(id);
  if (!h) { h = []; S.history.set(id, h); }
  h.push([Date.parse(event.at) || Date.now(), event.items_per_minute || 0, event.processed]);
  if (h.length > HISTORY_POINTS) h.splice(0, h.length - HISTORY_POINTS);
}

// What holds each scope back, in words.
const BOUND = {
  quota: 'the API quota', concurrency_ceiling: 'the concurrency ceiling',
  latency: 'latency (opening more customers)', nothing_to_do: 'nothing to do',
};

function explainLimiter(scopes, concurrency) {
  const global = scopes.find((s) => s.scope === 'global');
  const customers = scopes.filter((s) => s.scope !== 'global');
  const parts = [];
  if (global) {
    parts.push('Global: ' + (global.learned_quota_per_sec
      ? 'learned quota ' + global.learned_quota_per_sec.toFixed(1) + '/s'
      : 'no quota learned yet') + ', bound by ' + (BOUND[global.bound_by] || global.bound_by));
  }
  if (concurrency) {
    parts.push(concurrency.held + ' customers at once (target ' + concurrency.target +
      ', ceiling ' + concurrency.node_ceiling + ')' +
      (concurrency.latency_seconds ? ', ' + Math.round(concurrency.latency_seconds * 1000) + ' ms per call' : ''));
  }
  const atQuota = customers.filter((s) => s.bound_by === 'quota').length;
  if (customers.length) parts.push(customers.length + ' customer scopes, ' + atQuota + ' at their own quota');
  return parts.join(' · ');
}

function onLimiter(scopes, concurrency) {
  S.limiterText = explainLimiter(scopes, concurrency);
  const global = scopes.find((s) => s.scope === 'global');
  const throttled = scopes.reduce((n, s) => n + (s.throttled || 0), 0);
  const granted = global ? global.granted || 0 : 0;
  const now = Date.now();
  const last = S.lastLimiter;
  const secs = last ? Math.max(0.001, (now - last.t) / 1000) : 1;
  const throttles = last ? Math.max(0, throttled - last.throttled) : 0;
  const perSec = last ? Math.max(0, granted - last.granted) / secs : 0;
  S.lastLimiter = { t: now, throttled, granted };
  S.limiter.push([now, global && global.rate_per_sec ? global.rate_per_sec : 0, throttles, perSec]);
  if (S.limiter.length > HISTORY_POINTS) S.limiter.splice(0, S.limiter.length - HISTORY_POINTS);
  if (S.jobId !== null) schedule();
}

function schedule() {
  if (S.frame) return;
  S.frame = requestAnimationFrame(() => {
    S.frame = 0;
    for (const id of S.dirty) {
      const row = S.rows.get(id);
      const job = S.jobs.get(id);
      if (row && job) paintRow(row, job);
    }
    S.dirty.clear();
    renderSummary();
    if (S.jobId !== null) paintJob();
  });
}

// ---- the job page ------------------------------------------------------------------------

async function loadJob(id) {
  try {
    const job = await api('/api/jobs/' + id);
    S.jobs.set(id, job);
    paintJob();
  } catch (e) {
    flash('Could not load job ' + id + ': ' + e.message);
  }
}

function stat(label, value) {
  const d = el('div', 'stat');
  d.append(el('span', null, label), el('b', null, value));
  return d;
}

function paintJob() {
  const job = S.jobs.get(S.jobId);
  if (!job) return;
  $('job-title').textContent = '#' + job.id + ' ' + (job.name || '');
  const badge = $('job-status');
  badge.textContent = job.status;
  badge.className = 'badge ' + job.status;
  const fill = $('job-fill');
  fill.style.width = pct(job).toFixed(2) + '%';
  fill.className = 'fill ' + job.status;
  $('job-stats').replaceChildren(
    stat('Progress', pct(job).toFixed(1) + '%'),
    stat('Processed', fmtInt(job.processed) + ' / ' + fmtInt(job.total_items)),
    stat('Succeeded', fmtInt(job.succeeded)),
    stat('Failed', fmtInt(job.failed)),
    stat('Skipped', fmtInt(job.skipped)),
    stat('Items / min', fmtRate(job.status === 'running' ? job.items_per_minute : 0)),
    stat('ETA', fmtEta(job.eta_seconds, job.status)),
  );
  $('job-meta').textContent = 'Operation ' + (job.operation || '') + ' · node ' + (job.owner || '–') +
    ' · started ' + fmtTime(job.started_at) + ' · last heartbeat ' + fmtTime(job.last_heartbeat) +
    (job.finished_at ? ' · finished ' + fmtTime(job.finished_at) : '');
  const detail = $('job-detail');
  detail.textContent = job.error || job.detail || '';
  detail.hidden = !(job.error || job.detail);
  $('btn-pause').disabled = !['pending', 'running'].includes(job.status);
  $('btn-resume').disabled = job.status !== 'paused';
  $('btn-cancel').disabled = FINISHED.has(job.status);
  $('btn-retry').disabled = !['completed', 'failed'].includes(job.status) || !job.failed;
  // `dry_run` is absent on servers without dry runs: only an explicit true shows anything.
  $('job-dry').hidden = job.dry_run !== true;
  $('btn-run').hidden = !(job.dry_run === true && FINISHED.has(job.status));
  const dl = $('dl-failed');
  dl.href = '/api/jobs/' + job.id + '/items?format=csv&status=failed';
  dl.download = 'job-' + job.id + '-failed.csv';
  dl.textContent = 'Download the ' + fmtInt(job.failed) + ' failed item' + (job.failed === 1 ? '' : 's') + ' (CSV)';
  dl.hidden = !job.failed;
  drawThroughput();
  drawLimiter();
}

// The server's samples up to where the feed's points begin, then the feed's: a page opened
// mid-run (or after the end) shows the whole run, a page open from the start the finest grain.
function throughputPoints(id) {
  const live = S.history.get(id) || [];
  const since = live.length ? live[0][0] : Infinity;
  const before = (S.persisted.get(id) || []).filter((p) => p[0] < since);
  return { points: before.concat(live).map((p) => [p[0], p[1]]), persisted: before.length };
}

function drawThroughput() {
  const job = S.jobs.get(S.jobId);
  const { points, persisted } = throughputPoints(S.jobId);
  const canvas = $('chart-throughput');
  // The chart spans the run: from its start, to now while it runs, to its end once finished
  // (not to the current time, which would squeeze yesterday's job into the left edge).
  const range = {};
  if (job && job.started_at) range.from = Date.parse(job.started_at);
  if (job && FINISHED.has(job.status)) {
    const last = points.length ? points[points.length - 1][0] : -Infinity;
    range.until = Math.max(last, job.finished_at ? Date.parse(job.finished_at) : last);
    // Shown until the history has loaded, and for good when no flush ever moved the job.
    range.empty = S.persisted.has(job.id) ? 'no throughput recorded' : 'loading history…';
  }
  drawChart(canvas, [{ color: '#2f6fde', points, fill: true }], 'items/min', range);
  canvas.dataset.points = points.length;
  canvas.dataset.persisted = persisted;
}

async function loadHistory(id) {
  try {
    const samples = await api('/api/jobs/' + id + '/progress');
    S.persisted.set(id, samples.map((s) => [Date.parse(s.at), s.items_per_minute, s.processed]));
    if (S.jobId === id) drawThroughput();
  } catch (e) {
    if (e.status !== 404) flash('Could not load job ' + id + '\'s history: ' + e.message);
  }
}

function drawLimiter() {
  const limited = S.limiter.some((p) => p[1] > 0);
  const series = [
    { color: '#2f6fde', points: S.limiter.map((p) => [p[0], p[3]]) },
    { color: '#d64545', points: S.limiter.map((p) => [p[0], p[2]]), bars: true },
  ];
  if (limited) series.unshift({ color: '#1f9d55', points: S.limiter.map((p) => [p[0], p[1]]), dashed: true });
  drawChart($('chart-limiter'), series,
    (limited ? 'limit (green) · ' : 'no limit · ') + 'calls/s (blue) · throttles (red)');
  const why = $('limiter-why');
  why.textContent = S.limiterText || '';
  why.hidden = !S.limiterText;
}

// A small line/bar chart on a canvas: time on x (`range.from`, else the first point, to
// `range.until`, else now), values on y. Sparse lines get dots, so one sample still shows.
function drawChart(canvas, series, label, range) {
  const until = range && Number.isFinite(range.until) ? range.until : undefined;
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 400;
  const hgt = canvas.clientHeight || 200;
  if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr);
  if (canvas.height !== Math.round(hgt * dpr)) canvas.height = Math.round(hgt * dpr);
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, hgt);
  const pad = { l: 52, r: 10, t: 10, b: 22 };
  const all = series.flatMap((s) => s.points);
  const now = Date.now();
  const from = range && Number.isFinite(range.from) ? range.from : undefined;
  let t0 = all.length ? Math.min(...all.map((p) => p[0])) : (from === undefined ? now - 60000 : from);
  if (from !== undefined) t0 = Math.min(t0, from);
  const t1 = Math.max(until === undefined ? now : until, t0 + 10000);
  let max = all.length ? Math.max(...all.map((p) => p[1])) : 0;
  max = niceMax(max);
  g.font = '11px system-ui, sans-serif';
  g.strokeStyle = '#e3e6ec';
  g.fillStyle = '#6b7385';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + (hgt - pad.t - pad.b) * (1 - i / 4);
    g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
    g.fillText(shortNum(max * i / 4), 6, y + 4);
  }
  const x = (t) => pad.l + (w - pad.l - pad.r) * (t - t0) / (t1 - t0);
  const y = (v) => pad.t + (hgt - pad.t - pad.b) * (1 - v / max);
  g.fillText(label + (until === undefined ? ' · last ' : ' · over ') + fmtSpan(t1 - t0), pad.l, hgt - 6);
  if (!all.length) {
    const empty = (range && range.empty) || 'waiting for data…';
    g.fillText(empty, w / 2 - g.measureText(empty).width / 2, hgt / 2);
    return;
  }
  for (const s of series) {
    if (!s.points.length) continue;
    g.strokeStyle = s.color;
    g.fillStyle = s.color;
    if (s.bars) {
      for (const [t, v] of s.points) if (v > 0) g.fillRect(x(t) - 1.5, y(v), 3, y(0) - y(v));
      continue;
    }
    g.lineWidth = 2;
    g.setLineDash(s.dashed ? [6, 4] : []);
    g.beginPath();
    s.points.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.stroke();
    g.setLineDash([]);
    if (s.points.length < 60) {
      for (const [t, v] of s.points) { g.beginPath(); g.arc(x(t), y(v), 3, 0, 2 * Math.PI); g.fill(); }
      g.beginPath();
      s.points.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    }
    if (s.fill) {
      g.globalAlpha = 0.12;
      g.lineTo(x(s.points[s.points.length - 1][0]), y(0));
      g.lineTo(x(s.points[0][0]), y(0));
      g.fill();
      g.globalAlpha = 1;
    }
  }
}

function fmtSpan(ms) {
  const s = Math.max(1, Math.round(ms / 1000));
  if (s < 120) return s + ' s';
  if (s < 7200) return Math.round(s / 60) + ' min';
  return (s / 3600).toFixed(1) + ' h';
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}
function shortNum(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (v >= 1e3) return (v / 1e3).toFixed(v >= 1e4 ? 0 : 1) + 'k';
  return String(Math.round(v * 10) / 10);
}

async function loadActors() {
  const box = $('actors');
  const job = S.jobs.get(S.jobId);
  if (S.actorsMissing) return paintActorsFallback(box, job);
  try {
    const body = await api('/api/actors');
    const prefix = 'job:' + S.jobId;
    const mine = (body.actors || []).filter((a) => a.id === prefix || a.id.startsWith(prefix + '/'));
    if (!mine.length) {
      box.replaceChildren(el('p', 'empty', 'No actors run this job right now.'));
      return;
    }
    const table = el('table', 'items');
    const head = el('tr');
    for (const h of ['Actor', 'Kind', 'Status', 'Restarts', 'Heartbeat', 'In flight', 'Processed']) head.append(el('th', null, h));
    const thead = el('thead');
    thead.append(head);
    const tbody = el('tbody');
    for (const a of mine) {
      const tr = el('tr');
      tr.append(el('td', null, a.id), el('td', null, a.kind || ''), el('td', null, a.status || ''),
        el('td', 'num', fmtInt(a.restarts)),
        el('td', 'num', a.last_heartbeat_ms_ago === null || a.last_heartbeat_ms_ago === undefined ? '–' : a.last_heartbeat_ms_ago + ' ms ago'),
        el('td', 'num', fmtInt(a.in_flight)), el('td', 'num', fmtInt(a.processed)));
      tbody.append(tr);
    }
    table.append(thead, tbody);
    box.replaceChildren(table);
  } catch (e) {
    if (e.status === 404) S.actorsMissing = true;
    paintActorsFallback(box, job);
  }
}

function paintActorsFallback(box, job) {
  const p = el('p', 'muted');
  const beat = job && job.last_heartbeat ? new Date(job.last_heartbeat) : null;
  const ago = beat ? Math.max(0, Math.round((Date.now() - beat.getTime()) / 1000)) + ' s ago' : 'never';
  p.textContent = 'Per-actor details are not available on this server. Job actor on ' +
    ((job && job.owner) || 'no node') + ', last heartbeat ' + ago + '.';
  box.replaceChildren(p);
}

// ---- what happened to the items ------------------------------------------------------------

function itemsQuery() {
  const q = new URLSearchParams({ limit: String(ITEMS_PAGE) });
  const status = $('items-status').value;
  const customer = $('items-customer').value.trim();
  if (status) q.set('status', status);
  if (customer) q.set('customer_id', customer);
  q.set('after_id', String(S.items.cursor[S.items.cursor.length - 1]));
  return q;
}

function resultText(result) {
  if (result === null || result === undefined) return '';
  const text = JSON.stringify(result);
  return text.length > 80 ? text.slice(0, 79) + '…' : text;
}

async function loadItems() {
  const id = S.jobId;
  if (id === null) return;
  // Answers can overtake each other (filters typed fast, live refreshes): only the last counts.
  const seq = ++S.items.seq;
  try {
    const body = await api('/api/jobs/' + id + '/items?' + itemsQuery());
    if (seq !== S.items.seq || S.jobId !== id) return;
    const fragment = document.createDocumentFragment();
    for (const it of body.items) {
      const tr = el('tr');
      tr.dataset.itemId = it.id;
      tr.dataset.status = it.status;
      const status = el('td');
      status.append(el('span', 'badge ' + it.status, it.status));
      const result = el('td', 'result-cell', resultText(it.result));
      if (it.result !== null && it.result !== undefined) result.title = JSON.stringify(it.result, null, 2);
      tr.append(el('td', 'num', it.row === null || it.row === undefined ? '–' : String(it.row)),
        el('td', null, it.customer_id), el('td', 'name', it.ad_group_id || it.ad_group_name || ''),
        status, el('td', 'num', String(it.attempts)),
        el('td', it.status === 'failed' ? 'error' : 'reason', it.error || ''), result);
      fragment.append(tr);
    }
    $('items-body').replaceChildren(fragment);
    $('items-empty').hidden = body.items.length > 0;
    S.items.next = body.next_after_id;
    $('items-next').disabled = body.next_after_id === null || body.next_after_id === undefined;
    $('items-prev').disabled = S.items.cursor.length <= 1;
    $('items-page').textContent = 'page ' + S.items.cursor.length;
    const job = S.jobs.get(id);
    $('items-live').textContent = job && !FINISHED.has(job.status) ? 'updating while the job runs' : '';
  } catch (e) {
    if (seq === S.items.seq) flash('Could not load items: ' + e.message);
  }
}

function resetItems() {
  S.items.cursor = [0];
  loadItems();
}

// A reason's line filters the items browser to its status (the list is what to read next).
function paintReasons(status, groups, none) {
  const ul = $('reasons-' + status);
  if (!groups.length) {
    ul.replaceChildren(el('li', 'muted', none));
    return;
  }
  ul.replaceChildren(...groups.map((g) => {
    const li = el('li');
    li.append(el('span', 'reason', g.reason === null ? '(no reason given)' : g.reason),
      el('b', 'count', fmtInt(g.count)));
    li.title = 'Show the ' + status + ' items';
    li.addEventListener('click', () => { $('items-status').value = status; resetItems(); });
    return li;
  }));
}

async function loadReasons() {
  const id = S.jobId;
  if (id === null) return;
  S.lastReasons = Date.now();
  try {
    const [skipped, failed] = await Promise.all(['skipped', 'failed'].map((status) =>
      api('/api/jobs/' + id + '/reasons?status=' + status)));
    if (S.jobId !== id) return;
    paintReasons('skipped', skipped, 'No skipped items.');
    paintReasons('failed', failed, 'No failed items.');
  } catch (e) {
    flash('Could not load reasons: ' + e.message);
  }
}

// Re-reads the items page at most every ITEMS_REFRESH_MS and the reasons at most every
// REASONS_REFRESH_MS, the last event included (a trailing read); a status change (`final`)
// always re-reads both, so the page ends showing the final state.
function refreshSoon(final) {
  if (final) S.reasonsDue = true;
  if (S.refreshTimer) return;
  const wait = Math.max(0, S.lastRefresh + ITEMS_REFRESH_MS - Date.now());
  S.refreshTimer = setTimeout(() => {
    S.refreshTimer = null;
    S.lastRefresh = Date.now();
    loadItems();
    if (S.reasonsDue || S.lastRefresh - S.lastReasons >= REASONS_REFRESH_MS) {
      S.reasonsDue = false;
      loadReasons();
    }
  }, wait);
}

// With a token the CSV must be fetched with its Authorization header (the API takes `?token=`
// on the websockets only), then handed to the browser as a file.
async function downloadFailed(ev) {
  if (!S.token) return;
  ev.preventDefault();
  const link = ev.currentTarget;
  try {
    const response = await fetch(link.href, { headers: { Authorization: 'Bearer ' + S.token } });
    if (response.status === 401) askToken();
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch (_) { body = null; }
      throw new ApiError(response.status, body);
    }
    const url = URL.createObjectURL(await response.blob());
    const a = el('a');
    a.href = url;
    a.download = link.download;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    flash('Could not download failed items: ' + e.message);
  }
}

async function runForReal() {
  try {
    const job = await api('/api/jobs/' + S.jobId + '/run', { method: 'POST' });
    S.jobs.set(job.id, job);
    renderTable();
    flash('Started job #' + job.id + ' for real', true);
    location.hash = '#/jobs/' + job.id;
  } catch (e) {
    flash('Run for real refused: ' + e.message);
  }
}

// ---- the nodes page ------------------------------------------------------------------------

function fmtAgo(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  if (seconds < 1) return 'just now';
  if (seconds < 120) return Math.round(seconds) + ' s ago';
  if (seconds < 7200) return Math.round(seconds / 60) + ' min ago';
  return Math.round(seconds / 3600) + ' h ago';
}

async function loadNodes() {
  try {
    const nodes = await api('/api/nodes');
    if (S.view !== 'nodes') return;
    const fragment = document.createDocumentFragment();
    for (const n of nodes) {
      const tr = el('tr');
      tr.dataset.nodeId = n.id;
      tr.dataset.alive = n.alive;
      const state = el('td');
      state.append(el('span', 'badge ' + (n.alive ? 'alive' : 'gone'), n.alive ? 'alive' : 'gone'));
      const jobs = el('td', 'jobs-cell');
      if (!n.jobs.length) jobs.append(el('span', 'muted', '–'));
      for (const j of n.jobs) {
        const a = el('a', 'node-job', '#' + j.id + ' ' + (j.name || '(unnamed)') + ' · ' +
          fmtInt(j.processed) + ' / ' + fmtInt(j.total_items));
        a.href = '#/jobs/' + j.id;
        a.dataset.jobId = j.id;
        jobs.append(a);
      }
      const beat = el('td', null, fmtAgo(n.last_heartbeat_seconds_ago));
      beat.title = fmtTime(n.last_heartbeat);
      const name = el('td', 'name', n.id);
      name.title = n.id;
      tr.append(name, el('td', null, n.hostname), el('td', 'num', String(n.pid)),
        el('td', 'muted', n.version), el('td', 'muted', fmtTime(n.started_at)), beat, state, jobs);
      fragment.append(tr);
    }
    $('nodes-body').replaceChildren(fragment);
    $('nodes-empty').hidden = nodes.length > 0;
  } catch (e) {
    flash('Could not load nodes: ' + e.message);
  }
}

async function change(action) {
  try {
    const job = await api('/api/jobs/' + S.jobId + '/' + action, { method: 'POST' });
    S.jobs.set(job.id, job);
    S.dirty.add(job.id);
    schedule();
    flash('Job ' + job.id + ': ' + action + ' done (' + job.status + ')', true);
    if (action === 'retry' || action === 'cancel') { resetItems(); loadReasons(); }
  } catch (e) {
    flash(action + ' refused: ' + e.message);
  }
}

// ---- submitting a CSV --------------------------------------------------------------------

async function submitCsv(ev) {
  ev.preventDefault();
  const file = $('f-file').files[0];
  const out = $('f-result');
  if (!file) return;
  const params = new URLSearchParams({
    name: $('f-name').value || file.name,
    operation: $('f-operation').value || 'noop',
    priority: $('f-priority').value || '0',
    params: $('f-params').value || '{}',
  });
  out.hidden = false;
  out.textContent = 'Uploading ' + file.name + '…';
  try {
    const job = await api('/api/jobs?' + params, {
      method: 'POST', headers: { 'Content-Type': 'text/csv' }, body: file,
    });
    out.textContent = 'Created job #' + job.id + ' with ' + fmtInt(job.total_items) + ' items.';
    S.jobs.set(job.id, job);
    renderTable();
  } catch (e) {
    const lines = (e.details || []).slice(0, 20).map((d) =>
      d.row ? 'row ' + d.row + ', ' + d.field + ': ' + d.problem : JSON.stringify(d));
    out.textContent = e.message + (lines.length ? '\n' + lines.join('\n') : '');
  }
}

// ---- routing and start ---------------------------------------------------------------------

let pageTimer = null;
function show(view) {
  S.view = view;
  $('jobs-view').hidden = view !== 'jobs';
  $('job-view').hidden = view !== 'job';
  $('nodes-view').hidden = view !== 'nodes';
  $('nav-jobs').className = view === 'nodes' ? '' : 'current';
  $('nav-nodes').className = view === 'nodes' ? 'current' : '';
}

function route() {
  const m = location.hash.match(/^#\/jobs\/(\d+)/);
  clearInterval(pageTimer);
  clearTimeout(S.refreshTimer);
  S.refreshTimer = null;
  if (m) {
    S.jobId = Number(m[1]);
    S.items.cursor = [0];
    show('job');
    paintJob();
    loadJob(S.jobId);
    loadHistory(S.jobId);
    loadActors();
    loadItems();
    loadReasons();
    pageTimer = setInterval(() => { loadActors(); paintJob(); }, 2000);
  } else if (location.hash === '#/nodes') {
    S.jobId = null;
    show('nodes');
    loadNodes();
    pageTimer = setInterval(loadNodes, NODES_REFRESH_MS);
  } else {
    S.jobId = null;
    show('jobs');
  }
}

function start() {
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    S.token = $('token-input').value.trim();
    localStorage.setItem('overseer.token', S.token);
    $('token-bar').hidden = true;
    if (S.ws) S.ws.close();
    loadJobs().catch((e) => flash(e.message));
  });
  $('filter').addEventListener('input', () => {
    for (const [id, row] of S.rows) row.tr.hidden = !rowVisible(S.jobs.get(id));
  });
  $('btn-new').addEventListener('click', () => { $('submit-form').hidden = false; });
  $('f-cancel').addEventListener('click', () => { $('submit-form').hidden = true; });
  $('submit-form').addEventListener('submit', submitCsv);
  for (const action of ['pause', 'resume', 'cancel', 'retry']) {
    $('btn-' + action).addEventListener('click', () => change(action));
  }
  $('items-next').addEventListener('click', () => {
    if (S.items.next !== null && S.items.next !== undefined) { S.items.cursor.push(S.items.next); loadItems(); }
  });
  $('items-prev').addEventListener('click', () => {
    if (S.items.cursor.length > 1) { S.items.cursor.pop(); loadItems(); }
  });
  $('items-status').addEventListener('change', resetItems);
  let typing = null;
  $('items-customer').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(resetItems, 300);
  });
  $('dl-failed').addEventListener('click', downloadFailed);
  $('btn-run').addEventListener('click', runForReal);
  window.addEventListener('hashchange', route);
  route();
  loadJobs().catch((e) => { if (e.status !== 401) flash('Could not load jobs: ' + e.message); });
  connect();
}

start();
