// The HTML: a clinic summary drawn here as SVG, then the patients, paged and
// drawn on demand by a small script from data embedded as JSON. Embedding
// data rather than 1,000 pre-drawn SVGs keeps a 1,000-patient report near a
// megabyte; only the patient being looked at is ever drawn.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "headachemd/report/report.hpp"

namespace headachemd::report {
namespace {

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

// The page's own script. It builds every element with createElement /
// textContent, never innerHTML, so nothing from the data is parsed as HTML.
constexpr const char* page_script = R"js(
(function () {
  'use strict';
  var SVG = 'http://www.w3.org/2000/svg';
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
  // Every chart of a patient shares these: the same width, label column and
  // time axis (p.x, days since 1970-01-01), so a month lines up across them.
  var W = 960, L = 200, R = 12, AX = 30, DAYS = 31;
  var state = { page: 0, filter: '', shown: -1 };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) { for (var k in attrs) { e.setAttribute(k, attrs[k]); } }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) { e.setAttribute(k, String(attrs[k])); }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function tip(node, text) { node.appendChild(sv('title', {}, text)); return node; }
  function monthLabel(m) { var mm = m % 12 + 1; return Math.floor(m / 12) + '-' + (mm < 10 ? '0' : '') + mm; }
  function dayLabel(d) { return new Date(d * 86400000).toISOString().slice(0, 10); }
  function monthDay(m) { return Math.round(Date.UTC(Math.floor(m / 12), m % 12, 1) / 86400000); }
  function monthOf(d) { var t = new Date(d * 86400000); return t.getUTCFullYear() * 12 + t.getUTCMonth(); }
  function fmt(v) { return String(Math.round(v * 10) / 10); }
  function xScale(p) {
    var d0 = p.x[0], d1 = p.x[1];
    return function (d) { return L + (W - L - R) * (Math.min(Math.max(d, d0), d1) - d0) / (d1 - d0); };
  }
  function chartBox(p, h, label) {
    return sv('svg', { width: W, height: h, viewBox: '0 0 ' + W + ' ' + h, role: 'img', 'aria-label': label,
      'data-x0': p.x[0], 'data-x1': p.x[1] });
  }
  function short(s, n) { return s.length > n ? s.slice(0, n - 1) + '\u2026' : s; }

  // Month lines, a label every quarter, and the as-of line.
  function timeAxis(s, p, top, bottom) {
    var x = xScale(p);
    for (var m = monthOf(p.x[0]); monthDay(m) <= p.x[1]; m++) {
      var xx = x(monthDay(m));
      s.appendChild(sv('line', { x1: xx, x2: xx, y1: top, y2: bottom, 'class': m % 12 === 0 ? 'grid-year' : 'grid' }));
      if (m % 3 === 0 && xx < W - R - 22) {
        s.appendChild(sv('text', { x: xx, y: bottom + 14, 'text-anchor': 'middle', 'class': 'small' }, monthLabel(m)));
      }
    }
    s.appendChild(sv('line', { x1: L, x2: W - R, y1: bottom, y2: bottom, 'class': 'axis' }));
    if (p.dd >= p.x[0] && p.dd <= p.x[1]) {
      var xd = x(p.dd);
      s.appendChild(sv('line', { x1: xd, x2: xd, y1: top, y2: bottom, 'class': 'death' }));
      s.appendChild(sv('text', { x: xd + 2, y: bottom + 26, 'class': 'small' }, '\u2020 ' + dayLabel(p.dd)));
    }
    if (D.asof >= p.x[0] && D.asof <= p.x[1]) {
      var xa = x(D.asof);
      s.appendChild(sv('line', { x1: xa, x2: xa, y1: top, y2: bottom, 'class': 'asof' }));
      s.appendChild(sv('text', { x: xa - 2, y: bottom + 26, 'text-anchor': 'end', 'class': 'small' },
        'as of ' + dayLabel(D.asof)));
    }
  }
  function rowLabel(s, y, title, sub) {
    s.appendChild(sv('text', { x: 4, y: y, 'class': 'label' }, short(title, 30)));
    if (sub) { tip(s.appendChild(sv('text', { x: 4, y: y + 13, 'class': 'small' }, short(sub, 34))), sub); }
  }

