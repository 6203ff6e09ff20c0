/*
 * orrery's live page: vanilla JS, no build step, no external requests.
 * It reads the JSON API of web/api.go (/api/info, /api/overview,
 * /api/events, /api/jobs, /api/jobs/I, /api/jobs/I/attempts/N/log,
 * /api/timeline, /api/space); every answer is bounded by the server, so
 * the page stays responsive however many jobs the experiment has.
 *
 * Stable element ids (a browser test relies on them):
 *   body[data-ready="1"]      once the first overview is rendered
 *   section[data-loaded=N]    each view's section counts its data renders:
 *     #view-overview #view-nodes #view-timeline #view-jobs #view-space
 *   header:   #experiment #mode #conn #count-done #count-running
 *             #count-failed #count-pending #total #rate #eta #elapsed
 *             #failed-link #progress #progress-done #progress-failed
 *             #progress-running
 *   tabs:     #tab-overview #tab-nodes #tab-timeline #tab-jobs #tab-space
 *   overview: #ov-done #ov-failed #ov-running #ov-pending #ov-total
 *             #ov-percent #ov-rate #ov-eta #ov-elapsed #ov-nodes #ov-out
 *             #bound-so-far #efficiency #bound #work #capacity #policy
 *             #info-experiment #info-plan #info-dialect #info-seed
 *             #info-created #info-names #plan-text
 *             #failed-note #failed-jobs-link (shown when any failed)
 *   nodes:    #clusters-card #clusters-table #nodes-table #nodes-count
 *             #nodes-empty #out-list #out-empty
 *             (rows: tr[data-node], tr[data-cluster])
 *   timeline: #timeline-canvas #timeline-tip #timeline-note
 *             #timeline-legend #tl-window #tl-zoom-in #tl-zoom-out
 *             #tl-fit #tl-follow
 *   jobs:     #filter-state #filter-node #filter-p-NAME #filter-clear
 *             #jobs-table (tbody tr[data-index]) #jobs-head
 *             (th[data-sort="index"|"wall"]) #jobs-range #jobs-prev
 *             #jobs-next #jobs-empty
 *   job:      #job-panel[data-loaded=N][data-index=I] #job-title
 *             #job-body #job-panel-close, attempts .attempt[data-n],
 *             log buttons #log-btn-N, #job-log[data-loaded=N]
 *             #log-title #log-stdout #log-stderr #log-stdout-cut
 *             #log-stderr-cut
 *   space:    #space-x #space-y #space-color #space-canvas #space-tip
 *             #space-legend #space-jobs #space-hint
 *   status:   #status #status-text #status-close
 *
 * Hash routes: #overview, #nodes, #timeline, #jobs?state=failed&node=N
 * &p.NAME=VALUE&sort=index|wall&order=asc|desc&offset=K,
 * #space?x=A&y=B&c=state|wall|exit; any route may add job=I to open
 * that job's panel.
 */
'use strict';

