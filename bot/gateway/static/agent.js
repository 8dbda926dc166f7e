/*
 * KSOS agent console (Kaspersky Small Office Security by Unifi): the page at /agent for the human agents who take
 * over conversations the assistant hands off. Plain JavaScript (ES2017), no dependencies, no build step; served
 * with a strict CSP, so no inline scripts or styles. Talks to the gateway's JSON API under /api/agent/ and
 * /api/assist/ (cookie session; every POST carries the X-CSRF-Token header).
 *
 * Customer text is hostile input: everything that comes from the API is put into the page with textContent /
 * text nodes, never as HTML.
 */
(function () {
  "use strict";

  var MAX_CHARS = 2000;
  var COUNTER_WARN = 1800;
  var QUEUE_EVERY = 3000;                 // ms between queue refreshes
  var POLL_EVERY = 1500;                  // ms between polls of the open conversation
  var LAST_TEXT_CHARS = 120;              // the customer's last message in the queue
  var ROLES = { customer: "Customer", bot: "Assistant", agent: "Agent", notice: "Notice" };
  var CHANNELS = { widget: "Web chat", facebook: "Messenger", twitter: "X" };
  var LANGUAGES = { en: "English", ms: "Malay" };
  var SESSION_ENDED = "Your session has ended. Please log in again.";
  var REVIEW_REASONS = { fallback: "Not understood", handoff: "Handed over", low_confidence: "Low confidence",
                         rated_down: "Rated \uD83D\uDC4E" };
  var NOT_COVERED = "not_covered";
  var LABEL_GROUPS = [["faq/", "Answers from the FAQ"], ["support/", "Answers from the Support Rules"],
                      ["", "Other intents"]];

  var ui = {};
  var state = {
    live: false,            // logged in and showing the console
    generation: 0,          // bumped at every login / logout: answers for an older session are dropped
    agent: null,
    csrf: null,
    queueTimer: null,
    queueNodes: {},         // conversation id -> <li> of the queue
    queueSeen: null,        // ids in the previous queue (null before the first one)
    open: null,             // the open conversation (see newOpen)
    drafts: {},             // conversation id -> {text, chosen, draft}: what was typed before switching
    view: "conversations",  // or "review"
    reviewLoading: false,
    problems: {},           // banner problems by source: send, poll, queue
    problemOrder: ["send", "poll", "queue"]
  };

  // --- helpers -----------------------------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function str(value) { return value === null || value === undefined ? "" : String(value); }

  function truncate(text, length) {
    text = str(text).replace(/\s+/g, " ").trim();
    return text.length > length ? text.slice(0, length - 1) + "\u2026" : text;
  }

  function newId() {             // a reply's client id: 128 random bits in hex
    return Array.prototype.map.call(crypto.getRandomValues(new Uint8Array(16)),
      function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
  }

  function cssEscape(value) {
    return window.CSS && window.CSS.escape ? window.CSS.escape(value) : value.replace(/["\\]/g, "\\$&");
  }

  function sameText(a, b) { return str(a).split(/\s+/).join(" ").trim() === str(b).split(/\s+/).join(" ").trim(); }

  function waitText(seconds) {
    seconds = Math.max(0, Number(seconds) || 0);
    if (seconds < 60) return "<1 min";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function timeNode(iso) {
    var when = iso ? new Date(iso) : null;
    if (!when || isNaN(when)) return el("span");
    var today = new Date().toDateString() === when.toDateString();
    var text = today ? when.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" })
      : when.toLocaleString("en-GB", { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
    var node = el("time", { datetime: when.toISOString(), title: when.toLocaleString("en-GB") }, [text]);
    return node;
  }

  function languageLabel(code) { return LANGUAGES[code] ? LANGUAGES[code] + " (" + code + ")" : str(code); }

  function conversationPath(id, suffix) {
    return "/api/agent/conversations/" + encodeURIComponent(id) + (suffix || "");
  }

  // --- the API -----------------------------------------------------------------------------------------------
  /** {status, data} of one call; throws on a network error. A 401 (but for login and the first /me) ends the
   *  session: back to the login screen. */
  async function api(method, path, body, quiet) {
    var options = { method: method, credentials: "same-origin", cache: "no-store",
                    headers: { "Accept": "application/json" } };
    if (method === "POST") {
      options.headers["Content-Type"] = "application/json";
      if (state.csrf) options.headers["X-CSRF-Token"] = state.csrf;
      options.body = JSON.stringify(body || {});
    }
    var generation = state.generation;
    var response = await fetch(path, options);
    var data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (!data || typeof data !== "object") data = {};
    if (response.status === 401 && !quiet && generation === state.generation) sessionEnded();
    if (response.status === 403 && data.error === "csrf" && !quiet) refreshCsrf();
    return { status: response.status, data: data };
  }

  async function refreshCsrf() {
    try {
      var answer = await api("GET", "/api/agent/me");
      if (answer.status === 200 && typeof answer.data.csrf_token === "string") state.csrf = answer.data.csrf_token;
    } catch (e) { /* the next call will tell */ }
  }

  // --- banner (connection problems, with Retry) ----------------------------------------------------------------
  function problem(source, text, retry) {
    state.problems[source] = { text: text, retry: retry || null };
    renderBanner();
  }

  function clearProblem(source) {
    if (!state.problems[source]) return;
    delete state.problems[source];
    renderBanner();
  }

  function renderBanner() {
    var source = state.problemOrder.filter(function (s) { return state.problems[s]; })[0];
    if (!source) { ui.banner.hidden = true; ui.bannerText.textContent = ""; return; }
    var current = state.problems[source];
    if (ui.bannerText.textContent !== current.text) ui.bannerText.textContent = current.text;
    ui.bannerRetry.hidden = false;
    ui.bannerRetry.onclick = function () {
      if (current.retry) current.retry();
      else { refreshQueue(); if (state.open) pollSoon(state.open); }
    };
    ui.banner.hidden = false;
  }

  // --- login / logout ----------------------------------------------------------------------------------------
  function showLogin(message, kind) {
    stopEverything();
    ui.loading.hidden = true;
    ui.console.hidden = true;
    ui.login.hidden = false;
    setLoginMessage(message, kind);
    ui.loginPassword.value = "";
    ui.loginSubmit.disabled = false;
    document.title = "Log in — KSOS agent console";
    ui.loginName.focus();
  }

  function setLoginMessage(message, kind) {
    ui.loginError.hidden = !message;
    ui.loginError.textContent = message || "";
    if (kind) ui.loginError.setAttribute("data-kind", kind); else ui.loginError.removeAttribute("data-kind");
  }

  function stopEverything() {
    state.live = false;
    state.generation++;
    clearTimeout(state.queueTimer);
    state.queueTimer = null;
    closeConversation();
    state.drafts = {};
    state.problems = {};
    renderBanner();
    state.queueNodes = {};
    state.queueSeen = null;
    ui.queueList.textContent = "";
    state.csrf = null;
    state.agent = null;
  }

  function sessionEnded() {
    if (!state.live) return;
    showLogin(SESSION_ENDED, "info");
  }

  async function onLogin(event) {
    event.preventDefault();
    var name = ui.loginName.value.trim(), password = ui.loginPassword.value;
    if (!name || !password) {
      setLoginMessage("Enter your name and password.");
      (name ? ui.loginPassword : ui.loginName).focus();
      return;
    }
    if (ui.loginSubmit.disabled) return;
    ui.loginSubmit.disabled = true;
    setLoginMessage("");
    try {
      var answer = await api("POST", "/api/agent/login", { name: name, password: password }, true);
      if (answer.status === 200 && answer.data.agent) {
        ui.loginPassword.value = "";
        startConsole(answer.data.agent, answer.data.csrf_token);
        return;
      }
      if (answer.status === 401) {
        setLoginMessage("Wrong name or password");
        ui.loginPassword.select();
        ui.loginPassword.focus();
      } else if (answer.status === 429) {
        setLoginMessage("Too many attempts, try again later");
      } else {
        setLoginMessage(str(answer.data.message) || "Logging in failed (HTTP " + answer.status + "). Please try again.");
      }
    } catch (e) {
      setLoginMessage("Cannot reach the server. Check your connection and try again.");
    }
    ui.loginSubmit.disabled = false;
  }

  async function onLogout() {
    ui.logout.disabled = true;
    try { await api("POST", "/api/agent/logout", {}, true); } catch (e) { /* the cookie expires on its own */ }
    ui.logout.disabled = false;
    showLogin("You have logged out.", "info");
  }

  function startConsole(agent, csrf) {
    stopEverything();
    state.live = true;
    state.agent = { id: agent.id, name: str(agent.name) };
    state.csrf = str(csrf);
    ui.loading.hidden = true;
    ui.login.hidden = true;
    ui.console.hidden = false;
    ui.agentName.textContent = state.agent.name;
    document.title = "Agent console — KSOS support by Unifi";
    showPlaceholder();
    showView("conversations", false);
    refreshQueue();
    refreshReview();
    ui.queueTitle.focus();
  }

  // --- the review queue ----------------------------------------------------------------------------------------
  function showView(name, focus) {
    state.view = name;
    ui.main.hidden = name !== "conversations";
    ui.review.hidden = name !== "review";
    ui.viewConversations.setAttribute("aria-pressed", String(name === "conversations"));
    ui.viewReview.setAttribute("aria-pressed", String(name === "review"));
    if (name === "review") refreshReview();
    if (focus) (name === "review" ? ui.reviewTitle : ui.queueTitle).focus();
  }

  function reviewStatus(text, kind) {
    ui.reviewStatus.textContent = text || "";
    if (kind) ui.reviewStatus.setAttribute("data-kind", kind); else ui.reviewStatus.removeAttribute("data-kind");
  }

  async function refreshReview() {
    if (!state.live || state.reviewLoading) return;
    state.reviewLoading = true;
    var generation = state.generation;
    try {
      var answer = await api("GET", "/api/agent/review");
      if (generation !== state.generation) return;
      if (answer.status === 200) renderReview(answer.data);
      else if (answer.status !== 401) reviewStatus("The review queue could not be loaded (HTTP " + answer.status +
                                                   "). Try Refresh.", "error");
    } catch (e) {
      if (generation === state.generation) reviewStatus("Connection problem: the review queue could not be loaded. " +
                                                        "Try Refresh.", "error");
    } finally {
      state.reviewLoading = false;
    }
  }

  function showWaiting(waiting) {
    waiting = Math.max(0, Number(waiting) || 0);
    ui.reviewCount.textContent = waiting ? String(waiting) : "";
    ui.reviewWaiting.textContent = waiting ? "(" + waiting + " waiting)" : "";
  }

  function renderReview(data) {
    var groups = Array.isArray(data.groups) ? data.groups : [];
    var labels = (Array.isArray(data.labels) ? data.labels : []).filter(function (l) {
      return l && typeof l.key === "string" && typeof l.title === "string";
    });
    showWaiting(data.waiting);
    ui.reviewGroups.textContent = "";
    groups.forEach(function (group, index) {
      if (group && Array.isArray(group.messages) && group.messages.length) {
        ui.reviewGroups.appendChild(reviewGroupNode(group, index, labels));
      }
    });
    ui.reviewEmpty.hidden = ui.reviewGroups.children.length > 0;
  }

  function labelSelect(id, labels) {
    var select = el("select", { id: id });
    select.appendChild(el("option", { value: "" }, ["Choose the right answer\u2026"]));
    var notCovered = labels.filter(function (l) { return l.key === NOT_COVERED; })[0];
    if (notCovered) select.appendChild(el("option", { value: NOT_COVERED }, [notCovered.title]));
    var placed = {};
    LABEL_GROUPS.forEach(function (pair) {
      var members = labels.filter(function (l) {
        return l.key !== NOT_COVERED && !placed[l.key] && l.key.indexOf(pair[0]) === 0;
      });
      if (!members.length) return;
      var optgroup = el("optgroup", { label: pair[1] });
      members.forEach(function (l) {
        placed[l.key] = true;
        optgroup.appendChild(el("option", { value: l.key }, [l.title + " (" + l.key + ")"]));
      });
      select.appendChild(optgroup);
    });
    return select;
  }

  function reviewMeta(message) {
    var parts = [CHANNELS[message.channel] || str(message.channel)];
    if (message.language) parts.push(LANGUAGES[message.language] || str(message.language));
    var reasons = Array.isArray(message.reasons) ? message.reasons : [];
    parts.push(reasons.map(function (r) { return REVIEW_REASONS[r] || str(r); }).join(", "));
    if (message.guess) {
      var sure = typeof message.confidence === "number" ? " " + Math.round(message.confidence * 100) + "%" : "";
      parts.push((message.taken_for === "nlu_fallback" ? "best guess " : "answered as ") + message.guess + sure);
    }
    var meta = el("span", { "class": "ac-review-meta" }, [parts.join(" \u00b7 ") + " \u00b7 "]);
    meta.appendChild(timeNode(message.received_at));
    return meta;
  }

  function reviewGroupNode(group, index, labels) {
    var node = el("article", { "class": "ac-review-group", "aria-labelledby": "review-group-" + index });
    var count = group.messages.length;
    node.appendChild(el("h3", { id: "review-group-" + index }, [
      "\u201c" + truncate(group.example, 160) + "\u201d",
      el("span", { "class": "ac-count" }, [" \u00b7 " + count + (count === 1 ? " message" : " messages")])]));
    var list = el("ul", { "class": "ac-review-list" });
    group.messages.forEach(function (message) {
      if (!message || typeof message.id !== "number") return;
      var box = el("input", { type: "checkbox", "data-id": String(message.id) });
      box.checked = true;
      var text = el("span", {}, [el("span", { "class": "ac-review-text", lang: str(message.language) || "en" },
                                    [str(message.text)]), reviewMeta(message)]);
      list.appendChild(el("li", { "class": "ac-review-item" }, [el("label", {}, [box, text])]));
    });
    node.appendChild(list);
    var selectId = "review-label-" + index;
    var select = labelSelect(selectId, labels);
    var save = el("button", { type: "button", "class": "ac-button ac-primary ac-small" }, ["Save label"]);
    save.addEventListener("click", function () { saveLabel(node, select, save); });
    node.appendChild(el("div", { "class": "ac-review-bar" }, [
      el("label", { "for": selectId }, ["Right answer"]), select, save]));
    return node;
  }

  async function saveLabel(node, select, save) {
    var ids = Array.prototype.filter.call(node.querySelectorAll("input[type=checkbox]"), function (box) {
      return box.checked;
    }).map(function (box) { return Number(box.getAttribute("data-id")); });
    if (!select.value) { reviewStatus("Choose the right answer first.", "error"); select.focus(); return; }
    if (!ids.length) { reviewStatus("Tick at least one message.", "error"); return; }
    var chosen = select.options[select.selectedIndex].textContent;
    save.disabled = true;
    try {
      var answer = await api("POST", "/api/agent/review/label", { items: ids, label: select.value });
      if (answer.status === 200) {
        var labelled = Number(answer.data.labelled) || 0;
        reviewStatus("Labelled " + labelled + (labelled === 1 ? " message" : " messages") + ": " + chosen + ".");
        refreshReview();
        ui.reviewTitle.focus();
      } else if (answer.status !== 401) {
        reviewStatus(str(answer.data.message) || "The label was not saved (HTTP " + answer.status + ").", "error");
      }
    } catch (e) {
      reviewStatus("Connection problem: the label was not saved. Try again.", "error");
    } finally {
      save.disabled = false;
    }
  }

  // --- the queue ---------------------------------------------------------------------------------------------
  async function refreshQueue() {
    if (!state.live) return;
    clearTimeout(state.queueTimer);
    state.queueTimer = null;
    var generation = state.generation;
    try {
      var answer = await api("GET", "/api/agent/queue");
      if (generation !== state.generation) return;
      if (answer.status === 200) {
        renderQueue(Array.isArray(answer.data.conversations) ? answer.data.conversations : []);
        clearProblem("queue");
      } else if (answer.status !== 401) {
        problem("queue", "The queue could not be loaded (HTTP " + answer.status + "). Retrying\u2026");
      }
    } catch (e) {
      if (generation !== state.generation) return;
      problem("queue", "Connection problem: the queue is not up to date. Retrying\u2026");
    }
    if (generation === state.generation && state.live) {
      clearTimeout(state.queueTimer);
      state.queueTimer = setTimeout(refreshQueue, QUEUE_EVERY);
    }
  }

  function tag(className, srLabel, text) {
    var node = el("span", { "class": "ac-tag " + className });
    if (srLabel) node.appendChild(el("span", { "class": "ac-sr" }, [srLabel + " "]));
    node.appendChild(el("span", { "class": "ac-tag-text" }, [text]));
    return node;
  }

  function queueItemNode(id) {
    var li = el("li", { "class": "ac-queue-item" });
    li.setAttribute("data-conversation-id", id);
    var button = el("button", { type: "button", "class": "ac-queue-button" });
    button.addEventListener("click", function () { openConversation(id); });
    li.appendChild(button);
    return li;
  }

  function updateQueueItem(li, item) {
    var button = li.firstChild;
    var language = str(item.language) || "en", channel = str(item.channel);
    var stateText, stateKey = item.state === "assigned" ? "assigned" : "waiting";
    if (stateKey === "waiting") stateText = "Waiting";
    else if (item.mine) stateText = "With you";
    else stateText = "With " + (str(item.agent) || "another agent");
    li.setAttribute("data-channel", channel);
    li.setAttribute("data-language", language);
    li.setAttribute("data-state", stateKey);
    li.setAttribute("data-mine", String(!!item.mine));

    var top = el("span", { "class": "ac-queue-top" });
    top.appendChild(tag("ac-channel", "Channel:", CHANNELS[channel] || channel));
    top.appendChild(tag("ac-language", "Language:", language.toUpperCase()));
    var stateTag = tag("ac-state", "State:", stateText);
    stateTag.setAttribute("data-state", stateKey);
    stateTag.setAttribute("data-mine", String(!!item.mine));
    top.appendChild(stateTag);
    if (item.reason === "fallback") top.appendChild(tag("ac-reason", "", "Not understood"));
    var wait = el("span", { "class": "ac-wait" }, [el("span", { "class": "ac-sr" }, ["Waiting for "]),
                                                    waitText(item.waiting_seconds)]);
    if ((Number(item.waiting_seconds) || 0) >= 300) wait.setAttribute("data-long", "");
    top.appendChild(wait);

    var lastText = item.last_customer_text === null || item.last_customer_text === undefined ? ""
      : str(item.last_customer_text);
    var last = el("span", { "class": "ac-last" });
    last.appendChild(el("span", { "class": "ac-sr" }, ["Last message: "]));
    var lastBody = el("span", { "class": "ac-last-text", lang: language }, [lastText ? truncate(lastText, LAST_TEXT_CHARS)
                                                                            : "(no message yet)"]);
    last.appendChild(lastBody);
    if (lastText) button.title = truncate(lastText, 500); else button.removeAttribute("title");

    // Replace the contents only when they changed, so a screen reader on the button is not disturbed every 3 s.
    var signature = [channel, language, stateText, item.reason, waitText(item.waiting_seconds), lastText].join("\u0000");
    if (li.getAttribute("data-signature") !== signature) {
      button.textContent = "";
      button.appendChild(top);
      button.appendChild(last);
      li.setAttribute("data-signature", signature);
    }
  }

  function renderQueue(items) {
    var seen = {}, position = 0, fresh = [];
    items.forEach(function (item) {
      if (!item || typeof item.conversation_id !== "string" || seen[item.conversation_id]) return;
      var id = item.conversation_id;
      seen[id] = true;
      var li = state.queueNodes[id];
      if (!li) {
        li = state.queueNodes[id] = queueItemNode(id);
        if (state.queueSeen && !state.queueSeen[id]) fresh.push(item);
      }
      updateQueueItem(li, item);
      var at = ui.queueList.children[position];
      if (at !== li) ui.queueList.insertBefore(li, at || null);
      position++;
    });
    Object.keys(state.queueNodes).forEach(function (id) {
      if (!seen[id]) { state.queueNodes[id].remove(); delete state.queueNodes[id]; }
    });
    state.queueSeen = seen;
    var waiting = items.filter(function (item) { return item && item.state !== "assigned"; }).length;
    ui.queueCount.textContent = "(" + position + (waiting ? ", " + waiting + " waiting" : "") + ")";
    ui.queueEmpty.hidden = position > 0;
    markCurrent();
    if (fresh.length) {
      ui.queueAnnounce.textContent = fresh.length === 1
        ? "New conversation in the queue: " + (CHANNELS[fresh[0].channel] || str(fresh[0].channel)) + ", " +
          languageLabel(fresh[0].language) + "."
        : fresh.length + " new conversations in the queue.";
    }
  }

  function markCurrent() {
    Object.keys(state.queueNodes).forEach(function (id) {
      var button = state.queueNodes[id].firstChild;
      if (state.open && state.open.id === id) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    });
  }

  // --- the open conversation ---------------------------------------------------------------------------------
  function newOpen(id) {
    return {
      id: id,
      opened: false,          // the POST /open answered (it takes the conversation if nobody has it)
      gone: false,            // 404: stop polling
      conversation: null,     // C
      lastSeq: 0,
      seqs: {},               // seq -> true: rendered entries
      deliveredClientIds: {}, // client ids of agent entries already in the transcript
      pollTimer: null, polling: false, pollAgain: false,
      suggestToken: 0, suggestedSeq: 0, setId: null, suggestions: [], suggestLanguage: "en",
      chosen: null,           // {set_id, index, title, answer}: the suggestion the reply started from
      draft: null,            // {clientId, text}: the client id of the typed message, reused on retries
      sending: false, resolving: false
    };
  }

  function showPlaceholder() {
    ui.conv.hidden = true;
    ui.placeholder.hidden = false;
  }

  function saveDraft() {
    var open = state.open;
    if (!open) return;
    if (ui.reply.value || open.chosen || open.draft) {
      state.drafts[open.id] = { text: ui.reply.value, chosen: open.chosen, draft: open.draft };
    } else {
      delete state.drafts[open.id];
    }
  }

  function closeConversation() {
    var open = state.open;
    if (!open) return;
    clearTimeout(open.pollTimer);
    open.pollTimer = null;
    state.open = null;
    clearProblem("poll");
    clearProblem("send");
    showPlaceholder();
    markCurrent();
  }

  function openConversation(id) {
    if (!state.live) return;
    if (state.open && state.open.id === id) { ui.convTitle.focus(); return; }
    saveDraft();
    closeConversation();
    var open = state.open = newOpen(id);
    ui.placeholder.hidden = true;
    ui.conv.hidden = false;
    ui.transcript.textContent = "";
    ui.suggestions.textContent = "";
    ui.suggestStatus.textContent = "";
    ui.account.hidden = true;
    ui.convTitle.textContent = "Opening the conversation\u2026";
    ui.convMeta.textContent = "";
    ui.status.textContent = "";
    ui.status.removeAttribute("data-state");
    clearReplyError();
    var saved = state.drafts[id];
    delete state.drafts[id];
    ui.reply.value = saved ? saved.text : "";
    open.chosen = saved ? saved.chosen : null;
    open.draft = saved ? saved.draft : null;
    updateCounter();
    updateSuggestionNote();
    updateControls();
    markCurrent();
    ui.convTitle.focus();
    poll(open);
  }

  function pollSoon(open) {
    if (state.open !== open || open.gone) return;
    if (open.polling) { open.pollAgain = true; return; }
    clearTimeout(open.pollTimer);
    open.pollTimer = setTimeout(function () { poll(open); }, 0);
  }

  async function poll(open) {
    if (state.open !== open || open.gone) return;
    if (open.polling) { open.pollAgain = true; return; }
    clearTimeout(open.pollTimer);
    open.polling = true;
    var first = !open.opened;
    try {
      var answer = first ? await api("POST", conversationPath(open.id, "/open"))
        : await api("GET", conversationPath(open.id, "?after=" + open.lastSeq));
      if (state.open !== open) return;
      if (answer.status === 200) {
        open.opened = true;
        applyConversation(open, answer.data, first);
        clearProblem("poll");
        if (first) refreshQueue();
      } else if (answer.status === 404) {
        // Gone, or no longer ours to read (closed by another agent): take what was shown off the screen too.
        open.gone = true;
        clearProblem("poll");
        ui.transcript.textContent = "";
        ui.suggestions.textContent = "";
        ui.account.hidden = true;
        ui.convTitle.textContent = "Conversation not found";
        setStatus("bot", str(answer.data.message) || "There is no such conversation.");
        updateControls();
      } else if (answer.status !== 401) {
        problem("poll", "The conversation could not be refreshed (HTTP " + answer.status + "). Retrying\u2026");
      }
    } catch (e) {
      if (state.open === open) {
        problem("poll", "Connection problem: the conversation is not up to date. Retrying\u2026");
      }
    } finally {
      open.polling = false;
      if (state.open === open && !open.gone && state.live) {
        var delay = open.pollAgain ? 0 : POLL_EVERY;
        open.pollAgain = false;
        clearTimeout(open.pollTimer);
        open.pollTimer = setTimeout(function () { poll(open); }, delay);
      }
    }
  }

  function applyConversation(open, data, first) {
    var conversation = data.conversation && typeof data.conversation === "object" ? data.conversation : null;
    var before = open.conversation;
    if (conversation) {
      open.conversation = conversation;
      renderHead(open);
    }
    renderAccount(data.account && typeof data.account === "object" ? data.account : null);

    var entries = (Array.isArray(data.transcript) ? data.transcript : [])
      .filter(function (e) { return e && typeof e.seq === "number"; })
      .sort(function (a, b) { return a.seq - b.seq; });
    var newCustomer = false, wasAtEnd = nearEnd();
    if (first) ui.transcript.setAttribute("aria-busy", "true");
    entries.forEach(function (entry) {
      if (open.seqs[entry.seq]) return;                 // already shown: never twice
      open.seqs[entry.seq] = true;
      open.lastSeq = Math.max(open.lastSeq, entry.seq);
      renderEntry(open, entry);
      if (entry.role === "customer") {
        if (first) open.suggestedSeq = Math.max(open.suggestedSeq, entry.seq);
        else if (entry.seq > open.suggestedSeq) newCustomer = true;
      }
    });
    if (first) ui.transcript.removeAttribute("aria-busy");
    if (entries.length && (first || wasAtEnd)) scrollToEnd();

    var canNow = canReply(open), couldBefore = before ? canReply({ conversation: before }) : false;
    if (first) {
      if (canNow) requestSuggestions(open);
      else showSuggestionsUnavailable(open);
    } else if (canNow && (newCustomer || !couldBefore)) {
      requestSuggestions(open);                         // a new customer message: fresh suggestions
    } else if (!canNow && couldBefore) {
      showSuggestionsUnavailable(open);
    }
    updateControls();
  }

  function renderHead(open) {
    var c = open.conversation;
    var channel = str(c.channel), language = str(c.language) || "en";
    ui.convTitle.textContent = (CHANNELS[channel] || channel || "Conversation") + " \u00b7 " + languageLabel(language);
    ui.convMeta.textContent = "";
    ui.convMeta.appendChild(document.createTextNode("ID " + str(c.conversation_id || open.id)));
    if (c.requested_at) {
      ui.convMeta.appendChild(document.createTextNode(" \u00b7 handed over "));
      ui.convMeta.appendChild(timeNode(c.requested_at));
    }
    ui.conv.setAttribute("data-language", language);
    ui.conv.setAttribute("data-channel", channel);
    var s = c.state;
    if (s === "assigned" && c.mine) setStatus("mine", "Yours \u2014 you are handling this conversation");
    else if (s === "assigned") setStatus("other", "Handled by " + (str(c.agent) || "another agent") +
                                         " \u2014 read-only");
    else if (s === "waiting") setStatus("waiting", "Waiting for an agent");
    else if (s === "resolved") setStatus("resolved", "Resolved \u2014 handed back to the assistant (read-only)");
    else setStatus("bot", "With the assistant \u2014 no open handoff (read-only)");
  }

  function setStatus(key, text) {
    if (ui.status.getAttribute("data-state") === key && ui.status.textContent === text) return;
    ui.status.setAttribute("data-state", key);
    ui.status.textContent = text;
  }

  function canReply(open) {
    var c = open && open.conversation;
    return !!(c && c.state === "assigned" && c.mine);
  }

  function canResolve(open) {
    var c = open && open.conversation;
    return !!(c && (c.state === "waiting" || (c.state === "assigned" && c.mine)));
  }

  function updateControls() {
    var open = state.open;
    var reply = canReply(open);
    ui.send.disabled = !open || !reply || open.sending;
    ui.resolve.disabled = !open || !canResolve(open) || open.resolving || open.sending;
    ui.refresh.disabled = !open || !reply;
    ui.reply.readOnly = !!(open && open.sending);
    ui.send.textContent = open && open.sending ? "Sending\u2026" : "Send";
    if (open && open.conversation && !reply) {
      var why = { assigned: "another agent is handling this conversation", resolved: "the conversation is resolved",
                  waiting: "nobody has taken the conversation yet" }[open.conversation.state] ||
                "the assistant is handling this conversation";
      ui.reply.setAttribute("placeholder", "You can't reply: " + why + ".");
    } else {
      ui.reply.setAttribute("placeholder", "Type your reply, or use a suggestion\u2026");
    }
  }

  // --- transcript ---------------------------------------------------------------------------------------------
  function nearEnd() { return ui.transcript.scrollHeight - ui.transcript.scrollTop - ui.transcript.clientHeight < 80; }
  function scrollToEnd() { ui.transcript.scrollTop = ui.transcript.scrollHeight; }

  function entryNode(open, role, text, at) {
    var node = el("div", { "class": "ac-entry", "data-role": role });
    var meta = el("div", { "class": "ac-entry-meta" }, [el("span", { "class": "ac-entry-who" }, [ROLES[role]])]);
    if (at) meta.appendChild(timeNode(at));
    node.appendChild(meta);
    var bubble = el("div", { "class": "ac-bubble" });
    if (role === "customer" && open.conversation && open.conversation.language) {
      bubble.setAttribute("lang", str(open.conversation.language));
    }
    bubble.textContent = text;
    node.appendChild(bubble);
    return node;
  }

  function firstPending() { return ui.transcript.querySelector(".ac-entry[data-state='pending']"); }

  function renderEntry(open, entry) {
    var role = ROLES[entry.role] ? entry.role : "notice";
    var node = entryNode(open, role, str(entry.text), entry.at);
    node.setAttribute("data-seq", String(entry.seq));
    if (role === "bot" && entry.source) {           // the documents the answer comes from, numbers and all
      node.appendChild(el("div", { "class": "ac-entry-source" }, ["Source: " + str(entry.source)]));
    }
    var buttons = Array.isArray(entry.buttons) ? entry.buttons.filter(function (b) { return b && b.title; }) : [];
    if (buttons.length) {
      var box = el("div", { "class": "ac-entry-buttons" }, ["Buttons offered:"]);
      buttons.forEach(function (b) { box.appendChild(el("span", { "class": "ac-chip" }, [str(b.title)])); });
      node.appendChild(box);
    }
    var pending = null;
    if (role === "agent" && typeof entry.client_id === "string" && entry.client_id) {
      node.setAttribute("data-client-id", entry.client_id);
      open.deliveredClientIds[entry.client_id] = true;
      pending = ui.transcript.querySelector(".ac-entry[data-state='pending'][data-client-id=\"" +
                                            cssEscape(entry.client_id) + "\"]");
    }
    if (pending) pending.replaceWith(node);            // the stored copy of a reply shown as "sending…"
    else ui.transcript.insertBefore(node, firstPending());
  }

  function showPending(open, clientId, text) {
    if (state.open !== open || open.deliveredClientIds[clientId]) return;
    var selector = ".ac-entry[data-state='pending'][data-client-id=\"" + cssEscape(clientId) + "\"]";
    var node = ui.transcript.querySelector(selector);
    if (node) node.remove();
    node = entryNode(open, "agent", text, null);
    node.setAttribute("data-state", "pending");
    node.setAttribute("data-client-id", clientId);
    node.appendChild(el("span", { "class": "ac-sending" }, ["Sending\u2026"]));
    ui.transcript.appendChild(node);
    scrollToEnd();
  }

  function removePending(open, clientId) {
    if (state.open !== open) return;
    var node = ui.transcript.querySelector(".ac-entry[data-state='pending'][data-client-id=\"" +
                                           cssEscape(clientId) + "\"]");
    if (node) node.remove();
  }

  // --- account summary ----------------------------------------------------------------------------------------
  function renderAccount(account) {
    if (!account) { ui.account.hidden = true; return; }
    var signature = JSON.stringify(account);
    if (ui.account.getAttribute("data-signature") === signature && !ui.account.hidden) return;
    ui.account.setAttribute("data-signature", signature);
    ui.accountFields.textContent = "";
    var day = account.bill_day;
    [["Account", account.account_number], ["Business", account.business_name], ["Status", account.status],
     ["Outstanding", account.outstanding], ["Bill day", day ? "Day " + day + " of the month" : ""]
    ].forEach(function (pair) {
      if (pair[1] === null || pair[1] === undefined || pair[1] === "") return;
      var dd = el("dd", {}, [str(pair[1])]);
      if (pair[0] === "Status") dd.setAttribute("data-status", str(pair[1]));
      ui.accountFields.appendChild(el("dt", {}, [pair[0]]));
      ui.accountFields.appendChild(dd);
    });
    var subscriptions = Array.isArray(account.subscriptions) ? account.subscriptions : [];
    ui.accountSubsBody.textContent = "";
    subscriptions.forEach(function (s) {
      if (!s || typeof s !== "object") return;
      ui.accountSubsBody.appendChild(el("tr", {}, [s.plan, s.status, s.contract_end, s.monthly_fee, s.devices]
        .map(function (value) { return el("td", {}, [str(value)]); })));
    });
    ui.accountSubs.hidden = !subscriptions.length;
    ui.account.hidden = false;
  }

  // --- suggestions --------------------------------------------------------------------------------------------
  function showSuggestionsUnavailable(open) {
    if (state.open !== open) return;
    open.suggestToken++;
    ui.suggestions.textContent = "";
    ui.suggestions.removeAttribute("data-set-id");
    ui.suggestStatus.textContent = "Suggestions are shown to the agent handling the conversation.";
  }

  async function requestSuggestions(open) {
    if (state.open !== open || !canReply(open)) return;
    var token = ++open.suggestToken;
    open.suggestedSeq = open.lastSeq;
    ui.suggestStatus.textContent = "Loading suggestions\u2026";
    ui.suggestions.setAttribute("aria-busy", "true");
    try {
      var answer = await api("POST", "/api/assist/suggest", { conversation_id: open.id });
      if (state.open !== open || token !== open.suggestToken) return;
      if (answer.status === 200) renderSuggestions(open, answer.data);
      else if (answer.status !== 401) {
        ui.suggestStatus.textContent = str(answer.data.message) ||
          "Suggestions are unavailable (HTTP " + answer.status + ").";
      }
    } catch (e) {
      if (state.open === open && token === open.suggestToken) {
        ui.suggestStatus.textContent = "Suggestions could not be loaded (connection problem). " +
          "Use \u201cRefresh suggestions\u201d to try again.";
      }
    } finally {
      if (state.open === open && token === open.suggestToken) ui.suggestions.removeAttribute("aria-busy");
    }
  }

  function renderSuggestions(open, data) {
    var list = (Array.isArray(data.suggestions) ? data.suggestions : [])
      .filter(function (s) { return s && typeof s === "object"; });
    open.setId = typeof data.set_id === "number" ? data.set_id : null;
    open.suggestions = list;
    open.suggestLanguage = str(data.language) || "en";
    ui.suggestions.textContent = "";
    if (open.setId === null) ui.suggestions.removeAttribute("data-set-id");
    else ui.suggestions.setAttribute("data-set-id", String(open.setId));
    ui.suggestions.setAttribute("data-language", open.suggestLanguage);
    var forText = truncate(data.text, 160);
    if (!list.length) {
      ui.suggestStatus.textContent = forText ? "No suggestions for \u201c" + forText + "\u201d."
        : "No customer message to suggest answers for yet.";
      ui.suggestStatus.setAttribute("data-for", str(data.text));
      return;
    }
    ui.suggestStatus.textContent = (list.length === 1 ? "1 suggestion" : list.length + " suggestions") +
      " for \u201c" + forText + "\u201d";
    ui.suggestStatus.setAttribute("data-for", str(data.text));
    list.forEach(function (s, index) { ui.suggestions.appendChild(suggestionCard(open, s, index)); });
    markChosen(open);
  }

  function suggestionCard(open, s, index) {
    var titleId = "suggestion-title-" + index;
    var li = el("li", { "class": "ac-card", "data-index": String(index), "data-key": str(s.key) });
    var head = el("div", { "class": "ac-card-head" }, [el("h4", { "class": "ac-card-title", id: titleId },
                                                          [str(s.title) || "Suggestion " + (index + 1)])]);
    if (s.account_aware) {
      li.setAttribute("data-account-aware", "");
      head.appendChild(el("span", { "class": "ac-badge", title: "Uses the customer's verified account" },
                          ["account"]));
    }
    li.appendChild(head);
    li.appendChild(el("p", { "class": "ac-card-answer", lang: open.suggestLanguage }, [str(s.answer)]));
    var confidence = Math.round(Math.max(0, Math.min(1, Number(s.confidence) || 0)) * 100);
    var use = el("button", { type: "button", "class": "ac-button ac-small ac-use", "aria-describedby": titleId },
                 ["Use"]);
    li.appendChild(el("div", { "class": "ac-card-foot" }, [
      el("span", { "class": "ac-card-source" }, ["Source: ", el("span", { "class": "ac-source" }, [str(s.source) || "\u2013"])]),
      el("span", { "class": "ac-card-confidence" }, [el("span", { "class": "ac-sr" }, ["Confidence "]), confidence + "%"]),
      use]));
    li.addEventListener("click", function () {
      var selection = window.getSelection && String(window.getSelection());
      if (selection && li.contains(window.getSelection().anchorNode)) return;   // selecting text to copy it
      useSuggestion(open, index);
    });
    return li;
  }

  function useSuggestion(open, index) {
    if (state.open !== open || open.sending) return;
    var s = open.suggestions[index];
    if (!s) return;
    var answer = str(s.answer).slice(0, MAX_CHARS);
    ui.reply.value = answer;
    open.chosen = open.setId === null ? null
      : { set_id: open.setId, index: index, title: str(s.title), answer: answer };
    clearReplyError();
    updateCounter();
    updateSuggestionNote();
    markChosen(open);
    ui.reply.focus();
    ui.reply.setSelectionRange(answer.length, answer.length);
  }

  function markChosen(open) {
    Array.prototype.forEach.call(ui.suggestions.children, function (li) {
      var chosen = open.chosen && open.chosen.set_id === open.setId &&
        String(open.chosen.index) === li.getAttribute("data-index");
      if (chosen) li.setAttribute("data-selected", ""); else li.removeAttribute("data-selected");
      var button = li.querySelector(".ac-use");
      if (button) button.setAttribute("aria-pressed", String(!!chosen));
    });
  }

  function updateSuggestionNote() {
    var open = state.open;
    var chosen = open && open.chosen;
    ui.fromSuggestion.hidden = !chosen;
    if (!chosen) { ui.fromSuggestion.textContent = ""; return; }
    ui.fromSuggestion.textContent = "From suggestion \u201c" + truncate(chosen.title, 60) + "\u201d" +
      (sameText(ui.reply.value, chosen.answer) ? "" : " (edited)");
  }

  // --- replying -----------------------------------------------------------------------------------------------
  function updateCounter() {
    var length = ui.reply.value.length;
    ui.counter.textContent = length + " / " + MAX_CHARS;
    if (length >= COUNTER_WARN) ui.counter.setAttribute("data-near", ""); else ui.counter.removeAttribute("data-near");
  }

  function showReplyError(text) {
    ui.replyError.textContent = text;
    ui.replyError.hidden = false;
  }

  function clearReplyError() {
    ui.replyError.hidden = true;
    ui.replyError.textContent = "";
  }

  function onReplyInput() {
    var open = state.open;
    if (open && !ui.reply.value) {
      open.chosen = null;                               // cleared completely: no longer based on a suggestion
      markChosen(open);
    }
    updateCounter();
    updateSuggestionNote();
  }

  async function sendReply() {
    var open = state.open;
    if (!open || open.sending) return;                  // one send at a time: a double click sends once
    var text = ui.reply.value.trim();
    if (!text) { ui.reply.focus(); return; }
    if (!canReply(open)) {
      showReplyError("You can't reply to this conversation: " + ui.status.textContent + ".");
      return;
    }
    if (text.length > MAX_CHARS) { showReplyError("The reply is longer than 2,000 characters."); return; }
    // One client id per typed message: a retry of the same text reuses it, so the customer gets it once.
    if (!open.draft || open.draft.text !== text) open.draft = { clientId: newId(), text: text };
    var clientId = open.draft.clientId;
    var chosen = open.chosen;
    open.sending = true;
    updateControls();
    clearReplyError();
    showPending(open, clientId, text);
    try {
      var answer = await api("POST", conversationPath(open.id, "/reply"), {
        text: text, client_id: clientId, suggestion: chosen ? { set_id: chosen.set_id, index: chosen.index } : null
      });
      if (answer.status === 202) {
        clearProblem("send");
        if (open.deliveredClientIds[clientId]) removePending(open, clientId);
        if (state.open === open) {
          if (ui.reply.value.trim() === text) ui.reply.value = "";
          open.chosen = null;
          open.draft = null;
          markChosen(open);
          updateCounter();
          updateSuggestionNote();
          pollSoon(open);                               // the stored copy replaces the "sending…" bubble
        } else {
          delete state.drafts[open.id];
        }
        return;
      }
      removePending(open, clientId);
      if (answer.status === 401) return;
      if (answer.status === 409 || answer.status === 400 || answer.status === 404) {
        if (state.open === open) {
          showReplyError(str(answer.data.message) || "Your reply was not sent (" + str(answer.data.error) + ").");
          pollSoon(open);                               // and show why: resolved, or another agent has it
        }
      } else if (answer.status === 403) {
        if (state.open === open) showReplyError("Your reply was not sent: the page's security token was out of " +
                                                "date. Please press Send again.");
      } else {
        problem("send", "Your reply was not sent (HTTP " + answer.status + "). It is still in the reply box.",
                retrySend(open));
      }
    } catch (e) {
      removePending(open, clientId);
      problem("send", "Connection problem: your reply was not sent. It is still in the reply box.", retrySend(open));
    } finally {
      open.sending = false;
      if (state.open === open) updateControls();
    }
  }

  function retrySend(open) {
    return function () {
      clearProblem("send");
      if (state.open === open) sendReply();
    };
  }

  async function resolveConversation() {
    var open = state.open;
    if (!open || open.resolving || !canResolve(open)) return;
    open.resolving = true;
    updateControls();
    clearReplyError();
    try {
      var answer = await api("POST", conversationPath(open.id, "/resolve"));
      if (state.open !== open) return;
      if (answer.status === 200) {
        clearProblem("send");
        open.conversation = Object.assign({}, open.conversation, { state: "resolved", mine: false });
        renderHead(open);
        showSuggestionsUnavailable(open);
        pollSoon(open);
        refreshQueue();
      } else if (answer.status === 409 || answer.status === 404) {
        showReplyError(str(answer.data.message) || "The conversation could not be resolved.");
        pollSoon(open);
      } else if (answer.status !== 401) {
        problem("send", "The conversation was not resolved (HTTP " + answer.status + ").", function () {
          clearProblem("send"); resolveConversation();
        });
      }
    } catch (e) {
      problem("send", "Connection problem: the conversation was not resolved.", function () {
        clearProblem("send"); resolveConversation();
      });
    } finally {
      open.resolving = false;
      if (state.open === open) updateControls();
    }
  }

  // --- start ---------------------------------------------------------------------------------------------------
  async function start() {
    ["loading", "login", "console"].forEach(function (id) { ui[id] = $(id); });
    ui.loginForm = $("login-form");
    ui.loginName = $("login-name");
    ui.loginPassword = $("login-password");
    ui.loginSubmit = $("login-submit");
    ui.loginError = $("login-error");
    ui.agentName = $("agent-name");
    ui.logout = $("logout");
    ui.banner = $("banner");
    ui.bannerText = $("banner-text");
    ui.bannerRetry = $("banner-retry");
    ui.queueTitle = $("queue-title");
    ui.queueCount = $("queue-count");
    ui.queueEmpty = $("queue-empty");
    ui.queueList = $("queue-list");
    ui.queueAnnounce = $("queue-announce");
    ui.placeholder = $("conv-placeholder");
    ui.conv = $("conv");
    ui.convTitle = $("conv-title");
    ui.convMeta = $("conv-meta");
    ui.status = $("conv-status");
    ui.transcript = $("transcript");
    ui.account = $("account");
    ui.accountFields = $("account-fields");
    ui.accountSubs = $("account-subscriptions");
    ui.accountSubsBody = $("account-subscriptions-body");
    ui.refresh = $("suggest-refresh");
    ui.suggestStatus = $("suggest-status");
    ui.suggestions = $("suggestions");
    ui.replyForm = $("reply-form");
    ui.replyError = $("reply-error");
    ui.fromSuggestion = $("reply-suggestion");
    ui.reply = $("reply");
    ui.counter = $("reply-counter");
    ui.send = $("send");
    ui.resolve = $("resolve");
    ui.main = $("main");
    ui.review = $("review");
    ui.reviewTitle = $("review-title");
    ui.reviewWaiting = $("review-waiting");
    ui.reviewCount = $("review-count");
    ui.reviewStatus = $("review-status");
    ui.reviewEmpty = $("review-empty");
    ui.reviewGroups = $("review-groups");
    ui.viewConversations = $("view-conversations");
    ui.viewReview = $("view-review");

    ui.loginForm.addEventListener("submit", onLogin);
    ui.logout.addEventListener("click", onLogout);
    ui.replyForm.addEventListener("submit", function (event) { event.preventDefault(); sendReply(); });
    ui.reply.addEventListener("keydown", function (event) {
      // Enter sends, Shift+Enter is a new line; not while an IME is composing
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); sendReply(); }
    });
    ui.reply.addEventListener("input", function () { clearReplyError(); onReplyInput(); });
    ui.resolve.addEventListener("click", resolveConversation);
    ui.refresh.addEventListener("click", function () { if (state.open) requestSuggestions(state.open); });
    ui.viewConversations.addEventListener("click", function () { showView("conversations", true); });
    ui.viewReview.addEventListener("click", function () { showView("review", true); });
    $("review-refresh").addEventListener("click", function () { reviewStatus(""); refreshReview(); });

    try {
      var answer = await api("GET", "/api/agent/me", undefined, true);
      if (answer.status === 200 && answer.data.agent) startConsole(answer.data.agent, answer.data.csrf_token);
      else showLogin("");
    } catch (e) {
      showLogin("Cannot reach the server. Check your connection and reload the page.");
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