  // Acute exposure: one row per class, each against its own ICHD-3
  // threshold, on a 0-31 day scale. Solid: the days the prescriptions
  // account for at least; light: at most; grey: orders of unknown quantity.
  function exposureChart(p) {
    if (!p.e.length) { return el('p', { 'class': 'empty' }, 'No acute prescriptions.'); }
    var rows = [], i;
    for (i = 0; i < p.e.length; i++) { if (rows.indexOf(p.e[i][1]) < 0) { rows.push(p.e[i][1]); } }
    // All classes together (8.2.6) only says something new with two or more.
    if (rows.length <= 2) { rows = rows.filter(function (c) { return D.acute[c] !== 'any'; }); }
    rows.sort(function (a, b) {
      var aa = D.acute[a] === 'any', bb = D.acute[b] === 'any';
      return aa === bb ? (D.acute[a] < D.acute[b] ? -1 : 1) : (aa ? 1 : -1);
    });
    var RH = 66, T = 6, H = T + rows.length * RH + AX;
    var s = chartBox(p, H, 'Acute exposure per month for ' + p.k), x = xScale(p);
    timeAxis(s, p, T, H - AX);
    rows.forEach(function (c, r) {
      var top = T + r * RH + 6, bottom = T + (r + 1) * RH - 4;
      var y = function (v) { return bottom - (bottom - top) * v / DAYS; };
      var color = COLORS[c % COLORS.length], thr = 0, j;
      var name = D.acute[c] === 'any' ? 'all classes (8.2.6)' : D.acute[c];
      rowLabel(s, top + 12, name, D.acute[c] === 'any' ? 'distinct days over the classes' : (p.ad[c] || ''));
      s.appendChild(sv('line', { x1: L, x2: W - R, y1: bottom, y2: bottom, 'class': 'axis' }));
      s.appendChild(sv('text', { x: L - 4, y: bottom, 'text-anchor': 'end', 'class': 'tick' }, '0'));
      s.appendChild(sv('text', { x: L - 4, y: y(DAYS) + 8, 'text-anchor': 'end', 'class': 'tick' }, DAYS + ' d'));
      for (j = 0; j < p.e.length; j++) {
        var e = p.e[j];
        if (e[1] !== c) { continue; }
        if (e[5] > 0) { thr = e[5]; }
        var dim = e[6], mn = Math.min(e[2], dim), mx = Math.min(Math.max(e[3], mn), dim);
        var un = Math.max(0, Math.min(e[4], dim - mx));
        var x0 = x(monthDay(e[0])) + 1, w = Math.max(1, x(monthDay(e[0] + 1)) - x0 - 1);
        var text = monthLabel(e[0]) + ', ' + name + ': at least ' + fmt(mn) + ', at most ' + fmt(mx) + ' of ' + dim +
          ' days' + (un > 0 ? '; ' + fmt(un) + ' more days from ' + e[7] + ' order(s) of unknown quantity' : '') +
          (e[5] > 0 ? ' (ICHD-3 threshold ' + e[5] + ' days)' : ' (no ICHD-3 threshold)');
        if (mx > mn) {
          tip(s.appendChild(sv('rect', { x: x0, y: y(mx), width: w, height: y(mn) - y(mx), fill: color,
            'fill-opacity': 0.3, 'class': 'exp-max', 'data-days': mx, 'data-dim': dim })), text);
        }
        if (mn > 0) {
          tip(s.appendChild(sv('rect', { x: x0, y: y(mn), width: w, height: y(0) - y(mn), fill: color,
            'class': 'exp-min', 'data-days': mn, 'data-dim': dim })), text);
        }
        if (un > 0) {
          tip(s.appendChild(sv('rect', { x: x0, y: y(mx + un), width: w, height: y(mx) - y(mx + un),
            'class': 'exp-unknown', 'data-days': mx + un, 'data-dim': dim })), text);
        }
        if (mx === 0 && un === 0) {
          tip(s.appendChild(sv('rect', { x: x0, y: bottom - 1, width: w, height: 1, fill: color })), text);
        }
      }
      if (thr > 0) {
        s.appendChild(sv('line', { x1: L, x2: W - R, y1: y(thr), y2: y(thr), 'class': 'threshold' }));
        s.appendChild(sv('text', { x: L - 4, y: y(thr) + 4, 'text-anchor': 'end', 'class': 'tick thr' },
          '\u2265' + thr + ' d'));
      }
    });
    return s;
  }

