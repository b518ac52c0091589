// Ferry admin web: small helpers; every page works without them.
// Live countdown for pending keys: <span class="countdown" data-until="unix-ms">.
(function () {
  "use strict";
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-until]").forEach(function (el) {
      var left = Math.round((Number(el.getAttribute("data-until")) - now) / 1000);
      if (left <= 0) { el.textContent = "active now (reload to see it)"; return; }
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = "activates in " + (h ? h + " h " : "") + (h || m ? m + " min " : "") + s + " s";
    });
  }
  document.addEventListener("DOMContentLoaded", function () { tick(); setInterval(tick, 1000); });
})();
