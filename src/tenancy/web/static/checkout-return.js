// Polls /checkout/status until the purchase is ready or has failed, and says so in the live region.
// The pause between polls grows from 1 s to 10 s; after 15 minutes the page stops and says whom to ask.
(function () {
  "use strict";
  var region = document.getElementById("purchase-status");
  if (!region) { return; }
  var url = region.getAttribute("data-status-url");
  var delay = 1000;
  var giveUpAt = Date.now() + 15 * 60 * 1000;
  function show(status) {
    region.textContent = status.message;
    region.className = "status " + status.state;
    if (status.state === "ready") {
      var next = document.getElementById("next-steps");
      if (next) { next.hidden = false; }
    }
  }
  function later() {
    if (Date.now() > giveUpAt) {
      region.textContent = "This is taking longer than it should. Please contact support and quote your transaction id.";
      region.className = "status failed";
      return;
    }
    window.setTimeout(poll, delay);
    delay = Math.min(delay * 1.5, 10000);
  }
  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        if (status) { show(status); }
        if (!status || !status.finished) { later(); }
      })
      .catch(later);
  }
  poll();
})();
