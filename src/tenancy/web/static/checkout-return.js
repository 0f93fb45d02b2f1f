// Polls /checkout/status until the purchase is ready or has failed, says so in the live region and
// shows what to do next (the block whose data-for-state names the state).
// The URL (data-status-url) carries the transaction id and the checkout's status key. A 404 means no
// payment that key opens yet: PayFast may not have reported the payment, or the link is wrong. After
// data-no-record-limit-seconds of nothing but 404s the page says so and stops; reloading starts again.
// The pause between polls grows from 1 s to 10 s; after 15 minutes in all the page stops and says whom to ask.
(function () {
  "use strict";
  var region = document.getElementById("purchase-status");
  if (!region) { return; }
  var url = region.getAttribute("data-status-url");
  var noRecordLimit = 1000 * (parseInt(region.getAttribute("data-no-record-limit-seconds"), 10) || 90);
  var delay = 1000;
  var giveUpAt = Date.now() + 15 * 60 * 1000;
  var noRecordSince = null;  // when the current run of 404 answers began

  function showSteps(id) {
    document.querySelectorAll("[data-for-state], #no-record-steps, #slow-steps").forEach(function (block) {
      block.hidden = block.id !== id && block.getAttribute("data-for-state") !== id;
    });
  }
  function stop(message, state, steps) {
    var progress = document.getElementById("progress");
    if (progress) { progress.hidden = true; }
    region.textContent = message;
    region.className = "status " + state;
    showSteps(steps);
  }
  function show(status) {
    region.textContent = status.message;
    region.className = "status " + status.state;
    showSteps(status.state);
    if (status.finished) {
      var progress = document.getElementById("progress");
      if (progress) { progress.hidden = true; }
    }
  }
  function later() {
    if (noRecordSince !== null && Date.now() - noRecordSince >= noRecordLimit) {
      stop("We have no record of this payment.", "no_record", "no-record-steps");
      return;
    }
    if (Date.now() > giveUpAt) {
      stop("This is taking longer than it should.", "failed", "slow-steps");
      return;
    }
    window.setTimeout(poll, delay);
    delay = Math.min(delay * 1.5, 10000);
  }
  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 404) {
          if (noRecordSince === null) { noRecordSince = Date.now(); }
          return null;
        }
        if (!response.ok) { return null; }  // busy or unreachable: not an answer about the payment
        noRecordSince = null;
        return response.json();
      })
      .then(function (status) {
        if (status) { show(status); }
        if (!status || !status.finished) { later(); }
      })
      .catch(later);
  }
  poll();
})();
