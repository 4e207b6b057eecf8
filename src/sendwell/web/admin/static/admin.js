// Sendwell admin: draws the dashboard's trend chart with the vendored uPlot; the data is in a
// JSON script element written by the server (no inline script, so the CSP allows only 'self').
(function () {
  "use strict";
  function drawTrend() {
    var holder = document.getElementById("trend-chart");
    var source = document.getElementById("trend-data");
    if (!holder || !source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    var xs = data.days.map(function (d) { return Date.parse(d + "T00:00:00Z") / 1000; });
    var width = Math.max(280, holder.clientWidth - 16);
    var opts = {
      width: width, height: 240,
      scales: { x: { time: true } },
      series: [
        {},
        { label: data.labels[0], stroke: "#d9534f", width: 2, spanGaps: true, points: { show: true },
          value: function (u, v) { return v == null ? "–" : v.toFixed(2) + " %"; } },
        { label: data.labels[1], stroke: "#8e44ad", width: 2, spanGaps: true, points: { show: true },
          value: function (u, v) { return v == null ? "–" : v.toFixed(3) + " %"; } }
      ],
      axes: [{}, { values: function (u, vals) { return vals.map(function (v) { return v + " %"; }); }, size: 60 }]
    };
    holder.textContent = "";
    var chart = new uPlot(opts, [xs, data.unsubscribe, data.complaint], holder);
    holder.setAttribute("data-rendered", "true");
    window.addEventListener("resize", function () {
      chart.setSize({ width: Math.max(280, holder.clientWidth - 16), height: 240 });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawTrend);
  else drawTrend();
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
