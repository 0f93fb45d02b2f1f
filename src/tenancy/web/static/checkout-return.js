// Polls /checkout/status until the purchase is ready or has failed, and says so in the live region.
(function () {
  "use strict";
  var region = document.getElementById("purchase-status");
  if (!region) { return; }
  var url = region.getAttribute("data-status-url");
  var delay = 1000;
  function show(status) {
    region.textContent = status.message;
    region.className = "status " + status.state;
    if (status.state === "ready") {
      var next = document.getElementById("next-steps");
      if (next) { next.hidden = false; }
    }
  }
  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        if (status) { show(status); }
        if (!status || !status.finished) { window.setTimeout(poll, delay); }
      })
      .catch(function () { window.setTimeout(poll, delay * 3); });
  }
  poll();
})();
