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
  function dayYear(d) { return new Date(d * 86400000).getUTCFullYear(); }
  function yearStart(y) { return Math.round(Date.UTC(y, 0, 1) / 86400000); }
  function svgBox(w, h, label) {
    return sv('svg', { width: w, height: h, viewBox: '0 0 ' + w + ' ' + h, role: 'img', 'aria-label': label });
  }

  // Acute exposure per month, stacked by class, against the ICHD-3 lines.
  function exposureChart(p) {
    if (!p.e.length) { return el('p', { 'class': 'empty' }, 'No acute prescriptions with a known supply.'); }
    var m0 = p.e[0][0], m1 = p.e[0][0], i;
    for (i = 0; i < p.e.length; i++) { m0 = Math.min(m0, p.e[i][0]); m1 = Math.max(m1, p.e[i][0]); }
    var n = m1 - m0 + 1, W = 760, H = 220, L = 40, R = 10, T = 10, B = 40;
    var stack = {}, top = Math.max(31, D.t15 + 2);
    for (i = 0; i < p.e.length; i++) {
      stack[p.e[i][0]] = (stack[p.e[i][0]] || 0) + p.e[i][2];
      top = Math.max(top, stack[p.e[i][0]]);
    }
    var bw = (W - L - R) / n;
    var y = function (v) { return T + (H - T - B) * (1 - v / top); };
    var s = svgBox(W, H, 'Acute exposure per month for ' + p.k);
    for (i = 0; i < p.r.length; i++) {
      var a = Math.max(p.r[i][0], m0), b = Math.min(p.r[i][1], m1);
      if (b >= a) {
        tip(s.appendChild(sv('rect', { x: L + (a - m0) * bw, y: T, width: (b - a + 1) * bw, height: H - T - B,
          'class': 'moh-band' })), 'MOH risk ' + monthLabel(p.r[i][0]) + ' to ' + monthLabel(p.r[i][1]));
      }
    }
    var base = {};
    for (i = 0; i < p.e.length; i++) {
      var m = p.e[i][0], c = p.e[i][1], d = p.e[i][2], b0 = base[m] || 0;
      tip(s.appendChild(sv('rect', { x: L + (m - m0) * bw + 1, y: y(b0 + d), width: Math.max(1, bw - 2),
        height: y(b0) - y(b0 + d), fill: COLORS[c % COLORS.length] })),
        monthLabel(m) + ': ' + D.acute[c] + ' ' + d + ' days');
      base[m] = b0 + d;
    }
    [[D.t10, 'threshold'], [D.t15, 'threshold15']].forEach(function (t) {
      s.appendChild(sv('line', { x1: L, x2: W - R, y1: y(t[0]), y2: y(t[0]), 'class': t[1] }));
      s.appendChild(sv('text', { x: W - R - 2, y: y(t[0]) - 3, 'text-anchor': 'end', 'class': 'small' },
        t[0] + ' days'));
    });
    s.appendChild(sv('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, 'class': 'axis' }));
    for (var v = 0; v <= top; v += (top > 60 ? 20 : 10)) {
      s.appendChild(sv('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', 'class': 'small' }, v));
    }
    var step = Math.max(1, Math.ceil(n / 12));
    for (i = 0; i < n; i += step) {
      s.appendChild(sv('text', { x: L + i * bw + bw / 2, y: H - B + 14, 'text-anchor': 'middle', 'class': 'small' },
        monthLabel(m0 + i)));
    }
    var used = {}, lx = L;
    for (i = 0; i < p.e.length; i++) { used[p.e[i][1]] = true; }
    Object.keys(used).forEach(function (k) {
      var c = Number(k);
      s.appendChild(sv('rect', { x: lx, y: H - 14, width: 10, height: 10, fill: COLORS[c % COLORS.length] }));
      s.appendChild(sv('text', { x: lx + 14, y: H - 5, 'class': 'small' }, D.acute[c]));
      lx += 24 + D.acute[c].length * 6.5;
    });
    return s;
  }

  function timeAxis(s, d0, d1, x, yAt) {
    for (var yr = dayYear(d0) + 1; yearStart(yr) <= d1; yr++) {
      var xx = x(yearStart(yr));
      s.appendChild(sv('line', { x1: xx, x2: xx, y1: 0, y2: yAt, 'class': 'grid' }));
      s.appendChild(sv('text', { x: xx, y: yAt + 14, 'text-anchor': 'middle', 'class': 'small' }, yr));
    }
  }

  // Preventive trials as bars on a time axis, one row per class.
  function trialsChart(p) {
    if (!p.tr.length) { return el('p', { 'class': 'empty' }, 'No preventive trials.'); }
    var rows = [], d0 = p.tr[0][1], d1 = p.tr[0][2], i;
    for (i = 0; i < p.tr.length; i++) {
      if (rows.indexOf(p.tr[i][0]) < 0) { rows.push(p.tr[i][0]); }
      d0 = Math.min(d0, p.tr[i][1]); d1 = Math.max(d1, p.tr[i][2]);
    }
    if (d1 <= d0) { d1 = d0 + 1; }
    var W = 760, L = 130, R = 10, RH = 22, H = rows.length * RH + 30;
    var x = function (d) { return L + (W - L - R) * (d - d0) / (d1 - d0); };
    var s = svgBox(W, H, 'Preventive trials for ' + p.k);
    timeAxis(s, d0, d1, x, H - 24);
    rows.forEach(function (c, r) {
      s.appendChild(sv('text', { x: L - 6, y: r * RH + 15, 'text-anchor': 'end', 'class': 'small' }, D.prev[c]));
    });
    for (i = 0; i < p.tr.length; i++) {
      var t = p.tr[i], r = rows.indexOf(t[0]);
      var cls = t[5] ? 'trial-intol' : (t[4] ? 'trial-ok' : 'trial-short');
      var weeks = ((t[2] - t[1]) / 7).toFixed(1);
      tip(s.appendChild(sv('rect', { x: x(t[1]), y: r * RH + 4, width: Math.max(2, x(t[2]) - x(t[1])), height: RH - 8,
        'class': cls + (t[3] ? ' ongoing' : '') })),
        D.prev[t[0]] + ': ' + dayLabel(t[1]) + (t[3] ? ' (ongoing)' : ' to ' + dayLabel(t[2])) + ', ' + weeks +
        ' weeks' + (t[4] ? ', adequate' : '') + (t[5] ? ', stopped for intolerance' : ''));
    }
    return s;
  }

  // Pain (0-10), MIDAS and HIT-6 over time, one small panel each.
  function trendsChart(p) {
    if (!p.o.length) { return el('p', { 'class': 'empty' }, 'No pain, MIDAS or HIT-6 scores.'); }
    var names = ['Pain (0-10)', 'MIDAS', 'HIT-6'], lo = [0, 0, 36], hi = [10, 40, 78];
    var d0 = p.o[0][1], d1 = p.o[0][1], i;
    for (i = 0; i < p.o.length; i++) {
      d0 = Math.min(d0, p.o[i][1]); d1 = Math.max(d1, p.o[i][1]);
      hi[p.o[i][0]] = Math.max(hi[p.o[i][0]], p.o[i][2]);
    }
    if (d1 <= d0) { d1 = d0 + 1; }
    var W = 760, L = 130, R = 10, PH = 60, H = 3 * PH + 24;
    var x = function (d) { return L + (W - L - R) * (d - d0) / (d1 - d0); };
    var s = svgBox(W, H, 'Score trends for ' + p.k);
    timeAxis(s, d0, d1, x, H - 20);
    for (var k = 0; k < 3; k++) {
      var top = k * PH + 6, bottom = (k + 1) * PH - 6;
      var y = function (v) { return bottom - (bottom - top) * (v - lo[k]) / (hi[k] - lo[k]); };
      s.appendChild(sv('text', { x: L - 6, y: top + 12, 'text-anchor': 'end', 'class': 'small' }, names[k]));
      s.appendChild(sv('line', { x1: L, x2: W - R, y1: bottom, y2: bottom, 'class': 'axis' }));
      var pts = [];
      for (i = 0; i < p.o.length; i++) {
        if (p.o[i][0] !== k) { continue; }
        var px = x(p.o[i][1]), py = y(p.o[i][2]);
        pts.push(px.toFixed(1) + ',' + py.toFixed(1));
        tip(s.appendChild(sv('circle', { cx: px, cy: py, r: 2.5, fill: COLORS[k] })),
          names[k] + ' ' + dayLabel(p.o[i][1]) + ': ' + p.o[i][2]);
      }
      if (pts.length > 1) {
        s.insertBefore(sv('polyline', { points: pts.join(' '), fill: 'none', stroke: COLORS[k], 'stroke-width': 1.5 }),
          s.firstChild);
      }
    }
    return s;
  }

  function matches(p) {
    if (!state.filter) { return true; }
    var f = state.filter.toLowerCase();
    return p.k.toLowerCase().indexOf(f) >= 0 || p.t.toLowerCase().indexOf(f) >= 0 ||
      (f === 'moh' && p.moh === 1) || (f === 'cgrp' && p.cgrp === 1);
  }

  function showPatient(idx) {
    var p = D.p[idx], box = document.getElementById('detail');
    state.shown = idx;
    box.replaceChildren();
    box.appendChild(el('h2', {}, 'Patient ' + p.k));
    var dl = el('dl');
    [['Headache type', p.t || 'none recorded'], ['Sex, birth year', (p.s || '?') + ', ' + (p.b || '?')],
     ['MOH risk (prescribed exposure)', p.moh ? 'yes' : 'no'], ['CGRP-ready', p.cgrp ? 'yes' : 'no'],
     ['Current acute', p.a || 'none'], ['Current preventive', p.v || 'none'],
     ['Last appointment', p.la || 'none'], ['Last successful pull', p.ls || 'never (or ingested)']
    ].forEach(function (row) { dl.appendChild(el('dt', {}, row[0])); dl.appendChild(el('dd', {}, row[1])); });
    box.appendChild(dl);
    box.appendChild(el('h3', {}, 'Acute exposure per month (prescribed, not taken) against the ICHD-3 thresholds'));
    box.appendChild(exposureChart(p));
    box.appendChild(el('h3', {}, 'Preventive trials'));
    box.appendChild(trialsChart(p));
    box.appendChild(el('h3', {}, 'Pain, MIDAS and HIT-6'));
    box.appendChild(trendsChart(p));
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
      var td = el('td'); td.appendChild(b); tr.appendChild(td);
      tr.appendChild(el('td', {}, p.t));
      tr.appendChild(el('td', {}, p.moh ? 'MOH risk' : ''));
      tr.appendChild(el('td', {}, p.cgrp ? 'CGRP-ready' : ''));
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
.tile{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:150px}.tile b{display:block;font-size:1.8em}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:3px 8px;border-bottom:1px solid #eee}
tr.current{background:#eef5ff}button{font:inherit;cursor:pointer}td button{background:none;border:none;color:#1558b0;text-decoration:underline;padding:0}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{color:#555}dd{margin:0}
svg{display:block;max-width:100%;height:auto}.small{font-size:11px;fill:#444}.axis{stroke:#888}.grid{stroke:#eee}
.threshold{stroke:#d62728;stroke-dasharray:4 3}.threshold15{stroke:#ff7f0e;stroke-dasharray:4 3}.moh-band{fill:#fde0e0}
.trial-ok{fill:#2ca02c}.trial-short{fill:#bbb}.trial-intol{fill:#ff7f0e}.ongoing{stroke:#222;stroke-dasharray:3 2}
.bar{fill:#1f77b4}#js-error{background:#fdd;border:1px solid #d62728;padding:8px}.empty{color:#777;font-style:italic}
.pager{display:flex;gap:10px;align-items:center;margin:8px 0}
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

void tile(std::string& h, const std::string& title, std::int64_t n, const std::string& note) {
    h += "<div class=\"tile\">" + html_escape(title) + "<b>" + std::to_string(n) +
         "</b><span class=\"note\">" + html_escape(note) + "</span></div>";
}

void patient_json(std::string& j, const patient& p) {
    j += "{\"k\":" + json_string(p.key) + ",\"t\":" + json_string(p.headache_type) +
         ",\"s\":" + json_string(p.sex) + ",\"b\":" + std::to_string(p.birth_year) +
         ",\"a\":" + json_string(p.acute_meds) + ",\"v\":" + json_string(p.preventive_meds) +
         ",\"la\":" + json_string(p.last_appointment) + ",\"ls\":" + json_string(p.last_sync) +
         ",\"moh\":" + (p.moh_risk ? "1" : "0") + ",\"cgrp\":" + (p.cgrp_ready ? "1" : "0") + ",\"e\":[";
    for (std::size_t i = 0; i < p.exposure.size(); ++i) {
        const auto& e = p.exposure[i];
        j += (i ? ",[" : "[") + std::to_string(e.month) + "," + std::to_string(e.acute_class) + "," +
             std::to_string(e.days) + "]";
    }
    j += "],\"r\":[";
    for (std::size_t i = 0; i < p.moh_months.size(); ++i)
        j += (i ? ",[" : "[") + std::to_string(p.moh_months[i].first) + "," +
             std::to_string(p.moh_months[i].second) + "]";
    j += "],\"tr\":[";
    for (std::size_t i = 0; i < p.trials.size(); ++i) {
        const auto& t = p.trials[i];
        j += (i ? ",[" : "[") + std::to_string(t.drug_class) + "," + std::to_string(t.start) + "," +
             std::to_string(t.end) + "," + (t.ongoing ? "1" : "0") + "," + (t.adequate ? "1" : "0") + "," +
             (t.intolerance ? "1" : "0") + "]";
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
    h += "<p class=\"note\">Data as of " + html_escape(c.as_of) + "; generated " +
         html_escape(opts.generated_at) +
         ". Patients appear by pseudonymous key only. Medication figures are prescribed exposure, not "
         "use.</p>\n";

    h += "<h2>Clinic summary</h2><div class=\"tiles\">";
    tile(h, "Patients", c.patients, "");
    tile(h, "MOH risk", c.moh_risk_patients,
         std::to_string(c.moh_risk_recent) + " up to this or last month (ICHD-3 thresholds, >3 months)");
    tile(h, "CGRP-ready", c.cgrp_ready_patients, "2 preventive classes tried, not on a CGRP preventive");
    h += "</div>\n<h3>Patients by headache type (most specific diagnosis)</h3>";
    bar_chart(h, c.by_headache_type, "Patients by headache type");
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
         "cgrp\"></label></div>"
         "<table><thead><tr><th>Patient key</th><th>Headache type</th><th>MOH</th><th>CGRP</th>"
         "<th>Last appointment</th></tr></thead><tbody id=\"patient-rows\"></tbody></table>\n"
         "<section id=\"detail\"></section>\n";

    h += "<script type=\"application/json\" id=\"report-data\">{\"t10\":" + std::to_string(data.moh_days_10) +
         ",\"t15\":" + std::to_string(data.moh_days_15) +
         ",\"page\":" + std::to_string(std::max(1, opts.page_size)) +
         ",\"acute\":" + names_json(data.acute_classes) + ",\"prev\":" + names_json(data.preventive_classes) +
         ",\"p\":[";
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
