// A public status page keeps itself current: every 30 seconds (or `?refresh=N`, from 5 seconds
// to an hour) it fetches itself again and swaps in the new content, without reloading the page.
// It goes through caches (the server lets them keep the page 30 seconds) unless asked to
// refresh more often than that. When the server cannot be reached it keeps what it shows and
// tries again later.
(function () {
  "use strict";
  var main = document.querySelector("main[data-refresh]");
  if (!main || !window.fetch || !window.DOMParser) return;
  var asked = Number(new URLSearchParams(location.search).get("refresh"));
  var seconds = asked > 0 && isFinite(asked) ? asked : Number(main.dataset.refresh) || 30;
  var every = Math.min(3600, Math.max(5, seconds)) * 1000;
  var mode = every < 30000 ? "no-cache" : "default";
  function refresh() {
    fetch(location.href, { credentials: "omit", cache: mode })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (html) {
        if (!html) return;
        var next = new DOMParser().parseFromString(html, "text/html").querySelector("main[data-refresh]");
        if (next) main.innerHTML = next.innerHTML;
        if (window.ptShowTimes) window.ptShowTimes(main);
      })
      .catch(function () {})
      .then(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);
})();
