// Live pages (ris_app/web/live.py): refresh the regions marked data-live without a full
// reload. The page's own URL is polled with If-None-Match (an unchanged page is a 304);
// a changed region (matched by id) is swapped unless the user is typing in it; nothing
// runs while the tab is hidden; a polite status line tells screen readers what changed.
(function () {
  "use strict";
  if (!document.querySelector("[data-live]") || !window.fetch || !window.DOMParser) return;
  var first = document.querySelector("[data-live-every]");
  var every = ((first && parseInt(first.getAttribute("data-live-every"), 10)) || 5) * 1000;
  var etag = null;
  var timer = null;
  var status = document.createElement("p");
  status.id = "live-status";
  status.className = "sr-only";
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  document.body.appendChild(status);

  // A form the user changed is theirs until they send it: its region is not swapped.
  document.addEventListener("input", function (e) {
    if (e.target && e.target.form) e.target.form.setAttribute("data-live-dirty", "1");
  }, true);

  function busy(el) {
    var a = document.activeElement;
    if (a && el.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName) && a.type !== "hidden") return true;
    return el.querySelector("form[data-live-dirty], dialog[open]") !== null;
  }

  function swap(doc) {
    var changed = [];
    Array.prototype.forEach.call(document.querySelectorAll("[data-live]"), function (el) {
      var fresh = el.id ? doc.getElementById(el.id) : null;
      if (!fresh || fresh.innerHTML === el.innerHTML || busy(el)) return;
      el.innerHTML = fresh.innerHTML;
      changed.push(el.getAttribute("data-live"));
    });
    if (changed.length) {
      status.textContent = "Updated: " + changed.join(", ") + ".";
      document.documentElement.setAttribute("data-live-updated", String(Date.now()));
    }
  }

  function schedule() {
    if (timer === null && !document.hidden) timer = window.setTimeout(poll, every);
  }

  function poll() {
    timer = null;
    if (document.hidden) return;
    var headers = { "X-Requested-With": "live.js" };
    if (etag) headers["If-None-Match"] = etag;
    fetch(window.location.href, { headers: headers, credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        // Logged out (idle timeout, revoked): leave the page for the login form, so an
        // unattended screen stops showing patient data.
        if (r.redirected && new URL(r.url).pathname.endsWith("/login")) {
          window.location.assign(r.url);
          return null;
        }
        // 304: nothing new. Another redirect or an error leaves the page as it is.
        if (r.status !== 200 || r.redirected) return null;
        etag = r.headers.get("ETag");
        return r.text();
      })
      .then(function (html) {
        if (html) swap(new DOMParser().parseFromString(html, "text/html"));
      })
      .catch(function () { /* offline for a moment: try again next time */ })
      .then(schedule);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      window.clearTimeout(timer);
      timer = null;
    } else {
      poll();  // back on the tab: bring it up to date at once
    }
  });
  schedule();
})();
