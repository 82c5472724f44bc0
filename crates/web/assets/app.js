// dormwatt student pages: the only script. It follows an order's state on
// the payment-success page, calls WeixinJSBridge to pay inside WeChat and
// keeps the order form's amount, price and button in step.
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
    // Every second at first, then every 5 s; stops after ~30 min.
    dormwattPoll(url, true, function (o) {
      var el = document.getElementById("order-state");
      if (el && o.state) {
        el.textContent = (LABELS[lang][o.state] || o.state);
        el.className = "state " + o.state;
        live.setAttribute("data-state", o.state);
      }
      var rem = document.getElementById("order-remaining");
      if (rem && o.remaining_kwh) { rem.textContent = o.remaining_kwh; }
      if (!FINAL[o.state]) { return false; }
      var sp = document.getElementById("order-spinner");
      if (sp) { sp.style.display = "none"; }
      var done = document.getElementById("order-done");
      if (done && o.state === "completed") { done.style.display = "block"; }
      var note = document.getElementById("sending-note");
      if (note && o.state === "completed") { note.style.display = "none"; }
      return true;
    });
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

  // The order form (issue 11 items 1–2): exactly one amount is selected.
  // Typing an amount ticks "other"; tapping a tile clears what was typed;
  // the button says what it will buy, priced as the order will be
  // (0.0001 元/kWh × kWh, rounded half up to the fen).
  var order = document.getElementById("order-form");
  if (order) {
    var other = document.getElementById("other");
    var otherRadio = document.getElementById("kwh-other");
    var submit = document.getElementById("order-submit");
    var price = parseInt(order.getAttribute("data-price"), 10);
    var max = parseInt(order.getAttribute("data-max"), 10);
    var yuan = function (kwh) {
      var fen = Math.floor((price * kwh + 50) / 100);
      return Math.floor(fen / 100) + "." + ("0" + (fen % 100)).slice(-2);
    };
    var chosenKwh = function () {
      var r = order.querySelector("input[name=kwh]:checked");
      if (!r) { return null; }
      var v = r.value === "other" ? other.value.trim() : r.value;
      if (!/^[0-9]+$/.test(v)) { return null; }
      var k = parseInt(v, 10);
      return k >= 1 && k <= max ? k : null;
    };
    var label = function () {
      var k = chosenKwh();
      submit.textContent = k === null ? order.getAttribute("data-buy")
        : order.getAttribute("data-submit").replace("{kwh}", String(k)).replace("{yuan}", yuan(k));
    };
    var radios = order.querySelectorAll("input[name=kwh]");
    for (var j = 0; j < radios.length; j += 1) {
      radios[j].addEventListener("change", function () {
        if (this.value !== "other") { other.value = ""; }
        label();
      });
    }
    other.addEventListener("input", function () {
      if (other.value.trim() !== "") { otherRadio.checked = true; }
      label();
    });
    label();
  }

  // Forms that ask first: <form data-confirm="…">, asked in the page's own
  // dialog (#confirm-dialog, drawn by base.html), not with window.confirm,
  // which WeChat titles with the page's address (issue 11 item 16). No
  // inline handlers: the Content-Security-Policy allows only this file's
  // script. Without the script the form is simply sent. OK sends it with
  // form.submit(), which fires no second submit event; such forms carry no
  // named submit button, so nothing is lost.
  var dialog = document.getElementById("confirm-dialog");
  var asks = document.querySelectorAll("form[data-confirm]");
  if (dialog && asks.length) {
    var question = document.getElementById("confirm-text");
    var ok = document.getElementById("confirm-ok");
    var cancel = document.getElementById("confirm-cancel");
    var pending = null, opener = null;
    var close = function () {
      dialog.hidden = true;
      pending = null;
      if (opener && opener.focus) { opener.focus(); }
      opener = null;
    };
    var ask = function (e) {
      e.preventDefault();
      pending = this;
      opener = e.submitter || document.activeElement;
      question.textContent = this.getAttribute("data-confirm");
      ok.disabled = false;
      dialog.hidden = false;
      ok.focus();
    };
    for (var i = 0; i < asks.length; i += 1) { asks[i].addEventListener("submit", ask); }
    cancel.addEventListener("click", close);
    dialog.querySelector(".dialog-mask").addEventListener("click", close);
    document.addEventListener("keydown", function (e) {
      if (!dialog.hidden && (e.key === "Escape" || e.key === "Esc")) { close(); }
    });
    ok.addEventListener("click", function () {
      var form = pending;
      if (!form) { return; }
      ok.disabled = true; // one tap, one request
      pending = null;
      opener = null;
      dialog.hidden = true;
      form.submit();
    });
  }
})();
