/* Patient type-ahead for every patient chooser: progressive enhancement of a plain text
   input marked data-patient-search ("mrn": the chosen patient's MRN goes into the input;
   "page": choosing opens the patient page). Without JavaScript the form still takes an
   exact MRN. ARIA 1.2 combobox: the input owns a listbox, the active option is named by
   aria-activedescendant; arrows move, Enter chooses, Escape closes. No framework. */
(function () {
  "use strict";
  var DELAY = 250, MIN_CHARS = 2, counter = 0;

  function text(tag, cls, content) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (content) el.textContent = content;
    return el;
  }

  function describe(p) {
    var parts = [p.name || "(no name)", "MRN " + p.mrn];
    if (p.birth_date) parts.push("born " + p.birth_date);
    if (p.merged_into) parts.push("merged into " + p.merged_into);
    return parts.join(" · ");
  }

  function enhance(input) {
    var n = ++counter, mode = input.getAttribute("data-patient-search") || "mrn";
    var url = input.getAttribute("data-lookup") || "/patients/lookup";
    var list = text("ul", "patient-listbox");
    list.id = "patient-listbox-" + n;
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "Patients found");
    list.hidden = true;
    var status = text("p", "hint patient-status");
    status.id = "patient-status-" + n;
    status.setAttribute("aria-live", "polite");
    var holder = text("div", "patient-combo");
    input.parentNode.insertBefore(holder, input);
    holder.appendChild(input);
    holder.appendChild(list);
    holder.parentNode.insertBefore(status, holder.nextSibling);
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", list.id);
    input.setAttribute("autocomplete", "off");
    var described = input.getAttribute("aria-describedby");
    input.setAttribute("aria-describedby", (described ? described + " " : "") + status.id);

    var items = [], active = -1, timer = null, asked = 0;

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function mark(i) {
      var options = list.children;
      for (var k = 0; k < options.length; k++) options[k].setAttribute("aria-selected", k === i ? "true" : "false");
      active = i;
      if (i >= 0) {
        input.setAttribute("aria-activedescendant", options[i].id);
        options[i].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    function choose(i) {
      var p = items[i];
      if (!p) return;
      close();
      if (mode === "page") {
        window.location.assign(p.url);
        return;
      }
      input.value = p.mrn;
      status.textContent = "";
      status.appendChild(document.createTextNode("Chosen: " + describe(p) + " · "));
      var link = text("a", "", "patient page");
      link.href = p.url;
      status.appendChild(link);
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }

    function show(found) {
      items = found;
      list.textContent = "";
      found.forEach(function (p, i) {
        var li = text("li", "", describe(p));
        li.id = list.id + "-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        li.addEventListener("mousedown", function (e) {
          e.preventDefault(); // keep the focus in the input
          choose(i);
        });
        list.appendChild(li);
      });
      status.textContent = found.length ? found.length + " patient" + (found.length > 1 ? "s" : "") + " found: arrow keys to choose" : "No patient found";
      list.hidden = !found.length;
      input.setAttribute("aria-expanded", found.length ? "true" : "false");
      mark(-1);
    }

    function ask() {
      var q = input.value.trim(), mine = ++asked;
      if (q.length < MIN_CHARS) {
        close();
        return;
      }
      fetch(url + "?q=" + encodeURIComponent(q), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { items: [] }; })
        .then(function (body) { if (mine === asked) show(body.items || []); })
        .catch(function () { if (mine === asked) close(); });
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(ask, DELAY);
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        if (list.hidden) {
          if (items.length) { list.hidden = false; input.setAttribute("aria-expanded", "true"); }
          else return;
        }
        e.preventDefault();
        var step = e.key === "ArrowDown" ? 1 : -1;
        mark((active + step + items.length) % items.length);
      } else if (e.key === "Enter" && !list.hidden && active >= 0) {
        e.preventDefault(); // choose, do not send the form
        choose(active);
      } else if (e.key === "Escape" && !list.hidden) {
        e.preventDefault();
        close();
      }
    });
    input.addEventListener("blur", function () { setTimeout(close, 150); });
  }

  function start() {
    var inputs = document.querySelectorAll("input[data-patient-search]");
    for (var i = 0; i < inputs.length; i++) enhance(inputs[i]);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
