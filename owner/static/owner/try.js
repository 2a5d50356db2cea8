// Try a question, while the worker has not indexed the shop's latest changes (a wording just
// added): ask every 2 s how many are waiting, and try the question again (reload) once none is.
// After 30 s, say the worker may be stopped.
(function () {
  var note = document.getElementById("index-waiting");
  if (!note) return;
  var started = Date.now();
  function poll() {
    fetch(note.dataset.url, {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (data.waiting === 0) { window.location.reload(); return; }
        if (Date.now() - started > 30000) document.getElementById("index-waiting-slow").hidden = false;
        setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 2000);
})();
