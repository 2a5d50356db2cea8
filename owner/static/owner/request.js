// A customer request's page while a reply's email is on its way: every 3 s the page is read
// again and "Your replies by email" ([data-refresh]) replaced by its current state, until no
// email is pending ([data-pending]) or after 15 minutes. The owner's typing elsewhere is kept.
(function () {
  var started = Date.now();
  function refresh() {
    if (!document.querySelector("[data-pending]") || Date.now() - started > 15 * 60 * 1000) return;
    fetch(window.location.href, {credentials: "same-origin"})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-refresh]").forEach(function (old) {
          var now = fresh.getElementById(old.id);
          if (now) old.replaceWith(document.importNode(now, true));
        });
      })
      .catch(function () {})
      .finally(function () { setTimeout(refresh, 3000); });
  }
  setTimeout(refresh, 3000);
})();
