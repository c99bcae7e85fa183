// Passkey ceremonies (WebAuthn): the one part of Portal that needs
// JavaScript. Without it, or in a browser without passkeys, the passkey
// buttons stay hidden and every other form works as before.
//
// Sign-in ([data-passkey-login]): ask the gateway for a ceremony, let the
// browser's authenticator answer it, put both in the form's hidden fields
// ([data-ceremony], [data-credential]) and send the form. Adding
// ([data-passkey-add]): the same through the JSON API, then reload /account.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  function toB64u(buf) {
    var s = "", b = new Uint8Array(buf);
    for (var i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function fromB64u(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), b = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
    return b.buffer;
  }
  function ids(list) {
    (list || []).forEach(function (c) { c.id = fromB64u(c.id); });
  }

  // post sends body as JSON and resolves to the JSON answer, or rejects
  // with the answer's message.
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) throw new Error(j.message || String(r.status));
        return j;
      });
    });
  }

  // credentialJSON is a PublicKeyCredential as the server reads it.
  function credentialJSON(c) {
    var r = c.response, out = {
      id: c.id, rawId: toB64u(c.rawId), type: c.type,
      response: { clientDataJSON: toB64u(r.clientDataJSON) },
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {}
    };
    if (c.authenticatorAttachment) out.authenticatorAttachment = c.authenticatorAttachment;
    if (r.attestationObject) {
      out.response.attestationObject = toB64u(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = toB64u(r.authenticatorData);
      out.response.signature = toB64u(r.signature);
      if (r.userHandle) out.response.userHandle = toB64u(r.userHandle);
    }
    return out;
  }

  function showError(box, err) {
    if (!box) return;
    box.textContent = err && err.message ? err.message : String(err);
    box.hidden = false;
  }

  document.querySelectorAll("[data-passkey-login]").forEach(function (btn) {
    var form = btn.form, box = form.querySelector("[data-passkey-error]");
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var needs = btn.getAttribute("data-needs"), field = needs && form.querySelector(needs);
      if (field && !field.value) { field.focus(); return; }
      btn.disabled = true;
      post("/api/v1/login/passkey/begin").then(function (b) {
        var pk = b.publicKey;
        pk.challenge = fromB64u(pk.challenge);
        ids(pk.allowCredentials);
        return navigator.credentials.get({ publicKey: pk }).then(function (c) {
          form.querySelector("[data-ceremony]").value = b.ceremony;
          form.querySelector("[data-credential]").value = JSON.stringify(credentialJSON(c));
          // Not form.submit: a control with id "submit" shadows it.
          HTMLFormElement.prototype.submit.call(form);
        });
      }).catch(function (e) { btn.disabled = false; showError(box, e); });
    });
  });

  document.querySelectorAll("[data-passkey-add]").forEach(function (form) {
    var btn = form.querySelector("button"), box = form.querySelector("[data-passkey-error]");
    form.hidden = false;
    document.querySelectorAll("[data-passkey-fallback]").forEach(function (p) { p.hidden = true; });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var name = form.querySelector("[name=name]").value;
      btn.disabled = true;
      post("/api/v1/me/passkeys/begin").then(function (b) {
        var pk = b.publicKey;
        pk.challenge = fromB64u(pk.challenge);
        pk.user.id = fromB64u(pk.user.id);
        ids(pk.excludeCredentials);
        return navigator.credentials.create({ publicKey: pk }).then(function (c) {
          return post("/api/v1/me/passkeys/finish", { ceremony: b.ceremony, name: name, credential: credentialJSON(c) });
        });
      }).then(function () {
        window.location.assign("/account?done=passkey_added");
      }).catch(function (e) { btn.disabled = false; showError(box, e); });
    });
  });
})();
