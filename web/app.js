// TrackLab System Monitor dashboard: one page for an agent (its node) and for a coordinator (its
// nodes, and one node's view through it with ?node=ID). Plain JavaScript, no build step; charts
// with uPlot (vendor/uplot). Reads /api/health (which server this is), /api/system/info,
// /api/system/ws (live), /api/system/history (back-fill; charts start empty without it), and on a
// coordinator /api/cluster/info and /api/cluster/history. With a read token, asks for it once and
// keeps it in sessionStorage (this tab only); sends it as `Authorization: Bearer` and, on the
// WebSocket, as the `bearer.<base64url>` subprotocol (never in a URL).
'use strict';

(() => {
  const TOKEN_KEY = 'system_monitor.token';
  const WS_PROTOCOL = 'tracklab.metrics.v1';
  const RANGES = [['15m', 15 * 60e3], ['1h', 3600e3], ['24h', 86400e3], ['7d', 7 * 86400e3]];
  const RANGE_KEY = 'system_monitor.range';
  const MAX_CORE_SERIES = 64; // past this, per-core lines are left out of the CPU chart (the grid stays)
  const ROW = 30; // px, the node list's row height (matches .nrow in app.css)
  const CLUSTER_INFO_EVERY_MS = 2000;
  const FRAME_BUDGET = 0.25; // the most of its time the page spends on WebSocket frames

  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------------------------------------
  // DOM and formatting helpers

  /** h('div', {class: 'x'}, child, 'text') */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

  function fmtPct(v) {
    v = num(v);
    return v === null ? '–' : `${v.toFixed(1)} %`;
  }
  function fmtBytes(v) {
    v = num(v);
    if (v === null) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
  }
  const fmtRate = (v) => (num(v) === null ? '–' : `${fmtBytes(v)}/s`);
  const fmtNum = (v, digits = 0, unit = '') => (num(v) === null ? '–' : `${v.toFixed(digits)}${unit}`);
  function fmtAge(s) {
    s = num(s);
    if (s === null) return '–';
    if (s < 60) return `${s.toFixed(1)} s`;
    if (s < 3600) return `${(s / 60).toFixed(1)} min`;
    if (s < 86400) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} d`;
  }
  /** The value at a dotted path (`cpu.cores.3.usage`), as the history API names fields. */
  function pick(obj, path) {
    let v = obj;
    for (const part of path.split('.')) {
      if (v === null || v === undefined) return null;
      v = v[part];
    }
    return v === undefined ? null : v;
  }
  /** The next of 1, 2, 2.5, 5 × 10^k at or above `v` (a chart's top). */
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    return [1, 2, 2.5, 5, 10].map((m) => m * p).find((x) => x >= v);
  }
  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }
  function barClass(p) {
    return p >= 90 ? 'bad' : p >= 75 ? 'warn' : '';
  }

  // ---------------------------------------------------------------------------------------------
  // API access with the read token

  // What the page has done, for bench/dashboard_scale.py and tests/python/test_dashboard.py:
  // WebSocket frames (applied, skipped, their cost and size), sockets opened, history answers.
  const stats = { frames: 0, skipped: 0, lastFrameMs: 0, maxFrameMs: 0, totalFrameMs: 0, lastFrameBytes: 0, sockets: 0, historyAnswers: 0 };
  window.dashboardStats = stats;

  let tokenPrompt = null;
  const token = () => sessionStorage.getItem(TOKEN_KEY);

  /** Shows the token dialog once, however many requests were refused at the same time. */
  function askToken(refused) {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise((resolve) => {
      const dialog = $('token-dialog');
      $('token-why').textContent = refused
        ? 'The token was refused. Enter the read token (--auth-token-file); it is kept in this tab only.'
        : 'This monitor needs its read token (--auth-token-file). It is kept in this tab only.';
      const form = $('token-form');
      const done = (event) => {
        event.preventDefault();
        const value = $('token-input').value.trim();
        if (!value) return;
        sessionStorage.setItem(TOKEN_KEY, value);
        form.removeEventListener('submit', done);
        dialog.close();
        $('forget-token').hidden = false;
        tokenPrompt = null;
        resolve();
      };
      form.addEventListener('submit', done);
      // Escape would close the dialog with nothing to read the API with: it stays open.
      dialog.addEventListener('cancel', (event) => event.preventDefault(), { once: true });
      dialog.showModal();
      $('token-input').focus();
    });
    return tokenPrompt;
  }

  /** GET `path`: the Response, after asking for the token as often as it is refused. */
  async function api(path) {
    for (;;) {
      const headers = { Accept: 'application/json' };
      const t = token();
      if (t) headers.Authorization = `Bearer ${t}`;
      const response = await fetch(path, { headers, cache: 'no-store' });
      if (response.status !== 401) return response;
      if (t) sessionStorage.removeItem(TOKEN_KEY);
      await askToken(Boolean(t));
    }
  }

  async function apiJson(path) {
    const response = await api(path);
    if (!response.ok) {
      let detail = '';
      try { detail = (await response.json()).error || ''; } catch (_) { /* not JSON */ }
      const error = new Error(`${path}: ${response.status} ${detail}`);
      error.status = response.status;
      // Without the path: a history question's runs to hundreds of characters (its fields).
      error.summary = `${response.status}${detail ? ` ${detail}` : ''}`;
      throw error;
    }
    return response.json();
  }

  function wsProtocols() {
    const t = token();
    if (!t) return [WS_PROTOCOL];
    const b64 = btoa(t).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    return [WS_PROTOCOL, `bearer.${b64}`];
  }

  /**
   * A WebSocket to `path` that reconnects (backing off to 10 s) and hands each parsed frame to
   * `onFrame`. Before reconnecting it GETs `probe`, so that a refused token is asked for again
   * (a refused upgrade looks like any closed socket). Reports its state in the header.
   */
  function liveSocket(path, probe, onFrame) {
    let delay = 500;
    let socket = null;
    let restUntil = 0;
    const conn = $('conn');
    const open = () => {
      const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
      socket = new WebSocket(url, wsProtocols());
      stats.sockets += 1;
      socket.onopen = () => {
        delay = 500;
        conn.textContent = 'live';
        conn.className = 'conn live';
      };
      socket.onmessage = (event) => {
        const started = performance.now();
        // A frame can be large (a node's full element, or the headlines of a thousand nodes).
        // Frames that come before the page has rested (FRAME_BUDGET) are skipped, so the page
        // stays responsive and shows each update it can afford, the newest.
        if (started < restUntil) {
          stats.skipped += 1;
          return;
        }
        let frame;
        try { frame = JSON.parse(event.data); } catch (_) { return; }
        if (Array.isArray(frame)) onFrame(frame);
        // What a frame costs this page (parse and update), for bench/dashboard_scale.py.
        const took = performance.now() - started;
        restUntil = started + took / FRAME_BUDGET;
        stats.frames += 1;
        stats.lastFrameMs = took;
        stats.maxFrameMs = Math.max(stats.maxFrameMs, took);
        stats.totalFrameMs += took;
        stats.lastFrameBytes = event.data.length;
      };
      socket.onclose = () => {
        conn.textContent = 'reconnecting…';
        conn.className = 'conn down';
        setTimeout(async () => {
          try { await api(probe); } catch (_) { /* still down: try again later */ }
          open();
        }, delay);
        delay = Math.min(delay * 2, 10000);
      };
    };
    open();
    return { close: () => socket && socket.close() };
  }

  // ---------------------------------------------------------------------------------------------
  // Charts (uPlot) with history back-fill

  function currentRange() {
    const saved = sessionStorage.getItem(RANGE_KEY);
    return RANGES.find(([name]) => name === saved) || RANGES[0];
  }

  /** The range buttons; `onChange(ms)` when one is chosen. */
  function rangeSwitch(onChange) {
    const box = $('ranges');
    box.replaceChildren();
    const [active] = currentRange();
    for (const [name, ms] of RANGES) {
      box.append(h('button', {
        type: 'button', 'aria-pressed': String(name === active), 'data-range': name,
        onclick: () => {
          sessionStorage.setItem(RANGE_KEY, name);
          for (const b of box.children) b.setAttribute('aria-pressed', String(b.dataset.range === name));
          onChange(ms);
        },
      }, name));
    }
  }

  /**
   * A time chart: `series` are {label, field (history path), get(element|point) → number,
   * color, scale, width}. `fmt` formats the axis values of each scale.
   */
  class Chart {
    constructor(parent, id, title, series, scales) {
      this.series = series;
      this.box = h('div', { class: 'chart', id: `chart-${id}`, 'data-points': '0' }, h('h3', { text: title }));
      this.plotBox = h('div', { class: 'plot' });
      this.box.append(this.plotBox);
      parent.append(this.box);
      this.data = [[], ...series.map(() => [])];
      this.stepMs = 0;
      const axisColor = css('--muted');
      const grid = { stroke: css('--grid'), width: 1 };
      const axes = [{ stroke: axisColor, grid, ticks: grid }];
      const scaleNames = [...new Set(series.map((s) => s.scale))];
      scaleNames.forEach((name, i) => {
        const spec = scales[name] || {};
        axes.push({
          scale: name, stroke: axisColor, grid: i === 0 ? grid : { show: false }, ticks: grid,
          side: i === 0 ? 3 : 1, size: 76,
          values: (u, vals) => vals.map((v) => (spec.fmt ? spec.fmt(v) : v)),
        });
      });
      const uScales = { x: { time: true } };
      for (const name of scaleNames) {
        const spec = scales[name] || {};
        uScales[name] = spec.range ? { range: spec.range } : { range: (u, min, max) => [Math.min(0, min ?? 0), niceCeil(Math.max((max ?? 0) * 1.1, spec.min ?? 1))] };
      }
      const opts = {
        width: 400, height: 200, scales: uScales, axes,
        legend: { show: series.length <= 8 },
        cursor: { drag: { x: false, y: false } },
        series: [{}, ...series.map((s) => ({
          label: s.label, stroke: s.color, width: s.width || 1.5, scale: s.scale,
          value: (u, v) => (v === null || v === undefined ? '–' : (scales[s.scale]?.fmt || String)(v)),
          points: { show: false }, spanGaps: false,
        }))],
      };
      this.plot = new uPlot(opts, this.data, this.plotBox);
      new ResizeObserver(() => {
        const width = Math.max(200, this.plotBox.clientWidth);
        if (width !== this.plot.width) this.plot.setSize({ width, height: 200 });
      }).observe(this.plotBox);
    }

    /** Replaces the data with a history answer (`{timestamps, series, step_ms}`). */
    fill(answer, getSeries) {
      const ts = answer.timestamps.map((t) => t / 1000);
      this.data = [ts, ...this.series.map((s) => {
        const values = getSeries(s.field);
        return ts.map((_, i) => (values && values[i] !== null && values[i] !== undefined ? Number(values[i]) : null));
      })];
      this.stepMs = answer.step_ms || 0;
      this.redraw();
    }

    clear() {
      this.data = [[], ...this.series.map(() => [])];
      this.stepMs = 0;
      this.redraw();
    }

    /** Appends one live point at `tsMs` (skipped when older than the last, or closer than a step). */
    push(tsMs, source, windowMs) {
      const xs = this.data[0];
      const t = tsMs / 1000;
      const last = xs.length ? xs[xs.length - 1] : -Infinity;
      if (t <= last || (this.stepMs > 1000 && (t - last) * 1000 < this.stepMs)) return;
      xs.push(t);
      this.series.forEach((s, i) => this.data[i + 1].push(num(s.get(source))));
      const cutoff = (tsMs - windowMs) / 1000;
      let drop = 0;
      while (drop < xs.length && xs[drop] < cutoff) drop++;
      if (drop) this.data = this.data.map((a) => a.slice(drop));
      this.redraw();
    }

    redraw() {
      this.plot.setData(this.data);
      // What the chart holds, for checks against the API: its points and the first one's time (ms).
      this.box.dataset.points = String(this.data[0].length);
      this.box.dataset.first = this.data[0].length ? String(Math.round(this.data[0][0] * 1000)) : '';
    }
  }

  /**
   * The history back-fill of a view's `charts` from `path` (a history endpoint): each call of the
   * function it returns asks for the last `windowMs` and fills the charts with the answer (or,
   * without history, clears them and says why in `note`). Answers can come back out of order (a
   * week's takes longer than a quarter hour's): one that comes after a newer call's question is
   * dropped, and that call resolves to false.
   */
  function historyFiller(path, fields, charts, note) {
    let asked = 0;
    return async (windowMs) => {
      const mine = ++asked;
      const to = Date.now();
      const sep = path.includes('?') ? '&' : '?';
      const query = `from=${to - windowMs}&to=${to}&fields=${encodeURIComponent(fields.join(','))}`;
      let answer = null;
      let failure = null;
      try {
        const answers = await apiJson(`${path}${sep}${query}`);
        answer = Array.isArray(answers) ? answers[0] : answers;
        if (!answer || !Array.isArray(answer.timestamps)) throw new Error('no history in the answer');
      } catch (error) {
        failure = error;
      }
      stats.historyAnswers += 1;
      if (mine !== asked) return false;
      if (failure) {
        for (const chart of charts) chart.clear();
        note.hidden = false;
        note.textContent = failure.status === 404
          ? 'No history on this server: the charts fill from live data.'
          : `History unavailable (${failure.summary || failure.message}): the charts fill from live data.`;
      } else {
        for (const chart of charts) chart.fill(answer, (field) => answer.series?.[field]);
        note.hidden = true;
      }
      return true;
    };
  }

  const pctScale = { range: [0, 100], fmt: (v) => `${v} %` };
  const bytesScale = { fmt: fmtBytes, min: 1024 };
  const rateScale = { fmt: fmtBytes, min: 1024 }; // the charts' titles say "per second"

  // ---------------------------------------------------------------------------------------------
  // Agent view: one node

  async function nodeView(nodeId, onCoordinator) {
    const q = nodeId ? `?node_id=${encodeURIComponent(nodeId)}` : '';
    const main = $('main');
    if (onCoordinator) {
      $('crumbs').replaceChildren(h('a', { href: '/' }, 'cluster'), ' / ', h('span', { id: 'crumb-node' }, nodeId));
    }
    const infoPromise = apiJson(`/api/system/info${q}`).catch((error) => ({ error: error.message }));
    const first = await apiJson(`/api/system/metrics${q}`);
    const element = first[0];
    const info = await infoPromise;
    document.title = `${element.node_id} · System Monitor`;
    if (!onCoordinator) $('crumbs').textContent = element.node_id;

    const cores = (element.cpu?.cores || []).length;
    const accels = element.accelerators || [];
    const tiles = h('div', { class: 'tiles', id: 'tiles' });
    const coreGrid = h('div', { class: 'cores', id: 'cores' });
    const charts = h('div', { class: 'charts', id: 'charts' });
    const historyNote = h('div', { class: 'note', id: 'history-note', hidden: true });
    const tables = h('div', { id: 'tables' });
    main.replaceChildren(
      identity(info, element, onCoordinator),
      h('section', {}, h('h2', {}, 'Now ', h('span', { class: 'muted', id: 'sample-age' })), tiles),
      h('section', {}, h('h2', {}, `CPU cores `, h('span', { class: 'muted', text: `(${cores})` })), coreGrid),
      h('section', {}, h('h2', { text: 'History' }), historyNote, charts),
      tables,
    );

    // Tiles: each value keeps the number it shows in data-raw (for checks against the API).
    const tileMap = new Map();
    const tile = (id, label) => {
      const value = h('div', { class: 'value', 'data-raw': '' });
      const sub = h('div', { class: 'sub' });
      const bar = h('i');
      const el = h('div', { class: 'tile', id: `tile-${id}` }, h('div', { class: 'label', text: label }), value, sub, h('div', { class: 'bar' }, bar));
      tiles.append(el);
      tileMap.set(id, { value, sub, bar });
    };
    const setTile = (id, raw, text, sub, pct) => {
      const t = tileMap.get(id);
      if (!t) return;
      t.value.textContent = text;
      t.value.dataset.raw = raw === null || raw === undefined ? '' : String(raw);
      t.sub.textContent = sub;
      const p = num(pct);
      t.bar.style.width = `${p === null ? 0 : Math.min(100, Math.max(0, p))}%`;
      t.bar.className = p === null ? '' : barClass(p);
    };
    tile('cpu', 'CPU');
    tile('memory', 'Memory');
    tile('swap', 'Swap');
    tile('disk', 'Disk');
    tile('diskio', 'Disk I/O');
    tile('network', 'Network');
    accels.forEach((a, i) => tile(`accel-${i}`, `${(a.type || 'accel').toUpperCase()} ${a.index ?? i} · ${a.name || a.id}`));

    const coreCells = [];
    for (let i = 0; i < cores; i++) {
      const text = h('span');
      const bar = h('i');
      coreGrid.append(h('div', { class: 'core', id: `core-${i}` }, text, h('div', { class: 'bar' }, bar)));
      coreCells.push({ text, bar });
    }

    // Charts.
    const palette = ['--c1', '--c2', '--c3', '--c4', '--c5', '--c6'].map(css);
    const coreColor = css('--muted');
    const cpuSeries = [{ label: 'overall', field: 'cpu.overall', get: (e) => e.cpu?.overall, color: palette[0], scale: '%', width: 2 }];
    if (cores <= MAX_CORE_SERIES) {
      for (let i = 0; i < cores; i++) {
        cpuSeries.push({ label: `cpu${i}`, field: `cpu.cores.${i}.usage`, get: (e) => e.cpu?.cores?.[i]?.usage, color: coreColor, scale: '%', width: 0.6 });
      }
    }
    const chartList = [
      new Chart(charts, 'cpu', cores <= MAX_CORE_SERIES ? 'CPU: overall and per core (%)' : 'CPU: overall (%)', cpuSeries, { '%': pctScale }),
      new Chart(charts, 'memory', 'Memory and swap (%)', [
        { label: 'memory', field: 'memory.usage', get: (e) => e.memory?.usage, color: palette[0], scale: '%' },
        { label: 'swap', field: 'memory.swap.percentage', get: (e) => e.memory?.swap?.percentage, color: palette[1], scale: '%' },
      ], { '%': pctScale }),
      new Chart(charts, 'disk', 'Disk I/O (per second)', [
        { label: 'read', field: 'disk.ioRead', get: (e) => e.disk?.ioRead, color: palette[2], scale: 'B/s' },
        { label: 'write', field: 'disk.ioWrite', get: (e) => e.disk?.ioWrite, color: palette[1], scale: 'B/s' },
      ], { 'B/s': rateScale }),
      new Chart(charts, 'network', 'Network (per second)', [
        { label: 'in', field: 'network.bytesIn', get: (e) => e.network?.bytesIn, color: palette[0], scale: 'B/s' },
        { label: 'out', field: 'network.bytesOut', get: (e) => e.network?.bytesOut, color: palette[3], scale: 'B/s' },
      ], { 'B/s': rateScale }),
    ];
    accels.forEach((a, i) => {
      const p = `accelerators.${i}`;
      const name = `${(a.type || 'accel').toUpperCase()} ${a.index ?? i}`;
      chartList.push(new Chart(charts, `accel-${i}-use`, `${name}: utilization and memory (%)`, [
        { label: 'utilization', field: `${p}.utilization`, get: (e) => e.accelerators?.[i]?.utilization, color: palette[2], scale: '%' },
        { label: 'memory', field: `${p}.memory.percentage`, get: (e) => e.accelerators?.[i]?.memory?.percentage, color: palette[0], scale: '%' },
      ], { '%': pctScale }));
      chartList.push(new Chart(charts, `accel-${i}-heat`, `${name}: temperature and power`, [
        { label: 'temperature', field: `${p}.temperature`, get: (e) => e.accelerators?.[i]?.temperature, color: palette[4], scale: '°C' },
        { label: 'power', field: `${p}.power`, get: (e) => e.accelerators?.[i]?.power, color: palette[1], scale: 'W' },
      ], { '°C': { fmt: (v) => `${v} °C`, min: 50 }, W: { fmt: (v) => `${v} W`, min: 50 } }));
    });
    const fields = chartList.flatMap((c) => c.series.map((s) => s.field));

    let windowMs = currentRange()[1];
    let latest = element;
    const backfill = historyFiller(`/api/system/history${q}`, fields, chartList, historyNote);
    const refill = async () => {
      if (!(await backfill(windowMs))) return;
      // The newest sample may be newer than the history's last point.
      for (const c of chartList) c.push(latest.timestamp, latest, windowMs);
    };
    rangeSwitch((ms) => { windowMs = ms; refill(); });

    const update = (e) => {
      latest = e;
      const cpu = e.cpu || {};
      const mem = e.memory || {};
      const swap = mem.swap || {};
      const disk = e.disk || {};
      const net = e.network || {};
      setTile('cpu', cpu.overall, fmtPct(cpu.overall),
        `load ${(cpu.loadAverage || []).map((l) => fmtNum(l, 2)).join(' ')} · ${fmtNum(cpu.processes)} procs · ${fmtNum(cpu.threads)} threads`, cpu.overall);
      setTile('memory', mem.usage, fmtPct(mem.usage), `${fmtBytes(mem.used)} of ${fmtBytes(mem.total)}`, mem.usage);
      setTile('swap', swap.percentage, fmtPct(swap.percentage), `${fmtBytes(swap.used)} of ${fmtBytes(swap.total)}`, swap.percentage);
      setTile('disk', disk.usage, fmtPct(disk.usage), `${fmtBytes(disk.used)} of ${fmtBytes(disk.total)}`, disk.usage);
      setTile('diskio', disk.ioRead, `${fmtRate(disk.ioRead)}`, `read · write ${fmtRate(disk.ioWrite)} · ${fmtNum(disk.iops, 0)} IOPS`, null);
      setTile('network', net.bytesIn, `${fmtRate(net.bytesIn)}`, `in · out ${fmtRate(net.bytesOut)} · ${fmtNum(net.connections)} conns`, null);
      (e.accelerators || []).forEach((a, i) => {
        const m = a.memory || {};
        setTile(`accel-${i}`, a.utilization, fmtPct(a.utilization),
          `mem ${fmtBytes(m.used)} of ${fmtBytes(m.total)} · ${fmtNum(a.temperature, 0, ' °C')} · ${fmtNum(a.power, 0, ' W')}`, a.utilization);
      });
      (cpu.cores || []).forEach((c, i) => {
        const cell = coreCells[i];
        if (!cell) return;
        cell.text.textContent = `${i}: ${fmtNum(c.usage, 0)}%`;
        cell.bar.style.width = `${Math.min(100, num(c.usage) || 0)}%`;
        cell.bar.className = barClass(num(c.usage) || 0);
      });
      const age = num(e.dataAgeSeconds);
      $('sample-age').textContent = `sample ${new Date(e.timestamp).toLocaleTimeString()}`
        + (e.status ? ` · ${e.status}` : '') + (age !== null ? ` · data age ${fmtAge(age)}` : '');
      const status = $('node-status');
      if (status && e.status) {
        status.textContent = e.status;
        status.className = `v status ${e.status}`;
      }
      renderTables(tables, e);
      for (const c of chartList) c.push(e.timestamp, e, windowMs);
    };
    update(element);
    refill();
    liveSocket(`/api/system/ws${q}`, `/api/system/metrics${q}`, (frame) => {
      const e = nodeId ? frame.find((x) => x.node_id === nodeId) : frame[0];
      if (e) update(e);
    });
  }

  function identity(info, element, onCoordinator) {
    const field = (k, v, id) => h('div', {}, h('div', { class: 'k', text: k }), h('div', { class: 'v', id, text: v ?? '–' }));
    const accels = (info.accelerators && info.accelerators.length)
      ? info.accelerators.map((a) => a.name || a.id).join(', ')
      : (info.gpu_info && info.gpu_info.length ? info.gpu_info.join(', ') : 'none');
    const box = h('section', { class: 'identity', id: 'identity' },
      field('node id', element.node_id, 'node-id'),
      field('host', info.hostname || element.hostname, 'node-host'),
      field('OS', [info.os_version || info.platform, info.kernel].filter(Boolean).join(' · ') || null, 'node-os'),
      field('CPU', info.cpu_model ? `${info.cpu_model} (${info.cpu_cores} cores, ${info.cpu_threads} threads)` : null, 'node-cpu'),
      field('memory', fmtBytes(info.memory_total ?? element.memory?.total), 'node-memory'),
      field('accelerators', accels, 'node-accels'),
      field('address', info.ip_address, 'node-ip'),
      field('version', info.version, 'node-version'),
    );
    if (onCoordinator) box.append(field('status', element.status, 'node-status'));
    if (info.error) box.append(field('info', `not available (${info.error})`));
    return box;
  }

  function renderTables(parent, e) {
    const table = (id, title, head, rows) => h('section', { id },
      h('h2', { text: title }),
      h('table', {}, h('thead', {}, h('tr', {}, head.map(([t, n]) => h('th', { class: n ? 'num' : '', text: t })))),
        h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c, i) => h('td', { class: head[i][1] ? 'num' : '', text: c })))))));
    const out = [];
    if ((e.filesystems || []).length) {
      out.push(table('filesystems', 'Filesystems', [['mount'], ['device'], ['type'], ['used', 1], ['size', 1], ['usage', 1], ['state']],
        e.filesystems.map((f) => [f.mountpoint, f.device, f.fstype, fmtBytes(f.used), fmtBytes(f.size), fmtPct(f.usage), f.state || ''])));
    }
    if ((e.disks || []).length) {
      out.push(table('disks', 'Disks', [['device'], ['read', 1], ['write', 1], ['IOPS', 1], ['busy', 1]],
        e.disks.map((d) => [d.device, fmtRate(d.ioRead), fmtRate(d.ioWrite), fmtNum(d.iops, 1), fmtPct(d.utilization)])));
    }
    if ((e.interfaces || []).length) {
      out.push(table('interfaces', 'Network interfaces', [['interface'], ['in', 1], ['out', 1], ['packets in/s', 1], ['packets out/s', 1]],
        e.interfaces.map((n) => [n.name, fmtRate(n.bytesIn), fmtRate(n.bytesOut), fmtNum(n.packetsIn, 1), fmtNum(n.packetsOut, 1)])));
    }
    parent.replaceChildren(...out);
  }

  // ---------------------------------------------------------------------------------------------
  // Coordinator view: every node

  const COLUMNS = [
    ['status', 'status', (r) => r.statusRank],
    ['node', 'node', (r) => r.id],
    ['host', 'host', (r) => r.host],
    ['cpu', 'CPU', (r) => r.cpu],
    ['memory', 'memory', (r) => r.mem],
    ['disk', 'disk', (r) => r.disk],
    ['network', 'net in / out', (r) => r.net],
    ['accels', 'accelerators', (r) => r.accelUtil],
    ['age', 'data age', (r) => r.age],
  ];
  const STATUS_RANK = { offline: 0, degraded: 1, online: 2 };

  /** A row of the node list from a metrics element (with status and dataAgeSeconds). */
  /** A row of the node list from a headline element (`/api/system/ws?view=headline`). */
  function nodeRow(e) {
    const g = e.acceleratorSummary || {};
    const count = num(g.count) || 0;
    const util = num(g.utilization);
    const temp = num(g.temperatureMax);
    return {
      id: e.node_id,
      host: e.hostname || '',
      status: e.status || 'online',
      statusRank: STATUS_RANK[e.status] ?? 3,
      age: num(e.dataAgeSeconds),
      cpu: num(e.cpu?.overall),
      mem: num(e.memory?.usage),
      memUsed: e.memory?.used,
      memTotal: e.memory?.total,
      disk: num(e.disk?.usage),
      netIn: num(e.network?.bytesIn),
      netOut: num(e.network?.bytesOut),
      net: (num(e.network?.bytesIn) || 0) + (num(e.network?.bytesOut) || 0),
      accels: count,
      accelUtil: util,
      accelText: count ? `${count}× ${fmtPct(util)}` + (temp !== null ? ` · ${fmtNum(temp, 0, ' °C')}` : '') : '–',
      search: `${e.node_id} ${e.hostname || ''} ${e.status || ''} ${(g.names || []).join(' ')}`.toLowerCase(),
    };
  }

  /** A row for a node the cluster info lists without data (never answered yet). */
  function pendingRow(n) {
    return {
      id: n.id || n.name, host: n.hostname || n.url || '', status: n.status, statusRank: STATUS_RANK[n.status] ?? 3,
      age: num(n.dataAgeSeconds), cpu: null, mem: null, disk: null, netIn: null, netOut: null, net: null,
      accels: 0, accelUtil: null, accelText: '–', pending: true,
      search: `${n.id || n.name} ${n.hostname || ''} ${n.url || ''} ${n.status}`.toLowerCase(),
    };
  }

  async function clusterView() {
    $('crumbs').textContent = 'cluster';
    document.title = 'Cluster · System Monitor';
    const main = $('main');
    const totals = h('div', { class: 'tiles', id: 'totals' });
    const charts = h('div', { class: 'charts', id: 'cluster-charts' });
    const historyNote = h('div', { class: 'note', hidden: true, id: 'history-note' });
    const filter = h('input', { type: 'search', id: 'filter', placeholder: 'filter: node, host, status, accelerator', value: params.get('q') || '' });
    const statusFilter = h('select', { id: 'status-filter' },
      h('option', { value: '' }, 'all statuses'), h('option', { value: 'online' }, 'online'),
      h('option', { value: 'degraded' }, 'degraded'), h('option', { value: 'offline' }, 'offline'));
    const count = h('span', { class: 'muted', id: 'node-count' });
    const head = h('div', { class: 'nrow nhead', id: 'nodes-head' });
    const body = h('div', { class: 'nbody', id: 'nodes-body' });
    const spacer = h('div', { id: 'nodes-spacer' });
    body.append(spacer);
    main.replaceChildren(
      h('section', {}, h('h2', { text: 'Cluster' }), totals),
      h('section', {}, h('h2', { text: 'History' }), historyNote, charts),
      h('section', {}, h('h2', { text: 'Nodes' }), h('div', { class: 'toolbar' }, filter, statusFilter, count),
        h('div', { class: 'nodes' }, head, body)),
    );

    const tileEls = new Map();
    const tile = (id, label) => {
      const value = h('div', { class: 'value', 'data-raw': '' });
      const sub = h('div', { class: 'sub' });
      const bar = h('i');
      totals.append(h('div', { class: 'tile', id: `tile-${id}` }, h('div', { class: 'label', text: label }), value, sub, h('div', { class: 'bar' }, bar)));
      tileEls.set(id, { value, sub, bar });
    };
    const setTile = (id, raw, text, sub, pct, good) => {
      const t = tileEls.get(id);
      t.value.textContent = text;
      t.value.dataset.raw = raw === null || raw === undefined ? '' : String(raw);
      t.sub.textContent = sub;
      t.bar.style.width = `${Math.min(100, num(pct) || 0)}%`;
      // A full bar is a busy cluster, except for nodes online, where it is a healthy one.
      t.bar.className = good ? 'ok' : barClass(num(pct) || 0);
    };
    tile('nodes', 'Nodes');
    tile('cpu', 'CPU (busy cores)');
    tile('memory', 'Memory');
    tile('accels', 'Accelerators (busy)');

    const palette = ['--c1', '--c2', '--c3', '--c4', '--c5'].map(css);
    const chartList = [
      new Chart(charts, 'cluster-cpu', 'CPU (cores)', [
        { label: 'busy', field: 'usedResources.cpu', get: (c) => c.usedResources?.cpu, color: palette[0], scale: 'n' },
        { label: 'total', field: 'totalResources.cpu', get: (c) => c.totalResources?.cpu, color: palette[3], scale: 'n' },
      ], { n: { fmt: (v) => String(v) } }),
      new Chart(charts, 'cluster-memory', 'Memory', [
        { label: 'used', field: 'usedResources.memory', get: (c) => c.usedResources?.memory, color: palette[0], scale: 'B' },
        { label: 'total', field: 'totalResources.memory', get: (c) => c.totalResources?.memory, color: palette[3], scale: 'B' },
      ], { B: bytesScale }),
      new Chart(charts, 'cluster-nodes', 'Nodes by status', [
        { label: 'online', field: 'agents.online', get: (c) => c.agents?.online, color: css('--ok'), scale: 'n' },
        { label: 'degraded', field: 'agents.degraded', get: (c) => c.agents?.degraded, color: css('--warn'), scale: 'n' },
        { label: 'offline', field: 'agents.offline', get: (c) => c.agents?.offline, color: css('--bad'), scale: 'n' },
      ], { n: { fmt: (v) => String(v) } }),
    ];
    const fields = chartList.flatMap((c) => c.series.map((s) => s.field));
    let windowMs = currentRange()[1];
    let lastPoint = null;
    const backfill = historyFiller('/api/cluster/history', fields, chartList, historyNote);
    const refill = async () => {
      if (!(await backfill(windowMs))) return;
      if (lastPoint) for (const c of chartList) c.push(lastPoint.t, lastPoint, windowMs);
    };
    rangeSwitch((ms) => { windowMs = ms; refill(); });

    // The node list: rows by id, from the WebSocket's elements and the cluster info's pending nodes.
    const rows = new Map();
    let pending = [];
    let sortKey = sessionStorage.getItem('system_monitor.sort') || 'status';
    let sortDir = Number(sessionStorage.getItem('system_monitor.sortDir') || 1);
    let view = [];
    const headCells = COLUMNS.map(([key, label]) => h('span', {
      'data-key': key, class: ['cpu', 'memory', 'disk', 'age'].includes(key) ? 'num' : '',
      onclick: () => {
        if (sortKey === key) sortDir = -sortDir; else { sortKey = key; sortDir = 1; }
        sessionStorage.setItem('system_monitor.sort', sortKey);
        sessionStorage.setItem('system_monitor.sortDir', String(sortDir));
        refresh();
      },
    }, label));
    head.append(...headCells);

    const pool = [];
    const cellsOf = (row) => row._cells;
    const makeRow = () => {
      const cells = COLUMNS.map(([key]) => h('span', { class: ['cpu', 'memory', 'disk', 'age'].includes(key) ? `num c-${key}` : `c-${key}` }));
      const el = h('div', { class: 'nrow', role: 'link' }, cells);
      el._cells = cells;
      el.addEventListener('click', () => {
        if (el.dataset.node) location.href = `/?node=${encodeURIComponent(el.dataset.node)}`;
      });
      body.append(el);
      return el;
    };

    function refresh() {
      const text = filter.value.trim().toLowerCase();
      const wanted = statusFilter.value;
      const all = [...rows.values(), ...pending.filter((p) => !rows.has(p.id))];
      const [, , key] = COLUMNS.find(([k]) => k === sortKey) || COLUMNS[0];
      view = all.filter((r) => (!wanted || r.status === wanted) && (!text || r.search.includes(text)));
      view.sort((a, b) => {
        const x = key(a);
        const y = key(b);
        if (x === y) return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * sortDir;
      });
      for (const cell of headCells) {
        cell.setAttribute('aria-sort', cell.dataset.key === sortKey ? (sortDir > 0 ? 'ascending' : 'descending') : 'none');
      }
      count.textContent = `${view.length} of ${all.length} nodes`;
      spacer.style.height = `${view.length * ROW}px`;
      paint();
    }

    /** Draws only the rows in view (and a few around): 1,000 nodes cost what 30 do. */
    function paint() {
      const first = Math.max(0, Math.floor(body.scrollTop / ROW) - 5);
      const last = Math.min(view.length, Math.ceil((body.scrollTop + body.clientHeight) / ROW) + 5);
      while (pool.length < last - first) pool.push(makeRow());
      pool.forEach((el, slot) => {
        const r = view[first + slot];
        if (!r) { el.hidden = true; el.dataset.node = ''; el.removeAttribute('id'); return; }
        el.hidden = false;
        el.style.transform = `translateY(${(first + slot) * ROW}px)`;
        el.dataset.node = r.id;
        el.id = `node-${r.id}`;
        const c = cellsOf(el);
        c[0].textContent = r.status;
        c[0].className = `c-status status ${r.status}`;
        c[1].textContent = r.id;
        c[2].textContent = r.host;
        c[3].textContent = fmtPct(r.cpu);
        c[3].dataset.raw = r.cpu ?? '';
        c[4].textContent = r.memTotal ? `${fmtPct(r.mem)} of ${fmtBytes(r.memTotal)}` : fmtPct(r.mem);
        c[4].dataset.raw = r.mem ?? '';
        c[5].textContent = fmtPct(r.disk);
        c[6].textContent = r.netIn === null ? '–' : `${fmtRate(r.netIn)} / ${fmtRate(r.netOut)}`;
        c[7].textContent = r.accelText;
        c[8].textContent = fmtAge(r.age);
        c[8].dataset.raw = r.age ?? '';
      });
    }
    let painting = false;
    body.addEventListener('scroll', () => {
      if (painting) return;
      painting = true;
      requestAnimationFrame(() => { painting = false; paint(); });
    });
    filter.addEventListener('input', refresh);
    statusFilter.addEventListener('change', refresh);
    window.addEventListener('resize', paint);

    const updateTotals = (info) => {
      const counts = { online: 0, degraded: 0, offline: 0 };
      for (const n of info.nodes || []) if (n.status in counts) counts[n.status]++;
      const total = info.totalResources || {};
      const used = info.usedResources || {};
      const n = (info.nodes || []).length;
      setTile('nodes', n, String(n), `${counts.online} online · ${counts.degraded} degraded · ${counts.offline} offline`, n ? (100 * counts.online) / n : 0, true);
      setTile('cpu', used.cpu, `${fmtNum(used.cpu, 1)} / ${fmtNum(total.cpu)}`, `${fmtPct(total.cpu ? (100 * used.cpu) / total.cpu : null)} of the CPUs of nodes not offline`, total.cpu ? (100 * used.cpu) / total.cpu : 0);
      setTile('memory', used.memory, `${fmtBytes(used.memory)}`, `of ${fmtBytes(total.memory)}`, total.memory ? (100 * used.memory) / total.memory : 0);
      setTile('accels', used.accelerators, `${fmtNum(used.accelerators)} / ${fmtNum(total.accelerators)}`, 'busy / total', total.accelerators ? (100 * used.accelerators) / total.accelerators : 0);
      pending = (info.nodes || []).filter((x) => !x.id || !rows.has(x.id)).map(pendingRow);
      // Nodes dropped from the cluster (registration lapsed) leave the list.
      const known = new Set((info.nodes || []).map((x) => x.id).filter(Boolean));
      for (const id of rows.keys()) if (!known.has(id)) rows.delete(id);
      lastPoint = { t: Date.now(), totalResources: total, usedResources: used, agents: counts };
      for (const c of chartList) c.push(lastPoint.t, lastPoint, windowMs);
      refresh();
    };
    let infoAt = 0;
    let infoBusy = false;
    const pollInfo = async () => {
      if (infoBusy) return;
      infoBusy = true;
      infoAt = Date.now();
      try { updateTotals(await apiJson('/api/cluster/info')); } catch (_) { /* kept as it was; retried next frame */ }
      infoBusy = false;
    };
    await pollInfo();
    refill();
    refresh();
    // One connection for the whole cluster: every node's headline after each poll round (about
    // 0.5 KB a node; the full elements are 9–18 KB each, and only a node's own view needs them).
    liveSocket('/api/system/ws?view=headline', '/api/cluster/info', (frame) => {
      for (const e of frame) if (e && e.node_id) rows.set(e.node_id, nodeRow(e));
      refresh();
      if (Date.now() - infoAt >= CLUSTER_INFO_EVERY_MS) pollInfo();
    });
    // A cluster whose every node is gone sends nothing new: keep the totals moving anyway.
    setInterval(() => { if (Date.now() - infoAt >= 5000) pollInfo(); }, 5000);
  }

  // ---------------------------------------------------------------------------------------------

  async function start() {
    $('forget-token').hidden = !token();
    $('forget-token').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });
    try {
      const health = await fetch('/api/health', { cache: 'no-store' }).then((r) => r.json());
      const coordinator = health.role === 'coordinator';
      $('foot-text').textContent = `system_monitor ${health.version || ''}${coordinator ? ' · coordinator' : ''}`;
      const node = params.get('node');
      if (coordinator && !node) await clusterView();
      else await nodeView(node, coordinator);
    } catch (error) {
      $('main').replaceChildren(h('p', { class: 'note', id: 'fatal' }, `Cannot load the dashboard: ${error.message}`));
    }
  }
  document.addEventListener('DOMContentLoaded', start);
})();
