// Times in the viewer's time zone. Pages carry times as `<time datetime="…Z">` in UTC (what
// shows without scripts); this shows `time[data-local]` in the browser's zone, with the UTC
// time kept in the tooltip, and keeps `time[data-ago]` ("12 s ago") current.
"use strict";
(function () {
  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // The zone's short name at that date (summer and winter time differ).
  var zones = null;
  try { zones = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }); } catch (e) { zones = null; }
  function zoneAt(d) {
    var name = "";
    if (zones) zones.formatToParts(d).forEach(function (p) { if (p.type === "timeZoneName") name = p.value; });
    return name;
  }

  function local(d) {
    var zone = zoneAt(d);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + (zone ? " " + zone : "");
  }

  function ago(ms) {
    var s = Math.floor(Math.max(0, ms) / 1000);
    if (s < 5) return "just now";
    if (s < 120) return s + " s ago";
    if (s < 7200) return Math.floor(s / 60) + " min ago";
    if (s < 172800) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }

  function each(root, selector, draw) {
    (root || document).querySelectorAll(selector).forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) el.textContent = draw(d);
    });
  }

  function agos(root) {
    each(root, "time[data-ago]", function (d) { return ago(Date.now() - d.getTime()); });
  }

  function show(root) {
    each(root, "time[data-local]", local);
    agos(root);
  }

  // Date-time pickers (`datetime-local`, which has no zone) show a stored UTC time in the
  // viewer's zone, which their labels name; the form sends them back in UTC.
  function pickers() {
    document.querySelectorAll('input[data-type="datetime"][data-utc]').forEach(function (el) {
      var d = new Date(el.dataset.utc);
      if (isNaN(d)) return;
      el.value = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" +
        pad(d.getHours()) + ":" + pad(d.getMinutes());
    });
    document.querySelectorAll("[data-zone-name]").forEach(function (el) {
      try { el.textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || el.textContent; } catch (e) { /* keep */ }
    });
  }

  // Pages that redraw parts of themselves (live updates, the status page's refresh) call it.
  window.ptShowTimes = show;
  window.ptLocalTime = local;
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { show(); pickers(); });
  } else {
    show();
    pickers();
  }
  setInterval(function () { agos(); }, 5000);
})();