  // Preventive trials on the same time axis, one row per class, labelled
  // with the drugs.
  function trialsChart(p) {
    if (!p.tr.length) { return el('p', { 'class': 'empty' }, 'No preventive trials.'); }
    var rows = [], drugs = {}, i;
    for (i = 0; i < p.tr.length; i++) {
      var c = p.tr[i][0];
      if (rows.indexOf(c) < 0) { rows.push(c); drugs[c] = []; }
      if (p.tr[i][8] && drugs[c].indexOf(p.tr[i][8]) < 0) { drugs[c].push(p.tr[i][8]); }
    }
    var RH = 32, T = 6, H = T + rows.length * RH + AX;
    var s = chartBox(p, H, 'Preventive trials for ' + p.k), x = xScale(p);
    timeAxis(s, p, T, H - AX);
    rows.forEach(function (c, r) { rowLabel(s, T + r * RH + 12, drugs[c].join(', ') || D.prev[c], D.prev[c]); });
    for (i = 0; i < p.tr.length; i++) {
      var t = p.tr[i], r = rows.indexOf(t[0]), top = T + r * RH + 4;
      var what = (t[8] || D.prev[t[0]]) + ' (' + D.prev[t[0]] + '): from ' + dayLabel(t[1]);
      if (t[6]) {
        tip(s.appendChild(sv('path', { d: 'M' + x(t[1]) + ' ' + top + 'l6 10l-6 10l-6 -10z', 'class': 'trial-unknown' })),
          what + ', duration unknown (the supply is not stated)');
        continue;
      }
      var cls = t[5] ? 'trial-intol' : (t[4] ? 'trial-ok' : 'trial-short');
      tip(s.appendChild(sv('rect', { x: x(t[1]), y: top, width: Math.max(2, x(t[2]) - x(t[1])), height: RH - 12,
        'class': cls + (t[3] ? ' ongoing' : '') })),
        what + (t[3] ? ' (ongoing)' : ' to ' + dayLabel(t[2])) + ', ' + ((t[2] - t[1]) / 7).toFixed(1) + ' weeks' +
        (t[4] ? ', adequate' : (t[7] ? ', adequacy unknown' : ', not adequate')) +
        (t[5] ? ', stopped for intolerance' : ''));
    }
    return s;
  }

  // Pain (0-10), MIDAS with its grades and HIT-6 with its impact bands,
  // each with a scale, on the same time axis; preventive starts marked.
  function trendsChart(p) {
    if (!p.o.length) { return el('p', { 'class': 'empty' }, 'No pain, MIDAS or HIT-6 scores.'); }
    var top40 = 40, i;
    for (i = 0; i < p.o.length; i++) { if (p.o[i][0] === 1) { top40 = Math.max(top40, Math.ceil(p.o[i][2] / 10) * 10); } }
    var panels = [
      { k: 0, name: 'Pain (0-10)', lo: 0, hi: 10, ticks: [0, 5, 10], bands: [] },
      { k: 1, name: 'MIDAS', sub: 'grades I-IV', lo: 0, hi: top40, ticks: [0, 11, 21, top40], bands: D.bands.midas },
      { k: 2, name: 'HIT-6', sub: 'impact bands', lo: 36, hi: 78, ticks: [36, 50, 60, 78], bands: D.bands.hit6 }
    ].filter(function (pn) { return p.o.some(function (o) { return o[0] === pn.k; }); });
    var PH = 96, T = 14, H = T + panels.length * PH + AX;
    var s = chartBox(p, H, 'Score trends for ' + p.k), x = xScale(p);
    timeAxis(s, p, T, H - AX);
    panels.forEach(function (pn, r) {
      var top = T + r * PH + 6, bottom = T + (r + 1) * PH - 8;
      var y = function (v) { return bottom - (bottom - top) * (Math.min(Math.max(v, pn.lo), pn.hi) - pn.lo) / (pn.hi - pn.lo); };
      rowLabel(s, top + 12, pn.name, pn.sub);
      pn.bands.forEach(function (b, j) {
        var lo = j === 0 ? pn.lo : b[0] - 0.5, hi = b[1] === null ? pn.hi : b[1] + 0.5;
        s.appendChild(sv('rect', { x: L, y: y(hi), width: W - R - L, height: y(lo) - y(hi), 'class': 'band band' + j,
          'data-band': b[2] }));
        if (y(lo) - y(hi) >= 10) {
          s.appendChild(sv('text', { x: W - R - 3, y: y(hi) + 10, 'text-anchor': 'end', 'class': 'bandlabel' },
            (pn.k === 1 ? 'grade ' : '') + b[2]));
        }
      });
      pn.ticks.forEach(function (v) {
        s.appendChild(sv('line', { x1: L - 3, x2: L, y1: y(v), y2: y(v), 'class': 'axis' }));
        s.appendChild(sv('text', { x: L - 5, y: y(v) + 4, 'text-anchor': 'end', 'class': 'tick' }, v));
      });
      s.appendChild(sv('line', { x1: L, x2: L, y1: top, y2: bottom, 'class': 'axis' }));
      var pts = [], color = COLORS[pn.k];
      for (i = 0; i < p.o.length; i++) {
        if (p.o[i][0] !== pn.k) { continue; }
        var px = x(p.o[i][1]), py = y(p.o[i][2]), band = '';
        pn.bands.forEach(function (b) { if (p.o[i][2] >= b[0] - 0.5 && (b[1] === null || p.o[i][2] <= b[1] + 0.5)) { band = b[2]; } });
        pts.push(px.toFixed(1) + ',' + py.toFixed(1));
        tip(s.appendChild(sv('circle', { cx: px, cy: py, r: 3, fill: color })),
          pn.name + ' ' + dayLabel(p.o[i][1]) + ': ' + p.o[i][2] + (band ? ' (' + (pn.k === 1 ? 'grade ' : '') + band + ')' : ''));
      }
      if (pts.length > 1) {
        s.appendChild(sv('polyline', { points: pts.join(' '), fill: 'none', stroke: color, 'stroke-width': 1.5 }));
      }
    });
    for (i = 0; i < p.tr.length; i++) {
      var t = p.tr[i], xs = x(t[1]);
      s.appendChild(sv('line', { x1: xs, x2: xs, y1: T, y2: H - AX, 'class': 'start-mark' }));
      tip(s.appendChild(sv('text', { x: xs + 2, y: T - 3, 'class': 'small' }, short(t[8] || D.prev[t[0]], 18))),
        (t[8] || D.prev[t[0]]) + ' started ' + dayLabel(t[1]));
    }
    return s;
  }

