// flask-flows: passkey ceremonies (WebAuthn) for the stages that offer them.
//
// A stage marks its passkey part with data-flows-passkey="create" or "get" and gives the
// ceremony's options as JSON (base64url for bytes, as the server's WebAuthn library
// writes them). The button stays hidden, and the "needs JavaScript" note shown, until
// this browser can use passkeys. The browser's answer goes into the form's hidden field
// as JSON and the form is submitted (through htmx when it is there). With
// data-flows-passkey-conditional the browser is also asked at once, quietly, for a
// passkey to offer in the username field's autofill (conditional mediation). The words
// said when the browser fails come in the page's language, as data-flows-passkey-cancelled,
// -exists and -failed (these English ones stand in for any the page does not give).
(function () {
  "use strict";

  var MSG_CANCELLED = "No passkey was used: the request was cancelled or timed out. Try again.";
  var MSG_EXISTS = "This device or password manager already has a passkey for your account.";
  var MSG_FAILED = "Your browser could not use a passkey here. Try again, or use another way.";

  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials && window.isSecureContext);
  }

  function toBytes(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    var binary = window.atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return window.btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBytes(item.id), transports: item.transports };
    });
  }

  // The server's JSON options as the objects navigator.credentials expects.
  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBytes(json.user.id) });
    options.excludeCredentials = descriptors(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.allowCredentials = descriptors(json.allowCredentials);
    return options;
  }

  // The credential as the JSON the server reads (PublicKeyCredential.toJSON's shape).
  function credentialJson(credential) {
    var response = credential.response;
    var out = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults
        ? credential.getClientExtensionResults()
        : {},
      response: { clientDataJSON: toText(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      out.response.attestationObject = toText(response.attestationObject);
      out.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      out.response.authenticatorData = toText(response.authenticatorData);
      out.response.signature = toText(response.signature);
      out.response.userHandle = toText(response.userHandle) || undefined;
    }
    return JSON.stringify(out);
  }

  // What to say when the browser's ceremony failed, in the words ``box`` gives.
  function messageFor(error, box) {
    if (error && error.name === "NotAllowedError") {
      return box.getAttribute("data-flows-passkey-cancelled") || MSG_CANCELLED;
    }
    if (error && error.name === "InvalidStateError") {
      return box.getAttribute("data-flows-passkey-exists") || MSG_EXISTS;
    }
    return box.getAttribute("data-flows-passkey-failed") || MSG_FAILED;
  }

  function Passkey(box) {
    this.box = box;
    this.form = box.closest("form");
    this.field = document.getElementById(box.getAttribute("data-flows-passkey-field"));
    this.button = box.querySelector("[data-flows-passkey-start]");
    this.error = box.querySelector("[data-flows-passkey-error]");
    this.mode = box.getAttribute("data-flows-passkey");
    this.options = JSON.parse(box.getAttribute("data-flows-passkey-options"));
    this.waiting = null; // the AbortController of a conditional request
  }

  Passkey.prototype.say = function (text) {
    if (!this.error) return;
    this.error.textContent = text || "";
    this.error.hidden = !text;
  };

  Passkey.prototype.submit = function (credential) {
    this.field.value = credentialJson(credential);
    if (this.form.requestSubmit) {
      this.form.requestSubmit();
    } else {
      this.form.submit();
    }
  };

  Passkey.prototype.run = function () {
    var self = this;
    this.stopWaiting();
    this.say("");
    var call =
      this.mode === "create"
        ? navigator.credentials.create({ publicKey: creationOptions(this.options) })
        : navigator.credentials.get({ publicKey: requestOptions(this.options) });
    if (this.button) this.button.disabled = true;
    call.then(
      function (credential) {
        if (self.button) self.button.disabled = false;
        if (credential) self.submit(credential);
      },
      function (error) {
        self.say(messageFor(error, self.box));
        if (self.button) {
          // Disabled while the browser asked, the button lost the focus: give it back.
          self.button.disabled = false;
          self.button.focus();
        }
      }
    );
  };

  // Let the browser offer this site's passkeys in the username field's autofill.
  Passkey.prototype.wait = function () {
    var self = this;
    if (!PublicKeyCredential.isConditionalMediationAvailable || self.waiting || self.starting) {
      return;
    }
    self.starting = true;
    PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
      self.starting = false;
      if (!available || self.waiting || !document.body.contains(self.box)) return;
      self.waiting = new AbortController();
      navigator.credentials
        .get({
          mediation: "conditional",
          publicKey: requestOptions(self.options),
          signal: self.waiting.signal,
        })
        .then(
          function (credential) {
            self.waiting = null;
            if (credential) self.submit(credential);
          },
          function () {
            self.waiting = null; // aborted, or dismissed: the button still works
          }
        );
    });
  };

  Passkey.prototype.stopWaiting = function () {
    if (this.waiting) {
      this.waiting.abort();
      this.waiting = null;
    }
  };

  var current = [];

  function enhance(root) {
    if (!supported()) return;
    root.querySelectorAll("[data-flows-passkey]").forEach(function (box) {
      if (box.dataset.flowsReady) return;
      box.dataset.flowsReady = "1";
      var passkey = new Passkey(box);
      if (!passkey.form || !passkey.field) return;
      current.push(passkey);
      box.querySelectorAll("[data-flows-passkey-unavailable]").forEach(function (note) {
        note.hidden = true;
      });
      box.querySelectorAll("[data-flows-passkey-ready]").forEach(function (part) {
        part.hidden = false;
      });
      if (passkey.button) {
        passkey.button.addEventListener("click", function () {
          passkey.run();
        });
      }
      if (passkey.mode === "create") {
        // Enter in the name field makes the passkey too, rather than posting nothing.
        passkey.form.addEventListener(
          "submit",
          function (event) {
            if (!passkey.field.value) {
              event.preventDefault();
              event.stopImmediatePropagation();
              passkey.run();
            }
          },
          true
        );
      }
      if (box.hasAttribute("data-flows-passkey-conditional")) passkey.wait();
      if (passkey.button && box.closest("#flow-stage") && nothingFocused()) passkey.button.focus();
    });
  }

  // On a page whose only action is the passkey (a second factor that is the user's only
  // one), flows.js found no field to focus: the button is where the keyboard starts.
  function nothingFocused() {
    var active = document.activeElement;
    return !active || active === document.body;
  }

  // A stage being replaced (or a form being sent) ends the quiet request: only one
  // WebAuthn request may be pending, and the next page may start its own.
  function stopAll() {
    current.forEach(function (passkey) {
      passkey.stopWaiting();
    });
    current = current.filter(function (passkey) {
      return document.body.contains(passkey.box);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
  });
  // A request that failed (the server could not be reached, an error answer) leaves the
  // page as it was: its quiet request starts again.
  function resumeAll() {
    current.forEach(function (passkey) {
      if (!passkey.waiting && passkey.box.hasAttribute("data-flows-passkey-conditional")) {
        if (document.body.contains(passkey.box)) passkey.wait();
      }
    });
  }

  document.addEventListener("htmx:beforeRequest", stopAll);
  document.addEventListener("htmx:afterSwap", function (event) {
    stopAll();
    enhance(event.detail.target || document);
  });
  ["htmx:sendError", "htmx:responseError", "htmx:sendAbort", "htmx:timeout"].forEach(
    function (name) {
      document.addEventListener(name, function () {
        window.setTimeout(resumeAll, 0);
      });
    }
  );
})();
