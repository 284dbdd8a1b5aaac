// PingTower's one script: forms and buttons that call the JSON API (so its validation and
// problem details are what the user sees), and live updates over server-sent events.
"use strict";
(function () {
  var root = document.documentElement;
  var saved = localStorage.getItem("pt-theme");
  if (saved) root.dataset.theme = saved;

  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  }

  function api(method, path, body, extra) {
    var headers = { "Accept": "application/json", "X-CSRF-Token": csrf() };
    var tenant = document.querySelector('meta[name="tenant-id"]');
    if (tenant && tenant.content) headers["X-Tenant-Id"] = tenant.content;
    Object.keys(extra || {}).forEach(function (k) { headers[k] = extra[k]; });
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      return r.text().then(function (t) {
        var json = null;
        try { json = t ? JSON.parse(t) : null; } catch (e) { json = null; }
        return { ok: r.ok, status: r.status, json: json };
      });
    });
  }

  function text(el, value) { if (el) el.textContent = value; }

  function shownFirst(list) {
    for (var i = 0; i < list.length; i++) if (!list[i].closest("[hidden]")) return list[i];
    return list[0] || null;
  }

  function showProblem(scope, res) {
    var p = res.json || {};
    var general = scope.querySelector("[data-error]");
    var placed = false;
    var first = null;
    var select = null;
    (p.errors || []).forEach(function (e) {
      // `assertions[1]` belongs to the `assertions` field.
      var name = CSS.escape(String(e.field).replace(/[\[.].*$/, ""));
      // A setting some kinds keep secret has a field per form; the one shown is the kind's.
      var slot = shownFirst(scope.querySelectorAll('[data-field-error="' + name + '"]'));
      if (!slot) return;
      var input = shownFirst(scope.querySelectorAll('[name="' + name + '"]'));
      var where = name !== e.field ? e.field + ": " : "";
      var item = /\[(\d+)\]$/.exec(e.field);
      if (item && input && input.dataset.type === "lines") {
        // The n-th item is the n-th non-empty line: say which line, and select the text
        // from the position the parser names.
        var at = lineOf(input.value, Number(item[1]));
        var pos = /at position (\d+)/.exec(e.message);
        if (at) {
          where = "line " + at.number + ": ";
          if (!select) select = { input: input, from: at.start + (pos ? Number(pos[1]) : 0), to: at.end };
        }
      }
      slot.textContent = (slot.textContent ? slot.textContent + " " : "") + where + e.message;
      if (input) {
        input.setAttribute("aria-invalid", "true");
        if (!first) first = input;
      }
      placed = true;
    });
    if (first) first.focus();
    if (select && select.input === first) select.input.setSelectionRange(Math.min(select.from, select.to), select.to);
    if (general) {
      var msg = p.detail || p.title || ("The server answered " + res.status + ".");
      general.textContent = placed ? "Please correct the fields marked below." : msg;
      general.hidden = false;
    }
  }

  // The `index`-th non-empty line of `text`: its number (from 1) and where it starts and ends.
  function lineOf(text, index) {
    var lines = text.split("\n");
    var offset = 0;
    var seen = -1;
    for (var i = 0; i < lines.length; i++) {
      var trimmed = lines[i].trim();
      if (trimmed) {
        seen++;
        if (seen === index) {
          var start = offset + lines[i].indexOf(trimmed);
          return { number: i + 1, start: start, end: start + trimmed.length };
        }
      }
      offset += lines[i].length + 1;
    }
    return null;
  }

  function clearProblems(scope) {
    scope.querySelectorAll("[data-field-error]").forEach(function (e) { e.textContent = ""; });
    scope.querySelectorAll('[aria-invalid="true"]').forEach(function (e) { e.removeAttribute("aria-invalid"); });
    var g = scope.querySelector("[data-error]");
    if (g) { g.textContent = ""; g.hidden = true; }
  }

  // The form's fields as the API's JSON. A new object leaves empty fields out; an edit sends
  // them as null (the API removes the setting) or as an empty list.
  function formJson(form) {
    var out = {};
    var edit = form.hasAttribute("data-edit");
    var nested = {};
    form.querySelectorAll("input[name], select[name], textarea[name]").forEach(function (el) {
      if (el.disabled) return;
      var v = el.value.trim();
      if (el.dataset.path) {
        // A part of an object (a rule's `flap.failures`): numbers, or ticked ids for a list.
        var at = el.dataset.path.split(".");
        var obj = nested[at[0]] = nested[at[0]] || {};
        if (el.type === "checkbox") {
          obj[at[1]] = obj[at[1]] || [];
          if (el.checked) obj[at[1]].push(el.value);
        } else if (v !== "") {
          obj[at[1]] = Number(v);
        }
        return;
      }
      if (el.type === "checkbox" && el.dataset.type === "checks") {
        out[el.name] = out[el.name] || [];
        if (el.checked) out[el.name].push(el.value);
        return;
      }
      if (el.type === "checkbox") { out[el.name] = el.checked; return; }
      if (el.dataset.type === "page-group" || el.dataset.type === "public-name") {
        // A status page's sections and public names, for the monitors that are ticked.
        var id = el.dataset.monitor;
        var box = form.querySelector('input[name="monitors"][value="' + CSS.escape(id) + '"]');
        var group = el.dataset.type === "page-group";
        if (group) out.groups = out.groups || []; else out.public_names = out.public_names || {};
        if (!v || (box && !box.checked)) return;
        if (!group) { out.public_names[id] = v; return; }
        var g = out.groups.filter(function (x) { return x.name === v; })[0];
        if (!g) { g = { name: v, monitors: [] }; out.groups.push(g); }
        g.monitors.push(id);
        return;
      }
      if (el.dataset.type === "event-names") {
        // An event monitor's query: the names it counts (none: every event).
        var names = v.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
        out[el.name] = names.length ? { filters: [{ property: "name", op: "in", value: names }] } : {};
        return;
      }
      if (el.dataset.type === "condition") {
        // An event monitor's condition, one part per field.
        out.condition = out.condition || {};
        if (v !== "") out.condition[el.dataset.part] = el.dataset.part === "op" ? v : Number(v);
        if (out.condition.op === "absent") delete out.condition.threshold;
        return;
      }
      if (el.dataset.type === "selection") {
        // Monitors a rule or window applies to: all, or those with any of these tags.
        var tags = v.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
        out[el.name] = tags.length ? { tags: tags } : "all";
        return;
      }
      if (v === "") {
        // A stored credential is not shown: left blank, it is kept.
        if (el.hasAttribute("data-keep-blank")) return;
        if (edit) out[el.name] = (el.dataset.type === "lines" || el.dataset.type === "list") ? [] : null;
        return;
      }
      if (el.tagName === "SELECT" && (v === "true" || v === "false")) { out[el.name] = v === "true"; return; }
      var type = el.dataset.type;
      if (el.dataset.listIn) {
        // A list for some kinds only (a channel's `to`: addresses for email, a number for SMS).
        var kind = form.querySelector("[data-kind-select]");
        if (kind && el.dataset.listIn.split(" ").indexOf(kind.value) >= 0) type = "list";
      }
      switch (type) {
        case "number": out[el.name] = Number(v); break;
        case "headers":
          out[el.name] = {};
          v.split("\n").forEach(function (line) {
            var at = line.indexOf(":");
            if (at > 0) out[el.name][line.slice(0, at).trim()] = line.slice(at + 1).trim();
          });
          break;
        case "json": out[el.name] = JSON.parse(v); break;
        case "datetime": {
          // A date-time picker's value is in the viewer's time zone; the API takes UTC.
          var d = new Date(v);
          out[el.name] = isNaN(d) ? v : d.toISOString().replace(/\.\d+Z$/, "Z");
          break;
        }
        case "lines": out[el.name] = v.split("\n").map(function (s) { return s.trim(); }).filter(Boolean); break;
        case "list": out[el.name] = v.split(",").map(function (s) { return s.trim(); }).filter(Boolean); break;
        default: out[el.name] = el.type === "password" ? el.value : v;
      }
    });
    // An object none of whose parts is given is left out (or, on an edit, removed).
    Object.keys(nested).forEach(function (key) {
      var obj = nested[key];
      var given = Object.keys(obj).some(function (k) { return !Array.isArray(obj[k]) || obj[k].length; });
      if (given) out[key] = obj; else if (edit) out[key] = null;
    });
    // "Remove the stored credential" boxes.
    form.querySelectorAll("input[data-clear]").forEach(function (el) {
      if (el.checked && !el.disabled) out[el.dataset.clear] = null;
    });
    return out;
  }

  function showKind(form) {
    var select = form.querySelector("[data-kind-select]");
    if (!select) return;
    form.querySelectorAll("[data-kinds]").forEach(function (f) {
      var on = f.dataset.kinds.split(" ").indexOf(select.value) >= 0;
      f.hidden = !on;
      f.querySelectorAll("input, select, textarea").forEach(function (i) { i.disabled = !on; });
    });
  }

  // The monitor form's channels, kept as the monitor's own rule (made, changed, or removed
  // when none is ticked). Resolves to null, or to the API's answer when that failed.
  function keepNotify(box, monitor) {
    var ids = Array.prototype.slice.call(box.querySelectorAll("input[data-notify-channel]:checked"))
      .map(function (b) { return b.value; });
    var rule = box.dataset.notifyRule;
    // As the server names it (resources::own_rule_name): the monitor's name cut to 185 characters.
    var name = Array.from(monitor.name).slice(0, 185).join("") + ": notifications";
    var call;
    if (!ids.length && !rule) return Promise.resolve(null);
    if (!ids.length) call = api("DELETE", "/api/v1/rules/" + encodeURIComponent(rule));
    else if (rule) call = api("PATCH", "/api/v1/rules/" + encodeURIComponent(rule), { name: name, channels: ids });
    else call = api("POST", "/api/v1/rules", { name: name, monitors: [monitor.id], events: ["down", "up"], channels: ids });
    return call.then(function (res) {
      if (!res.ok) return res;
      box.dataset.notifyRule = ids.length && res.json && res.json.id ? res.json.id : (ids.length ? rule : "");
      return null;
    }, function () {
      return { status: 0, json: { detail: "the server could not be reached" } };
    });
  }

  // A failed answer in a few words: its first field's message, or its detail.
  function problemText(res) {
    var p = res.json || {};
    if (p.errors && p.errors.length) return p.errors[0].field + " " + p.errors[0].message;
    return p.detail || p.title || "answer " + res.status;
  }

  function go(template, json) {
    location.href = template.replace("{id}", json && json.id ? encodeURIComponent(json.id) : "");
  }

  document.querySelectorAll("form[data-api-form]").forEach(function (form) {
    var select = form.querySelector("[data-kind-select]");
    if (select) { select.addEventListener("change", function () { showKind(form); }); showKind(form); }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var spec = form.dataset.apiForm.split(" ");
      var body = formJson(form);
      var button = form.querySelector('button[type="submit"]');
      clearProblems(form);
      if (button) button.disabled = true;
      var extra = form.dataset.ifMatch ? { "If-Match": '"' + form.dataset.ifMatch + '"' } : {};
      api(spec[0], spec[1], body, extra).then(function (res) {
        if (!res.ok) { showProblem(form, res); return null; }
        if (form.hasAttribute("data-login-after")) {
          return api("POST", "/api/v1/auth/session", { email: body.email, password: body.password })
            .then(function (s) { if (s.ok) go(form.dataset.then, res.json); else showProblem(form, s); });
        }
        if (form.dataset.showSecret) {
          // Shown once: the server keeps only its hash.
          var box = form.querySelector("[data-secret]");
          box.textContent = "Copy this key now; it is not shown again: " + res.json[form.dataset.showSecret];
          box.hidden = false;
          return null;
        }
        if (res.json && res.json.invite_path) {
          // An invitation: its link is shown this once, to be sent to the person.
          var note = form.querySelector("[data-secret]");
          note.textContent = "Invitation made. Send this link to " + res.json.email +
            " (it works once, for 7 days): " + location.origin + res.json.invite_path;
          note.hidden = false;
          return null;
        }
        if (res.json && res.json.emailed) {
          var sent = form.querySelector("[data-secret]");
          sent.textContent = "Invitation sent to " + res.json.email + " (its link works once, for 7 days).";
          sent.hidden = false;
          return null;
        }
        if (form.dataset.doneText) {
          // Done, and nothing to go to: say so where the form is.
          var said = form.querySelector("[data-notice]");
          said.textContent = form.dataset.doneText;
          said.hidden = false;
          return null;
        }
        if (form.hasAttribute("data-reload-after")) { location.reload(); return null; }
        var notify = form.querySelector("[data-notify]");
        if (notify && res.json && res.json.id) {
          return keepNotify(notify, res.json).then(function (failed) {
            if (!failed) { go(form.dataset.then || "/", res.json); return; }
            // The monitor is saved: from now on the form edits it, so saving again does not
            // make a second one.
            form.dataset.apiForm = "PATCH /api/v1/monitors/" + res.json.id;
            form.setAttribute("data-edit", "");
            if (res.json.version) form.dataset.ifMatch = res.json.version; else delete form.dataset.ifMatch;
            showProblem(form, { status: failed.status, json: { detail: "The monitor was saved, but not who is notified: " + problemText(failed) } });
          });
        }
        go(form.dataset.then || "/", res.json);
        return null;
      }).catch(function () {
        showProblem(form, { status: 0, json: { detail: "The server could not be reached." } });
      }).then(function () { if (button) button.disabled = false; });
    });
  });

  document.addEventListener("click", function (ev) {
    var t = ev.target.closest("button");
    if (!t) return;
    if (t.hasAttribute("data-menu-toggle")) {
      var header = t.closest("header");
      var open = header.classList.toggle("open");
      t.setAttribute("aria-expanded", open ? "true" : "false");
    } else if (t.dataset.copy) {
      var from = document.querySelector(t.dataset.copy);
      if (!from) return;
      var done = function () { t.textContent = "Copied"; setTimeout(function () { t.textContent = "Copy"; }, 2000); };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(from.value).then(done, function () {});
      else { from.select(); if (document.execCommand("copy")) done(); }
    } else if (t.hasAttribute("data-theme-toggle")) {
      var dark = root.dataset.theme ? root.dataset.theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
      root.dataset.theme = dark ? "light" : "dark";
      localStorage.setItem("pt-theme", root.dataset.theme);
    } else if (t.dataset.groupToggle) {
      // A group's row opens to show its members.
      var open = t.getAttribute("aria-expanded") !== "true";
      t.setAttribute("aria-expanded", open ? "true" : "false");
      t.querySelector("[aria-hidden]").textContent = open ? "▾" : "▸";
      document.querySelectorAll('tr[data-in-group="' + CSS.escape(t.dataset.groupToggle) + '"]')
        .forEach(function (r) { r.hidden = !open; });
    } else if (t.dataset.switchTenant) {
      document.cookie = "pingtower_tenant=" + encodeURIComponent(t.dataset.switchTenant) + "; Path=/; SameSite=Lax";
      location.href = "/";
    } else if (t.hasAttribute("data-logout")) {
      api("DELETE", "/api/v1/auth/session").then(function () { location.href = "/login"; });
    } else if (t.dataset.api) {
      if (t.dataset.confirm && !confirm(t.dataset.confirm)) return;
      var spec = t.dataset.api.split(" ");
      var scope = t.closest("main") || document;
      clearProblems(scope);
      api(spec[0], spec[1]).then(function (res) {
        if (!res.ok) return showProblem(scope, res);
        var notice = scope.querySelector("[data-notice]");
        if (notice && res.json && res.json.ok === false) {
          // A channel test the provider refused, or that reached nobody: say what happened.
          notice.textContent = "The test failed: " + (res.json.answer || "no answer");
          notice.classList.add("failed");
          notice.hidden = false;
          return;
        }
        if (t.hasAttribute("data-show-answer") && notice && res.json) {
          // What the server did, in its words (and a link it gave to pass on).
          notice.textContent = (res.json.detail || "Done.") + (res.json.link ? ": " + res.json.link : ".");
          notice.classList.remove("failed");
          notice.hidden = false;
        } else if (t.dataset.done && notice) {
          notice.textContent = t.dataset.done + (res.json && res.json.answer ? " The provider answered: " + res.json.answer : "");
          notice.classList.remove("failed");
          notice.hidden = false;
        }
        if (t.dataset.then) location.href = t.dataset.then;
        else if (t.hasAttribute("data-reload")) location.reload();
      });
    } else if (t.dataset.ack) {
      var scope2 = t.closest("main") || document;
      clearProblems(scope2);
      t.disabled = true;
      api("POST", "/api/v1/incidents/" + encodeURIComponent(t.dataset.ack) + "/ack").then(function (res) {
        if (!res.ok) { t.disabled = false; return showProblem(scope2, res); }
        var row = t.closest("tr");
        var s = row && row.querySelector("[data-incident-status]");
        if (s) { s.textContent = "acknowledged"; s.className = "status i-acknowledged"; }
        t.remove();
      });
    }
  });

  document.addEventListener("change", function (ev) {
    var t = ev.target;
    if (!t.dataset || !t.dataset.memberRole) return;
    var scope = t.closest("main") || document;
    clearProblems(scope);
    api("PATCH", "/api/v1/users/" + encodeURIComponent(t.dataset.memberRole), { role: t.value }).then(function (res) {
      if (res.ok) { t.dataset.was = t.value; return; }
      t.value = t.dataset.was;
      showProblem(scope, res);
    });
  });

  // ---- live updates ----------------------------------------------------------------------

  function fmtMs(ms) {
    if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
    if (ms >= 100) return ms.toFixed(0) + " ms";
    return ms.toFixed(1) + " ms";
  }

  function setStatus(el, status) {
    if (!el) return;
    el.textContent = status;
    el.className = "status s-" + status;
  }

  function cell(tr, value) {
    var td = document.createElement("td");
    td.textContent = value;
    tr.appendChild(td);
    return td;
  }

  // An API time (`2026-12-07T21:00:00.123Z`) as `2026-12-07 21:00:00 UTC`.
  function utcText(t) {
    return String(t).replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC");
  }

  // In the viewer's time zone (assets/time.js), or in UTC.
  function fmtTime(t) {
    var d = new Date(t);
    if (window.ptLocalTime && !isNaN(d)) return window.ptLocalTime(d);
    return utcText(t);
  }

  function incidentRow(i) {
    var tr = document.createElement("tr");
    tr.dataset.incident = i.id;
    var link = document.createElement("a");
    link.href = "/incidents/" + encodeURIComponent(i.id);
    link.textContent = fmtTime(i.opened_at);
    cell(tr, "").appendChild(link);
    var st = document.createElement("span");
    st.dataset.incidentStatus = "";
    st.className = "status i-" + i.status;
    st.textContent = i.status;
    cell(tr, "").appendChild(st);
    cell(tr, i.reason || "");
    cell(tr, i.resolved_at ? fmtTime(i.resolved_at) : "");
    var td = cell(tr, "");
    if (i.status === "open") {
      var b = document.createElement("button");
      b.type = "button";
      b.dataset.ack = i.id;
      b.textContent = "Acknowledge";
      td.appendChild(b);
    }
    return tr;
  }

  var overview = document.querySelector("[data-live-overview]");
  var detail = document.querySelector("[data-live-monitor]");
  var incident = document.querySelector("[data-live-incident]");

  // Many monitors at once: the overview's ticked rows, acted on one API call each (so each
  // gets the API's checks and audit), with what was not done said by name.
  var bulk = document.querySelector("[data-bulk]");
  function picked() {
    return overview ? Array.prototype.slice.call(overview.querySelectorAll("input[data-pick]:checked")) : [];
  }
  function showBulk() {
    if (!bulk) return;
    var n = picked().length;
    bulk.hidden = n === 0 && bulk.querySelector("[data-bulk-note]").hidden;
    text(bulk.querySelector("[data-bulk-count]"), String(n));
  }
  document.addEventListener("change", function (ev) {
    var t = ev.target;
    if (!overview || !t.matches) return;
    if (t.matches("input[data-pick-all]")) {
      // The rows shown: not the members of a closed group.
      overview.querySelectorAll("tr:not([hidden]) input[data-pick]").forEach(function (b) { b.checked = t.checked; });
      showBulk();
    } else if (t.matches("input[data-pick]")) {
      showBulk();
    }
  });
  document.addEventListener("click", function (ev) {
    var t = ev.target.closest ? ev.target.closest("[data-bulk-action]") : null;
    if (!t || !bulk) return;
    var action = t.dataset.bulkAction;
    var boxes = picked();
    var note = bulk.querySelector("[data-bulk-note]");
    var tag = bulk.querySelector("[data-bulk-tag]").value.trim();
    if (!boxes.length) return;
    if ((action === "tag" || action === "untag") && !tag) {
      note.textContent = "Type the tag first.";
      note.classList.add("failed");
      note.hidden = false;
      bulk.querySelector("[data-bulk-tag]").focus();
      return;
    }
    if (action === "delete" && !confirm("Delete " + boxes.length + " monitors and their history?")) return;
    var buttons = bulk.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    var failed = [], done = 0, chain = Promise.resolve();
    boxes.forEach(function (b) {
      var path = "/api/v1/monitors/" + encodeURIComponent(b.dataset.pick);
      var link = b.closest("tr").querySelector("a");
      var name = link ? link.textContent : b.dataset.pick;
      chain = chain.then(function () {
        var call;
        if (action === "pause" || action === "resume") call = api("POST", path + "/" + action);
        else if (action === "delete") call = api("DELETE", path);
        else {
          var tags = JSON.parse(b.dataset.tags || "[]").filter(function (x) { return x !== tag; });
          if (action === "tag") tags.push(tag);
          call = api("PATCH", path, { tags: tags });
        }
        return call.then(function (res) {
          if (res.ok) { done++; return; }
          failed.push(name + " (" + problemText(res) + ")");
        }, function () { failed.push(name + " (the server could not be reached)"); });
      });
    });
    chain.then(function () {
      var verb = { pause: "paused", resume: "resumed", "delete": "deleted", tag: "tagged " + tag, untag: "untagged " + tag }[action];
      note.textContent = done + " of " + boxes.length + " " + verb + "." + (failed.length ? " Not done: " + failed.join("; ") : "");
      note.classList.toggle("failed", failed.length > 0);
      note.hidden = false;
      buttons.forEach(function (b) { b.disabled = false; });
      redraw(overview);
    });
  });

  // Draws `box` again from the page as the server renders it now (without a reload; one
  // fetch at a time, and one more if a change came meanwhile).
  // Bursts (a configuration applied, many monitors at once) become one fetch a second at most.
  var redrawing = false, again = false, lastRedraw = 0;
  function redraw(box) {
    if (redrawing) { again = true; return; }
    var wait = lastRedraw + 1000 - Date.now();
    if (wait > 0) { redrawing = true; setTimeout(function () { redrawing = false; redraw(box); }, wait); return; }
    redrawing = true;
    lastRedraw = Date.now();
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (html) {
        if (!html) return;
        var attr = box.hasAttribute("data-live-overview") ? "data-live-overview" : "data-live-incident";
        var next = new DOMParser().parseFromString(html, "text/html").querySelector("[" + attr + "]");
        if (!next) return;
        // Only the parts marked live, where a page has them: the rest (a filter being typed
        // into) stays as the user left it.
        var parts = box.querySelectorAll("[data-live-part]");
        var fresh = next.querySelectorAll("[data-live-part]");
        // Rows ticked for a bulk action stay ticked, open groups open.
        // Keyboard focus on a row's box or a group's toggle comes back to it after.
        var focused = document.activeElement && box.contains(document.activeElement) ? document.activeElement : null;
        var focusPick = focused && focused.dataset ? focused.dataset.pick : null;
        var focusGroup = focused && focused.dataset ? focused.dataset.groupName : null;
        var opened = Object.create(null);
        box.querySelectorAll('[data-group-toggle][aria-expanded="true"]').forEach(function (b) {
          opened[b.dataset.groupName] = true;
        });
        var ticked = {};
        box.querySelectorAll("input[data-pick]:checked").forEach(function (b) { ticked[b.dataset.pick] = true; });
        if (parts.length && parts.length === fresh.length) {
          parts.forEach(function (p, i) { p.innerHTML = fresh[i].innerHTML; });
        } else {
          box.innerHTML = next.innerHTML;
        }
        box.querySelectorAll("[data-group-toggle]").forEach(function (b) {
          if (opened[b.dataset.groupName]) b.click();
        });
        var rows = box.querySelectorAll("input[data-pick]");
        rows.forEach(function (b) { b.checked = !!ticked[b.dataset.pick]; });
        var all = box.querySelector("input[data-pick-all]");
        if (all) all.checked = rows.length > 0 && box.querySelectorAll("input[data-pick]:checked").length === rows.length;
        var again = null;
        if (focusPick) again = box.querySelector('input[data-pick="' + CSS.escape(focusPick) + '"]');
        if (focusGroup) box.querySelectorAll("[data-group-name]").forEach(function (b) { if (b.dataset.groupName === focusGroup) again = b; });
        if (again && !again.closest("[hidden]")) again.focus();
        if (box === overview) showBulk();
        if (window.ptShowTimes) window.ptShowTimes(box);
      })
      .catch(function () {})
      .then(function () {
        redrawing = false;
        if (again) { again = false; redraw(box); }
      });
  }

  if ((overview || detail || incident) && window.EventSource) {
    var es = new EventSource("/api/v1/events/stream");
    es.addEventListener("resync", function () { location.reload(); });
    // A monitor made, renamed or deleted elsewhere: the overview shows it.
    es.addEventListener("monitor", function () { if (overview) redraw(overview); });
    // Someone acknowledged the incident or added a note.
    es.addEventListener("incident", function (ev) {
      var d = JSON.parse(ev.data);
      if (incident && incident.dataset.liveIncident === d.incident_id) redraw(incident);
    });
    es.addEventListener("state", function (ev) {
      var d = JSON.parse(ev.data);
      if (incident && (incident.dataset.monitor === d.monitor_id || incident.dataset.liveIncident === d.incident_id)) redraw(incident);
    });
    es.addEventListener("state", function (ev) {
      var d = JSON.parse(ev.data);
      if (overview) {
        var row = overview.querySelector('tr[data-monitor="' + d.monitor_id + '"]');
        if (row) setStatus(row.querySelector("[data-status]"), d.to);
        // Its place in the order and its reason change with it.
        redraw(overview);
        [[d.from, -1], [d.to, 1]].forEach(function (p) {
          var c = overview.querySelector('[data-count="' + p[0] + '"] .n');
          if (c) c.textContent = String(Math.max(0, Number(c.textContent) + p[1]));
        });
      }
      if (detail && detail.dataset.liveMonitor === d.monitor_id) {
        setStatus(detail.querySelector("h1 [data-status]"), d.to);
        if (d.incident_id) {
          api("GET", "/api/v1/incidents/" + encodeURIComponent(d.incident_id)).then(function (res) {
            if (!res.ok) return;
            var body = detail.querySelector("[data-incidents] tbody");
            var old = body.querySelector('tr[data-incident="' + d.incident_id + '"]');
            var fresh = incidentRow(res.json);
            if (old) old.replaceWith(fresh); else body.prepend(fresh);
            var none = detail.querySelector("[data-no-incidents]");
            if (none) none.remove();
          });
        }
      }
    });
    // A new check result as the rightmost beat; the oldest goes when the bar is full.
    var addBeat = function (bar, d) {
      if (!bar) return;
      var ns = "http://www.w3.org/2000/svg";
      var rects = bar.querySelectorAll("rect");
      if (rects.length >= Number(bar.dataset.beats || 30)) rects[0].remove();
      var rect = document.createElementNS(ns, "rect");
      if (d.status !== "up") rect.setAttribute("class", "b-" + d.status);
      var title = document.createElementNS(ns, "title");
      title.textContent = [fmtTime(d.checked_at), d.status === "up" ? "" : d.status, d.status === "down" ? "" : fmtMs(d.latency_ms), d.reason || ""]
        .filter(Boolean).join(" · ");
      rect.appendChild(title);
      bar.appendChild(rect);
      bar.querySelectorAll("rect").forEach(function (r, i) { r.setAttribute("x", String(i * 6)); });
    };
    es.addEventListener("result", function (ev) {
      var d = JSON.parse(ev.data);
      if (detail && detail.dataset.liveMonitor === d.monitor_id) addBeat(detail.querySelector("[data-beats]"), d);
      if (overview) {
        var row = overview.querySelector('tr[data-monitor="' + d.monitor_id + '"]');
        if (row) addBeat(row.querySelector("[data-beats]"), d);
        if (row) text(row.querySelector("[data-latency]"), d.status === "down" ? "–" : fmtMs(d.latency_ms));
        var checked = row && row.querySelector("[data-checked]");
        if (checked) {
          var t = document.createElement("time");
          t.setAttribute("datetime", new Date(d.checked_at).toISOString());
          t.setAttribute("title", utcText(d.checked_at));
          t.setAttribute("data-ago", "");
          t.textContent = "just now";
          checked.replaceChildren(t);
        }
        else if (!overview.querySelector("[data-count].active") && !location.search) {
          var note = overview.querySelector("[data-live-note]");
          if (note) note.hidden = false;
        }
      }
      if (detail && detail.dataset.liveMonitor === d.monitor_id) {
        var body = detail.querySelector("[data-results]");
        var tr = document.createElement("tr");
        cell(tr, fmtTime(d.checked_at));
        var s = document.createElement("span");
        setStatus(s, d.status);
        cell(tr, "").appendChild(s);
        cell(tr, fmtMs(d.latency_ms)).className = "num";
        cell(tr, d.region);
        cell(tr, d.reason || "");
        cell(tr, "");
        body.prepend(tr);
        while (body.children.length > 25) body.lastElementChild.remove();
      }
    });
  }

  // The Events page's tail: the newest events, every 5 seconds, while the page is open.
  var tail = document.querySelector("[data-events-tail] tbody");
  if (tail) {
    var cell = function (text, code) {
      var td = document.createElement("td");
      var inner = code ? document.createElement("code") : td;
      inner.textContent = text;
      if (code) td.appendChild(inner);
      return td;
    };
    var refreshTail = function () {
      api("GET", "/api/v1/events?limit=20")
        .then(function (res) {
          var page = res.ok ? res.json : null;
          if (!page) return;
          tail.textContent = "";
          page.items.forEach(function (e) {
            var tr = document.createElement("tr");
            var props = JSON.stringify(e.properties);
            if (props.length > 120) props = props.slice(0, 120) + "…";
            tr.appendChild(cell(e.timestamp.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC")));
            tr.appendChild(cell(e.name));
            tr.appendChild(cell(e.distinct_id || ""));
            tr.appendChild(cell(props, true));
            tail.appendChild(tr);
          });
          var empty = document.querySelector("[data-events-empty]");
          if (empty && page.items.length) empty.hidden = true;
        })
        .catch(function () {});
    };
    var lastLive = 0;
    setInterval(function () {
      // Live totals refresh the tail as events come; this is the fallback.
      if (!document.hidden && Date.now() - lastLive > 5000) refreshTail();
    }, 5000);
    var rate = document.querySelector("[data-events-rate]");
    if (rate && window.EventSource) {
      var live = new EventSource("/api/v1/events/stream");
      live.addEventListener("events", function (ev) {
        var d = JSON.parse(ev.data);
        rate.textContent = String(d.total);
        lastLive = Date.now();
        refreshTail();
      });
      // A quiet second shows as zero.
      setInterval(function () { if (Date.now() - lastLive > 1500) rate.textContent = "0"; }, 1000);
    }
  }

  // A dashboard redraws a chart when events it counts arrive (per-second totals on the live
  // stream), at most every 5 seconds per chart.
  var board = document.querySelector("[data-live-dashboard]");
  if (board && window.EventSource) {
    var due = {}, last = {};
    var redraw = function (cellEl) {
      var id = cellEl.dataset.chart;
      if (due[id]) return;
      var wait = Math.max(0, (last[id] || 0) + 5000 - Date.now());
      due[id] = setTimeout(function () {
        last[id] = Date.now();
        fetch("/events/charts/" + encodeURIComponent(id) + "/figure", { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) {
            if (html !== null) cellEl.querySelector("[data-figure]").innerHTML = html;
            cellEl.dataset.redrawn = String(Number(cellEl.dataset.redrawn || "0") + 1);
          })
          .catch(function () {})
          .then(function () { delete due[id]; });
      }, wait);
    };
    var boardLive = new EventSource("/api/v1/events/stream");
    boardLive.addEventListener("events", function (ev) {
      var d = JSON.parse(ev.data);
      var names = Object.keys(d.counts || {});
      board.querySelectorAll("[data-chart]").forEach(function (cellEl) {
        var wanted = cellEl.dataset.names ? cellEl.dataset.names.split(",") : [];
        if (!wanted.length || names.some(function (n) { return wanted.indexOf(n) >= 0; })) redraw(cellEl);
      });
    });
  }
})();
