// flask-flows: small progressive enhancements. Every stage works without this file:
// forms post normally, errors render server-side, the reveal button stays hidden.
(function () {
  "use strict";

  var STAGE_ID = "flow-stage";
  var ANNOUNCER_ID = "flows-announcer";
  // The words this script says itself, in English: the page gives them in its language
  // (data-flows-msg-* on the stage, rendered by flows/shell.html and flows/embedded.html).
  var MESSAGES = {
    offline: "The server could not be reached. Check your connection and try again.",
    failed: "Something went wrong. Please try again.",
    copied: "Copied",
    codesCopied: "The codes were copied to the clipboard.",
    copyFailed: "Copying failed. Use the download link instead.",
    errorTitle: "Error:"
  };

  // htmx's settings for flow pages, set before htmx starts (at DOMContentLoaded, after
  // this deferred script), in the shell and inside an app's layout alike: no history
  // cache (a stage may show a secret), same-origin requests only, no scripts from
  // swapped HTML, and no inline indicator styles (a strict CSP refuses them; flows.css
  // has them).
  if (window.htmx) {
    window.htmx.config.historyCacheSize = 0;
    window.htmx.config.refreshOnHistoryMiss = true;
    window.htmx.config.allowScriptTags = false;
    window.htmx.config.selfRequestsOnly = true;
    window.htmx.config.includeIndicatorStyles = false;
  }

  function stage() {
    return document.getElementById(STAGE_ID);
  }

  // One of MESSAGES in the page's language: data-flows-msg-offline for "offline", and
  // so on; the English where the page has none (an app's own shell).
  function message(key) {
    var root = stage();
    var name = "flowsMsg" + key.charAt(0).toUpperCase() + key.slice(1);
    return (root && root.dataset[name]) || MESSAGES[key];
  }

  // A stage that opens with something to read before its form (recovery codes, a QR
  // code) marks itself data-flows-focus="heading": focusing its first field would
  // scroll a phone's screen past what it shows.
  function headingFirst(root) {
    var marked = root.querySelector("[data-flows-focus='heading']");
    if (!marked) return null;
    // The stage's own heading, or the flow's when the stage's only repeated it.
    return marked.querySelector(".flows-stage-heading") || document.getElementById("flows-title");
  }

  // After a swap the old focus is gone with the old stage: put it where a keyboard user
  // needs it, the first invalid field, else the heading of a stage that asks for it,
  // else the first field, else the primary button.
  function focusStage(root) {
    var target =
      root.querySelector("[aria-invalid='true']") ||
      headingFirst(root) ||
      root.querySelector(
        "input:not([type=hidden]):not([hidden]):not([disabled]), select:not([disabled]), textarea:not([disabled])"
      ) ||
      // Never the Cancel button: Enter would then throw the flow away.
      root.querySelector(".flows-button--primary, .flows-form button[type=submit], a.flows-button");
    if (target) {
      target.focus();
    }
  }

  // A live region that was in the page before the swap is announced reliably; the one
  // that arrives with the new stage often is not. Clearing first makes a repeated
  // message ("Invalid username or password." twice) be read again.
  function announce(text) {
    var region = document.getElementById(ANNOUNCER_ID);
    if (!region) return;
    region.textContent = "";
    if (text) {
      window.setTimeout(function () {
        region.textContent = text;
      }, 50);
    }
  }

  function messagesOf(root) {
    var texts = [];
    root.querySelectorAll(".flows-messages .flows-message").forEach(function (node) {
      texts.push(node.textContent.trim());
    });
    return texts.join(" ");
  }

  // Show a message in the current stage, for failures that have no server-rendered page.
  function showMessage(text) {
    var root = stage();
    var box = root && root.querySelector(".flows-messages");
    if (box) {
      var line = document.createElement("p");
      line.className = "flows-message";
      line.textContent = text;
      box.replaceChildren(line);
    }
    announce(text);
  }

  // The reveal button is hidden in the markup; it only appears once it can work.
  function enableShowPassword(root) {
    root.querySelectorAll("[data-flows-show-password]").forEach(function (button) {
      var input = document.getElementById(button.getAttribute("data-flows-show-password"));
      var label = button.querySelector(".flows-reveal-label");
      var name = button.querySelector(".flows-reveal-name");
      if (!input || !label || button.dataset.flowsReady) return;
      button.dataset.flowsReady = "1";
      button.hidden = false;
      if (button.parentElement) {
        button.parentElement.classList.add("flows-control--addon");
      }
      button.addEventListener("click", function () {
        var show = input.type === "password";
        input.type = show ? "text" : "password";
        // The words come from the markup (translated); an older copy of the macros has none.
        label.textContent = show ? button.dataset.flowsHide || "Hide" : button.dataset.flowsShow || "Show";
        if (name) name.textContent = show ? button.dataset.flowsHideName : button.dataset.flowsShowName;
        input.focus();
      });
    });
  }

  // Never submit a revealed password as plain text into the browser's form history.
  function concealPasswords(root) {
    root.querySelectorAll("[data-flows-show-password]").forEach(function (button) {
      var input = document.getElementById(button.getAttribute("data-flows-show-password"));
      var label = button.querySelector(".flows-reveal-label");
      var name = button.querySelector(".flows-reveal-name");
      if (input) input.type = "password";
      if (label) label.textContent = button.dataset.flowsShow || "Show";
      if (name) name.textContent = button.dataset.flowsShowName;
    });
  }

  // The copy button is hidden in the markup; it appears only where the Clipboard API
  // works (secure contexts). It copies the codes of the list it names, one per line.
  function enableCopy(root) {
    root.querySelectorAll("[data-flows-copy]").forEach(function (button) {
      var source = document.getElementById(button.getAttribute("data-flows-copy"));
      if (!source || !navigator.clipboard || button.dataset.flowsReady) return;
      button.dataset.flowsReady = "1";
      button.hidden = false;
      var label = button.textContent;
      button.addEventListener("click", function () {
        var text = Array.prototype.map
          .call(source.querySelectorAll("code"), function (node) {
            return node.textContent.trim();
          })
          .join("\n");
        navigator.clipboard.writeText(text + "\n").then(
          function () {
            button.textContent = message("copied");
            announce(message("codesCopied"));
            window.setTimeout(function () {
              button.textContent = label;
            }, 2000);
          },
          function () {
            announce(message("copyFailed"));
          }
        );
      });
    });
  }

  function enhance(root) {
    enableShowPassword(root);
    enableCopy(root);
  }

  function isStageEvent(event) {
    var root = stage();
    return root && root.contains(event.detail.elt || event.target);
  }

  // A field's live check (data-hx-post on the control): it swaps only its feedback, out
  // of band, and must neither busy the stage nor move the focus of someone typing.
  function isLiveCheck(event) {
    var detail = event.detail || {};
    var path = (detail.pathInfo && detail.pathInfo.requestPath) || (detail.requestConfig && detail.requestConfig.path);
    if (path) return /\/-\/check\/(\?|$)/.test(path);
    var elt = detail.elt;
    return !!(elt && elt.hasAttribute && elt.hasAttribute("data-hx-post"));
  }

  // Each stage has its own URL, so that Back and Forward step through the flow: the
  // first page loaded shows it in the address bar (htmx pushes it for later stages).
  function showStageUrl(root) {
    var page = root.querySelector("[data-flows-url]");
    var url = page && page.getAttribute("data-flows-url");
    if (url && window.location.pathname + window.location.search !== url) {
      window.history.replaceState(window.history.state, "", url);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = stage();
    if (!root) return;
    showStageUrl(root);
    enhance(root);
    // On a full page load only a field is worth focusing (like autofocus); focusing a
    // button would only skip the page's text for screen reader users.
    var field =
      root.querySelector("[aria-invalid='true']") ||
      headingFirst(root) ||
      root.querySelector(
        "input:not([type=hidden]):not([hidden]):not([type=checkbox]):not([type=radio]):not([disabled]), textarea:not([disabled])"
      );
    if (field) field.focus();
    announce(messagesOf(root));
  });

  document.addEventListener("submit", function (event) {
    var root = stage();
    if (root && root.contains(event.target)) concealPasswords(event.target);
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (isStageEvent(event) && !isLiveCheck(event)) stage().setAttribute("aria-busy", "true");
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var root = stage();
    if (root && !isLiveCheck(event)) root.removeAttribute("aria-busy");
  });

  // A live check repeats the live region's text on every pause in typing: the same
  // words are not said again.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    var fragment = event.detail.fragment;
    if (target && target.id === ANNOUNCER_ID && fragment) {
      if (fragment.textContent.trim() === target.textContent.trim()) event.detail.shouldSwap = false;
    }
  });

  // The flow views answer htmx with 200, but errors raised outside a flow (404, 400,
  // 500) come back as full error pages, which htmx would not swap. Swap in their stage
  // part so the user sees the message instead of a button that did nothing.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    if (!detail.isError || !isStageEvent(event)) return;
    if (isLiveCheck(event)) {
      detail.shouldSwap = false; // the submit will say it
      return;
    }
    var body = detail.serverResponse || (detail.xhr && detail.xhr.responseText);
    if (body && body.indexOf('id="' + STAGE_ID + '"') !== -1) {
      detail.shouldSwap = true;
      detail.isError = false;
      detail.selectOverride = "#" + STAGE_ID + " > *";
    } else {
      showMessage(message("failed"));
    }
  });

  document.addEventListener("htmx:sendError", function (event) {
    if (isStageEvent(event) && !isLiveCheck(event)) showMessage(message("offline"));
  });

  // Errors of the field itself: what a partial swap announces (it has no messages).
  function errorsOf(root) {
    var texts = [];
    root.querySelectorAll(".flows-error").forEach(function (node) {
      texts.push(node.textContent.trim());
    });
    return texts.join(" ");
  }

  // A live check replaced a field's feedback (an out-of-band swap): mark the control as
  // the feedback says, keep the error summary of a refused submit in step with it, and
  // drop the title's "Error:" (in the page's language) once nothing is wrong any more.
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var box = event.target;
    if (!box.classList || !box.classList.contains("flows-feedback")) return;
    var id = box.id.replace(/-feedback$/, "");
    var control = document.getElementById(id);
    var error = box.querySelector(".flows-error");
    if (control) {
      var described = (control.getAttribute("aria-describedby") || "")
        .split(/\s+/)
        .filter(function (token) {
          return token && token !== id + "-error";
        });
      if (error) {
        control.setAttribute("aria-invalid", "true");
        described.unshift(error.id);
      } else {
        control.removeAttribute("aria-invalid");
      }
      if (described.length) {
        control.setAttribute("aria-describedby", described.join(" "));
      } else {
        control.removeAttribute("aria-describedby");
      }
      var wrapper = control.closest(".flows-field");
      if (wrapper) wrapper.classList.toggle("flows-field--error", !!error);
    }
    var summary = document.getElementById("flows-error-summary");
    var link = summary && summary.querySelector("a[href='#" + id + "']");
    if (link && error) {
      link.textContent = error.textContent;
    } else if (link) {
      link.parentElement.remove();
      if (!summary.querySelector("li")) summary.remove();
    }
    var root = stage();
    var prefix = message("errorTitle") + " ";
    if (root && !root.querySelector("[aria-invalid='true']") && document.title.indexOf(prefix) === 0) {
      document.title = document.title.slice(prefix.length);
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var root = stage();
    var target = event.detail.target;
    if (!root || isLiveCheck(event)) return;
    if (target === root) {
      enhance(root);
      focusStage(root);
      announce(messagesOf(root));
    } else if (root.contains(target)) {
      // A stage swapped only its form's region after an error (HX-Retarget), so what
      // it showed above the form stays put.
      enhance(root);
      var invalid = root.querySelector("[aria-invalid='true']");
      if (invalid) invalid.focus();
      announce(errorsOf(root) || messagesOf(root));
    }
  });
})();