(function () {
  // ---------------------------------------------------------------
  // Helpers
  // ---------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /** el builds an element; text children become text nodes (never HTML). */
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k === 'data') Object.assign(e.dataset, v);
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : v);
      }
    }
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      e.append(k instanceof Node ? k : String(k));
    }
    return e;
  }

  function setText(id, s) {
    const e = $(id);
    if (e && e.textContent !== s) e.textContent = s;
  }

  function bump(e) {
    e.dataset.loaded = String((Number(e.dataset.loaded) || 0) + 1);
  }

  const intFmt = new Intl.NumberFormat('en-US');
  const DASH = '—';

  function fmtInt(n) {
    return n === null || n === undefined ? DASH : intFmt.format(n);
  }

  function fmtNum(n, digits) {
    if (n === null || n === undefined || !isFinite(n)) return DASH;
    return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }

  /** fmtDur says seconds the way people read them: 4.2 s, 3 m 05 s, 2 h 10 m. */
  function fmtDur(s) {
    if (s === null || s === undefined || !isFinite(s)) return DASH;
    if (s < 0) s = 0;
    if (s < 10) return s.toFixed(s < 1 ? 2 : 1) + ' s';
    if (s < 60) return Math.round(s) + ' s';
    const pad = (n) => String(n).padStart(2, '0');
    if (s < 3600) return Math.floor(s / 60) + ' m ' + pad(Math.floor(s % 60)) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + pad(Math.floor((s % 3600) / 60)) + ' m';
    return Math.floor(s / 86400) + ' d ' + pad(Math.floor((s % 86400) / 3600)) + ' h';
  }

  function fmtBytes(b) {
    if (b === null || b === undefined || !isFinite(b)) return DASH;
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i === 0 ? String(b) : b.toFixed(b < 10 ? 1 : 0)) + ' ' + u[i];
  }

  function pad2(n) { return String(n).padStart(2, '0'); }

  /** fmtTime is a local date and time from Unix ms or RFC 3339. */
  function fmtTime(t) {
    if (t === null || t === undefined || t === '' || t === 0) return DASH;
    const d = new Date(t);
    if (isNaN(d.getTime())) return String(t);
    return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' +
      pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }

  function fmtClock(ms, withSeconds, withDate) {
    const d = new Date(ms);
    let s = pad2(d.getHours()) + ':' + pad2(d.getMinutes());
    if (withSeconds) s += ':' + pad2(d.getSeconds());
    if (withDate) s = pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' + s;
    return s;
  }

  function debounce(fn, ms) {
    let t = null;
    return function (...a) {
      clearTimeout(t);
      t = setTimeout(() => fn.apply(this, a), ms);
    };
  }

  /** throttle runs fn at most once every ms, and always once after the last call. */
  function throttle(fn, ms) {
    let last = 0;
    let timer = null;
    return function () {
      if (timer) return;
      timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, Math.max(0, last + ms - Date.now()));
    };
  }

  function stateBadge(s, kind) {
    return el('span', { class: 'state st-' + s, text: kind ? s + ' (' + kind + ')' : s });
  }

  // ---------------------------------------------------------------
  // The status bar and the API
  // ---------------------------------------------------------------

  const problems = new Map(); // key → message, the latest shown

  function showProblems() {
    const bar = $('status');
    if (problems.size === 0) { bar.hidden = true; return; }
    const msgs = [...problems.values()];
    const last = msgs[msgs.length - 1];
    bar.className = 'status' + (last.info ? ' info' : '');
    $('status-text').textContent = last.text + (msgs.length > 1 ? '  (+' + (msgs.length - 1) + ' more)' : '');
    bar.hidden = false;
  }

  function report(key, text, info) {
    problems.delete(key);
    problems.set(key, { text, info: !!info });
    showProblems();
  }

  function resolve(key) {
    if (problems.delete(key)) showProblems();
  }

  const SIGN_IN = 'Signed out: sign in again with the link `orrery token --viewer` prints.';

  /**
   * api GETs a JSON document. On any failure it says so in the status
   * bar and resolves to null (it never rejects); api.status is the
   * last answer's status, and out.status (when out is given) this one's
   * (0 when the root could not be reached).
   */
  async function api(path, out) {
    const st = out || {};
    const key = path.split('?')[0].replace(/\/\d+/g, '/N');
    let r;
    try {
      r = await fetch(path, { cache: 'no-store', headers: { Accept: 'application/json' } });
    } catch (e) {
      api.status = st.status = 0;
      report('net', 'Cannot reach the root (' + (e && e.message ? e.message : 'network error') + '): retrying as news comes.');
      return null;
    }
    api.status = st.status = r.status;
    resolve('net');
    if (r.status === 401) {
      report('auth', SIGN_IN);
      return null;
    }
    resolve('auth');
    if (!r.ok) {
      let t = '';
      try { t = (await r.text()).trim().split('\n')[0]; } catch (e) { /* no body */ }
      report(key, 'GET ' + path.split('?')[0] + ': ' + r.status + (t ? ' ' + t : ''), r.status === 503);
      return null;
    }
    try {
      const d = await r.json();
      resolve(key);
      return d;
    } catch (e) {
      report(key, 'GET ' + path.split('?')[0] + ': the answer is not JSON');
      return null;
    }
  }

  // ---------------------------------------------------------------
  // State and routing
  // ---------------------------------------------------------------

  const VIEWS = ['overview', 'nodes', 'timeline', 'jobs', 'space'];
  const S = {
    info: null,       // Info
    names: [],        // Info.names
    ov: null,         // the latest Overview
    view: '',         // the view shown
    params: new URLSearchParams(),
    ready: false,
  };

  function parseHash() {
    const h = location.hash.slice(1);
    const i = h.indexOf('?');
    let view = i < 0 ? h : h.slice(0, i);
    if (!VIEWS.includes(view)) view = 'overview';
    return { view, params: new URLSearchParams(i < 0 ? '' : h.slice(i + 1)) };
  }

  function makeHash(view, params) {
    const q = params.toString();
    return '#' + view + (q ? '?' + q : '');
  }

  /** go moves to a route; replace keeps the browser's history as it is. */
  function go(view, params, replace) {
    const h = makeHash(view, params);
    if (h === location.hash) { route(); return; }
    if (replace) { history.replaceState(null, '', h); route(); } else location.hash = h;
  }

  function route() {
    const { view, params } = parseHash();
    S.params = params;
    if (view !== S.view) {
      for (const v of VIEWS) {
        $('view-' + v).hidden = v !== view;
        $('tab-' + v).classList.toggle('active', v === view);
      }
      S.view = view;
      tipHide();
    }
    const job = params.get('job');
    if (job !== null && /^\d+$/.test(job)) openJob(Number(job)); else closeJobPanel(false);
    switch (view) {
      case 'overview': renderOverview(); break;
      case 'nodes': renderNodes(); break;
      case 'timeline': tlShow(); break;
      case 'jobs': jobsShow(params); break;
      case 'space': spaceShow(params); break;
    }
  }

  /** withoutJob is the route's parameters but the job panel's. */
  function withoutJob(params) {
    const p = new URLSearchParams(params);
    p.delete('job');
    return p;
  }

  // ---------------------------------------------------------------
  // Live news: the event stream and the header
  // ---------------------------------------------------------------

  let stream = null;
  let streamRetry = 1000;
  let streamTimer = null;

  function connect() {
    if (stream || (S.ov && S.ov.finished)) return;
    clearTimeout(streamTimer);
    stream = new EventSource('/api/events');
    stream.onopen = () => {
      streamRetry = 1000;
      $('conn').className = 'conn on';
      $('conn').title = 'live: the event stream is open';
      resolve('events');
    };
    stream.onmessage = (ev) => {
      let ov;
      try { ov = JSON.parse(ev.data); } catch (e) { return; }
      onOverview(ov);
    };
    stream.onerror = () => {
      $('conn').className = 'conn off';
      $('conn').title = 'the event stream is broken';
      if (stream && stream.readyState === EventSource.CLOSED) {
        stream.close();
        stream = null;
        reconnectLater();
      } else {
        report('events', 'The event stream broke: reconnecting…', true);
      }
    };
  }

  /** reconnectLater asks for the news once (which tells a lost cookie apart) and reopens the stream. */
  function reconnectLater() {
    clearTimeout(streamTimer);
    streamTimer = setTimeout(async () => {
      const ov = await api('/api/overview');
      if (ov) onOverview(ov);
      if (S.ov && S.ov.finished) return;
      if (api.status === 404) { report('events', 'This server sends no news: the counters stay as they are.', true); return; }
      streamRetry = Math.min(streamRetry * 2, 30000);
      report('events', 'No event stream: trying again in ' + Math.round(streamRetry / 1000) + ' s.', true);
      connect();
    }, streamRetry);
  }

  // loadedAt is, per view, the news its data was loaded at: a view
  // shown again reloads when the experiment changed while it was hidden
  // (live refreshes reload only the view on screen).
  const loadedAt = {};
  function newsMark() { return S.ov ? S.ov.changed + (S.ov.finished ? '.end' : '') : ''; }
  function markLoaded(view) { loadedAt[view] = newsMark(); }
  function stale(view) { return view in loadedAt && loadedAt[view] !== newsMark(); }

  const refreshLive = throttle(() => {
    if (document.hidden) { refreshLive.pending = true; return; }
    refreshLive.pending = false;
    if (S.view === 'jobs') jobsLoad();
    else if (S.view === 'timeline' && (TL.follow || TL.fit)) tlLoad();
    else if (S.view === 'space') spaceLoad();
    if (JP.index !== null && JP.detail && (JP.detail.state === 'running' || JP.detail.state === 'pending' ||
        JP.detail.attempts.some((a) => a.state === 'running'))) jobLoad();
  }, 1000);

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && refreshLive.pending) refreshLive();
  });

  function onOverview(ov) {
    const prev = S.ov;
    S.ov = ov;
    renderHeader();
    if (S.view === 'overview') renderOverview();
    else if (S.view === 'nodes') renderNodes();
    if (!S.ready) {
      S.ready = true;
      document.body.dataset.ready = '1';
    }
    if (prev && prev.changed !== ov.changed) refreshLive();
    if (prev && !prev.finished && ov.finished) refreshLive();
    if (ov.finished && stream) {
      stream.close();
      stream = null;
      $('conn').className = 'conn';
      $('conn').title = 'the experiment is finished: no more news';
      resolve('events');
    }
  }

  function renderHeader() {
    const ov = S.ov;
    if (!ov) return;
    setText('count-done', fmtInt(ov.done));
    setText('count-running', fmtInt(ov.running));
    setText('count-failed', fmtInt(ov.failed));
    setText('count-pending', fmtInt(ov.pending));
    setText('total', totalText(ov));
    setText('rate', fmtNum(ov.rate_per_min, 1) + ' /min');
    setText('eta', ov.finished ? DASH : fmtDur(ov.eta_s));
    setText('elapsed', fmtDur(ov.elapsed_s));
    $('failed-link').closest('.counter').classList.toggle('any', ov.failed > 0);
    $('failed-link').title = ov.failed > 0 ? 'see the failed jobs' : 'no job failed';
    const denom = ov.total > 0 ? ov.total : ov.done + ov.failed + ov.running + ov.pending;
    const pct = (n) => (denom > 0 ? Math.min(100, (100 * n) / denom) : 0).toFixed(3) + '%';
    $('progress-done').style.width = pct(ov.done);
    $('progress-failed').style.width = pct(ov.failed);
    $('progress-running').style.width = pct(ov.running);
    $('progress').title = percentText(ov) + ' complete';
    renderMode();
    const exp = S.info ? ' #' + S.info.experiment : '';
    document.title = (ov.finished ? '✓ ' : percentText(ov) + ' · ') + 'orrery' + exp;
  }

  function totalText(ov) {
    if (ov.total < 0) return '?';
    return (ov.exact ? '' : '≤ ') + fmtInt(ov.total);
  }

  function percentText(ov) {
    if (!(ov.total > 0)) return DASH;
    return fmtNum((100 * (ov.done + ov.failed)) / ov.total, 1) + '%';
  }

  function renderMode() {
    const m = $('mode');
    let text;
    let cls;
    if (S.ov && S.ov.finished) { text = 'finished'; cls = 'finished'; } else if (S.info && S.info.live) { text = 'live'; cls = 'live'; } else if (S.info) { text = 'read-only (orrery web)'; cls = 'readonly'; } else { text = 'connecting…'; cls = ''; }
    if (S.info && !S.info.live && S.ov && S.ov.finished) text = 'finished · read-only (orrery web)';
    setText('mode', text);
    m.className = 'badge ' + cls;
  }

  // ---------------------------------------------------------------
  // Overview
  // ---------------------------------------------------------------

  function renderInfo() {
    const i = S.info;
    if (!i) return;
    setText('experiment', 'experiment ' + i.experiment);
    setText('info-experiment', String(i.experiment));
    setText('info-plan', i.plan || DASH);
    setText('info-dialect', i.dialect || DASH);
    setText('info-seed', String(i.seed));
    setText('info-created', fmtTime(i.created));
    setText('policy', i.policy || DASH);
    setText('info-names', i.names && i.names.length ? i.names.join(', ') : DASH);
    setText('plan-text', i.plan_text || '(no plan text)');
    renderMode();
  }

  function renderOverview() {
    const ov = S.ov;
    if (!ov) return;
    setText('ov-done', fmtInt(ov.done));
    setText('ov-failed', fmtInt(ov.failed));
    setText('ov-running', fmtInt(ov.running));
    setText('ov-pending', fmtInt(ov.pending));
    setText('ov-total', totalText(ov) + (ov.total >= 0 && !ov.exact ? ' (an upper bound)' : ''));
    setText('ov-percent', percentText(ov));
    setText('ov-rate', fmtNum(ov.rate_per_min, 1) + ' jobs/min');
    setText('ov-eta', ov.finished ? 'finished' : fmtDur(ov.eta_s));
    setText('ov-elapsed', fmtDur(ov.elapsed_s));
    setText('ov-nodes', fmtInt(ov.nodes));
    setText('ov-out', fmtInt(ov.out_of_service));
    setText('bound-so-far', fmtDur(ov.bound_so_far_s));
    setText('efficiency', ov.efficiency === null || ov.efficiency === undefined ? DASH : fmtNum(100 * ov.efficiency, 1) + '%');
    setText('bound', fmtDur(ov.bound_s));
    setText('work', ov.work_s ? fmtDur(ov.work_s) + ' CPU' : DASH);
    setText('capacity', ov.capacity ? fmtNum(ov.capacity, 1) + ' slots × speed' : DASH);
    $('failed-note').hidden = !(ov.failed > 0);
    setText('failed-jobs-link', 'See the ' + fmtInt(ov.failed) + ' failed job' + (ov.failed === 1 ? '' : 's') + ' →');
    bump($('view-overview'));
  }

  // ---------------------------------------------------------------
  // Clusters & nodes
  // ---------------------------------------------------------------

  let nodesKey = '';

  function renderNodes() {
    const ov = S.ov;
    if (!ov) return;
    const key = JSON.stringify([ov.clusters, ov.per_node, ov.out]);
    if (key !== nodesKey) {
      nodesKey = key;
      const cl = ov.clusters || [];
      $('clusters-card').hidden = cl.length === 0;
      const cb = el('tbody');
      for (const c of cl) {
        cb.append(el('tr', { data: { cluster: c.name }, class: c.link !== 'connected' ? 'row-out' : '' },
          el('td', { text: c.name }), el('td', { class: 'mono', text: c.head }),
          el('td', { class: 'link-' + c.link, text: c.link, title: c.link_since ? 'since ' + fmtTime(c.link_since) : null }),
          el('td', { class: 'num', text: fmtInt(c.nodes) }), el('td', { class: 'num', text: fmtInt(c.cpus) }),
          el('td', { class: 'num', text: fmtInt(c.running) }), el('td', { class: 'num', text: fmtInt(c.queued) }),
          el('td', { class: 'num', text: fmtInt(c.held) }), el('td', { class: 'num', text: fmtInt(c.done) }),
          el('td', { class: 'num', text: fmtInt(c.failed) }), el('td', { class: 'num', text: fmtNum(c.rate_per_min, 1) + ' /min' })));
      }
      $('clusters-table').tBodies[0].replaceWith(cb);
      const nodes = ov.per_node || [];
      const nb = el('tbody');
      for (const n of nodes) {
        nb.append(el('tr', { data: { node: n.name }, class: n.out ? 'row-out' : '' },
          el('td', { class: 'mono', text: n.name }), el('td', { text: n.cluster || '' }),
          el('td', { class: 'num', text: fmtInt(n.cpus) }), el('td', { class: 'num', text: fmtNum(n.speed, 2) }),
          el('td', { class: 'num', text: n.limit < 0 ? 'none' : fmtInt(n.limit), title: n.limit < 0 ? 'the policy sets no job limit' : '' }), el('td', { class: 'num', text: fmtInt(n.running) }),
          el('td', { class: 'num', text: fmtNum(n.load, 2) }), el('td', { class: 'num', text: n.memory ? fmtBytes(n.memory) : DASH }),
          el('td', { class: 'num', text: fmtBytes(n.resident) }),
          el('td', null, n.out ? el('span', { class: 'reason', text: 'out of service' + (n.reason ? ': ' + n.reason : '') }) : 'in service')));
      }
      $('nodes-table').tBodies[0].replaceWith(nb);
      setText('nodes-count', nodes.length ? '(' + nodes.length + ' connected)' : '');
      $('nodes-empty').hidden = nodes.length > 0;
      const ol = el('ul', { id: 'out-list', class: 'out-list' });
      for (const o of ov.out || []) {
        ol.append(el('li', null, el('span', { class: 'mono', text: o.node }), ' since ' + fmtTime(o.since) + ': ',
          el('span', { class: 'reason', text: o.reason || 'no reason given' })));
      }
      $('out-list').replaceWith(ol);
      $('out-empty').hidden = (ov.out || []).length > 0;
    }
    bump($('view-nodes'));
  }

  // ---------------------------------------------------------------
  // Shared canvas helpers
  // ---------------------------------------------------------------

  /** sizeCanvas gives a canvas w×h CSS pixels at the screen's density and returns its context. */
  function sizeCanvas(cv, w, h) {
    const dpr = window.devicePixelRatio || 1;
    const W = Math.max(1, Math.round(w * dpr));
    const H = Math.max(1, Math.round(h * dpr));
    if (cv.width !== W || cv.height !== H) { cv.width = W; cv.height = H; }
    cv.style.height = h + 'px';
    if (cv.id === 'space-canvas') cv.style.width = w + 'px';
    const ctx = cv.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  }

  const FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif';

  let tipOwner = null;

  function tipShow(tipId, x, y, lines) {
    const tip = $(tipId);
    tip.replaceChildren();
    lines.forEach((l, i) => {
      if (i) tip.append(el('br'));
      if (Array.isArray(l)) tip.append(el('b', { text: l[0] }), ' ' + l[1]); else tip.append(l);
    });
    tip.hidden = false;
    const wrap = tip.parentElement;
    const maxX = wrap.scrollLeft + wrap.clientWidth;
    let left = x + 14;
    if (left + tip.offsetWidth > maxX - 4) left = Math.max(wrap.scrollLeft + 2, x - tip.offsetWidth - 14);
    let top = y + 14;
    if (top + tip.offsetHeight > wrap.scrollTop + wrap.clientHeight - 4) top = Math.max(wrap.scrollTop + 2, y - tip.offsetHeight - 10);
    tip.style.left = left + 'px';
    tip.style.top = top + 'px';
    tipOwner = tipId;
  }

  function tipHide() {
    if (tipOwner) { $(tipOwner).hidden = true; tipOwner = null; }
  }

  function hexRGB(h) {
    const n = parseInt(h.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

  function rgb(c) { return 'rgb(' + c.map((v) => Math.round(v)).join(',') + ')'; }

  function mixRGB(a, b, t) { return [0, 1, 2].map((k) => a[k] + (b[k] - a[k]) * t); }

  /** ramp interpolates a list of hex stops at t in [0, 1]. */
  function ramp(stops, t) {
    t = Math.max(0, Math.min(1, t));
    const x = t * (stops.length - 1);
    const i = Math.min(stops.length - 2, Math.floor(x));
    return mixRGB(hexRGB(stops[i]), hexRGB(stops[i + 1]), x - i);
  }

  function rampLegend(stops, lo, hi) {
    const cv = el('canvas', { width: 160, height: 10 });
    const ctx = cv.getContext('2d');
    for (let x = 0; x < 160; x++) { ctx.fillStyle = rgb(ramp(stops, x / 159)); ctx.fillRect(x, 0, 1, 10); }
    return [el('span', { text: lo }), cv, el('span', { text: hi })];
  }

  // ---------------------------------------------------------------
  // Timeline
  // ---------------------------------------------------------------

  /** Colours of attempts (Okabe–Ito), and their staging shades. */
  const ATT = {
    running: { c: '#0072B2', label: 'running' },
    ok: { c: '#009E73', label: 'ok' },
    failed: { c: '#D55E00', label: 'failed' },
    lost: { c: '#E69F00', label: 'lost' },
    interrupted: { c: '#CC79A7', label: 'interrupted' },
    moved: { c: '#56B4E9', label: 'cancelled: moved' },
    'lost-race': { c: '#F0E442', label: 'cancelled: lost the race' },
    cancelled: { c: '#999999', label: 'cancelled' },
  };
  for (const v of Object.values(ATT)) v.light = rgb(mixRGB(hexRGB(v.c), [255, 255, 255], 0.55));

  function attStyle(a) {
    if (a.state === 'cancelled') return ATT[a.kind] || ATT.cancelled;
    return ATT[a.state] || ATT.cancelled;
  }

  const ROW = 18;
  const LANE = 12;     // one attempt's lane within its node's row
  const MAX_LANES = 32; // a node with more attempts at once shares lanes
  const AXIS = 26;
  const TL_LIMIT = 2000;
  const TL = {
    data: null,        // the last Timeline
    nodes: [],         // rows, sorted
    rowOf: new Map(),  // node → row
    byRow: [],         // row → intervals
    t0: 0, t1: 0,      // the window shown, Unix ms
    fit: true,         // showing the whole experiment
    follow: true,      // the window's end follows now
    skew: 0,           // server clock − ours
    seq: 0,
    labelW: 120,
    drag: null,
    started: false,
  };

  function tlNow() { return Date.now() + TL.skew; }
  function tlX(t, W) { return TL.labelW + ((t - TL.t0) / (TL.t1 - TL.t0)) * (W - TL.labelW - 8); }
  function tlT(x, W) { return TL.t0 + ((x - TL.labelW) / (W - TL.labelW - 8)) * (TL.t1 - TL.t0); }

  function tlShow() {
    tlLegend();
    if (!TL.started) { TL.started = true; tlLoad(); } else if (stale('timeline') && (TL.follow || TL.fit)) tlLoad(); else tlDraw();
    tlButtons();
  }

  function tlLegend() {
    const lg = $('timeline-legend');
    if (lg.childElementCount) return;
    for (const v of Object.values(ATT)) lg.append(el('span', null, el('span', { class: 'sw sw-' + v.label.replace(/\W+/g, '-') }), v.label));
    lg.append(el('span', null, el('span', { class: 'sw sw-dup' }), 'duplicate (outlined)'));
    lg.append(el('span', null, el('span', { class: 'sw sw-staging' }), 'staging (lighter ends)'));
    // Swatch colours come from the same table the canvas uses.
    const sws = lg.querySelectorAll('.sw');
    Object.values(ATT).forEach((v, i) => { sws[i].style.background = v.c; });
    sws[sws.length - 2].style.background = '#ffffff';
    sws[sws.length - 2].style.outline = '2px solid #1d2530';
    sws[sws.length - 2].style.outlineOffset = '-2px';
    sws[sws.length - 1].style.background = 'linear-gradient(90deg, ' + ATT.ok.light + ' 30%, ' + ATT.ok.c + ' 30%)';
  }

  /** tlWindowNow moves a following window to end now. */
  function tlWindowNow() {
    const live = !(S.ov && S.ov.finished);
    if (TL.fit && TL.data) {
      // A finished experiment fits its attempts: the window ends with the
      // last of them, not now.
      let last = TL.data.from + 1000;
      for (const a of TL.data.attempts) last = Math.max(last, a.end || tlNow());
      const end = live ? Math.max(TL.data.to, tlNow()) : TL.data.attempts.length ? last : Math.max(TL.data.to, last);
      TL.t0 = TL.data.from;
      TL.t1 = end + (end - TL.t0) * 0.02 + 500;
    } else if (TL.follow && live) {
      const w = TL.t1 - TL.t0;
      TL.t1 = tlNow() + w * 0.02;
      TL.t0 = TL.t1 - w;
    }
  }

  async function tlLoad() {
    markLoaded('timeline');
    const seq = ++TL.seq;
    let q;
    if (TL.fit) q = 'limit=' + TL_LIMIT;
    else q = 'from=' + Math.max(1, Math.floor(TL.t0)) + '&to=' + Math.ceil(TL.t1) + '&limit=' + TL_LIMIT;
    const d = await api('/api/timeline?' + q);
    if (!d || seq !== TL.seq) return;
    if (d.now) TL.skew = d.now - Date.now();
    d.attempts = d.attempts || [];
    if (TL.fit && !d.from) {
      // An experiment with no attempt yet: a window of the last minute.
      d.from = (d.now || tlNow()) - 60000;
      d.to = d.now || tlNow();
    }
    TL.data = d;
    const names = new Set(TL.fit ? [] : TL.nodes);
    for (const n of d.nodes || []) names.add(n);
    for (const a of d.attempts) names.add(a.node);
    TL.nodes = [...names].sort();
    TL.rowOf = new Map(TL.nodes.map((n, i) => [n, i]));
    TL.byRow = TL.nodes.map(() => []);
    for (const a of d.attempts) TL.byRow[TL.rowOf.get(a.node)].push(a);
    for (const r of TL.byRow) r.sort((a, b) => a.start - b.start);
    tlLanes();
    tlWindowNow();
    const note = d.truncated
      ? 'showing ' + fmtInt(d.attempts.length) + ' of ' + (d.total >= 100000 ? 'more than ' : '') + fmtInt(d.total) + ' attempts: zoom in to see them all'
      : '';
    setText('timeline-note', note);
    tlDraw();
    bump($('view-timeline'));
  }

  const tlLoadSoon = debounce(tlLoad, 250);

  /**
   * tlLanes gives each attempt a lane within its node's row (the first
   * lane free at its start: a node runs several attempts at once), and
   * each row its place and height: as many lanes as it needs at once.
   */
  function tlLanes() {
    TL.rowY = [];
    TL.rowH = [];
    let y = AXIS;
    for (const row of TL.byRow) {
      const ends = [];
      for (const a of row) {
        const end = a.end || Infinity;
        let k = ends.findIndex((e) => e <= a.start);
        if (k < 0) { k = ends.length; ends.push(end); } else ends[k] = end;
        a.lane = k;
      }
      const lanes = Math.max(1, Math.min(ends.length, MAX_LANES));
      if (ends.length > MAX_LANES) for (const a of row) a.lane = a.lane % MAX_LANES;
      TL.rowY.push(y);
      TL.rowH.push(lanes * LANE + 6);
      y += lanes * LANE + 6;
    }
    TL.height = y;
  }

  function tlButtons() {
    $('tl-fit').classList.toggle('on', TL.fit);
    $('tl-follow').classList.toggle('on', TL.follow && !TL.fit);
    $('tl-follow').disabled = !!(S.ov && S.ov.finished);
    setText('tl-window', TL.t1 > TL.t0 ? fmtTime(TL.t0) + ' → ' + fmtTime(TL.t1) + '  (' + fmtDur((TL.t1 - TL.t0) / 1000) + ')' : '');
  }

  const STEPS = [1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 108e5, 216e5, 432e5, 864e5, 1728e5, 6048e5];

  function tlDraw() {
    const cv = $('timeline-canvas');
    const wrap = $('timeline-wrap');
    if (S.view !== 'timeline' || !TL.data) return;
    const W = wrap.clientWidth;
    const H = (TL.nodes.length ? TL.height : AXIS + ROW) + 6;
    const ctx = sizeCanvas(cv, W, H);
    ctx.font = FONT;
    let lw = 60;
    for (const n of TL.nodes) lw = Math.max(lw, ctx.measureText(n).width);
    TL.labelW = Math.min(220, Math.ceil(lw) + 16);
    const x0 = TL.labelW;
    const x1 = W - 8;
    ctx.clearRect(0, 0, W, H);
    // Row stripes and node names.
    for (let r = 0; r < TL.nodes.length; r++) {
      const y = TL.rowY[r];
      if (r % 2 === 0) { ctx.fillStyle = '#f6f8fa'; ctx.fillRect(0, y, W, TL.rowH[r]); }
      ctx.fillStyle = '#1d2530';
      ctx.textBaseline = 'middle';
      ctx.textAlign = 'left';
      ctx.fillText(TL.nodes[r], 8, y + TL.rowH[r] / 2, TL.labelW - 14);
    }
    if (TL.nodes.length === 0) {
      ctx.fillStyle = '#667085';
      ctx.textBaseline = 'middle';
      ctx.fillText('No attempt in this window.', x0 + 10, AXIS + ROW / 2);
    }
    // Time axis.
    const span = TL.t1 - TL.t0;
    const want = span / Math.max(1, (x1 - x0) / 110);
    const step = STEPS.find((s) => s >= want) || STEPS[STEPS.length - 1];
    const tz = new Date(TL.t0).getTimezoneOffset() * 60000;
    const first = Math.ceil((TL.t0 - tz) / step) * step + tz;
    const withDate = span > 864e5 || new Date(TL.t0).getDate() !== new Date(TL.t1).getDate();
    ctx.textAlign = 'center';
    ctx.textBaseline = 'alphabetic';
    for (let t = first; t <= TL.t1; t += step) {
      const x = Math.round(tlX(t, W)) + 0.5;
      if (x < x0) continue;
      ctx.strokeStyle = '#e2e6ec';
      ctx.beginPath(); ctx.moveTo(x, AXIS - 6); ctx.lineTo(x, H); ctx.stroke();
      ctx.fillStyle = '#667085';
      ctx.fillText(fmtClock(t, step < 6e4, withDate), x, AXIS - 10);
    }
    ctx.strokeStyle = '#cdd3db';
    ctx.beginPath(); ctx.moveTo(x0 - 0.5, AXIS - 4); ctx.lineTo(x0 - 0.5, H); ctx.stroke();
    // Bars.
    ctx.save();
    ctx.beginPath(); ctx.rect(x0, AXIS, x1 - x0, H - AXIS); ctx.clip();
    const now = tlNow();
    for (let r = 0; r < TL.byRow.length; r++) {
      const h = LANE - 2;
      for (const a of TL.byRow[r]) {
        const y = TL.rowY[r] + 3 + a.lane * LANE;
        const end = a.end || now;
        if (end < TL.t0 || a.start > TL.t1) continue;
        const bx0 = tlX(a.start, W);
        // A pixel between bars that touch, once they are wide enough.
        const full = Math.max(tlX(end, W), bx0 + 1);
        const bx1 = full - bx0 > 4 ? full - 1 : full;
        const st = attStyle(a);
        ctx.fillStyle = st.c;
        ctx.fillRect(bx0, y, bx1 - bx0, h);
        if (a.staging_in_ms > 0) {
          const sx = Math.min(bx1, tlX(a.start + a.staging_in_ms, W));
          if (sx - bx0 >= 1) { ctx.fillStyle = st.light; ctx.fillRect(bx0, y, sx - bx0, h); }
        }
        if (a.staging_out_ms > 0 && a.end) {
          const sx = Math.max(bx0, tlX(a.end - a.staging_out_ms, W));
          if (bx1 - sx >= 1) { ctx.fillStyle = st.light; ctx.fillRect(sx, y, bx1 - sx, h); }
        }
        if (a.duplicate) {
          ctx.strokeStyle = '#1d2530';
          ctx.lineWidth = 1.5;
          ctx.strokeRect(bx0 + 0.75, y + 0.75, Math.max(0.5, bx1 - bx0 - 1.5), h - 1.5);
          ctx.lineWidth = 1;
        }
      }
    }
    // Now.
    if (!(S.ov && S.ov.finished) && now >= TL.t0 && now <= TL.t1) {
      const x = Math.round(tlX(now, W)) + 0.5;
      ctx.strokeStyle = '#1d2530';
      ctx.setLineDash([3, 3]);
      ctx.beginPath(); ctx.moveTo(x, AXIS); ctx.lineTo(x, H); ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.restore();
    tlButtons();
  }

  function tlHit(x, y) {
    const W = $('timeline-wrap').clientWidth;
    const r = TL.rowY ? TL.rowY.findIndex((ry, i) => y >= ry && y < ry + TL.rowH[i]) : -1;
    if (r < 0 || r >= TL.byRow.length || x < TL.labelW) return null;
    const lane = Math.floor((y - TL.rowY[r] - 3) / LANE);
    const now = tlNow();
    let best = null;
    for (const a of TL.byRow[r]) {
      if (a.lane !== lane) continue;
      const bx0 = tlX(a.start, W);
      const bx1 = Math.max(tlX(a.end || now, W), bx0 + 1);
      if (x >= bx0 - 2 && x <= bx1 + 2) {
        const d = x < bx0 ? bx0 - x : x > bx1 ? x - bx1 : 0;
        if (!best || d < best.d || (d === best.d && a.start > best.a.start)) best = { a, d };
      }
    }
    return best && best.a;
  }

  /** tlZoom scales the window by f around time t. */
  function tlZoom(f, t) {
    const span = TL.t1 - TL.t0;
    let ns = Math.max(1000, Math.min(span * f, 20 * 365 * 864e5));
    f = ns / span;
    TL.t0 = t - (t - TL.t0) * f;
    TL.t1 = t + (TL.t1 - t) * f;
    tlMoved();
  }

  /** tlMoved follows a window the viewer moved: it follows now when its end is past now. */
  function tlMoved() {
    TL.fit = false;
    TL.follow = !(S.ov && S.ov.finished) && TL.t1 >= tlNow();
    tlDraw();
    tlLoadSoon();
  }

  function tlInit() {
    const cv = $('timeline-canvas');
    cv.addEventListener('wheel', (e) => {
      if (!TL.data) return;
      e.preventDefault();
      const W = $('timeline-wrap').clientWidth;
      const x = Math.max(TL.labelW, e.offsetX);
      const dy = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
      tlZoom(Math.exp(Math.max(-300, Math.min(300, dy)) * 0.002), tlT(x, W));
    }, { passive: false });
    cv.addEventListener('mousedown', (e) => {
      if (e.button !== 0 || !TL.data) return;
      TL.drag = { x: e.clientX, t0: TL.t0, t1: TL.t1, moved: false };
      cv.classList.add('dragging');
      e.preventDefault();
    });
    window.addEventListener('mousemove', (e) => {
      if (!TL.drag) return;
      const dx = e.clientX - TL.drag.x;
      if (Math.abs(dx) > 3) TL.drag.moved = true;
      if (!TL.drag.moved) return;
      const W = $('timeline-wrap').clientWidth;
      const dt = (-dx / (W - TL.labelW - 8)) * (TL.drag.t1 - TL.drag.t0);
      TL.t0 = TL.drag.t0 + dt;
      TL.t1 = TL.drag.t1 + dt;
      tipHide();
      tlMoved();
    });
    window.addEventListener('mouseup', (e) => {
      if (!TL.drag) return;
      const d = TL.drag;
      TL.drag = null;
      cv.classList.remove('dragging');
      if (!d.moved && e.target === cv) {
        const a = tlHit(e.offsetX, e.offsetY);
        if (a) openJobRoute(a.job);
      }
    });
    cv.addEventListener('mousemove', (e) => {
      if (TL.drag) return;
      const a = tlHit(e.offsetX, e.offsetY);
      cv.style.cursor = a ? 'pointer' : '';
      if (!a) { tipHide(); return; }
      const end = a.end || 0;
      const lines = [
        ['job ' + a.job, 'attempt ' + a.n + ' on ' + a.node],
        ['state', a.state + (a.kind ? ' (' + a.kind + ')' : '') + (a.duplicate ? ', a duplicate' : '')],
        ['started', fmtTime(a.start)],
        ['ended', end ? fmtTime(end) : 'still running'],
        ['wall', fmtDur(((end || tlNow()) - a.start) / 1000)],
      ];
      if (a.staging_in_ms || a.staging_out_ms) lines.push(['staging', 'in ' + fmtDur(a.staging_in_ms / 1000) + ', out ' + fmtDur(a.staging_out_ms / 1000)]);
      tipShow('timeline-tip', e.offsetX, e.offsetY, lines);
    });
    cv.addEventListener('mouseleave', () => { if (!TL.drag) tipHide(); });
    $('tl-zoom-in').addEventListener('click', () => tlZoom(0.5, TL.follow ? TL.t1 : (TL.t0 + TL.t1) / 2));
    $('tl-zoom-out').addEventListener('click', () => tlZoom(2, TL.follow ? TL.t1 : (TL.t0 + TL.t1) / 2));
    $('tl-fit').addEventListener('click', () => { TL.fit = true; TL.follow = true; tlLoad(); tlButtons(); });
    $('tl-follow').addEventListener('click', () => {
      TL.fit = false;
      TL.follow = true;
      tlWindowNow();
      tlDraw();
      tlLoadSoon();
    });
    // A following window slides with the clock, and running bars grow.
    setInterval(() => {
      if (S.view !== 'timeline' || document.hidden || !TL.data || (S.ov && S.ov.finished) || TL.drag) return;
      if (TL.fit || TL.follow) tlWindowNow();
      tlDraw();
    }, 1000);
  }

  // ---------------------------------------------------------------
  // Jobs
  // ---------------------------------------------------------------

  const PAGE = 100;
  const JB = { seq: 0, key: null, q: null, page: null, headFor: null };

  function jobsQuery(params) {
    const q = { state: params.get('state') || '', node: params.get('node') || '', p: {}, sort: params.get('sort') === 'wall' ? 'wall' : 'index',
      order: params.get('order') === 'desc' ? 'desc' : 'asc', offset: Math.max(0, parseInt(params.get('offset') || '0', 10) || 0) };
    for (const [k, v] of params) if (k.startsWith('p.') && v !== '') q.p[k.slice(2)] = v;
    return q;
  }

  function jobsParams(q) {
    const p = new URLSearchParams();
    if (q.state) p.set('state', q.state);
    if (q.node) p.set('node', q.node);
    for (const n of Object.keys(q.p)) if (q.p[n] !== '') p.set('p.' + n, q.p[n]);
    if (q.sort !== 'index') p.set('sort', q.sort);
    if (q.order !== 'asc') p.set('order', q.order);
    if (q.offset) p.set('offset', String(q.offset));
    return p;
  }

  function jobsBuildFilters() {
    if (JB.headFor === S.names) return;
    JB.headFor = S.names;
    const fp = $('filter-params');
    fp.replaceChildren();
    for (const n of S.names) {
      const inp = el('input', { id: 'filter-p-' + n, type: 'text', size: 8, placeholder: 'any', autocomplete: 'off', spellcheck: 'false', data: { param: n } });
      fp.append(el('label', null, n, inp));
    }
    const head = $('jobs-head');
    head.replaceChildren(
      el('th', { class: 'num sortable', data: { sort: 'index' }, title: 'sort by index', text: '#' }),
      el('th', { text: 'state' }),
      ...S.names.map((n) => el('th', { text: n })),
      el('th', { class: 'num', text: 'attempts' }),
      el('th', { text: 'node' }),
      el('th', { class: 'num sortable', data: { sort: 'wall' }, title: 'sort by wall time', text: 'wall' }),
      el('th', { class: 'num', text: 'exit' }));
  }

  function jobsFromInputs() {
    const q = Object.assign({}, JB.q || jobsQuery(new URLSearchParams()));
    q.state = $('filter-state').value;
    q.node = $('filter-node').value.trim();
    q.p = {};
    for (const inp of $('filter-params').querySelectorAll('input')) if (inp.value !== '') q.p[inp.dataset.param] = inp.value;
    q.offset = 0;
    return q;
  }

  function jobsApply(replace) {
    go('jobs', jobsParams(jobsFromInputs()), replace);
  }

  const jobsApplySoon = debounce(() => jobsApply(true), 400);

  function jobsShow(params) {
    jobsBuildFilters();
    const lp = withoutJob(params);
    const q = jobsQuery(lp);
    JB.q = q;
    // The inputs show the route (unless the viewer is typing in one).
    if ($('filter-state').value !== q.state) $('filter-state').value = q.state;
    if (document.activeElement !== $('filter-node')) $('filter-node').value = q.node;
    for (const inp of $('filter-params').querySelectorAll('input')) if (document.activeElement !== inp) inp.value = q.p[inp.dataset.param] || '';
    for (const th of $('jobs-head').querySelectorAll('th[data-sort]')) {
      th.classList.toggle('sorted', th.dataset.sort === q.sort);
      th.classList.toggle('desc', th.dataset.sort === q.sort && q.order === 'desc');
    }
    const key = jobsParams(q).toString();
    if (key !== JB.key || stale('jobs')) { JB.key = key; jobsLoad(); }
  }

  async function jobsLoad() {
    markLoaded('jobs');
    const q = JB.q;
    if (!q) return;
    const seq = ++JB.seq;
    const p = new URLSearchParams();
    if (q.state) p.set('state', q.state);
    if (q.node) p.set('node', q.node);
    for (const n of Object.keys(q.p)) p.set('p.' + n, q.p[n]);
    p.set('sort', q.sort);
    p.set('order', q.order);
    p.set('offset', String(q.offset));
    p.set('limit', String(PAGE));
    const d = await api('/api/jobs?' + p.toString());
    if (!d || seq !== JB.seq) return;
    JB.page = d;
    jobsRender(d);
  }

  function jobsRender(d) {
    const jobs = d.jobs || [];
    const tb = el('tbody');
    const open = JP.index;
    for (const j of jobs) {
      const tr = el('tr', { data: { index: j.index }, class: (j.state === 'failed' ? 'row-failed' : '') + (j.index === open ? ' selected' : '') },
        el('td', { class: 'num', text: String(j.index) }),
        el('td', null, stateBadge(j.state)));
      for (const n of S.names) tr.append(el('td', { class: 'mono', text: j.values && n in j.values ? j.values[n] : '' }));
      tr.append(el('td', { class: 'num', text: fmtInt(j.attempts) }),
        el('td', { class: 'mono', text: j.node || '' }),
        el('td', { class: 'num', text: fmtDur(j.wall_s) }),
        el('td', { class: 'num' + (j.exit ? ' reason' : ''), text: j.exit === null || j.exit === undefined ? '' : String(j.exit) }));
      tb.append(tr);
    }
    $('jobs-table').tBodies[0].replaceWith(tb);
    const off = d.offset || 0;
    const total = d.total || 0;
    if (jobs.length === 0) setText('jobs-range', off > 0 ? 'no jobs past ' + fmtInt(off) + ' of ' + fmtInt(total) : 'no jobs');
    else setText('jobs-range', fmtInt(off + 1) + '–' + fmtInt(off + jobs.length) + ' of ' + (d.total_capped ? 'more than ' : '') + fmtInt(total));
    $('jobs-prev').disabled = off === 0;
    $('jobs-next').disabled = !(off + jobs.length < total || (d.total_capped && jobs.length > 0));
    $('jobs-empty').hidden = jobs.length > 0;
    bump($('view-jobs'));
  }

  function jobsInit() {
    $('filter-state').addEventListener('change', () => jobsApply(false));
    $('filter-node').addEventListener('input', jobsApplySoon);
    $('filter-params').addEventListener('input', jobsApplySoon);
    for (const id of ['filter-node', 'filter-params']) {
      $(id).addEventListener('keydown', (e) => { if (e.key === 'Enter') jobsApply(false); });
    }
    $('filter-clear').addEventListener('click', () => go('jobs', new URLSearchParams(), false));
    $('jobs-head').addEventListener('click', (e) => {
      const th = e.target.closest('th[data-sort]');
      if (!th || !JB.q) return;
      const q = Object.assign({}, JB.q);
      if (q.sort === th.dataset.sort) q.order = q.order === 'asc' ? 'desc' : 'asc';
      else { q.sort = th.dataset.sort; q.order = q.sort === 'wall' ? 'desc' : 'asc'; }
      q.offset = 0;
      go('jobs', jobsParams(q), false);
    });
    const page = (dir) => {
      if (!JB.q) return;
      const q = Object.assign({}, JB.q);
      q.offset = Math.max(0, q.offset + dir * PAGE);
      go('jobs', jobsParams(q), false);
    };
    $('jobs-prev').addEventListener('click', () => page(-1));
    $('jobs-next').addEventListener('click', () => page(1));
    $('jobs-table').addEventListener('click', (e) => {
      const tr = e.target.closest('tbody tr[data-index]');
      if (tr) openJobRoute(Number(tr.dataset.index));
    });
  }

  // ---------------------------------------------------------------
  // The job panel
  // ---------------------------------------------------------------

  const JP = { index: null, detail: null, seq: 0, logSeq: 0, logN: null };

  /** openJobRoute opens a job's panel over the jobs view (or the one shown, when it is the timeline or space). */
  function openJobRoute(index) {
    const view = S.view === 'jobs' || S.view === 'timeline' || S.view === 'space' ? S.view : 'jobs';
    const p = new URLSearchParams(S.params);
    p.set('job', String(index));
    go(view, p, false);
  }

  function openJob(index) {
    const panel = $('job-panel');
    panel.hidden = false;
    if (JP.index === index && JP.detail) return;
    JP.index = index;
    JP.detail = null;
    JP.logN = null;
    panel.dataset.index = String(index);
    setText('job-title', 'Job ' + index);
    $('job-body').replaceChildren(el('p', { class: 'muted', text: 'Loading…' }));
    $('job-log').hidden = true;
    for (const tr of $('jobs-table').querySelectorAll('tr.selected')) tr.classList.remove('selected');
    const tr = $('jobs-table').querySelector('tr[data-index="' + index + '"]');
    if (tr) tr.classList.add('selected');
    jobLoad();
  }

  function closeJobPanel(updateRoute) {
    if (JP.index === null) return;
    JP.index = null;
    JP.detail = null;
    ++JP.seq;
    ++JP.logSeq;
    $('job-panel').hidden = true;
    for (const tr of $('jobs-table').querySelectorAll('tr.selected')) tr.classList.remove('selected');
    if (updateRoute) go(S.view, withoutJob(S.params), false);
  }

  async function jobLoad() {
    const index = JP.index;
    if (index === null) return;
    const seq = ++JP.seq;
    const d = await api('/api/jobs/' + index);
    if (seq !== JP.seq || JP.index !== index) return;
    if (!d) {
      if (!JP.detail) $('job-body').replaceChildren(el('p', { class: 'reason', text: api.status === 404 ? 'No such job (yet).' : 'Could not load this job.' }));
      return;
    }
    JP.detail = d;
    jobRender(d);
  }

  function jobRender(d) {
    setText('job-title', 'Job ' + d.index);
    const body = [];
    const head = el('p', null, stateBadge(d.state));
    if (d.exit !== null && d.exit !== undefined) head.append('  exit ', el('b', { class: d.exit ? 'reason' : '', text: String(d.exit) }));
    head.append('  ', el('a', { href: '#jobs?' + S.names.filter((n) => d.values && n in d.values).map((n) => encodeURIComponent('p.' + n) + '=' + encodeURIComponent(d.values[n])).join('&'), text: 'jobs with these values' }));
    body.push(head);
    const vt = el('table', { class: 'data' }, el('thead', null, el('tr', null, el('th', { text: 'parameter' }), el('th', { text: 'value' }))));
    const vb = el('tbody');
    for (const n of S.names) if (d.values && n in d.values) vb.append(el('tr', null, el('td', { text: n }), el('td', { class: 'mono', text: d.values[n] })));
    for (const n of Object.keys(d.values || {})) if (!S.names.includes(n)) vb.append(el('tr', null, el('td', { text: n }), el('td', { class: 'mono', text: d.values[n] })));
    vt.append(vb);
    body.push(el('div', { class: 'table-wrap' }, vt));
    const atts = d.attempts || [];
    body.push(el('h3', { text: atts.length ? 'Attempts (' + atts.length + ')' : 'No attempt yet' }));
    for (const a of atts.slice().reverse()) {
      const where = a.node + (a.cluster ? ' (' + a.cluster + (a.cluster_node ? ' / ' + a.cluster_node : '') + ')' : '');
      const kv = el('dl', { class: 'kv' });
      const add = (k, v) => kv.append(el('dt', { text: k }), el('dd', { text: v }));
      add('started', fmtTime(a.started));
      add('ended', a.ended ? fmtTime(a.ended) : a.state === 'running' ? 'running' : DASH);
      add('wall', fmtDur(a.wall_s));
      add('CPU', fmtDur(a.cpu_s));
      add('max RSS', a.max_rss ? fmtBytes(a.max_rss) : DASH);
      add('exit', a.exit === null || a.exit === undefined ? (a.signal ? 'signal ' + a.signal : DASH) : String(a.exit) + (a.signal ? ' (signal ' + a.signal + ')' : ''));
      add('staging in', a.staging_in_s ? fmtDur(a.staging_in_s) + ', ' + fmtBytes(a.staged_in) : DASH);
      add('staging out', a.staging_out_s ? fmtDur(a.staging_out_s) + ', ' + fmtBytes(a.staged_out) : DASH);
      add('stdout', fmtBytes(a.stdout_bytes));
      add('stderr', fmtBytes(a.stderr_bytes));
      body.push(el('div', { class: 'attempt' + (a.state === 'failed' ? ' failed' : ''), data: { n: a.n } },
        el('div', { class: 'attempt-head' },
          el('b', { text: '#' + a.n }), stateBadge(a.state), el('span', { class: 'mono grow', text: where }),
          el('button', { type: 'button', id: 'log-btn-' + a.n, class: 'log-btn', data: { n: a.n }, text: 'log' })),
        kv,
        a.error ? el('div', { class: 'error', text: a.error }) : null));
    }
    $('job-body').replaceChildren(...body);
    const panel = $('job-panel');
    bump(panel);
    if (JP.logN !== null) logLoad(JP.logN, true);
  }

  async function logLoad(n, quiet) {
    const index = JP.index;
    if (index === null) return;
    JP.logN = n;
    const seq = ++JP.logSeq;
    if (!quiet) {
      $('job-log').hidden = false;
      setText('log-title', 'Output of attempt ' + n);
      setText('log-stdout', 'Loading…');
      setText('log-stderr', '');
      setText('log-stdout-cut', '');
      setText('log-stderr-cut', '');
    }
    const d = await api('/api/jobs/' + index + '/attempts/' + n + '/log');
    if (seq !== JP.logSeq || JP.index !== index) return;
    if (!d) { if (!quiet) setText('log-stdout', api.status === 404 ? '(no such attempt)' : '(could not load the output)'); return; }
    $('job-log').hidden = false;
    setText('log-title', 'Output of attempt ' + n);
    setText('log-stdout', d.stdout || '(empty)');
    setText('log-stderr', d.stderr || '(empty)');
    setText('log-stdout-cut', d.stdout_cut ? '(only its last 64 KiB)' : '');
    setText('log-stderr-cut', d.stderr_cut ? '(only its last 64 KiB)' : '');
    bump($('job-log'));
    if (!quiet) $('job-log').scrollIntoView({ block: 'nearest' });
  }

  function jobPanelInit() {
    $('job-panel-close').addEventListener('click', () => closeJobPanel(true));
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && JP.index !== null) closeJobPanel(true); });
    $('job-body').addEventListener('click', (e) => {
      const b = e.target.closest('button.log-btn');
      if (b) logLoad(Number(b.dataset.n), false);
    });
  }

  // ---------------------------------------------------------------
  // Parameter space
  // ---------------------------------------------------------------

  const SP = { seq: 0, key: null, data: null, x: '', y: '', color: 'state', geo: null };
  const STATE_RGB = { failed: hexRGB('#D55E00'), done: hexRGB('#009E73'), running: hexRGB('#0072B2'), pending: hexRGB('#C9CED6') };
  const VIRIDIS = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725'];
  const EXIT_RAMP = ['#f4f1ea', '#f3c58a', '#e69f00', '#d55e00', '#8c2d04'];
  const EMPTY = '#eef0f3';

  function spaceBuildSelects() {
    for (const id of ['space-x', 'space-y']) {
      const s = $(id);
      if (s.options.length === S.names.length) continue;
      s.replaceChildren(...S.names.map((n) => el('option', { value: n, text: n })));
    }
  }

  function spaceShow(params) {
    spaceBuildSelects();
    if (S.names.length === 0) {
      setText('space-jobs', 'The plan has no parameters.');
      return;
    }
    const pick = (v, d) => (v && S.names.includes(v) ? v : d);
    SP.x = pick(params.get('x'), S.names[0]);
    SP.y = pick(params.get('y'), S.names[1] || S.names[0]);
    SP.color = ['state', 'wall', 'exit'].includes(params.get('c')) ? params.get('c') : 'state';
    $('space-x').value = SP.x;
    $('space-y').value = SP.y;
    $('space-color').value = SP.color;
    const key = SP.x + '\u0000' + SP.y;
    if (key !== SP.key || stale('space')) { SP.key = key; spaceLoad(); } else spaceDraw();
  }

  async function spaceLoad() {
    markLoaded('space');
    if (!SP.x) return;
    const seq = ++SP.seq;
    const d = await api('/api/space?x=' + encodeURIComponent(SP.x) + '&y=' + encodeURIComponent(SP.y));
    if (!d || seq !== SP.seq) return;
    d.xs = d.xs || [];
    d.ys = d.ys || [];
    d.cells = d.cells || [];
    SP.data = d;
    setText('space-jobs', fmtInt(d.jobs) + ' jobs generated so far' + (d.x_binned || d.y_binned ? ' · binned axes show ranges' : ''));
    spaceDraw();
    bump($('view-space'));
  }

  /** spaceColour is a cell's fill under the chosen colouring; scale is the wall range. */
  function spaceColour(c, scale) {
    if (!c || c.n === 0) return EMPTY;
    if (SP.color === 'state') {
      const parts = [['failed', c.failed], ['done', c.done], ['running', c.running], ['pending', c.pending]];
      const n = parts.reduce((s, p) => s + p[1], 0);
      if (n === 0) return EMPTY;
      const m = [0, 0, 0];
      for (const [k, v] of parts) for (let i = 0; i < 3; i++) m[i] += (STATE_RGB[k][i] * v) / n;
      return rgb(m);
    }
    const ended = c.done + c.failed;
    if (SP.color === 'wall') {
      if (ended === 0) return EMPTY;
      const t = scale.hi > scale.lo ? (c.wall_mean_s - scale.lo) / (scale.hi - scale.lo) : 0.5;
      return rgb(ramp(VIRIDIS, t));
    }
    if (ended === 0) return EMPTY;
    return rgb(ramp(EXIT_RAMP, c.exit_nonzero / ended));
  }

  function spaceLegend(scale) {
    const lg = $('space-legend');
    const items = [];
    const sw = (color, label) => {
      const s = el('span', { class: 'sw' });
      s.style.background = color;
      return el('span', null, s, label);
    };
    if (SP.color === 'state') {
      items.push(sw('#D55E00', 'failed'), sw('#009E73', 'done'), sw('#0072B2', 'running'), sw('#C9CED6', 'pending'),
        el('span', { text: 'a cell mixes its jobs\u2019 colours' }));
    } else if (SP.color === 'wall') {
      items.push(el('span', { text: 'mean wall time' }), ...rampLegend(VIRIDIS, scale.hi >= scale.lo ? fmtDur(scale.lo) : DASH, scale.hi >= scale.lo ? fmtDur(scale.hi) : DASH));
    } else {
      items.push(el('span', { text: 'ended jobs with a non-zero exit' }), ...rampLegend(EXIT_RAMP, '0%', '100%'));
    }
    items.push(sw(EMPTY, 'no data'));
    lg.replaceChildren(...items);
  }

  function spaceDraw() {
    const d = SP.data;
    if (!d || S.view !== 'space') return;
    const cv = $('space-canvas');
    const wrap = $('space-wrap');
    const nx = Math.max(1, d.xs.length);
    const ny = Math.max(1, d.ys.length);
    const meas = cv.getContext('2d');
    meas.font = FONT;
    const maxW = (list) => list.reduce((m, s) => Math.max(m, meas.measureText(s).width), 0);
    const yLab = Math.min(180, Math.ceil(maxW(d.ys)) + 12);
    const left = yLab + 28;
    const availW = wrap.clientWidth - left - 24;
    const availH = Math.max(240, window.innerHeight * 0.62);
    const cs = Math.max(8, Math.min(56, Math.floor(availW / nx), Math.floor(availH / ny)));
    const xw = Math.ceil(maxW(d.xs));
    const rotate = xw > cs - 6;
    const xLab = rotate ? Math.min(150, Math.ceil(xw * 0.72) + 14) : 20;
    const top = 10;
    const W = Math.max(left + nx * cs + 24, 200);
    const H = top + ny * cs + xLab + 28;
    const ctx = sizeCanvas(cv, W, H);
    ctx.font = FONT;
    ctx.clearRect(0, 0, W, H);
    const cells = new Map();
    for (const c of d.cells) cells.set(c.i + ',' + c.j, c);
    let lo = Infinity;
    let hi = -Infinity;
    for (const c of d.cells) if (c.done + c.failed > 0) { lo = Math.min(lo, c.wall_mean_s); hi = Math.max(hi, c.wall_mean_s); }
    const scale = { lo, hi };
    const gap = cs >= 10 ? 1 : 0;
    for (let i = 0; i < nx; i++) {
      for (let j = 0; j < ny; j++) {
        ctx.fillStyle = spaceColour(cells.get(i + ',' + j), scale);
        ctx.fillRect(left + i * cs, top + (ny - 1 - j) * cs, cs - gap, cs - gap);
      }
    }
    // Axis labels: y upwards from the bottom, x along the bottom.
    ctx.fillStyle = '#1d2530';
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    const yEvery = Math.max(1, Math.ceil(14 / cs));
    for (let j = 0; j < d.ys.length; j += yEvery) ctx.fillText(d.ys[j], left - 6, top + (ny - 1 - j) * cs + cs / 2, yLab);
    const xEvery = rotate ? Math.max(1, Math.ceil(14 / cs)) : 1;
    for (let i = 0; i < d.xs.length; i += xEvery) {
      const x = left + i * cs + cs / 2;
      const y = top + ny * cs + 6;
      if (rotate) {
        ctx.save();
        ctx.translate(x, y);
        ctx.rotate(-Math.PI / 4);
        ctx.textAlign = 'right';
        ctx.fillText(d.xs[i], 0, 0, 200);
        ctx.restore();
      } else {
        ctx.textAlign = 'center';
        ctx.textBaseline = 'top';
        ctx.fillText(d.xs[i], x, y, cs);
        ctx.textBaseline = 'middle';
      }
    }
    ctx.fillStyle = '#667085';
    ctx.font = '600 ' + FONT;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'bottom';
    ctx.fillText(d.x, left + (nx * cs) / 2, H - 4);
    ctx.save();
    ctx.translate(12, top + (ny * cs) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = 'middle';
    ctx.fillText(d.y, 0, 0);
    ctx.restore();
    SP.geo = { left, top, cs, nx, ny, cells };
    spaceLegend(scale);
    const same = d.x === d.y;
    const clickable = same ? !d.x_binned : !(d.x_binned && d.y_binned);
    setText('space-hint', clickable ? 'Click a cell to see its jobs.' : 'Binned cells hold ranges: choose other parameters to open their jobs.');
  }

  function spaceCellAt(x, y) {
    const g = SP.geo;
    if (!g) return null;
    const i = Math.floor((x - g.left) / g.cs);
    const jj = Math.floor((y - g.top) / g.cs);
    if (i < 0 || i >= g.nx || jj < 0 || jj >= g.ny) return null;
    const j = g.ny - 1 - jj;
    return { i, j, c: g.cells.get(i + ',' + j) };
  }

  function spaceInit() {
    const set = () => {
      const p = new URLSearchParams();
      p.set('x', $('space-x').value);
      p.set('y', $('space-y').value);
      if ($('space-color').value !== 'state') p.set('c', $('space-color').value);
      go('space', p, false);
    };
    for (const id of ['space-x', 'space-y', 'space-color']) $(id).addEventListener('change', set);
    const cv = $('space-canvas');
    cv.addEventListener('mousemove', (e) => {
      const h = spaceCellAt(e.offsetX, e.offsetY);
      const d = SP.data;
      if (!h || !d) { tipHide(); cv.style.cursor = ''; return; }
      const c = h.c;
      const lines = [[d.x + ' =', d.xs[h.i]]];
      if (d.y !== d.x) lines.push([d.y + ' =', d.ys[h.j]]);
      if (!c || c.n === 0) lines.push('no jobs generated here yet');
      else {
        lines.push(['jobs', fmtInt(c.n)]);
        lines.push(['done', fmtInt(c.done) + ', failed ' + fmtInt(c.failed) + ', running ' + fmtInt(c.running) + ', pending ' + fmtInt(c.pending)]);
        if (c.done + c.failed > 0) {
          lines.push(['wall', 'mean ' + fmtDur(c.wall_mean_s) + ', max ' + fmtDur(c.wall_max_s)]);
          lines.push(['non-zero exit', fmtInt(c.exit_nonzero) + (c.top_exit !== null && c.top_exit !== undefined ? ' (mostly ' + c.top_exit + ')' : '')]);
        }
      }
      const can = spaceFilter(h) !== null && c && c.n > 0;
      cv.style.cursor = can ? 'pointer' : '';
      tipShow('space-tip', e.offsetX, e.offsetY, lines);
    });
    cv.addEventListener('mouseleave', tipHide);
    cv.addEventListener('click', (e) => {
      const h = spaceCellAt(e.offsetX, e.offsetY);
      if (!h || !h.c || h.c.n === 0) return;
      const p = spaceFilter(h);
      if (p) { tipHide(); go('jobs', p, false); }
    });
  }

  /** spaceFilter is the jobs route for a cell's un-binned values, or null. */
  function spaceFilter(h) {
    const d = SP.data;
    const p = new URLSearchParams();
    if (!d.x_binned) p.set('p.' + d.x, d.xs[h.i]);
    if (!d.y_binned && d.y !== d.x) p.set('p.' + d.y, d.ys[h.j]);
    return [...p.keys()].length ? p : null;
  }

  // ---------------------------------------------------------------
  // Start
  // ---------------------------------------------------------------

  async function start() {
    $('status-close').addEventListener('click', () => { problems.clear(); showProblems(); });
    tlInit();
    jobsInit();
    jobPanelInit();
    spaceInit();
    window.addEventListener('hashchange', route);
    window.addEventListener('resize', debounce(() => {
      if (S.view === 'timeline') tlDraw();
      else if (S.view === 'space') spaceDraw();
    }, 150));
    const got = {};
    const [info, ov] = await Promise.all([api('/api/info'), api('/api/overview', got)]);
    const ovStatus = got.status;
    if (info) {
      S.info = info;
      S.names = info.names || [];
      renderInfo();
    }
    if (ov) onOverview(ov);
    route();
    if (!(ov && ov.finished) && ovStatus !== 404) connect();
  }

  start();
})();
