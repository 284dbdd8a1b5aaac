// A public status page keeps itself current: every 30 seconds (or `?refresh=N`, at least 2)
// it fetches itself again and swaps in the new content, without reloading the page. When the
// server cannot be reached it keeps what it shows and tries again later.
(function () {
  "use strict";
  var main = document.querySelector("main[data-refresh]");
  if (!main || !window.fetch || !window.DOMParser) return;
  var asked = Number(new URLSearchParams(location.search).get("refresh"));
  var every = Math.max(2, asked > 0 ? asked : Number(main.dataset.refresh) || 30) * 1000;
  function refresh() {
    fetch(location.href, { credentials: "omit", cache: "no-store" })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (html) {
        if (!html) return;
        var next = new DOMParser().parseFromString(html, "text/html").querySelector("main[data-refresh]");
        if (next) main.innerHTML = next.innerHTML;
      })
      .catch(function () {})
      .then(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);
})();
