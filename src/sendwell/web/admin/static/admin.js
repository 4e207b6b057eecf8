// Sendwell admin: draws the daily charts (dashboard, Unsubscribes) with the vendored uPlot; each
// chart's data is in a JSON script element written by the server (no inline script, so the CSP
// allows only 'self'). The data: days, series (label, colour, axis, values) and the axes.
(function () {
  "use strict";
  function drawChart(holder) {
    var source = document.getElementById(holder.getAttribute("data-chart"));
    if (!source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    var xs = data.days.map(function (d) { return Date.parse(d + "T00:00:00Z") / 1000; });
    var scales = { x: { time: true } };
    data.axes.forEach(function (a) { scales[a.scale] = { range: function (u, min, max) { return [0, Math.max(4, max * 1.1)]; } }; });
    var series = [data.x_label ? { label: data.x_label } : {}].concat(data.series.map(function (s) {
      return { label: s.label, stroke: s.color, width: 2, scale: s.scale, points: { show: xs.length < 40 },
               value: function (u, v, si, i) {
                 // The unsubscribe and complaint rates of that day, where the page sent them.
                 var rates = { unsubscribed: data.unsubscribe, complained: data.complaint }[s.key];
                 if (v == null) return "–";
                 return rates && i != null && rates[i] != null ? v + " (" + rates[i].toFixed(2) + " %)" : String(v);
               } };
    }));
    // Whole days on the time axis (never hours): ticks a day, two, a week… apart, written YYYY-MM-DD's MM-DD.
    var day = 86400;
    var xAxis = { space: 48, incrs: [day, 2 * day, 7 * day, 14 * day, 28 * day, 91 * day],
                  values: function (u, ticks) {
                    return ticks.map(function (t) { return new Date(t * 1000).toISOString().slice(5, 10); });
                  } };
    var axes = [xAxis].concat(data.axes.map(function (a) {
      return { scale: a.scale, side: a.side, label: a.label, size: 56, grid: { show: a.side === 3 } };
    }));
    function width() { return Math.max(280, holder.clientWidth - 16); }
    holder.textContent = "";
    var chart = new uPlot({ width: width(), height: 260, scales: scales, series: series, axes: axes },
      [xs].concat(data.series.map(function (s) { return s.values; })), holder);
    holder.setAttribute("data-rendered", "true");
    window.addEventListener("resize", function () { chart.setSize({ width: width(), height: 260 }); });
  }
  function drawAll() { document.querySelectorAll(".chart[data-chart]").forEach(drawChart); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})();

// Scheduling: the form says which time zone the typed time is in (the browser's own), and
// scheduled times written in UTC by the server are shown in the reader's local time too.
(function () {
  "use strict";
  function localise() {
    var zone = "UTC";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* keep UTC */ }
    document.querySelectorAll("input[name=tz]").forEach(function (input) { input.value = zone; });
    document.querySelectorAll("time[data-local]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) return;
      el.textContent = when.toLocaleString(document.documentElement.lang || undefined,
        { dateStyle: "medium", timeStyle: "short" }) + " (" + zone + ")";
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", localise);
  else localise();
})();