  // Each preventive start against the scores before it and about 3 and 6
  // months after (what a payer asks for at renewal).
  function responseTable(p) {
    if (!p.rs.length) { return el('p', { 'class': 'empty' }, 'No preventive start with scores before and after it.'); }
    var names = { midas: 'MIDAS', hit6: 'HIT-6', pain_nrs: 'Pain (0-10)' };
    var t = el('table', { 'class': 'response' }), head = el('tr');
    ['Preventive', 'Started', 'Score', 'Baseline', '~3 months (change)', '~6 months (change)'].forEach(function (h) {
      head.appendChild(el('th', {}, h));
    });
    t.appendChild(head);
    p.rs.forEach(function (r) {
      var tr = el('tr');
      var cell = function (v) {
        if (v === null) { return '—'; }
        var d = v - r[3];
        return fmt(v) + ' (' + (d > 0 ? '+' : (d < 0 ? '−' : '±')) + fmt(Math.abs(d)) + ')';
      };
      [r[0], dayLabel(r[1]), names[r[2]] || r[2], fmt(r[3]), cell(r[4]), cell(r[5])].forEach(function (v) {
        tr.appendChild(el('td', {}, v));
      });
      t.appendChild(tr);
    });
    return t;
  }

  function mohNow(p) { return p.mc === 'meets' || p.mc === 'possible'; }
  function matches(p) {
    if (!state.filter) { return true; }
    var f = state.filter.toLowerCase();
    return p.k.toLowerCase().indexOf(f) >= 0 || p.t.toLowerCase().indexOf(f) >= 0 ||
      (f === 'moh' && mohNow(p)) || (f === 'cgrp' && p.cg === 1) || (f === 'flag' && p.f.length > 0) ||
      (f === 'deceased' && p.d === 1);
  }

  function showPatient(idx) {
    var p = D.p[idx], box = document.getElementById('detail');
    state.shown = idx;
    box.replaceChildren();
    box.appendChild(el('h2', {}, 'Patient ' + p.k + (p.d ? ' \u2020 deceased' : '')));
    var dl = el('dl'), rows = [['Headache type', p.t || 'none recorded'], ['Sex, birth year', (p.s || '?') + ', ' + (p.b || '?')]];
    if (p.d) { rows.push(['Deceased', (p.da || 'date not recorded') + ' (not counted in the clinic summary)']); }
    rows.push(['MOH now (window to ' + D.asofText + ')', p.d ? 'not assessed (deceased)' : (p.mc || 'no acute prescriptions or no headache diagnosis')]);
    rows.push(['MOH over the record', p.ms ? p.ms + (p.mw ? ', ' + p.mw : '') + (p.mk ? ' (' + p.mk + ')' : '') : 'none']);
    rows.push(['CGRP candidate', p.cg ? 'yes: ' + p.cr : 'no']);
    rows.push(['Safety flags', p.f.length ? p.f.join('; ') : 'none']);
    rows.push(['Current acute', p.a || 'none'], ['Current preventive', p.v || 'none'],
      ['Last appointment', p.la || 'none'], ['Last successful pull', p.ls || 'never (or ingested)']);
    rows.forEach(function (row) { dl.appendChild(el('dt', {}, row[0])); dl.appendChild(el('dd', {}, row[1])); });
    box.appendChild(dl);
    box.appendChild(el('h3', {}, 'Acute exposure per month (prescribed, not taken), each class against its ICHD-3 threshold'));
    box.appendChild(el('p', { 'class': 'note' }, 'Solid: days the prescriptions account for at least; light: at most ' +
      '(every dose on its own day); grey: orders of unknown quantity. Never more than the month has.'));
    box.appendChild(exposureChart(p));
    box.appendChild(el('h3', {}, 'Preventive trials'));
    box.appendChild(trialsChart(p));
    box.appendChild(el('h3', {}, 'Pain, MIDAS and HIT-6'));
    box.appendChild(trendsChart(p));
    box.appendChild(el('h3', {}, 'Treatment response'));
    box.appendChild(responseTable(p));
    renderList();
  }

