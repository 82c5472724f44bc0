// dormwatt: the order-state polling app.js and staff.js share (each is
// served with this file in front). Asks `url` for JSON every second, after
// 30 polls every 5 s, and stops after 400 polls or when `seen(answer)`
// returns true; a failed request or answer is polled again. `now`: the
// first poll at once, not after the first delay.
function dormwattPoll(url, now, seen) {
  "use strict";
  var polls = 0, delay = 1000;
  var schedule = function () {
    if (polls > 400) { return; }
    if (polls > 30) { delay = 5000; }
    setTimeout(tick, delay);
  };
  var tick = function () {
    polls += 1;
    var xhr = new XMLHttpRequest();
    xhr.open("GET", url, true);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.timeout = 8000;
    xhr.onload = function () {
      if (xhr.status === 200) {
        try {
          if (seen(JSON.parse(xhr.responseText))) { return; }
        } catch (e) { /* keep polling */ }
      }
      schedule();
    };
    xhr.onerror = schedule;
    xhr.ontimeout = schedule;
    xhr.send();
  };
  if (now) { tick(); } else { schedule(); }
}
