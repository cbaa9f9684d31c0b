/* Trace pages: the waterfall (collapse, select, find, critical path), the duration scatter of
   trace search, the RED charts of a service and the service map's hover focus.
   No dependencies besides uPlot (vendored) for the charts; every page reads without it. */
(function () {
  "use strict";

  // -- waterfall ------------------------------------------------------------------------------

  function waterfall(root) {
    var rows = Array.prototype.slice.call(root.querySelectorAll(".wf-row[data-span-id]"));
    var byId = {};
    rows.forEach(function (r, i) { r._i = i; byId[r.dataset.spanId] = r; });
    var depth = function (r) { return +r.dataset.depth; };

    // The rows after ``row`` that are deeper than it are its subtree (rows are depth-first).
    function subtree(row) {
      var out = [], d = depth(row);
      for (var i = row._i + 1; i < rows.length && depth(rows[i]) > d; i++) out.push(rows[i]);
      return out;
    }
    function detailOf(row) { return document.getElementById("detail-" + row.dataset.spanId); }
    function refresh() {
      // A row is visible when no ancestor is collapsed; walk in order keeping the collapsed depth.
      var hideBelow = Infinity;
      rows.forEach(function (r) {
        var d = depth(r);
        if (d <= hideBelow) hideBelow = Infinity;
        var hidden = d > hideBelow;
        r.hidden = hidden;
        var det = detailOf(r);
        if (det && hidden) det.hidden = true;
        if (det && !hidden && r.classList.contains("selected")) det.hidden = false;
        var t = r.querySelector(".wf-toggle");
        if (!hidden && t && t.getAttribute("aria-expanded") === "false") hideBelow = Math.min(hideBelow, d);
      });
    }
    function setCollapsed(row, collapsed) {
      var t = row.querySelector(".wf-toggle");
      if (t) t.setAttribute("aria-expanded", collapsed ? "false" : "true");
    }
    function select(row, scroll) {
      var was = row.classList.contains("selected");
      rows.forEach(function (r) {
        if (r.classList.contains("selected")) { r.classList.remove("selected"); var d = detailOf(r); if (d) d.hidden = true; }
      });
      if (was && !scroll) { history.replaceState(null, "", location.pathname + location.search); return; }
      // Reveal the row: expand its collapsed ancestors.
      var p = byId[row.dataset.parentId];
      while (p) { setCollapsed(p, false); p = byId[p.dataset.parentId]; }
      refresh();
      row.classList.add("selected");
      var det = detailOf(row);
      if (det) det.hidden = false;
      history.replaceState(null, "", "#span-" + row.dataset.spanId);
      if (scroll) row.scrollIntoView({block: "center"});
    }

    root.addEventListener("click", function (ev) {
      var toggle = ev.target.closest(".wf-toggle");
      var row = ev.target.closest(".wf-row[data-span-id]");
      if (!row) return;
      if (toggle) {
        ev.stopPropagation();
        setCollapsed(row, toggle.getAttribute("aria-expanded") === "true");
        refresh();
        return;
      }
      select(row, false);
    });
    root.addEventListener("keydown", function (ev) {
      var row = ev.target.closest && ev.target.closest(".wf-row[data-span-id]");
      if (!row || ev.target !== row) return;
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); select(row, false); }
      if (ev.key === "ArrowLeft") { setCollapsed(row, true); refresh(); }
      if (ev.key === "ArrowRight") { setCollapsed(row, false); refresh(); }
    });
    document.addEventListener("click", function (ev) {
      var link = ev.target.closest("[data-goto-span]");
      if (!link) return;
      var row = byId[link.dataset.gotoSpan];
      if (!row) return;
      ev.preventDefault();
      if (!row.classList.contains("selected")) select(row, true); else row.scrollIntoView({block: "center"});
    });

    var collapse = document.getElementById("wf-collapse");
    var expand = document.getElementById("wf-expand");
    if (collapse) collapse.addEventListener("click", function () {
      // Collapse everything below the first level, as Jaeger does.
      rows.forEach(function (r) { setCollapsed(r, depth(r) >= 1); });
      rows.forEach(function (r) { if (depth(r) === 0) setCollapsed(r, false); });
      refresh();
    });
    if (expand) expand.addEventListener("click", function () {
      rows.forEach(function (r) { setCollapsed(r, false); });
      refresh();
    });
    var critical = document.getElementById("wf-critical");
    if (critical) critical.addEventListener("change", function () {
      root.classList.toggle("show-critical", critical.checked);
    });
    var find = document.getElementById("wf-find");
    var count = document.getElementById("wf-find-count");
    if (find) find.addEventListener("input", function () {
      var q = find.value.trim().toLowerCase();
      var hits = 0;
      rows.forEach(function (r) {
        var hit = q && r.dataset.search.indexOf(q) >= 0;
        if (hit) hits++;
        r.classList.toggle("find-hit", !!hit);
        r.classList.toggle("find-miss", !!q && !hit);
      });
      if (count) count.textContent = q ? hits + " match" + (hits === 1 ? "" : "es") : "";
    });

    var m = /^#span-([0-9a-f]{16})$/i.exec(location.hash);
    if (m && byId[m[1].toLowerCase()]) select(byId[m[1].toLowerCase()], true);
  }

  // -- charts ---------------------------------------------------------------------------------

  function fmtMs(v) {
    if (v == null) return "—";
    if (v < 1) return (v * 1000).toFixed(0) + " µs";
    if (v < 10) return v.toFixed(2) + " ms";
    if (v < 1000) return v.toFixed(v < 100 ? 1 : 0) + " ms";
    return (v / 1000).toFixed(2) + " s";
  }
  function axisMs(u, vals) { return vals.map(function (v) { return v == null ? "" : v < 1000 ? +v.toFixed(3) + " ms" : +(v / 1000).toFixed(2) + " s"; }); }
  function when(u, ts) { return ts == null ? "" : new Date(ts * 1000).toISOString().slice(5, 19).replace("T", " ") + " UTC"; }
  var AXIS = {stroke: "#6b6979", grid: {stroke: "#eeedf3"}, ticks: {stroke: "#e4e3ea"}};

  function chart(el, series, data, opts) {
    var height = (opts && opts.height) || 190;
    var o = Object.assign({
      width: Math.max(el.clientWidth, 300), height: height,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      legend: {live: true}, cursor: {points: {size: 7}},
      series: [{value: when}].concat(series),
      axes: [Object.assign({}, AXIS), Object.assign({size: 66}, AXIS, (opts && opts.y) || {})],
      scales: {y: {range: function (u, min, max) { return [0, max > 0 ? max * 1.12 : 1]; }}}
    }, (opts && opts.extra) || {});
    var plot = new uPlot(o, data, el);
    new ResizeObserver(function () { plot.setSize({width: Math.max(el.clientWidth, 300), height: height}); }).observe(el);
    return plot;
  }

  function scatter() {
    var el = document.getElementById("trace-scatter");
    var src = document.getElementById("scatter-data");
    if (!el || !src || !window.uPlot) return;
    var s = JSON.parse(src.textContent);
    var none = function () { return null; };
    var plot = chart(el, [
      {label: "OK", stroke: "#6d5dfc", fill: "rgba(109,93,252,0.35)", paths: none, points: {show: true, size: 9, width: 1.5, fill: "rgba(109,93,252,0.45)"}, value: function (u, v) { return fmtMs(v); }},
      {label: "With errors", stroke: "#e0454b", paths: none, points: {show: true, size: 9, width: 1.5, fill: "rgba(224,69,75,0.55)"}, value: function (u, v) { return fmtMs(v); }}
    ], [s.x, s.ok, s.error], {y: {values: axisMs}, extra: {legend: {show: false}}});
    // The point nearest to the pointer in both directions (within 16 px), so a click opens
    // the trace it points at even where points crowd along the time axis.
    function nearest(ev) {
      var r = plot.over.getBoundingClientRect();
      var left = ev.clientX - r.left, top = ev.clientY - r.top, best = null, bestD = 16 * 16;
      for (var i = 0; i < s.x.length; i++) {
        var y = s.ok[i] != null ? s.ok[i] : s.error[i];
        var dx = plot.valToPos(s.x[i], "x") - left, dy = plot.valToPos(y, "y") - top;
        var d = dx * dx + dy * dy;
        if (d <= bestD) { bestD = d; best = i; }
      }
      return best;
    }
    el._uplot = plot;
    // uPlot takes clicks for its drag-to-zoom (and drops those that moved a pixel): pointer
    // events come first and are ours.
    var down = null;
    plot.over.addEventListener("pointerdown", function (ev) { down = [ev.clientX, ev.clientY]; });
    plot.over.addEventListener("pointerup", function (ev) {
      if (!down || Math.abs(ev.clientX - down[0]) > 4 || Math.abs(ev.clientY - down[1]) > 4) return;
      down = null;
      var i = nearest(ev);
      if (i != null && s.url[i]) location.href = s.url[i];
    });
    plot.over.addEventListener("mousemove", function (ev) {
      var i = nearest(ev);
      plot.over.title = i != null ? s.label[i] + " · " + fmtMs(s.ok[i] != null ? s.ok[i] : s.error[i]) : "";
      plot.over.style.cursor = i != null ? "pointer" : "crosshair";
    });
  }

  function redCharts() {
    var src = document.getElementById("red-series");
    if (!src || !window.uPlot) return;
    var s = JSON.parse(src.textContent);
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({size: [0.7, 30]}) : null;
    var fixed = function (v) { return v == null ? "—" : v.toFixed(v < 10 ? 3 : 1); };
    var measured = s.p50.filter(function (v) { return v != null; }).length;
    var dots = {show: measured <= 12, size: 6};
    var el;
    if ((el = document.getElementById("chart-rate"))) chart(el, [
      {label: "req/s", stroke: "#6d5dfc", fill: "rgba(109,93,252,0.35)", paths: bars, points: {show: false}, value: function (u, v) { return fixed(v); }}
    ], [s.x, s.rate]);
    if ((el = document.getElementById("chart-errors"))) chart(el, [
      {label: "errors/s", stroke: "#e0454b", fill: "rgba(224,69,75,0.5)", paths: bars, points: {show: false}, value: function (u, v) { return fixed(v); }}
    ], [s.x, s.error_rate_s]);
    if ((el = document.getElementById("chart-duration"))) chart(el, [
      {label: "p50", stroke: "#6d5dfc", width: 2, spanGaps: true, points: dots, value: function (u, v) { return fmtMs(v); }},
      {label: "p95", stroke: "#e8833a", width: 2, spanGaps: true, points: dots, value: function (u, v) { return fmtMs(v); }},
      {label: "p99", stroke: "#c8322b", width: 1.5, dash: [4, 3], spanGaps: true, points: dots, value: function (u, v) { return fmtMs(v); }}
    ], [s.x, s.p50, s.p95, s.p99], {y: {values: axisMs}});
  }

  // -- service map: focus a node's neighbourhood on hover -------------------------------------

  function serviceMap(svg) {
    function light(name, on) {
      svg.classList.toggle("focus", on);
      svg.querySelectorAll(".lit").forEach(function (e) { e.classList.remove("lit"); });
      if (!on) return;
      svg.querySelectorAll('[data-node="' + CSS.escape(name) + '"]').forEach(function (e) { e.classList.add("lit"); });
      svg.querySelectorAll(".edge").forEach(function (e) {
        if (e.dataset.source === name || e.dataset.target === name) {
          e.classList.add("lit");
          svg.querySelectorAll('[data-node="' + CSS.escape(e.dataset.source) + '"], [data-node="' + CSS.escape(e.dataset.target) + '"]').forEach(function (n) { n.classList.add("lit"); });
        }
      });
    }
    var labels = document.getElementById("map-labels");
    if (labels) labels.addEventListener("change", function () { svg.classList.toggle("labels", labels.checked); });
    svg.querySelectorAll(".edge").forEach(function (e) {
      e.addEventListener("mouseenter", function () { e.classList.add("hover"); });
      e.addEventListener("mouseleave", function () { e.classList.remove("hover"); });
    });
    svg.querySelectorAll(".node").forEach(function (n) {
      n.addEventListener("mouseenter", function () { light(n.dataset.node, true); });
      n.addEventListener("mouseleave", function () { light(n.dataset.node, false); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var wf = document.getElementById("waterfall");
    if (wf) waterfall(wf);
    scatter();
    redCharts();
    document.querySelectorAll("svg.service-map").forEach(serviceMap);
    var svc = document.getElementById("f-service");
    if (svc) svc.addEventListener("change", function () {
      // Operations depend on the service: reload the form with the new service.
      var op = document.getElementById("f-operation");
      if (op) op.value = "";
      svc.form.submit();
    });
  });
})();
