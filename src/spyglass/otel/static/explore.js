// Logs and metrics explorers: uPlot charts, live tail switch, facet shortcuts.
// Every page works without this script except the charts and live tail.
(function () {
  "use strict";
  var PALETTE = ["#6d5dfc", "#e8833a", "#2f9e8f", "#e0605a", "#3b82f6", "#b455d6", "#8a9a2b",
                 "#d1477a", "#0f8fb3", "#a0522d", "#5c6bc0", "#43a047"];
  var LEVEL_COLORS = {fatal: "#7a1c16", error: "#e0605a", warn: "#f0a53a", info: "#6d9ee8",
                      debug: "#7cc08a", trace: "#c9c6d6", unset: "#dcdae4"};

  function when(u, ts) {
    return ts == null ? "" : new Date(ts * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }
  function fmt(v) {
    if (v == null || isNaN(v)) return "—";
    var a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100) return String(Math.round(v * 10) / 10);
    if (a >= 1) return v.toFixed(3).replace(/\.?0+$/, "");
    return v.toPrecision(3);
  }
  function axis(extra) {
    return Object.assign({stroke: "#6b6979", grid: {stroke: "#eeedf3"}, ticks: {stroke: "#e4e3ea"}}, extra || {});
  }
  function zoomTo(u) {
    // Selecting a range on a chart narrows the page to it (since/until in the URL).
    var s = u.select;
    if (!s || s.width < 5) return;
    var a = u.posToVal(s.left, "x"), b = u.posToVal(s.left + s.width, "x");
    var url = new URL(window.location.href);
    url.searchParams.delete("period");
    url.searchParams.delete("cursor");
    url.searchParams.set("since", new Date(a * 1000).toISOString());
    url.searchParams.set("until", new Date(b * 1000).toISOString());
    window.location.href = url.toString();
  }
  function sized(el, opts, data) {
    var chart = new uPlot(Object.assign(opts, {
      width: Math.max(el.clientWidth, 300),
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); }
    }), data, el);
    new ResizeObserver(function () { chart.setSize({width: Math.max(el.clientWidth, 300), height: opts.height}); }).observe(el);
    return chart;
  }

  // Log volume: bars stacked by severity. uPlot has no stacking, so each series carries the
  // running total and the series are drawn from the top of the stack down.
  function logHistogram(el) {
    var h = JSON.parse(document.getElementById(el.dataset.source).textContent);
    var levels = h.levels.length ? h.levels : ["info"];
    var running = h.x.map(function () { return 0; });
    var stacked = levels.map(function (name) {
      running = running.map(function (v, i) { return v + (h[name] ? h[name][i] : 0); });
      return running.slice();
    });
    var bars = uPlot.paths.bars({size: [0.8, 40], gap: 1});
    var series = [{value: when}], data = [h.x];
    for (var i = levels.length - 1; i >= 0; i--) {
      (function (name) {
        series.push({label: name, stroke: LEVEL_COLORS[name], fill: LEVEL_COLORS[name], paths: bars,
                     points: {show: false}, width: 0,
                     value: function (u, v, si, idx) { return idx == null ? "—" : String(h[name][idx]); }});
      })(levels[i]);
      data.push(stacked[i]);
    }
    sized(el, {
      height: 120, legend: {show: true, live: true}, cursor: {drag: {x: true, y: false}},
      series: series,
      axes: [axis(), axis({size: 44, values: function (u, vals) { return vals.map(fmt); }})],
      scales: {y: {range: function (u, min, max) { return [0, max > 0 ? max * 1.08 : 1]; }}},
      hooks: {setSelect: [zoomTo]}
    }, data);
  }

  // Metric series: one line per group; the legend table below the chart shows the figures.
  function metricChart(el) {
    var s = JSON.parse(document.getElementById(el.dataset.source).textContent);
    if (!s.series || !s.series.length) return;
    var height = parseInt(el.dataset.height || "280", 10);
    var many = s.x.length <= 3;
    var series = [{value: when}], data = [s.x];
    s.series.forEach(function (one, i) {
      series.push({label: one.label, stroke: PALETTE[i % PALETTE.length], width: 1.6,
                   spanGaps: false, points: {show: many, size: 5},
                   value: function (u, v) { return fmt(v); }});
      data.push(one.values);
    });
    sized(el, {
      height: height, legend: {show: s.series.length <= 8, live: true},
      cursor: {drag: {x: true, y: false}, points: {size: 6}},
      series: series,
      axes: [axis(), axis({size: 56, values: function (u, vals) { return vals.map(fmt); }})],
      scales: {y: {range: function (u, min, max) {
        if (min == null) return [0, 1];
        var lo = min >= 0 ? 0 : min * 1.1, hi = max > 0 ? max * 1.1 : (max === 0 ? 1 : max * 0.9);
        return [lo, hi === lo ? lo + 1 : hi];
      }}},
      hooks: {setSelect: [zoomTo]}
    }, data);
  }

  function init(root) {
    if (!window.uPlot) return;
    root.querySelectorAll("[data-log-histogram]").forEach(logHistogram);
    root.querySelectorAll("[data-metric-chart]").forEach(metricChart);
  }

  document.addEventListener("DOMContentLoaded", function () {
    init(document);
    // Facet checkboxes and selects submit their form at once.
    document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
      form.addEventListener("change", function () { form.submit(); });
    });
    // Attribute keys: put "key=" into the search box.
    document.querySelectorAll("[data-insert-key]").forEach(function (b) {
      b.addEventListener("click", function (e) {
        e.preventDefault();
        var box = document.getElementById(b.dataset.target || "log-search");
        if (!box) return;
        box.value = (box.value ? box.value.replace(/\s*$/, " ") : "") + b.dataset.insertKey + "=";
        box.focus();
      });
    });
    // Live tail: the poller (#log-tail) asks every 2 s while window.sgTail is true.
    var live = document.getElementById("live-tail");
    if (live) {
      live.addEventListener("click", function () {
        window.sgTail = !window.sgTail;
        live.classList.toggle("live-on", window.sgTail);
        live.setAttribute("aria-pressed", window.sgTail ? "true" : "false");
        live.querySelector(".label").textContent = window.sgTail ? "Live · pause" : "Live tail";
        if (window.sgTail) {
          var list = document.getElementById("log-lines");
          if (list) list.scrollIntoView({block: "start"});
        }
      });
    }
    document.body.addEventListener("htmx:afterSwap", function (e) {
      var list = document.getElementById("log-lines");
      if (list && e.detail.target === list) {
        var lines = list.querySelectorAll("details.log");
        for (var i = 2000; i < lines.length; i++) lines[i].remove();
        var count = document.getElementById("tail-count");
        if (count) count.textContent = String(list.querySelectorAll("details.log.fresh").length);
      }
    });
  });
})();
