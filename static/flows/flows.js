// flask-flows: small progressive enhancements. Every stage works without this file.
(function () {
  "use strict";

  // After a stage swap, put focus where a keyboard user needs it: the first invalid
  // field, else the first field, else the first button.
  function focusStage(root) {
    var target =
      root.querySelector("[aria-invalid='true']") ||
      root.querySelector("input:not([type=hidden]):not([disabled]), select, textarea") ||
      root.querySelector("button[type=submit], a.flows-button");
    if (target) {
      target.focus();
    }
  }

  // "Show password" toggles are hidden until JavaScript can make them work.
  function enableShowPassword(root) {
    root.querySelectorAll("[data-flows-show-password]").forEach(function (box) {
      var input = document.getElementById(box.getAttribute("data-flows-show-password"));
      if (!input) return;
      box.closest(".flows-show-password").hidden = false;
      box.addEventListener("change", function () {
        input.type = box.checked ? "text" : "password";
      });
    });
  }

  function enhance(root) {
    enableShowPassword(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var stage = document.getElementById("flow-stage");
    if (!stage) return;
    enhance(stage);
    focusStage(stage);
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var stage = document.getElementById("flow-stage");
    if (!stage || event.detail.target !== stage) return;
    enhance(stage);
    focusStage(stage);
  });
})();
