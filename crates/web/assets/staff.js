// dormwatt staff console: the only script. The meter type-ahead (forms
// work without it), the live delivery state on a counter receipt, the
// live building view and a meter's relay commands.
// Texts come from the page (data attributes), never from here.
(function () {
  "use strict";

  // Type-ahead: <input data-suggest="/staff/meters/suggest" data-go="/staff/meters/" [data-area="select-id"]>
  // followed by <div class=suggest id="<input id>-list">.
  var inputs = document.querySelectorAll("input[data-suggest]");
  Array.prototype.forEach.call(inputs, function (input) {
    var list = document.getElementById(input.id + "-list");
    if (!list) { return; }
    var timer = null, seq = 0;
    var clear = function () { while (list.firstChild) { list.removeChild(list.firstChild); } };
    var ask = function () {
      var q = input.value.trim();
      if (q.length < 2) { clear(); return; }
      var url = input.getAttribute("data-suggest") + "?q=" + encodeURIComponent(q);
      var areaId = input.getAttribute("data-area");
      var area = areaId ? document.getElementById(areaId) : null;
      if (area && area.value) { url += "&area=" + encodeURIComponent(area.value); }
      var mine = ++seq;
      var xhr = new XMLHttpRequest();
      xhr.open("GET", url, true);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.timeout = 8000;
      xhr.onload = function () {
        if (mine !== seq || xhr.status !== 200) { return; }
        var rows;
        try { rows = JSON.parse(xhr.responseText); } catch (e) { return; }
        clear();
        rows.forEach(function (r) {
          var a = document.createElement("a");
          a.href = input.getAttribute("data-go") + r.id;
          a.textContent = r.label;
          a.setAttribute("role", "option");
          a.className = "suggestion";
          list.appendChild(a);
        });
      };
      xhr.send();
    };
    input.addEventListener("input", function () {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(ask, 200);
    });
  });

  // Print button.
  var print = document.querySelector("[data-print]");
  if (print) { print.addEventListener("click", function () { window.print(); }); }

  // Live receipt: <p id=receipt-live data-url=… data-state=… data-label-<state>=…>.
  var live = document.getElementById("receipt-live");
  var FINAL = { completed: 1, closed: 1, refunded: 1 };
  if (live && !FINAL[live.getAttribute("data-state")]) {
    var url = live.getAttribute("data-url");
    dormwattPoll(url, false, function (o) {
      var el = document.getElementById("receipt-state");
      if (el && o.state) {
        el.textContent = live.getAttribute("data-label-" + o.state) || o.state;
        el.className = "state " + o.state;
        live.setAttribute("data-state", o.state);
      }
      if (!FINAL[o.state]) { return false; }
      var sp = document.getElementById("receipt-spinner");
      if (sp) { sp.parentNode.removeChild(sp); }
      return true;
    });
  }
  // Live building view: <p id=bv-live data-url=…json> above .room cells
  // (data-meter); the JSON carries each cell's texts in the page language.
  var bv = document.getElementById("bv-live");
  if (bv) {
    var FIELDS = ["online", "relay", "power", "remaining", "age", "trips", "pending"];
    dormwattPoll(bv.getAttribute("data-url"), false, function (o) {
      var at = document.getElementById("bv-at");
      if (at && o.at) { at.textContent = o.at; }
      (o.cells || []).forEach(function (c) {
        if (!c.meter) { return; }
        var el = document.querySelector('.room[data-meter="' + c.meter + '"]');
        if (!el) { return; }
        el.className = "room " + c["class"];
        FIELDS.forEach(function (f) {
          var s = el.querySelector("." + f);
          if (s && s.textContent !== c[f]) { s.textContent = c[f]; }
        });
      });
      return false;
    });
  }

  // Select every room shown (<input id=bv-all> in the bulk form).
  var all = document.getElementById("bv-all");
  if (all) {
    all.addEventListener("change", function () {
      var boxes = document.querySelectorAll('#bv-form .room input[name="meter"]');
      Array.prototype.forEach.call(boxes, function (b) { b.checked = all.checked; });
    });
  }

  // A meter's relay history: while a command is open, follow its state
  // (<table id=relay-history data-url=… data-open=true>).
  var rh = document.getElementById("relay-history");
  if (rh && rh.getAttribute("data-open") === "true") {
    // The head-end records the command's outcome a moment before its
    // read-back reaches the meter's state: a few more polls after the last
    // command settled.
    var settled = 0;
    dormwattPoll(rh.getAttribute("data-url"), false, function (o) {
      (o.commands || []).forEach(function (c) {
        var row = rh.querySelector('tr[data-command="' + c.id + '"]');
        if (!row) { return; }
        var st = row.querySelector("td.state");
        if (st) {
          st.textContent = c.state_text;
          st.className = "state " + c.state;
          st.setAttribute("data-state", c.state);
        }
        var rb = row.querySelector("td.read-back");
        if (rb) { rb.textContent = c.error ? c.read_back + " " + c.error : c.read_back; }
        var up = row.querySelector("td.updated");
        if (up) { up.textContent = c.updated; }
      });
      var relay = document.getElementById("meter-relay");
      if (relay && o.relay) { relay.textContent = o.relay; }
      settled = o.open ? 0 : settled + 1;
      return settled >= 3;
    });
  }
})();
