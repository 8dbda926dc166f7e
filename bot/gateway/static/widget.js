/*
 * KSOS support chat widget (Kaspersky Small Office Security by Unifi).
 * One tag embeds it:
 *   <script src="https://GATEWAY/widget.js" data-gateway-url="https://GATEWAY" data-language="en"
 *           data-identity-token="..." data-open="true" async></script>
 * Every attribute is optional. Talks to the gateway over a WebSocket at <gateway>/widget/ws (protocol in
 * docs/channels.md). Plain JavaScript, no dependencies; all CSS is injected below with `ksos-` class names.
 * Message text is only ever put into the page with textContent / text nodes, never as HTML.
 */
(function () {
  "use strict";
  if (window.KSOSWidget) return;                     // included twice: the first copy does the work

  var script = document.currentScript ||
    Array.prototype.slice.call(document.querySelectorAll("script[src*='widget.js']")).pop() || null;
  var attr = function (name) { return script ? script.getAttribute(name) : null; };

  var SESSION_KEY = "ksos-widget-session";
  var LANGUAGE_KEY = "ksos-widget-language";
  var OUTBOX_KEY = "ksos-widget-outbox";            // customer messages not yet acknowledged by the gateway
  var MAX_CHARS = 2000;
  var COUNTER_FROM = 1800;                          // show the character counter from here on
  var BACKOFF_START = 500, BACKOFF_MAX = 10000;     // ms

  // Non-ASCII characters are written as \u escapes: the file then reads the same whatever charset the host page
  // (and so the script) is decoded with.
  var STRINGS = {
    en: {
      title: "Chat with us", subtitle: "Kaspersky Small Office Security by Unifi",
      close: "Close chat",
      placeholder: "Type your message\u2026", inputLabel: "Your message", send: "Send",
      typing: "Assistant is typing\u2026", reconnecting: "Reconnecting\u2026", connecting: "Connecting\u2026",
      log: "Conversation", language: "Language", sending: "Sending\u2026", failed: "Not sent",
      customer: "You:", bot: "Assistant:", agent: "Agent:", notice: "Notice:",
      counter: "{n} of 2000 characters", switchText: "English",
      helpful: "Was this helpful?", helpfulYes: "Yes, helpful", helpfulNo: "Not helpful",
      rated: "Thank you for your feedback."
    },
    ms: {
      title: "Sembang dengan kami", subtitle: "Kaspersky Small Office Security oleh Unifi",
      close: "Tutup sembang",
      placeholder: "Taip mesej anda\u2026", inputLabel: "Mesej anda", send: "Hantar",
      typing: "Pembantu sedang menaip\u2026", reconnecting: "Menyambung semula\u2026", connecting: "Sedang menyambung\u2026",
      log: "Perbualan", language: "Bahasa", sending: "Sedang dihantar\u2026", failed: "Tidak dihantar",
      customer: "Anda:", bot: "Pembantu:", agent: "Ejen:", notice: "Makluman:",
      counter: "{n} daripada 2000 aksara", switchText: "Bahasa Melayu",
      helpful: "Adakah ini membantu?", helpfulYes: "Ya, membantu", helpfulNo: "Tidak membantu",
      rated: "Terima kasih atas maklum balas anda."
    }
  };

  // --- storage (private browsing or blocked storage must not break the widget) -------------------------------
  var store = {
    get: function (key) { try { return window.localStorage.getItem(key); } catch (e) { return null; } },
    set: function (key, value) {
      try {
        if (value === null) window.localStorage.removeItem(key); else window.localStorage.setItem(key, value);
      } catch (e) { /* storage unavailable: the widget still works for this page view */ }
    }
  };

  function pickLanguage() {
    var chosen = store.get(LANGUAGE_KEY);          // the customer's own choice (EN/BM switch) wins
    if (chosen === "en" || chosen === "ms") return chosen;
    var given = (attr("data-language") || "").toLowerCase();
    if (given === "en" || given === "ms") return given;
    return /^ms\b/i.test(navigator.language || "") ? "ms" : "en";
  }

  function gatewayBase() {
    var given = attr("data-gateway-url");
    try {
      if (given) return new URL(given, location.href).href.replace(/\/+$/, "");
      if (script && script.src) return new URL(script.src, location.href).origin;
    } catch (e) { /* fall through */ }
    return location.origin;
  }

  function newId() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    // randomUUID needs a secure context: build a version-4 UUID from getRandomValues instead
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" +
      hex.slice(20);
  }

  function loadOutbox() {
    try {
      var list = JSON.parse(store.get(OUTBOX_KEY) || "[]");
      return Array.isArray(list) ? list.filter(function (m) { return m && typeof m.id === "string"; }) : [];
    } catch (e) { return []; }
  }

  // --- state -------------------------------------------------------------------------------------------------
  var state = {
    language: pickLanguage(),
    gateway: gatewayBase(),
    token: attr("data-identity-token") || null,    // kept in memory only: never stored, shown or logged
    signedOut: false,                               // the host page withdrew its token: say so on reconnect
    session: store.get(SESSION_KEY),
    lastSeq: 0,                                     // highest seq rendered on this page
    outbox: loadOutbox(),                           // [{id, text, payload, language}] not acknowledged yet
    socket: null, ready: false,                     // ready: hello answered, history received
    attempt: 0, retryTimer: null, typingTimer: null,
    everConnected: false, built: false, isOpen: false, wantOpen: attr("data-open") === "true"
  };
  var ui = {};                                      // DOM nodes, filled by build()

  function t(key) { return STRINGS[state.language][key]; }

  // --- CSS (one <style>; everything scoped to .ksos-root) ----------------------------------------------------
  var STYLE = [
    ".ksos-root{--ksos-brand:#00594f;--ksos-brand-dark:#003d36;--ksos-focus:#1a4fd6;position:fixed;right:20px;",
    "bottom:20px;z-index:2147483000;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;",
    "color:#1b1b1b;text-align:left}",
    ".ksos-root *,.ksos-root *::before,.ksos-root *::after{box-sizing:border-box}",
    ".ksos-root button,.ksos-root textarea{font:inherit;color:inherit}",
    ".ksos-root :focus-visible{outline:3px solid var(--ksos-focus);outline-offset:2px}",
    ".ksos-sr{position:absolute!important;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;",
    "clip:rect(0 0 0 0);white-space:nowrap;border:0}",
    ".ksos-launcher{display:flex;align-items:center;gap:8px;margin-left:auto;padding:12px 18px;border:0;",
    "border-radius:999px;background:var(--ksos-brand);color:#fff!important;font-weight:600;cursor:pointer;",
    "box-shadow:0 4px 14px rgba(0,0,0,.25)}",
    ".ksos-launcher:hover{background:var(--ksos-brand-dark)}",
    ".ksos-launcher svg{width:22px;height:22px;fill:currentColor}",
    ".ksos-panel{position:absolute;right:0;bottom:64px;width:370px;height:min(600px,calc(100vh - 110px));",
    "display:flex;flex-direction:column;background:#fff;border-radius:12px;overflow:hidden;",
    "box-shadow:0 8px 30px rgba(0,0,0,.3)}",
    ".ksos-panel[hidden]{display:none}",
    ".ksos-header{display:flex;align-items:center;gap:8px;padding:10px 12px;background:var(--ksos-brand);color:#fff}",
    ".ksos-header :focus-visible{outline-color:#fff}",
    ".ksos-heading{flex:1;min-width:0}",
    ".ksos-title{margin:0;font-size:16px;font-weight:700;color:#fff}",
    ".ksos-subtitle{margin:0;font-size:12px;color:#e6f2f0}",
    ".ksos-langs{display:flex;border:1px solid #fff;border-radius:6px;overflow:hidden}",
    ".ksos-langs button{padding:4px 9px;border:0;background:transparent;color:#fff!important;font-size:13px;",
    "font-weight:600;cursor:pointer}",
    ".ksos-langs button[aria-pressed='true']{background:#fff;color:var(--ksos-brand)!important}",
    ".ksos-close{width:36px;height:36px;border:0;border-radius:6px;background:transparent;color:#fff!important;",
    "font-size:24px;line-height:1;cursor:pointer}",
    ".ksos-close:hover{background:var(--ksos-brand-dark)}",
    ".ksos-status{margin:0;padding:4px 12px;background:#fff4ce;color:#4a3b00;font-size:13px}",
    ".ksos-status[hidden],.ksos-typing[hidden],.ksos-counter[hidden]{display:none}",
    ".ksos-log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f7f8f8}",
    ".ksos-message{display:flex;flex-direction:column;max-width:85%;align-self:flex-start}",
    ".ksos-message[data-role='customer']{align-self:flex-end;align-items:flex-end}",
    ".ksos-message[data-role='notice']{align-self:center;max-width:95%}",
    ".ksos-bubble{padding:8px 12px;border-radius:12px;background:#fff;border:1px solid #d5dada;",
    "overflow-wrap:anywhere}",
    ".ksos-text{display:block;white-space:pre-wrap}",
    ".ksos-message[data-role='customer'] .ksos-bubble{background:var(--ksos-brand);border-color:var(--ksos-brand);",
    "color:#fff}",
    ".ksos-message[data-role='agent'] .ksos-bubble{background:#eef3ff;border-color:#b9c8f0}",
    ".ksos-message[data-role='notice'] .ksos-bubble{background:#fff4ce;border-color:#e8d48a;color:#4a3b00;",
    "font-size:13px}",
    /* pending: dimmed by lighter colours rather than opacity, so the text keeps enough contrast */
    ".ksos-message[data-state='pending'] .ksos-bubble{background:#cfe5e1;border:1px dashed var(--ksos-brand);",
    "color:#0f2b27}",
    ".ksos-message[data-state='failed'] .ksos-bubble{background:#fde7e7;border:1px solid #b3261e;color:#5c0f0a}",
    ".ksos-bubble a{color:#0b4fc2;text-decoration:underline}",
    ".ksos-message[data-role='customer']:not([data-state]) .ksos-bubble a{color:#fff}",
    ".ksos-meta{font-size:12px;color:#4d5656;margin-top:2px}",
    ".ksos-source{display:block;font-size:12px;color:#4d5656;margin-top:6px}",
    ".ksos-feedback{display:flex;align-items:center;gap:6px;margin-top:4px;font-size:13px;color:#4d5656}",
    ".ksos-feedback-button{min-width:36px;min-height:32px;padding:2px 8px;border:1px solid #b8c2c2;",
    "border-radius:999px;background:#fff;cursor:pointer}",
    ".ksos-feedback-button:disabled{opacity:.6;cursor:default}",
    ".ksos-quick-replies{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}",
    ".ksos-quick-reply{padding:6px 12px;border:1px solid var(--ksos-brand);border-radius:999px;background:#fff;",
    "color:var(--ksos-brand)!important;cursor:pointer;text-align:left}",
    ".ksos-quick-reply:hover{background:#e6f2f0}",
    ".ksos-typing{margin:0;padding:2px 12px 4px;font-size:13px;font-style:italic;color:#4d5656;background:#f7f8f8}",
    ".ksos-form{display:flex;align-items:flex-end;gap:8px;padding:10px 12px;border-top:1px solid #d5dada;",
    "background:#fff;flex-wrap:wrap}",
    ".ksos-input{flex:1;min-width:0;min-height:44px;max-height:140px;padding:10px;border:1px solid #6b7575;",
    "border-radius:8px;resize:none;font-size:16px!important;line-height:1.4;background:#fff;color:#1b1b1b}",
    ".ksos-send{min-height:44px;padding:0 16px;border:0;border-radius:8px;background:var(--ksos-brand);",
    "color:#fff!important;font-weight:600;cursor:pointer}",
    ".ksos-send:hover{background:var(--ksos-brand-dark)}",
    ".ksos-counter{flex-basis:100%;margin:0;font-size:12px;color:#4d5656;text-align:right}",
    ".ksos-counter[data-full]{color:#b3261e;font-weight:600}",
    /* phones: the open panel takes the whole viewport */
    "@media (max-width:479.98px){.ksos-root[data-open] .ksos-launcher{display:none}",
    ".ksos-panel{position:fixed;inset:0;width:100%;height:100%;height:100dvh;border-radius:0}}"
  ].join("");

  // --- DOM helpers -------------------------------------------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  // URLs (http://, https://, www.) and e-mail addresses; the URL branch comes first so an "@" inside a URL
  // stays part of the link.
  var LINK_RE = /\b(?:https?:\/\/|www\.)[^\s<>"']+|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;

  function trimLink(text) {
    // Leave sentence punctuation and an unbalanced closing bracket outside the link: "(see www.x.my)."
    while (text.length) {
      var last = text.charAt(text.length - 1);
      if (".,;:!?".indexOf(last) >= 0) { text = text.slice(0, -1); continue; }
      if (last === ")" && text.split("(").length < text.split(")").length) { text = text.slice(0, -1); continue; }
      break;
    }
    return text;
  }

  function safeHref(text) {
    var href = /^www\./i.test(text) ? "https://" + text : /^https?:/i.test(text) ? text : "mailto:" + text;
    try {
      var protocol = new URL(href).protocol;
      return protocol === "http:" || protocol === "https:" || protocol === "mailto:" ? href : null;
    } catch (e) { return null; }
  }

  /** Append `text` to `parent` as text nodes, with links as <a> elements. Never parses HTML. */
  function appendText(parent, text) {
    var at = 0, match;
    LINK_RE.lastIndex = 0;
    while ((match = LINK_RE.exec(text)) !== null) {
      var link = trimLink(match[0]);
      var href = link && safeHref(link);
      if (!href) continue;
      if (match.index > at) parent.appendChild(document.createTextNode(text.slice(at, match.index)));
      var a = el("a", { href: href, target: "_blank", rel: "noopener noreferrer" });
      a.textContent = link;
      parent.appendChild(a);
      at = match.index + link.length;
      LINK_RE.lastIndex = at;
    }
    if (at < text.length) parent.appendChild(document.createTextNode(text.slice(at)));
  }

  // Text that follows the widget's language is marked with data-ksos-text="<key>" and refreshed on a switch.
  function label(tag, key, attrs) {
    var node = el(tag, attrs);
    node.setAttribute("data-ksos-text", key);
    node.textContent = t(key);
    return node;
  }

  // --- building the UI ---------------------------------------------------------------------------------------
  function build() {
    if (state.built || !document.body) return;
    state.built = true;
    var style = el("style", { "class": "ksos-style" });
    style.textContent = STYLE;
    document.head.appendChild(style);

    ui.root = el("div", { "class": "ksos-root" });
    ui.launcher = el("button", { type: "button", "class": "ksos-launcher", "aria-expanded": "false",
                                 "aria-controls": "ksos-panel" });
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 2-2z");   // a speech bubble
    svg.appendChild(path);
    ui.launcherText = el("span");
    ui.launcher.appendChild(svg);
    ui.launcher.appendChild(ui.launcherText);

    ui.title = label("h2", "title", { "class": "ksos-title" });
    ui.langEn = el("button", { type: "button", "class": "ksos-lang-en", lang: "en" }, ["EN"]);
    ui.langMs = el("button", { type: "button", "class": "ksos-lang-ms", lang: "ms" }, ["BM"]);
    ui.langEn.setAttribute("aria-label", "EN \u2013 English");          // names start with the visible text
    ui.langMs.setAttribute("aria-label", "BM \u2013 Bahasa Melayu");
    ui.langs = el("div", { "class": "ksos-langs", role: "group" }, [ui.langEn, ui.langMs]);
    ui.close = el("button", { type: "button", "class": "ksos-close" }, ["\u00d7"]);
    var header = el("div", { "class": "ksos-header" }, [
      el("div", { "class": "ksos-heading" }, [ui.title, label("p", "subtitle", { "class": "ksos-subtitle" })]),
      ui.langs, ui.close]);

    ui.status = el("p", { "class": "ksos-status", role: "status" });
    ui.status.hidden = true;
    ui.log = el("div", { "class": "ksos-log", role: "log", "aria-live": "polite", tabindex: "0" });
    ui.typing = label("p", "typing", { "class": "ksos-typing", "aria-live": "polite" });
    ui.typing.hidden = true;

    ui.inputLabel = label("label", "inputLabel", { "class": "ksos-sr", "for": "ksos-input" });
    ui.input = el("textarea", { "class": "ksos-input", id: "ksos-input", rows: "1", maxlength: String(MAX_CHARS),
                                "aria-describedby": "ksos-counter", autocomplete: "off" });
    ui.send = label("button", "send", { type: "submit", "class": "ksos-send" });
    ui.counter = el("p", { "class": "ksos-counter", id: "ksos-counter" });
    ui.counter.hidden = true;
    ui.form = el("form", { "class": "ksos-form", novalidate: "" }, [ui.inputLabel, ui.input, ui.send, ui.counter]);

    ui.panel = el("div", { "class": "ksos-panel", id: "ksos-panel", role: "dialog", "aria-modal": "false" },
                  [header, ui.status, ui.log, ui.typing, ui.form]);
    ui.panel.hidden = true;
    ui.root.appendChild(ui.panel);
    ui.root.appendChild(ui.launcher);
    document.body.appendChild(ui.root);

    ui.launcher.addEventListener("click", function () { if (state.isOpen) close(); else open(); });
    ui.close.addEventListener("click", function () { close(); });
    ui.langEn.addEventListener("click", function () { switchLanguage("en"); });
    ui.langMs.addEventListener("click", function () { switchLanguage("ms"); });
    ui.panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { event.preventDefault(); close(); }
    });
    ui.form.addEventListener("submit", function (event) { event.preventDefault(); submitInput(); });
    ui.input.addEventListener("keydown", function (event) {
      // Enter sends, Shift+Enter is a new line; not while an IME is composing (e.g. Chinese input)
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); submitInput(); }
    });
    ui.input.addEventListener("input", onInput);

    applyLanguage();
    state.outbox.forEach(function (m) { renderPending(m); });
    if (state.outbox.length) connect();           // unsent messages from an earlier page: deliver them now
    if (state.wantOpen) open(true);
  }

  function applyLanguage() {
    ui.root.setAttribute("lang", state.language);
    Array.prototype.forEach.call(ui.root.querySelectorAll("[data-ksos-text]"), function (node) {
      node.textContent = t(node.getAttribute("data-ksos-text"));
    });
    ui.input.setAttribute("placeholder", t("placeholder"));
    updateLauncher();
    ui.close.setAttribute("aria-label", t("close"));
    ui.panel.setAttribute("aria-label", t("title"));
    ui.log.setAttribute("aria-label", t("log"));
    ui.langs.setAttribute("aria-label", t("language"));
    ui.langEn.setAttribute("aria-pressed", String(state.language === "en"));
    ui.langMs.setAttribute("aria-pressed", String(state.language === "ms"));
    updateCounter();
    updateStatus();
  }

  // --- open / close ------------------------------------------------------------------------------------------
  // The launcher's visible text and its aria-label are the same words: "Chat with us" / "Close chat".
  function updateLauncher() {
    var text = state.isOpen ? t("close") : t("title");
    ui.launcherText.textContent = text;
    ui.launcher.setAttribute("aria-label", text);
    ui.launcher.setAttribute("aria-expanded", String(state.isOpen));
  }

  function open(onLoad) {
    state.wantOpen = true;
    if (!state.built) return;                      // build() opens it once the page has a body
    state.isOpen = true;
    ui.panel.hidden = false;
    ui.root.setAttribute("data-open", "");
    updateLauncher();
    connect();
    scrollToEnd();
    if (onLoad !== true) ui.input.focus();         // data-open does not steal the focus from the host page
  }

  function close() {
    state.wantOpen = false;
    if (!state.built || !state.isOpen) return;
    var focusWasInside = ui.panel.contains(document.activeElement);
    state.isOpen = false;
    ui.panel.hidden = true;
    ui.root.removeAttribute("data-open");
    updateLauncher();
    if (focusWasInside) ui.launcher.focus();       // Escape or the close button: back to the launcher, not to <body>
  }

  // --- rendering messages ------------------------------------------------------------------------------------
  function messageNode(role, text) {
    var node = el("div", { "class": "ksos-message", "data-role": role });
    var bubble = el("div", { "class": "ksos-bubble" });
    bubble.appendChild(label("span", role, { "class": "ksos-sr" }));   // "You:" / "Anda:" for screen readers
    bubble.appendChild(document.createTextNode(" "));                    // collapses before the block below
    var body = el("span", { "class": "ksos-text" });
    appendText(body, text);
    bubble.appendChild(body);
    node.appendChild(bubble);
    return node;
  }

  function nearEnd() { return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80; }
  function scrollToEnd() { ui.log.scrollTop = ui.log.scrollHeight; }

  /** Insert a stored message (it has a seq) in seq order, before any pending customer messages. */
  function renderMessage(message) {
    if (!message || typeof message.seq !== "number") return;
    if (ui.log.querySelector('.ksos-message[data-seq="' + message.seq + '"]')) return;     // already shown
    var role = ["customer", "bot", "agent", "notice"].indexOf(message.role) >= 0 ? message.role : "notice";
    var text = String(message.text || "");
    var node = null;
    if (role === "customer" && message.client_id) {
      dropFromOutbox(message.client_id);
      node = ui.log.querySelector('.ksos-message[data-state][data-client-id="' + cssEscape(message.client_id) + '"]');
    }
    if (node) {
      // The stored copy of a pending message: upgrade the pending bubble in place, so it is never shown (or read
      // out by a screen reader) twice.
      node.removeAttribute("data-state");
      node.removeAttribute("data-acked");
      var meta = node.querySelector(".ksos-meta");
      if (meta) meta.remove();
      var body = node.querySelector(".ksos-text");
      if (body.textContent !== text) { body.textContent = ""; appendText(body, text); }
    } else {
      node = messageNode(role, text);
      if (role === "customer" && message.client_id) node.setAttribute("data-client-id", String(message.client_id));
      // The documents an answer comes from ("Source: KSOS FAQ (Unifi, Aug 2023)"), in the answer's language.
      if (role === "bot" && typeof message.source_line === "string" && message.source_line) {
        node.querySelector(".ksos-bubble").appendChild(el("span", { "class": "ksos-source" }, [message.source_line]));
      }
    }
    if (message.at) { var when = new Date(message.at); if (!isNaN(when)) node.title = when.toLocaleString(); }
    var follow = nearEnd() || role === "customer";
    var newest = message.seq > state.lastSeq;
    var before = null;                             // the first pending message or the first with a higher seq
    Array.prototype.some.call(ui.log.children, function (child) {
      var seq = child.getAttribute("data-seq"), pending = child.getAttribute("data-state") === "pending";
      if (child !== node && (pending || seq !== null && Number(seq) > message.seq)) { before = child; return true; }
      return false;
    });
    if (node.parentNode !== ui.log || node.nextSibling !== before) ui.log.insertBefore(node, before);
    node.setAttribute("data-seq", String(message.seq));
    state.lastSeq = Math.max(state.lastSeq, message.seq);
    var buttons = Array.isArray(message.buttons) ? message.buttons : [];
    if (newest && role === "customer") pruneQuickReplies();
    // "Was this helpful?" under the newest answer from the documents (it names its source).
    if (newest && role === "bot" && message.source_line && !buttons.length) addFeedback(node, message.seq);
    if (newest && (role === "bot" || role === "agent") && buttons.length) {
      pruneQuickReplies();
      addQuickReplies(node, buttons);
    }
    if (follow) scrollToEnd();
  }

  // Only the newest bot message's buttons are live: they go once the customer answers or newer buttons come.
  function addQuickReplies(node, buttons) {
    var box = el("div", { "class": "ksos-quick-replies" });
    buttons.forEach(function (b) {
      if (!b || typeof b.title !== "string" || typeof b.payload !== "string") return;
      var button = el("button", { type: "button", "class": "ksos-quick-reply" }, [b.title]);
      button.addEventListener("click", function () { sendMessage(b.title, b.payload); });
      box.appendChild(button);
    });
    node.appendChild(box);
  }

  // --- "Was this helpful? 👍 👎" ----------------------------------------------------------------------------
  function addFeedback(node, seq) {
    pruneFeedback();
    var box = el("div", { "class": "ksos-feedback", "data-seq": String(seq) });
    box.appendChild(label("span", "helpful", { "class": "ksos-feedback-question" }));
    [["up", "\uD83D\uDC4D", "helpfulYes"], ["down", "\uD83D\uDC4E", "helpfulNo"]].forEach(function (choice) {
      var button = el("button", { type: "button", "class": "ksos-feedback-button", "data-rating": choice[0] });
      button.appendChild(el("span", { "aria-hidden": "true" }, [choice[1]]));
      button.appendChild(label("span", choice[2], { "class": "ksos-sr" }));
      button.addEventListener("click", function () { rate(box, seq, choice[0]); });
      box.appendChild(button);
    });
    node.appendChild(box);
  }

  /** Only the newest answer asks; an answer already rated keeps its thanks. */
  function pruneFeedback() {
    Array.prototype.forEach.call(ui.log.querySelectorAll(".ksos-feedback:not([data-rated])"),
                                 function (box) { box.remove(); });
  }

  function rate(box, seq, rating) {
    if (!state.socket || state.socket.readyState !== 1 || box.hasAttribute("data-sent")) return;
    try { state.socket.send(JSON.stringify({ type: "feedback", seq: seq, rating: rating })); } catch (e) { return; }
    box.setAttribute("data-sent", "");
    Array.prototype.forEach.call(box.querySelectorAll("button"), function (b) { b.disabled = true; });
  }

  /** The gateway kept a rating (from this tab or another one, or before a reload). */
  function showRated(seq, rating) {
    if (typeof seq !== "number" || (rating !== "up" && rating !== "down")) return;
    var box = ui.log.querySelector('.ksos-feedback[data-seq="' + seq + '"]');
    if (!box) return;
    box.textContent = "";
    box.setAttribute("data-rated", rating);
    box.appendChild(el("span", { "aria-hidden": "true" }, [rating === "up" ? "\uD83D\uDC4D " : "\uD83D\uDC4E "]));
    box.appendChild(label("span", "rated"));
  }

  function pruneQuickReplies() {
    Array.prototype.forEach.call(ui.log.querySelectorAll(".ksos-quick-replies"), function (box) { box.remove(); });
  }

  function cssEscape(value) {
    return window.CSS && window.CSS.escape ? window.CSS.escape(value) : value.replace(/["\\]/g, "\\$&");
  }

  function renderPending(m) {
    var node = messageNode("customer", m.text);
    node.setAttribute("data-client-id", m.id);
    node.setAttribute("data-state", "pending");
    node.appendChild(label("span", "sending", { "class": "ksos-meta" }));
    ui.log.appendChild(node);
    pruneQuickReplies();
    scrollToEnd();
  }

  function markFailed(id) {
    var node = id && ui.log.querySelector('.ksos-message[data-state][data-client-id="' + cssEscape(id) + '"]');
    if (!node) return;
    node.setAttribute("data-state", "failed");
    var meta = node.querySelector(".ksos-meta");
    meta.setAttribute("data-ksos-text", "failed");
    meta.textContent = t("failed");
  }

  /** A notice that is not in the transcript (an error frame): shown once, not kept across reloads. */
  function renderLocalNotice(text) {
    var node = messageNode("notice", text);
    node.setAttribute("data-local", "");
    var before = ui.log.querySelector(".ksos-message[data-state='pending']");
    ui.log.insertBefore(node, before);
    scrollToEnd();
  }

  // The customer signed out of the host page: the next person at this browser starts a new conversation and
  // sees nothing of this one (the gateway has logged it out; the old session's secret is dropped here).
  function forgetSession() {
    store.set(SESSION_KEY, null);
    state.session = null;
    if (ui.log) clearTranscript();
    if (state.socket) state.socket.close();          // reconnects with a new session
  }

  function clearTranscript() {
    Array.prototype.slice.call(ui.log.children).forEach(function (child) {
      if (child.getAttribute("data-state") !== "pending") child.remove();
    });
    state.lastSeq = 0;
  }

  function showTyping(on) {
    clearTimeout(state.typingTimer);
    if (!ui.typing) return;
    ui.typing.hidden = !on;
    if (on) state.typingTimer = setTimeout(function () { showTyping(false); }, 30000);   // never stuck on
  }

  function updateStatus() {
    if (!ui.status) return;
    if (state.ready) ui.root.setAttribute("data-connected", ""); else ui.root.removeAttribute("data-connected");
    // Shown while a connection we had is down, or once the first attempt failed (no flash on a normal start).
    ui.status.hidden = state.ready || !(state.retryTimer || (state.socket && state.everConnected));
    ui.status.textContent = state.everConnected ? t("reconnecting") : t("connecting");
  }

  // --- input -------------------------------------------------------------------------------------------------
  function onInput() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight + 2, 140) + "px";
    updateCounter();
  }

  function updateCounter() {
    var length = ui.input.value.length;
    ui.counter.hidden = length < COUNTER_FROM;
    ui.counter.textContent = t("counter").replace("{n}", String(length));
    if (length >= MAX_CHARS) ui.counter.setAttribute("data-full", ""); else ui.counter.removeAttribute("data-full");
  }

  function submitInput() {
    var text = ui.input.value.replace(/^\s+|\s+$/g, "");
    if (!text) return;
    sendMessage(text.slice(0, MAX_CHARS));
    ui.input.value = "";
    onInput();
    ui.input.focus();
  }

  // The conversation moved to another language (the customer wrote in it): the widget's own texts follow, as the
  // assistant's answers do. No message is sent: the assistant has already switched.
  function followLanguage(language) {
    if (!STRINGS[language] || language === state.language) return;
    state.language = language;
    store.set(LANGUAGE_KEY, language);
    applyLanguage();
  }

  function switchLanguage(language) {
    if (language === state.language) return;
    state.language = language;
    store.set(LANGUAGE_KEY, language);
    applyLanguage();
    sendMessage(t("switchText"), '/switch_language{"language":"' + language + '"}');
  }

  // --- outbox and sending ------------------------------------------------------------------------------------
  function saveOutbox() { store.set(OUTBOX_KEY, state.outbox.length ? JSON.stringify(state.outbox) : null); }

  function dropFromOutbox(id) {
    var before = state.outbox.length;
    state.outbox = state.outbox.filter(function (m) { return m.id !== id; });
    if (state.outbox.length !== before) saveOutbox();
  }

  function sendMessage(text, payload) {
    var m = { id: newId(), text: text, language: state.language };
    if (payload) m.payload = payload;
    state.outbox.push(m);
    saveOutbox();
    renderPending(m);
    if (state.ready) transmit(m); else connect();   // queued: sent after the next hello / history
  }

  function transmit(m) {
    var frame = { type: "message", id: m.id, text: m.text, metadata: { language: m.language || state.language } };
    if (m.payload) frame.payload = m.payload;
    try { state.socket.send(JSON.stringify(frame)); } catch (e) { /* resent after the reconnect */ }
  }

  // The host page's sign-in: checked by the gateway, never sent with messages. null signs the customer out.
  function sendIdentity() {
    if (!state.socket || state.socket.readyState !== 1) return;   // sent again after the next hello
    try { state.socket.send(JSON.stringify({ type: "identity", token: state.token })); } catch (e) { /* idem */ }
  }

  // --- the WebSocket -----------------------------------------------------------------------------------------
  function socketUrl() { return state.gateway.replace(/^http/i, "ws") + "/widget/ws"; }

  function connect() {
    if (state.socket || state.retryTimer) return;    // connected, connecting, or waiting to retry
    var socket;
    try { socket = new WebSocket(socketUrl()); } catch (e) { scheduleReconnect(); return; }
    state.socket = socket;
    updateStatus();
    socket.onopen = function () {
      socket.send(JSON.stringify({ type: "hello", session: state.session || null, after: state.lastSeq,
                                   language: state.language }));
      if (state.token || state.signedOut) sendIdentity();
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame && typeof frame === "object") handleFrame(frame);
    };
    socket.onclose = function () {
      if (state.socket !== socket) return;
      state.socket = null;
      state.ready = false;
      showTyping(false);
      scheduleReconnect();
    };
    socket.onerror = function () { /* onclose follows and schedules the retry */ };
  }

  function scheduleReconnect() {
    // exponential backoff from 0.5 s, doubling up to 10 s, with "equal jitter" (between half and all of it)
    var base = Math.min(BACKOFF_MAX, BACKOFF_START * Math.pow(2, state.attempt++));
    var delay = base / 2 + Math.random() * base / 2;
    state.retryTimer = setTimeout(function () { state.retryTimer = null; connect(); }, delay);
    updateStatus();
  }

  function reconnectNow() {
    if (state.socket || !state.retryTimer) return;
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    connect();
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "session":
        if (typeof frame.session !== "string") return;
        // A new id for a session we already had means the gateway forgot it: start from an empty history.
        if (state.session && state.session !== frame.session) clearTranscript();
        state.session = frame.session;
        store.set(SESSION_KEY, frame.session);
        break;
      case "history":
        (Array.isArray(frame.messages) ? frame.messages : []).forEach(renderMessage);
        if (frame.ratings && typeof frame.ratings === "object") {
          Object.keys(frame.ratings).forEach(function (seq) { showRated(Number(seq), frame.ratings[seq]); });
        }
        followLanguage(frame.language);
        state.ready = true;
        state.everConnected = true;
        state.attempt = 0;
        updateStatus();
        state.outbox.slice().forEach(transmit);      // same ids as before: the gateway answers each once
        break;
      case "message":
        renderMessage(frame.message);
        if (frame.message && frame.message.role === "bot") followLanguage(frame.message.language);
        break;
      case "greeting":
        // A first open: the gateway greets in the page's language; shown once, never stored.
        if (typeof frame.text === "string" && frame.text && !ui.log.querySelector(".ksos-message")) {
          var greeting = messageNode("bot", frame.text);
          greeting.setAttribute("data-local", "");
          greeting.setAttribute("data-greeting", "");
          ui.log.appendChild(greeting);
          scrollToEnd();
        }
        break;
      case "rated":
        showRated(frame.seq, frame.rating);
        break;
      case "ack":
        dropFromOutbox(frame.id);
        var node = ui.log.querySelector('.ksos-message[data-state][data-client-id="' +
                                        cssEscape(String(frame.id)) + '"]');
        if (node) node.setAttribute("data-acked", "");
        break;
      case "typing":
        showTyping(frame.on === true);
        break;
      case "error":
        if (frame.id) { dropFromOutbox(frame.id); markFailed(frame.id); }
        if (typeof frame.text === "string" && frame.text) renderLocalNotice(frame.text);
        break;
    }
  }

  window.addEventListener("online", reconnectNow);

  // --- public API --------------------------------------------------------------------------------------------
  window.KSOSWidget = {
    open: open,
    close: close,
    setIdentityToken: function (token) {
      var wasSignedIn = !!state.token;
      state.token = token ? String(token) : null;
      state.signedOut = !state.token;
      sendIdentity();
      if (wasSignedIn && !state.token) forgetSession();
    }
  };

  if (document.body) build(); else document.addEventListener("DOMContentLoaded", build);
})();