  function renderList() {
    var list = [], i;
    for (i = 0; i < D.p.length; i++) { if (matches(D.p[i])) { list.push(i); } }
    var pages = Math.max(1, Math.ceil(list.length / D.page));
    state.page = Math.min(state.page, pages - 1);
    var body = document.getElementById('patient-rows');
    body.replaceChildren();
    list.slice(state.page * D.page, (state.page + 1) * D.page).forEach(function (idx) {
      var p = D.p[idx], tr = el('tr', idx === state.shown ? { 'class': 'current' } : {});
      var b = el('button', { type: 'button' }, p.k);
      b.addEventListener('click', function () { showPatient(idx); });
      var td = el('td'); td.appendChild(b);
      if (p.d) { td.appendChild(el('span', { 'class': 'deceased', title: 'deceased' }, ' \u2020 deceased')); }
      tr.appendChild(td);
      tr.appendChild(el('td', {}, p.t));
      tr.appendChild(el('td', {}, mohNow(p) ? p.mc : ''));
      tr.appendChild(el('td', {}, p.cg ? 'candidate' : ''));
      tr.appendChild(el('td', {}, p.f.length ? String(p.f.length) : ''));
      tr.appendChild(el('td', {}, p.la));
      body.appendChild(tr);
    });
    document.getElementById('page-info').textContent =
      'Page ' + (state.page + 1) + ' of ' + pages + ' (' + list.length + ' patients)';
    document.getElementById('prev').disabled = state.page === 0;
    document.getElementById('next').disabled = state.page >= pages - 1;
    return list;
  }

  document.getElementById('prev').addEventListener('click', function () { state.page--; renderList(); });
  document.getElementById('next').addEventListener('click', function () { state.page++; renderList(); });
  document.getElementById('filter').addEventListener('input', function (ev) {
    state.filter = ev.target.value; state.page = 0; renderList();
  });
  // report.html#patient=KEY opens that patient (a link an analyst can share).
  var wanted = -1, hash = decodeURIComponent(window.location.hash || '');
  if (hash.indexOf('#patient=') === 0) {
    for (var w = 0; w < D.p.length; w++) { if (D.p[w].k === hash.slice(9)) { wanted = w; } }
  }
  var first = renderList();
  if (wanted >= 0) { state.page = Math.floor(wanted / D.page); showPatient(wanted); }
  else if (first.length) { showPatient(first[0]); }
  document.documentElement.setAttribute('data-report-ready', String(D.p.length));
})();
)js";

