// dormwatt student pages: the only script. It follows an order's state on
// the payment-success page and calls WeixinJSBridge to pay inside WeChat.
(function () {
  "use strict";
  var LABELS = {
    zh: { unpaid: "未支付", charging: "加电中", delayed: "延迟加电", completed: "已完成", closed: "已关闭", refunding: "退款中", refunded: "已退款" },
    en: { unpaid: "Unpaid", charging: "Charging", delayed: "Delayed", completed: "Completed", closed: "Closed", refunding: "Refunding", refunded: "Refunded" }
  };
  var FINAL = { completed: 1, closed: 1, refunded: 1 };

  // Live order status: <div id="order-live" data-url="/orders/1/status.json" data-lang="zh">.
  var live = document.getElementById("order-live");
  if (live) {
    var url = live.getAttribute("data-url");
    var lang = live.getAttribute("data-lang") === "en" ? "en" : "zh";
    var polls = 0, delay = 1000;
    var tick = function () {
      polls += 1;
      var xhr = new XMLHttpRequest();
      xhr.open("GET", url, true);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.timeout = 8000;
      xhr.onload = function () {
        if (xhr.status === 200) {
          try {
            var o = JSON.parse(xhr.responseText);
            var el = document.getElementById("order-state");
            if (el && o.state) {
              el.textContent = (LABELS[lang][o.state] || o.state);
              el.className = "state " + o.state;
              live.setAttribute("data-state", o.state);
            }
            var rem = document.getElementById("order-remaining");
            if (rem && o.remaining_kwh) { rem.textContent = o.remaining_kwh; }
            if (FINAL[o.state]) {
              var sp = document.getElementById("order-spinner");
              if (sp) { sp.style.display = "none"; }
              var done = document.getElementById("order-done");
              if (done && o.state === "completed") { done.style.display = "block"; }
              var note = document.getElementById("sending-note");
              if (note && o.state === "completed") { note.style.display = "none"; }
              return;
            }
          } catch (e) { /* keep polling */ }
        }
        schedule();
      };
      xhr.onerror = schedule;
      xhr.ontimeout = schedule;
      xhr.send();
    };
    // Poll every second at first, then back off to 5 s; stop after ~30 min.
    var schedule = function () {
      if (polls > 400) { return; }
      if (polls > 30) { delay = 5000; }
      setTimeout(tick, delay);
    };
    tick();
  }

  // WeChat Pay: <div id="wxpay" data-params='{"appId":...}' data-done="/orders/1">.
  var wx = document.getElementById("wxpay");
  if (wx) {
    var pay = function () {
      var params;
      try { params = JSON.parse(wx.getAttribute("data-params")); } catch (e) { return; }
      window.WeixinJSBridge.invoke("getBrandWCPayRequest", params, function (res) {
        // The result is only a hint; the order page shows what the server knows.
        window.location.href = wx.getAttribute("data-done");
      });
    };
    if (window.WeixinJSBridge) { pay(); }
    else { document.addEventListener("WeixinJSBridgeReady", pay, false); }
    var btn = document.getElementById("wxpay-btn");
    if (btn) { btn.addEventListener("click", function () { if (window.WeixinJSBridge) { pay(); } }); }
  }

  // Forms that ask first: <form data-confirm="…"> (no inline handlers: the
  // Content-Security-Policy allows only this file's script).
  var asks = document.querySelectorAll("form[data-confirm]");
  for (var i = 0; i < asks.length; i += 1) {
    asks[i].addEventListener("submit", function (e) {
      if (!window.confirm(this.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  }
})();
