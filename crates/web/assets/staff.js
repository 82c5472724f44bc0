// dormwatt staff console: the only script. The meter type-ahead (forms
// work without it) and the live delivery state on a counter receipt.
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
})();