constexpr const char* page_style = R"css(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:16px;color:#222}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.2em}h3{font-size:1em;margin:1em 0 .3em}
.note{color:#555;font-size:.9em}.tiles{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.tile{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:150px;max-width:230px;flex:1}.tile b{display:block;font-size:1.8em}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:3px 8px;border-bottom:1px solid #eee}
tr.current{background:#eef5ff}button{font:inherit;cursor:pointer}td button{background:none;border:none;color:#1558b0;text-decoration:underline;padding:0}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{color:#555}dd{margin:0}
svg{display:block;max-width:100%;height:auto;margin-bottom:4px}.small{font-size:11px;fill:#444}.label{font-size:12px;font-weight:600;fill:#222}
.tick{font-size:10px;fill:#555}.thr{fill:#d62728}.axis{stroke:#888}.grid{stroke:#eee}.grid-year{stroke:#bbb}
.asof{stroke:#555;stroke-dasharray:2 2}.death{stroke:#222;stroke-width:2}.threshold{stroke:#d62728;stroke-dasharray:4 3}
.exp-unknown{fill:#bbb;fill-opacity:.6}.band{fill:#fff}.band1{fill:#f6f6f6}.band2{fill:#fdf1e1}.band3{fill:#fbe1e1}
.bandlabel{font-size:10px;fill:#888}.start-mark{stroke:#2ca02c;stroke-dasharray:3 3}
.trial-ok{fill:#2ca02c}.trial-short{fill:#bbb}.trial-intol{fill:#ff7f0e}.trial-unknown{fill:#fff;stroke:#555}
.ongoing{stroke:#222;stroke-dasharray:3 2}.deceased{color:#555;font-style:italic}.tile.alert b{color:#b3261e}
.bar{fill:#1f77b4}#js-error{background:#fdd;border:1px solid #d62728;padding:8px}.empty{color:#777;font-style:italic}
.pager{display:flex;gap:10px;align-items:center;margin:8px 0}table.response{width:auto}
)css";

// The first script: any uncaught error marks the page (the Chromium test
// reads that attribute) and shows a banner instead of failing silently.
constexpr const char* error_hook =
    "window.addEventListener('error',function(e){var m=String((e&&e.message)||e);"
    "document.documentElement.setAttribute('data-js-error',m);"
    "var b=document.getElementById('js-error');if(b){b.hidden=false;b.textContent='This report hit a script "
    "error: '+m;}});";

void bar_chart(std::string& h, const std::vector<count>& rows, const char* label) {
    const int W = 520, L = 220, RH = 22;
    const int H = static_cast<int>(rows.size()) * RH + 6;
    std::int64_t top = 1;
    for (const auto& r : rows) top = std::max(top, r.n);
    h += "<svg width=\"" + std::to_string(W) + "\" height=\"" + std::to_string(H) + "\" viewBox=\"0 0 " +
         std::to_string(W) + " " + std::to_string(H) + "\" role=\"img\" aria-label=\"" + html_escape(label) +
         "\">";
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const double y = static_cast<double>(i) * RH + 4;
        const double w = (W - L - 50) * static_cast<double>(rows[i].n) / static_cast<double>(top);
        h += "<text x=\"" + std::to_string(L - 6) + "\" y=\"" + num(y + 13) +
             "\" text-anchor=\"end\" class=\"small\">" + html_escape(rows[i].label) + "</text>";
        h += "<rect class=\"bar\" x=\"" + std::to_string(L) + "\" y=\"" + num(y) + "\" width=\"" +
             num(std::max(1.0, w)) + "\" height=\"" + std::to_string(RH - 6) + "\"/>";
        h += "<text x=\"" + num(L + w + 4) + "\" y=\"" + num(y + 13) + "\" class=\"small\">" +
             std::to_string(rows[i].n) + "</text>";
    }
    h += "</svg>";
}

void tile(std::string& h, const char* id, const std::string& title, std::int64_t n, const std::string& note) {
    h += std::string("<div class=\"tile\" id=\"tile-") + id + "\">" + html_escape(title) + "<b>" +
         std::to_string(n) + "</b><span class=\"note\">" + html_escape(note) + "</span></div>";
}

// The grade and band tables (value ranges, inclusive; -1: no upper end),
// shared by midas_grade/hit6_band and the page script's chart bands.
struct band {
    int lo, hi;
    const char* label;
};
// MIDAS grades: Stewart et al., Neurology 2001;56(6 Suppl 1):S20-8.
constexpr band midas_bands[] = {{0, 5, "I"}, {6, 10, "II"}, {11, 20, "III"}, {21, -1, "IV"}};
// HIT-6 impact: the HIT-6 scoring guide (Kosinski et al., Qual Life Res 2003).
constexpr band hit6_bands[] = {{36, 49, "little or no impact"},
                               {50, 55, "some impact"},
                               {56, 59, "substantial impact"},
                               {60, -1, "severe impact"}};

template <std::size_t N>
std::string_view band_of(const band (&bands)[N], double v) {
    for (const auto& b : bands)
        if (b.hi < 0 || v < b.hi + 1) return b.label;
    return bands[N - 1].label;
}

template <std::size_t N>
std::string bands_json(const band (&bands)[N]) {
    std::string j = "[";
    for (std::size_t i = 0; i < N; ++i)
        j += (i ? ",[" : "[") + std::to_string(bands[i].lo) + "," +
             (bands[i].hi < 0 ? std::string("null") : std::to_string(bands[i].hi)) + "," +
             json_string(bands[i].label) + "]";
    return j + "]";
}

void patient_json(std::string& j, const patient& p) {
    j += "{\"k\":" + json_string(p.key) + ",\"t\":" + json_string(p.headache_type) +
         ",\"s\":" + json_string(p.sex) + ",\"b\":" + std::to_string(p.birth_year) +
         ",\"a\":" + json_string(p.acute_meds) + ",\"v\":" + json_string(p.preventive_meds) +
         ",\"la\":" + json_string(p.last_appointment) + ",\"ls\":" + json_string(p.last_sync) +
         ",\"d\":" + (p.deceased ? "1" : "0") + ",\"da\":" + json_string(p.deceased_at) +
         ",\"dd\":" + std::to_string(p.deceased_day) + ",\"ms\":" + json_string(p.moh_state) +
         ",\"mc\":" + json_string(p.moh_current_state) + ",\"mw\":" + json_string(p.moh_window) +
         ",\"mk\":" + json_string(p.moh_classes) + ",\"cg\":" + (p.cgrp_candidate ? "1" : "0") +
         ",\"cr\":" + json_string(p.cgrp_reason) + ",\"f\":[";
    for (std::size_t i = 0; i < p.safety_flags.size(); ++i)
        j += (i ? "," : "") + json_string(p.safety_flags[i]);
    j += "],\"x\":[" + std::to_string(p.axis_from) + "," + std::to_string(p.axis_to) + "],\"e\":[";
    for (std::size_t i = 0; i < p.exposure.size(); ++i) {
        const auto& e = p.exposure[i];
        j += (i ? ",[" : "[") + std::to_string(e.month) + "," + std::to_string(e.acute_class) + "," +
             num(e.min_days) + "," + num(e.max_days) + "," + num(e.unknown_days) + "," +
             std::to_string(e.threshold_days) + "," + std::to_string(e.days_in_month) + "," +
             std::to_string(e.unknown_prescriptions) + "]";
    }
    j += "],\"ad\":{";
    bool first = true;
    for (const auto& [cls, drugs] : p.acute_drugs) {
        j += (first ? "\"" : ",\"") + std::to_string(cls) + "\":" + json_string(drugs);
        first = false;
    }
    j += "},\"tr\":[";
    for (std::size_t i = 0; i < p.trials.size(); ++i) {
        const auto& t = p.trials[i];
        j += (i ? ",[" : "[") + std::to_string(t.drug_class) + "," + std::to_string(t.start) + "," +
             std::to_string(t.end) + "," + (t.ongoing ? "1" : "0") + "," + (t.adequate ? "1" : "0") + "," +
             (t.intolerance ? "1" : "0") + "," + (t.duration_unknown ? "1" : "0") + "," +
             (t.adequacy_unknown ? "1" : "0") + "," + json_string(t.drugs) + "]";
    }
    j += "],\"rs\":[";
    const auto value = [](double v) { return std::isfinite(v) ? num(v) : std::string("null"); };
    for (std::size_t i = 0; i < p.responses.size(); ++i) {
        const auto& r = p.responses[i];
        j += (i ? ",[" : "[") + json_string(r.drugs) + "," + std::to_string(r.start) + "," +
             json_string(r.instrument) + "," + value(r.baseline) + "," + value(r.month3) + "," +
             value(r.month6) + "]";
    }
    j += "],\"o\":[";
    for (std::size_t i = 0; i < p.scores.size(); ++i) {
        const auto& s = p.scores[i];
        j += (i ? ",[" : "[") + std::to_string(s.instrument) + "," + std::to_string(s.day) + "," +
             (std::isfinite(s.value) ? num(s.value) : std::string("0")) + "]";
    }
    j += "]}";
}

std::string names_json(const std::vector<std::string>& names) {
    std::string j = "[";
    for (std::size_t i = 0; i < names.size(); ++i) j += (i ? "," : "") + json_string(names[i]);
    return j + "]";
}

}  // namespace

std::string json_string(std::string_view s) {
    std::string out = "\"";
    static constexpr char hex[] = "0123456789abcdef";
    auto u = [&](unsigned v) {
        out += "\\u00";
        out += hex[(v >> 4) & 0xF];
        out += hex[v & 0xF];
    };
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '"') {
            out += "\\\"";
        } else if (c == '\\') {
            out += "\\\\";
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x7F) {
            u(c);
        } else if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
                   (static_cast<unsigned char>(s[i + 2]) == 0xA8 ||
                    static_cast<unsigned char>(s[i + 2]) == 0xA9)) {
            // U+2028 / U+2029: valid in JSON, line terminators in older JavaScript.
            out += static_cast<unsigned char>(s[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
            i += 2;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string_view midas_grade(double score) { return band_of(midas_bands, score); }
std::string_view hit6_band(double score) { return band_of(hit6_bands, score); }

std::string render_html(const report_data& data, const options& opts) {
    const auto& c = data.clinic;
    std::string h;
    h.reserve(4096 + data.patients.size() * 1200);
    h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
         // Nothing may load from anywhere: the report is one file, read offline.
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src "
         "'unsafe-inline'; "
         "style-src 'unsafe-inline'\">"
         "<title>HeadacheMD clinic report</title><script>";
    h += error_hook;
    h += "</script><style>";
    h += page_style;
    h += "</style></head><body>\n<div id=\"js-error\" hidden></div>\n<h1>HeadacheMD clinic report</h1>\n";
    h += "<p class=\"note\" id=\"data-range\">Clinical records from " +
         html_escape(c.data_from.empty() ? "none" : c.data_from) + " to " +
         html_escape(c.data_to.empty() ? "none" : c.data_to) + "; as of " + html_escape(c.as_of) +
         " (the date the views treat as today); generated " + html_escape(opts.generated_at) +
         ". Patients appear by pseudonymous key only. Medication figures are prescribed exposure, not "
         "use.</p>\n";

    h += "<h2>Clinic summary</h2><div class=\"tiles\">";
    tile(h, "patients", "Patients", c.patients,
         c.deceased_patients > 0
             ? "living; " + std::to_string(c.deceased_patients) + " deceased, listed but not counted"
             : std::string("living"));
    const std::string window = "in the window that ends " + c.as_of;
    tile(h, "moh-meets", "MOH: meets now", c.moh_meets,
         window +
             ": the fewest days the prescriptions allow reach the ICHD-3 threshold for more than 3 months");
    tile(h, "moh-possible", "MOH: possible now", c.moh_possible,
         window + ": only the most days reach it" +
             (c.moh_indeterminate > 0
                  ? "; " + std::to_string(c.moh_indeterminate) + " more indeterminate (quantities unknown)"
                  : std::string()));
    tile(
        h, "cgrp", "CGRP candidates", c.cgrp_candidates,
        "migraine, not on a CGRP preventive, and chronic migraine, disability or MOH (AHS 2024: first-line)");
    tile(h, "safety", "Safety flags", c.safety_flag_patients, "patients with at least one flag");
    h += "</div>\n<h3>Patients by headache type (most specific diagnosis)</h3>";
    bar_chart(h, c.by_headache_type, "Patients by headache type");
    h += "\n<h3>Safety flags (patients per flag)</h3>";
    if (c.safety_flags.empty())
        h += "<p class=\"empty\">No safety flags.</p>";
    else
        bar_chart(h, c.safety_flags, "Safety flags");
    h += "\n<h3>Sync freshness (patient and resource type)</h3>";
    if (c.freshness.empty()) {
        h += "<p class=\"empty\">No sync status: the data was loaded with ingest, or nothing was synced "
             "yet.</p>";
    } else {
        bar_chart(h, c.freshness, "Sync freshness");
    }
    h += "<p class=\"note\">Newest successful pull: " +
         html_escape(c.newest_pull.empty() ? "none" : c.newest_pull) +
         "; oldest: " + html_escape(c.oldest_pull.empty() ? "none" : c.oldest_pull) + ".</p>\n";

    h += "<h2>Patients</h2><div class=\"pager\"><button type=\"button\" id=\"prev\">Previous</button>"
         "<span id=\"page-info\"></span><button type=\"button\" id=\"next\">Next</button>"
         "<label>Filter <input id=\"filter\" type=\"search\" placeholder=\"key, type, moh, "
         "cgrp, flag, deceased\"></label></div>"
         "<table><thead><tr><th>Patient key</th><th>Headache type</th><th>MOH now</th><th>CGRP</th>"
         "<th>Safety flags</th><th>Last appointment</th></tr></thead><tbody "
         "id=\"patient-rows\"></tbody></table>\n"
         "<section id=\"detail\"></section>\n";

    const int as_of_day = day_number(c.as_of);
    h += "<script type=\"application/json\" id=\"report-data\">{\"asof\":" + std::to_string(as_of_day) +
         ",\"asofText\":" + json_string(c.as_of) +
         ",\"page\":" + std::to_string(std::max(1, opts.page_size)) +
         ",\"bands\":{\"midas\":" + bands_json(midas_bands) + ",\"hit6\":" + bands_json(hit6_bands) +
         "},\"acute\":" + names_json(data.acute_classes) +
         ",\"prev\":" + names_json(data.preventive_classes) + ",\"p\":[";
    for (std::size_t i = 0; i < data.patients.size(); ++i) {
        if (i) h += ",\n";
        patient_json(h, data.patients[i]);
    }
    h += "]}</script>\n<script>";
    h += page_script;
    h += "</script>\n</body></html>\n";
    return h;
}

}  // namespace headachemd::report
