// The console's only script: a confirmation before sending, and live progress.
"use strict";

// On the document, so that forms the live view brings in later are asked about too.
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!form.matches || !form.matches("form[data-confirm]")) return;
  if (!window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    return;
  }
  // A double click must not post twice.
  form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
});

(function () {
  var box = document.getElementById("progress");
  if (!box) return;
  var bar = box.querySelector(".bar");
  var refreshing = false;

  // When the state moves (preparing, sending, paused, cancelling, finished), the part of the
  // page that depends on it (the controls, the finished time, the per-set table, the
  // undelivered list, the archive card) is fetched afresh and swapped in whole.
  function refresh(status) {
    var state = document.getElementById("digest-state");
    if (!state || refreshing || state.dataset.status === status) return;
    refreshing = true;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("digest-state");
        if (fresh) state.replaceWith(fresh);
      })
      .finally(function () { refreshing = false; });
  }

  function show(p) {
    var total = Math.max(p.total, 1);
    ["sent", "failed", "retrying", "unknown"].forEach(function (k) {
      bar.querySelector("." + k).style.width = (100 * p[k] / total) + "%";
    });
    var done = p.total ? Math.round(100 * (p.total - p.pending - p.retrying) / p.total) : 100;
    bar.setAttribute("aria-valuenow", String(done));
    Object.keys(p).forEach(function (k) {
      var el = box.querySelector('[data-field="' + k + '"]');
      if (el) el.textContent = String(p[k]).replace(/_/g, " ");
    });
    var eta = box.querySelector('[data-field="eta"]');
    var left = p.pending + p.retrying;
    eta.textContent = p.status === "paused" ? "paused" : p.done ? "done"
      : (p.messages_per_second > 0 ? Math.ceil(left / p.messages_per_second) + " s" : "–");
    box.dataset.status = p.status;
  }

  function poll() {
    fetch(box.dataset.url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (p) {
        show(p);
        refresh(p.status);
        // After the end, until the swapped-in part says so too.
        var state = document.getElementById("digest-state");
        if (!p.done || refreshing || (state && state.dataset.status !== p.status)) {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  poll();
})();

// While an import is being checked or applied, reload when its state changes.
(function () {
  var box = document.getElementById("import");
  if (!box || ["checking", "running"].indexOf(box.dataset.status) < 0) return;
  function poll() {
    fetch(box.dataset.url, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (job) {
        var bar = box.querySelector(".bar span");
        if (bar && job.total_rows) bar.style.width = (100 * job.processed_rows / job.total_rows) + "%";
        if (job.status !== box.dataset.status) window.location.reload();
        else window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 1000);
})();

// Copy buttons on the signup form page.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  button.addEventListener("click", function () {
    var source = document.getElementById(button.dataset.copy);
    navigator.clipboard.writeText(source.value).then(function () {
      button.textContent = "Copied";
    });
  });
});
