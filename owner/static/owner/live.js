// The live panel: new messages of the conversation every 2 s (polling: one small query, and it
// works through any proxy), and the owner's messages sent without a reload.
(function () {
  var panel = document.getElementById("live"), log = document.getElementById("live-log");
  var form = document.getElementById("live-form"), error = document.getElementById("live-error");
  var seen = {}, after = Number(panel.dataset.after), csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
  function show(data) {
    data.messages.forEach(function (m) {
      if (seen[m.id]) return;  // a poll and a send can bring the same message
      seen[m.id] = true;
      after = Math.max(after, m.id);
      var row = document.createElement("div");
      row.className = "turn live-" + m.role;
      var said = document.createElement("div");
      said.className = "said" + (m.role === "user" ? " customer" : m.role === "shop" ? " shop" : "");
      var who = document.createElement("span");
      who.className = "who";
      who.textContent = m.who + " · " + m.time;
      var text = document.createElement("div");
      text.className = "text";
      text.textContent = m.text;
      said.append(who, text);
      row.append(said);
      log.append(row);
    });
  }
  function poll() {
    fetch(panel.dataset.url + "?after=" + after, {credentials: "same-origin"})
      .then(function (r) { return r.json(); }).then(show).catch(function () {})
      .finally(function () { setTimeout(poll, 2000); });
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = new FormData(form);
    fetch(panel.dataset.url + "?after=" + after, {
      method: "POST", body: body, credentials: "same-origin", headers: {"X-CSRFToken": csrf}
    }).then(function (r) { return r.json(); }).then(function (data) {
      error.hidden = !data.error;
      error.textContent = data.error || "";
      if (!data.error) { form.reset(); show(data); }
    });
  });
  setTimeout(poll, 2000);
})();
