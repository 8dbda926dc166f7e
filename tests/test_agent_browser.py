"""The agent console (/agent) in a real browser (headless Chromium from Debian's `chromium` package, driven by
Playwright), with customers in the website widget, against a gateway on the real trained assistant
(`agent_gateway` in conftest.py).

Real answers: the assertions look at robust content (the handoff, "FAQ", "JomPAY", the language), not at full
texts. Every test uses its own agents, customers and browser contexts."""
import json
import random
import re
import string
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest
import yaml

from bot.paths import REPO_ROOT
from conftest import skip_without_chromium

TIMEOUT_MS = 30_000
REPLY_TIMEOUT_MS = 60_000                      # an assistant turn under load (other test suites running)

skip_without_chromium("console")
pytestmark = pytest.mark.model

from playwright.sync_api import Page, expect  # noqa: E402

expect.set_options(timeout=TIMEOUT_MS)        # real NLU turns: generous waits for every expect()

PASSWORD = "correct horse battery staple"
BOT = '.ksos-message[data-role="bot"]'
CUSTOMER = '.ksos-message[data-role="customer"]'
HANDOFF_EN = re.compile(r"Unifi agent", re.I)
HANDOFF_MS = re.compile(r"ejen Unifi", re.I)
MALAY_WORDS = re.compile(r"\b(anda|sila|untuk|dan|yang|boleh|ialah|dengan)\b", re.I)
ENGLISH_ONLY = re.compile(r"\b(the|please|you|your)\b", re.I)
POLL = re.compile(r"/api/agent/conversations/[^/?]+\?after=")


@pytest.fixture
def new_page(browser):
    """Fresh browser contexts (a laptop-sized window) for the test's customers and agents; no JavaScript errors
    and no Content Security Policy violations allowed on any of them."""
    opened = []

    def make(**options) -> Page:
        context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800}, **options)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text)
                if message.type == "error" and "Content Security Policy" in message.text else None)
        opened.append((context, errors))
        return page

    yield make
    for context, _ in opened:
        context.close()
    problems = [error for _, errors in opened for error in errors]
    assert not problems, f"JavaScript errors on the pages: {problems}"


def letters(count: int = 6) -> str:
    """A random tag for names and texts, letters only: digits could read as a one-time code and be redacted."""
    return "".join(random.choices(string.ascii_lowercase, k=count))


def new_agent(agent_gateway, prefix: str) -> str:
    """A new agent whose login is `<prefix>-<letters>`; customers see only the display name, `<Prefix>`."""
    name = f"{prefix}-{letters()}"
    agent_gateway.add_agent(name, PASSWORD, display_name=prefix.title())
    return name


def display_name(login: str) -> str:
    return login.split("-")[0].title()


# --- the customer: the widget on the demo page ----------------------------------------------------------------

def open_customer(new_page, url: str) -> Page:
    page = new_page()
    page.goto(url + "/")
    expect(page.locator(".ksos-panel")).to_be_visible()            # the demo page has data-open="true"
    expect(page.locator(".ksos-root[data-connected]")).to_have_count(1)
    return page


def conversation_id(customer: Page) -> str:
    """The gateway's id of the widget customer's conversation: "widget:<key>", the key a hash of the session
    secret the browser keeps."""
    from bot.gateway.store import widget_session_key

    secret = customer.evaluate("() => localStorage.getItem('ksos-widget-session')")
    assert secret
    return "widget:" + widget_session_key(secret)


def customer_says(customer: Page, text: str) -> int:
    """Send `text` from the widget; the seq it was stored with."""
    customer.locator(".ksos-input").fill(text)
    customer.locator(".ksos-input").press("Enter")
    message = customer.locator(f"{CUSTOMER}[data-seq]").filter(
        has=customer.locator(".ksos-text", has_text=text)).last
    expect(message).to_be_visible()
    return int(message.get_attribute("data-seq"))


def bot_reply_after(customer: Page, seq: int, pattern: re.Pattern) -> str:
    """Wait for a bot message after seq `seq` that matches `pattern`, then the end of the turn; all bot text
    after `seq`."""
    customer.wait_for_function(
        """([seq, source]) => Array.from(document.querySelectorAll('.ksos-message[data-role="bot"][data-seq]'))
             .some(m => Number(m.dataset.seq) > seq && new RegExp(source, 'i').test(m.textContent))""",
        arg=[seq, pattern.pattern], timeout=REPLY_TIMEOUT_MS)
    expect(customer.locator(".ksos-typing")).to_be_hidden()
    return "\n".join(m.locator(".ksos-text").text_content() for m in customer.locator(f"{BOT}[data-seq]").all()
                     if int(m.get_attribute("data-seq")) > seq)


def bot_messages_after(customer: Page, seq: int) -> list:
    return [m.text_content() for m in customer.locator(f"{BOT}[data-seq]").all()
            if int(m.get_attribute("data-seq")) > seq]


def handed_over_customer(new_page, url: str, text: str = "I want to talk to a human agent",
                         pattern: re.Pattern = HANDOFF_EN) -> Page:
    customer = open_customer(new_page, url)
    seq = customer_says(customer, text)
    bot_reply_after(customer, seq, pattern)                 # waits for the handoff answer
    return customer


# --- the agent: the console -----------------------------------------------------------------------------------

def log_in(page: Page, url: str, name: str, password: str = PASSWORD) -> None:
    page.goto(url + "/agent")
    expect(page.locator("#login")).to_be_visible()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def open_console(new_page, url: str, name: str) -> Page:
    page = new_page()
    log_in(page, url, name)
    expect(page.locator("#console")).to_be_visible()
    expect(page.locator("#agent-name")).to_have_text(name)
    return page


def queue_item(agent: Page, conversation: str):
    return agent.locator(f'#queue-list li[data-conversation-id="{conversation}"]')


def open_conversation(agent: Page, conversation: str) -> None:
    item = queue_item(agent, conversation)
    expect(item).to_be_visible()
    item.get_by_role("button").click()
    expect(item.get_by_role("button")).to_have_attribute("aria-current", "true")
    expect(agent.locator("#conv")).to_be_visible()


def transcript_entry(agent: Page, role: str, text: str):
    return agent.locator(f'#transcript .ac-entry[data-role="{role}"]').filter(has_text=text)


def csrf_token(agent: Page, url: str) -> str:
    response = agent.request.get(url + "/api/agent/me")
    assert response.status == 200, response.text()
    return response.json()["csrf_token"]


def anonymous(method: str, url: str, body=None):
    """(status, JSON) of an API call without any cookie."""
    data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read().decode() or "{}")
    except urllib.error.HTTPError as failure:
        return failure.code, json.loads(failure.read().decode() or "{}")


# --- tests ----------------------------------------------------------------------------------------------------

def test_handoff_agent_replies_with_an_edited_suggestion_and_resolves(agent_gateway, new_page):
    url = agent_gateway.url
    name = new_agent(agent_gateway, "aisyah")
    customer = handed_over_customer(new_page, url)
    conversation = conversation_id(customer)

    agent = open_console(new_page, url, name)
    item = queue_item(agent, conversation)
    expect(item).to_be_visible()
    expect(item).to_have_attribute("data-channel", "widget")
    expect(item).to_have_attribute("data-language", "en")
    expect(item).to_have_attribute("data-state", "waiting")
    expect(item).to_contain_text("Web chat")
    expect(item).to_contain_text("EN")
    expect(item).to_contain_text("Waiting")
    expect(item).to_contain_text(re.compile(r"\d+ min"))
    expect(item.locator(".ac-last-text")).to_have_text("I want to talk to a human agent")

    open_conversation(agent, conversation)
    expect(agent.locator("#conv-status")).to_have_attribute("data-state", "mine")
    expect(agent.locator("#conv-status")).to_contain_text("Yours")
    expect(transcript_entry(agent, "customer", "I want to talk to a human agent")).to_have_count(1)
    expect(transcript_entry(agent, "bot", "Unifi agent")).to_have_count(1)
    # The agents see where an answer comes from, numbers and all (customers only see the document's name).
    expect(transcript_entry(agent, "bot", "Unifi agent").locator(".ac-entry-source")).to_have_text("Source: FAQ 11")
    expect(transcript_entry(agent, "notice", f"{display_name(name)} from Unifi has joined")).to_have_count(1)
    cards = agent.locator("#suggestions .ac-card")
    expect(cards).to_have_count(3)
    first_set = agent.locator("#suggestions").get_attribute("data-set-id")
    expect(agent.locator("#send")).to_be_enabled()
    expect(item).to_have_attribute("data-mine", "true")          # the queue shows the agent has it

    # the customer sees the agent join; their next message goes to the agent, not the assistant
    joined = customer.locator('.ksos-message[data-role="notice"]').filter(has_text="from Unifi has joined")
    expect(joined).to_have_count(1)
    expect(joined).to_contain_text(display_name(name))
    assert name not in customer.locator(".ksos-root").inner_text()        # the login name is never shown
    question = "how much is the penalty if I cancel early?"
    question_seq = customer_says(customer, question)
    expect(transcript_entry(agent, "customer", question)).to_have_count(1)
    expect(agent.locator("#suggest-status")).to_have_attribute("data-for", question)     # refreshed for it
    expect(agent.locator("#suggestions")).not_to_have_attribute("data-set-id", first_set)
    expect(cards.first).to_be_visible()
    faq_card = cards.filter(has=agent.locator(".ac-source", has_text="FAQ")).first
    expect(faq_card).to_be_visible()
    expect(faq_card.locator(".ac-card-confidence")).to_have_text(re.compile(r"^\s*(Confidence )?\d{1,3}%$"))
    set_id = int(agent.locator("#suggestions").get_attribute("data-set-id"))
    index = int(faq_card.get_attribute("data-index"))
    answer = faq_card.locator(".ac-card-answer").text_content()

    faq_card.get_by_role("button", name="Use").click()
    reply_box = agent.get_by_label("Reply to the customer")
    expect(reply_box).to_have_value(answer)
    expect(reply_box).to_be_focused()
    expect(agent.locator("#reply-suggestion")).to_be_visible()
    expect(faq_card).to_have_attribute("data-selected", "")
    marker = f"Anything else I can help with? ({letters()})"
    reply_box.press("End")
    reply_box.press("Control+End")
    agent.keyboard.type(" " + marker)
    expect(agent.locator("#reply-suggestion")).to_contain_text("edited")
    expect(agent.locator("#reply-counter")).to_have_text(f"{len(answer) + 1 + len(marker)} / 2000")
    with agent.expect_request(lambda r: r.url.endswith("/reply") and r.method == "POST") as sent:
        reply_box.press("Enter")
    body = sent.value.post_data_json
    assert body["suggestion"] == {"set_id": set_id, "index": index}
    assert body["text"] == f"{answer} {marker}"
    assert body["client_id"]
    expect(reply_box).to_have_value("")
    expect(agent.locator("#reply-suggestion")).to_be_hidden()

    # delivered once: the "sending…" bubble is replaced by the stored entry, in the console and the widget
    expect(transcript_entry(agent, "agent", marker)).to_have_count(1)
    expect(transcript_entry(agent, "agent", marker)).to_have_attribute("data-seq", re.compile(r"^\d+$"))
    expect(transcript_entry(agent, "agent", marker)).to_have_attribute("data-client-id", body["client_id"])
    expect(agent.locator('#transcript .ac-entry[data-state="pending"]')).to_have_count(0)
    agent_message = customer.locator('.ksos-message[data-role="agent"]').filter(has_text=marker)
    expect(agent_message).to_have_count(1)
    assert agent_message.locator(".ksos-text").text_content() == f"{answer} {marker}"
    assert bot_messages_after(customer, question_seq) == [], "the assistant answered during the handoff"

    # personal data: the customer gets the agent's words as written; the kept transcript has them redacted
    reference = f"Your reference code is 482913 ({letters()})."
    reply_box.fill(reference)
    reply_box.press("Enter")
    expect(customer.locator('.ksos-message[data-role="agent"]').filter(has_text=reference)).to_have_count(1)
    expect(transcript_entry(agent, "agent", reference.replace("482913", "[code]"))).to_have_count(1)

    # resolve: handed back to the assistant, which answers again
    agent.get_by_role("button", name="Resolve").click()
    expect(agent.locator("#conv-status")).to_have_attribute("data-state", "resolved")
    expect(agent.locator("#send")).to_be_disabled()
    expect(queue_item(agent, conversation)).to_have_count(0)
    expect(customer.locator('.ksos-message[data-role="notice"]').filter(has_text="closed this chat")).to_have_count(1)
    expect(transcript_entry(agent, "notice", "closed this chat")).to_have_count(1)
    payment_seq = customer_says(customer, "what payment methods are there?")
    assert "JomPAY" in bot_reply_after(customer, payment_seq, re.compile("JomPAY"))


@pytest.mark.parametrize("widget_language", ["typed", "switched"])
def test_malay_customer_gets_the_malay_handoff_and_malay_suggestions(agent_gateway, new_page, widget_language):
    """typed: the customer just writes Malay in an English widget; switched: they first switch the widget to BM."""
    url = agent_gateway.url
    name = new_agent(agent_gateway, "farid")
    customer = open_customer(new_page, url)
    if widget_language == "switched":
        customer.locator(".ksos-lang-ms").click()
        switched = customer.locator(f"{CUSTOMER}[data-seq]").filter(has_text="Bahasa Melayu")
        expect(switched).to_have_count(1)
        bot_reply_after(customer, int(switched.get_attribute("data-seq")), re.compile("."))
    seq = customer_says(customer, "saya nak cakap dengan orang")
    bot_reply_after(customer, seq, HANDOFF_MS)
    conversation = conversation_id(customer)
    handoff = customer.locator(f"{BOT}[data-seq]").last.locator(".ksos-text").text_content()
    assert "ejen" in handoff.lower() and not ENGLISH_ONLY.search(handoff), handoff

    agent = open_console(new_page, url, name)
    item = queue_item(agent, conversation)
    expect(item).to_have_attribute("data-language", "ms")
    expect(item).to_contain_text("MS")
    open_conversation(agent, conversation)
    expect(agent.locator("#conv-title")).to_contain_text("Malay (ms)")
    expect(transcript_entry(agent, "customer", "saya nak cakap dengan orang")).to_have_count(1)
    expect(transcript_entry(agent, "customer", "saya nak cakap dengan orang").locator(".ac-bubble")
           ).to_have_attribute("lang", "ms")
    cards = agent.locator("#suggestions .ac-card")
    expect(cards.first).to_be_visible()
    expect(agent.locator("#suggestions")).to_have_attribute("data-language", "ms")
    answers = [card.locator(".ac-card-answer").text_content() for card in cards.all()]
    assert all(MALAY_WORDS.search(text) for text in answers), answers
    # the customer sees the agent join in Malay
    expect(customer.locator('.ksos-message[data-role="notice"]').filter(has_text="telah menyertai")).to_have_count(1)
    agent.get_by_role("button", name="Resolve").click()
    expect(agent.locator("#conv-status")).to_have_attribute("data-state", "resolved")


def test_login_errors_sessions_and_csrf(agent_gateway, new_page):
    url = agent_gateway.url
    name = new_agent(agent_gateway, "hafiz")

    # without a session cookie every endpoint but login answers 401
    for method, path in [("GET", "/api/agent/me"), ("GET", "/api/agent/queue"),
                         ("GET", "/api/agent/conversations/widget:nobody?after=0"),
                         ("POST", "/api/agent/conversations/widget:nobody/open"),
                         ("POST", "/api/agent/conversations/widget:nobody/reply"),
                         ("POST", "/api/agent/conversations/widget:nobody/resolve"),
                         ("POST", "/api/agent/logout"), ("POST", "/api/assist/suggest"),
                         ("GET", "/api/agent/review"), ("POST", "/api/agent/review/label")]:
        assert anonymous(method, url + path) == (401, {"error": "unauthorized"}), path

    page = new_page()
    response = page.goto(url + "/agent")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#console")).to_be_hidden()
    expect(page.get_by_label("Name")).to_be_focused()
    log_in(page, url, name, "not the password")
    expect(page.locator("#login-error")).to_have_text("Wrong name or password")
    expect(page.locator("#console")).to_be_hidden()
    assert not [c for c in page.context.cookies() if c["name"] == "ksos_agent"]

    log_in(page, url, name)
    expect(page.locator("#console")).to_be_visible()
    expect(page.locator("#agent-name")).to_have_text(name)
    [cookie] = [c for c in page.context.cookies() if c["name"] == "ksos_agent"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("() => document.cookie").find("ksos_agent") < 0

    # with the cookie: GETs work, a POST without the CSRF header is refused, with it the request goes through
    me = page.request.get(url + "/api/agent/me")
    assert me.status == 200 and me.json()["agent"]["name"] == name
    refused = page.request.post(url + "/api/agent/conversations/widget:nobody/resolve", data={})
    assert refused.status == 403 and refused.json()["error"] == "csrf"
    token = csrf_token(page, url)
    wrong = page.request.post(url + "/api/agent/conversations/widget:nobody/resolve", data={},
                              headers={"X-CSRF-Token": token + "x"})
    assert wrong.status == 403 and wrong.json()["error"] == "csrf"
    accepted = page.request.post(url + "/api/agent/conversations/widget:nobody/resolve", data={},
                                 headers={"X-CSRF-Token": token})
    assert accepted.status == 404 and accepted.json()["error"] == "not_found"

    # a reload keeps the session
    page.reload()
    expect(page.locator("#console")).to_be_visible()
    expect(page.locator("#agent-name")).to_have_text(name)

    # the session ends elsewhere (here: logged out through the API): the console goes back to the login screen
    assert page.request.post(url + "/api/agent/logout", data={}, headers={"X-CSRF-Token": token}).status == 200
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#login-error")).to_have_text("Your session has ended. Please log in again.")
    expect(page.locator("#console")).to_be_hidden()

    # log in again and out with the button
    log_in(page, url, name)
    expect(page.locator("#console")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#login")).to_be_visible()
    assert page.request.get(url + "/api/agent/me").status == 401


def test_a_second_agent_sees_the_conversation_read_only(agent_gateway, new_page):
    url = agent_gateway.url
    first, second = new_agent(agent_gateway, "nurul"), new_agent(agent_gateway, "kumar")
    customer = handed_over_customer(new_page, url)
    conversation = conversation_id(customer)

    agent_a = open_console(new_page, url, first)
    open_conversation(agent_a, conversation)
    expect(agent_a.locator("#conv-status")).to_have_attribute("data-state", "mine")

    agent_b = open_console(new_page, url, second)
    item = queue_item(agent_b, conversation)
    expect(item).to_have_attribute("data-state", "assigned")
    expect(item).to_have_attribute("data-mine", "false")
    expect(item).to_contain_text(f"With {first}")
    open_conversation(agent_b, conversation)
    status = agent_b.locator("#conv-status")
    expect(status).to_have_attribute("data-state", "other")
    expect(status).to_contain_text(f"Handled by {first}")
    expect(status).to_contain_text("read-only")
    expect(transcript_entry(agent_b, "customer", "I want to talk to a human agent")).to_have_count(1)
    expect(agent_b.locator("#send")).to_be_disabled()
    expect(agent_b.locator("#resolve")).to_be_disabled()
    expect(agent_b.locator("#suggest-refresh")).to_be_disabled()
    expect(agent_b.locator("#suggestions .ac-card")).to_have_count(0)
    reply_box = agent_b.get_by_label("Reply to the customer")
    reply_box.fill("Hello from the second agent")
    reply_box.press("Enter")                                     # nothing is sent
    expect(agent_b.locator("#reply-error")).to_contain_text("can't reply")
    expect(reply_box).to_have_value("Hello from the second agent")
    # and the API refuses it too
    refused = agent_b.request.post(url + f"/api/agent/conversations/{conversation}/reply",
                                   data={"text": "sneaky", "client_id": uuid.uuid4().hex, "suggestion": None},
                                   headers={"X-CSRF-Token": csrf_token(agent_b, url)})
    assert refused.status == 409 and refused.json()["error"] == "not_owner", refused.text()
    assert refused.json()["message"]

    # A writes; B sees it live; A resolves, B's view follows
    agent_a.get_by_label("Reply to the customer").fill("Hi, this is Nurul.")
    agent_a.get_by_role("button", name="Send").click()
    expect(transcript_entry(agent_b, "agent", "Hi, this is Nurul.")).to_have_count(1)
    agent_a.get_by_role("button", name="Resolve").click()
    # Closed by A, the conversation is no longer B's to read (agents read only what was handed over to them).
    expect(status).to_contain_text("not handed over to you")
    expect(transcript_entry(agent_b, "customer", "I want to talk to a human agent")).to_have_count(0)
    expect(customer.locator('.ksos-message[data-role="agent"]')).to_have_count(1)
    expect(customer.locator('.ksos-message[data-role="agent"]').filter(has_text="sneaky")).to_have_count(0)


def test_a_reply_after_the_conversation_was_resolved_shows_the_409_and_keeps_the_text(agent_gateway, new_page):
    url = agent_gateway.url
    name = new_agent(agent_gateway, "mei-ling")
    customer = handed_over_customer(new_page, url)
    conversation = conversation_id(customer)
    attack = '<img src=x onerror="window.__xss=1">'
    customer_says(customer, attack)

    agent = open_console(new_page, url, name)
    expect(queue_item(agent, conversation).locator(".ac-last-text")).to_have_text(attack)
    open_conversation(agent, conversation)
    expect(transcript_entry(agent, "customer", attack).locator(".ac-bubble")).to_have_text(attack)
    assert agent.locator("#transcript img, #queue-list img").count() == 0
    assert agent.evaluate("() => typeof window.__xss") == "undefined"
    expect(agent.locator("#send")).to_be_enabled()

    # the console has not heard of the resolution yet: its polls get the conversation as it was
    stale = agent.request.get(url + f"/api/agent/conversations/{conversation}?after=1000000000").json()
    assert stale["conversation"]["mine"] is True
    agent.route(POLL, lambda route: route.fulfill(status=200, content_type="application/json",
                                                  body=json.dumps(stale)))
    console = agent_gateway.console(name, PASSWORD)
    status, body = console.call("POST", f"/api/agent/conversations/{conversation}/resolve")
    assert (status, body) == (200, {"status": "resolved"})

    reply_box = agent.get_by_label("Reply to the customer")
    text = "Let me check that for you.\nOne moment please."
    reply_box.fill(text)
    reply_box.press("Enter")
    expect(agent.locator("#reply-error")).to_contain_text("already been resolved")
    expect(reply_box).to_have_value(text)
    expect(agent.locator('#transcript .ac-entry[data-state="pending"]')).to_have_count(0)
    expect(agent.locator("#send")).to_be_enabled()

    agent.unroute(POLL)                                          # the console catches up: resolved, read-only
    expect(agent.locator("#conv-status")).to_have_attribute("data-state", "resolved")
    expect(agent.locator("#send")).to_be_disabled()
    expect(reply_box).to_have_value(text)
    expect(customer.locator('.ksos-message[data-role="agent"]')).to_have_count(0)


def test_a_send_lost_on_the_network_keeps_the_text_and_is_retried_with_the_same_client_id(agent_gateway, new_page):
    url = agent_gateway.url
    name = new_agent(agent_gateway, "siti")
    customer = handed_over_customer(new_page, url)
    conversation = conversation_id(customer)
    agent = open_console(new_page, url, name)
    open_conversation(agent, conversation)
    expect(agent.locator("#send")).to_be_enabled()

    sent = []
    agent.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/reply") else None)
    agent.route(re.compile(r"/reply$"), lambda route: route.abort("internetdisconnected"))
    reply_box = agent.get_by_label("Reply to the customer")
    text = f"Your renewal is on the 22nd ({letters()})."
    reply_box.fill(text)
    reply_box.press("Enter")
    banner = agent.locator("#banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("not sent")
    expect(reply_box).to_have_value(text)
    expect(agent.locator('#transcript .ac-entry[data-state="pending"]')).to_have_count(0)

    # the network is back; Retry (double-clicked) sends it once, with the same client id
    agent.unroute(re.compile(r"/reply$"))
    banner.get_by_role("button", name="Retry").click()
    expect(transcript_entry(agent, "agent", text)).to_have_count(1)
    expect(banner).to_be_hidden()
    expect(reply_box).to_have_value("")
    agent.get_by_label("Reply to the customer").fill("Second message")
    agent.locator("#send").dblclick()
    expect(transcript_entry(agent, "agent", "Second message")).to_have_count(1)
    expect(transcript_entry(agent, "agent", "Second message")).to_have_attribute("data-seq", re.compile(r"^\d+$"))
    texts = [body["text"] for body in sent]
    assert texts == [text, text, "Second message"], texts
    assert sent[0]["client_id"] == sent[1]["client_id"] != sent[2]["client_id"]
    expect(customer.locator('.ksos-message[data-role="agent"]').filter(has_text=text)).to_have_count(1)
    expect(customer.locator('.ksos-message[data-role="agent"]').filter(has_text="Second message")).to_have_count(1)
    agent.get_by_role("button", name="Resolve").click()
    expect(agent.locator("#conv-status")).to_have_attribute("data-state", "resolved")


def test_a_verified_customer_shows_the_account_summary_and_account_aware_suggestions(agent_gateway, new_page):
    import time

    from bot.accounts.verification import sign_identity_token
    from conftest import IDENTITY_TOKEN_SECRET

    url = agent_gateway.url
    name = new_agent(agent_gateway, "verified")
    customer = open_customer(new_page, url)
    issued = int(time.time())
    token = sign_identity_token("1000000003", issued, issued + 600, IDENTITY_TOKEN_SECRET)
    customer.evaluate("token => KSOSWidget.setIdentityToken(token)", token)
    seq = customer_says(customer, "is my account suspended?")
    bot_reply_after(customer, seq, re.compile("suspended since"))
    seq = customer_says(customer, "I want to talk to a human agent")
    bot_reply_after(customer, seq, HANDOFF_EN)
    conversation = conversation_id(customer)

    agent = open_console(new_page, url, name)
    open_conversation(agent, conversation)
    account = agent.locator("#account")
    expect(account).to_be_visible()
    for text in ("******0003", "Restoran Selera Kampung", "suspended", "RM250.00", "Day 22"):
        expect(account).to_contain_text(text)
    expect(agent.locator("#account-subscriptions-body tr").first).to_be_visible()
    assert "1000000003" not in agent.locator("body").inner_text()
    # the suggestions answer the account question ("I want a human" asks nothing), from the verified account
    aware = agent.locator("#suggestions .ac-card[data-account-aware]")
    expect(aware.first).to_be_visible()
    expect(aware.first.locator(".ac-badge")).to_have_text("account")
    expect(aware.first.locator(".ac-card-answer")).to_contain_text("******0003")
    agent.get_by_role("button", name="Resolve").click()
    expect(agent.locator("#conv-status")).to_have_attribute("data-state", "resolved")


def test_keyboard_only_agent(agent_gateway, new_page):
    """Tab order and keys: log in, open a conversation from the queue, use a suggestion, send with Enter."""
    url = agent_gateway.url
    name = new_agent(agent_gateway, "keyboard")
    customer = handed_over_customer(new_page, url)
    conversation = conversation_id(customer)
    agent = new_page()
    agent.goto(url + "/agent")
    expect(agent.get_by_label("Name")).to_be_focused()
    agent.keyboard.type(name)
    agent.keyboard.press("Tab")
    agent.keyboard.type(PASSWORD)
    agent.keyboard.press("Enter")
    expect(agent.locator("#console")).to_be_visible()
    button = queue_item(agent, conversation).get_by_role("button")
    expect(button).to_be_visible()
    for _ in range(60):
        agent.keyboard.press("Tab")
        if button.evaluate("b => b === document.activeElement"):
            break
    else:
        pytest.fail("the queue item is not reachable with Tab")
    agent.keyboard.press("Enter")
    expect(agent.locator("#conv-status")).to_have_attribute("data-state", "mine")
    use = agent.locator("#suggestions .ac-use").first
    expect(use).to_be_visible()
    for _ in range(80):
        agent.keyboard.press("Tab")
        if use.evaluate("b => b === document.activeElement"):
            break
    else:
        pytest.fail("the suggestions are not reachable with Tab")
    agent.keyboard.press("Enter")
    reply_box = agent.get_by_label("Reply to the customer")
    expect(reply_box).to_be_focused()
    answer = reply_box.input_value()
    assert answer
    agent.keyboard.press("Control+End")
    agent.keyboard.press("Shift+Enter")                    # a new line, not a send
    agent.keyboard.type("Regards, the Unifi team")
    assert reply_box.input_value() == answer + "\nRegards, the Unifi team"
    agent.keyboard.press("Enter")
    expect(transcript_entry(agent, "agent", "Regards, the Unifi team")).to_have_count(1)
    expect(customer.locator('.ksos-message[data-role="agent"]').filter(has_text="Regards, the Unifi team")
           ).to_have_count(1)
    # clearing the box drops the suggestion reference
    reply_box.fill("x")
    reply_box.fill("")
    expect(agent.locator("#reply-suggestion")).to_be_hidden()
    agent.get_by_role("button", name="Resolve").click()
    expect(agent.locator("#conv-status")).to_have_attribute("data-state", "resolved")


def test_too_many_failed_logins_are_throttled(agent_gateway, new_page):
    url = agent_gateway.url
    name = new_agent(agent_gateway, "throttled")
    page = new_page()
    for _ in range(30):
        log_in(page, url, name, "wrong password")
        message = page.locator("#login-error")
        expect(message).to_have_text(re.compile("Wrong name or password|Too many attempts, try again later"))
        if message.text_content() == "Too many attempts, try again later":
            break
    else:
        pytest.fail("30 wrong passwords and still no 429")
    log_in(page, url, name)                                # blocked even with the right password
    expect(page.locator("#login-error")).to_have_text("Too many attempts, try again later")
    expect(page.locator("#console")).to_be_hidden()


# --- the review queue -----------------------------------------------------------------------------------------

def review_group(agent: Page, text: str):
    return agent.locator(".ac-review-group").filter(has=agent.locator(".ac-review-text", has_text=text))


def test_review_queue_labels_what_was_not_understood_and_what_got_a_thumbs_down(agent_gateway, new_page, tmp_path):
    """Customers in the widget: two similar messages nobody could understand and an answer rated 👎. The agent
    finds them in the review queue (grouped, with why they are there and what they were taken for), labels them,
    and `python -m bot review export` writes them to a training file."""
    tag = letters(8)
    first, second = f"blorp {tag} wibble frazzle", f"blorp {tag} wibble frazzle again"
    for text in (first, second):
        customer = open_customer(new_page, agent_gateway.url)
        seq = customer_says(customer, text)
        customer.wait_for_function(
            """seq => Array.from(document.querySelectorAll('.ksos-message[data-role="bot"][data-seq]'))
                 .some(m => Number(m.dataset.seq) > seq)""", arg=seq, timeout=REPLY_TIMEOUT_MS)
    rating = open_customer(new_page, agent_gateway.url)
    question = f"what payment methods can i use {tag}"
    bot_reply_after(rating, customer_says(rating, question), re.compile("JomPAY|Boost|FPX", re.I))
    rating.locator('.ksos-feedback [data-rating="down"]').click()
    expect(rating.locator('.ksos-feedback[data-rated="down"]')).to_have_count(1)

    agent = open_console(new_page, agent_gateway.url, new_agent(agent_gateway, "rina"))
    agent.get_by_role("button", name=re.compile("^Review queue")).click()
    expect(agent.locator("#review")).to_be_visible()
    expect(agent.locator("#main")).to_be_hidden()
    expect(agent.locator("#review-title")).to_be_focused()
    group = review_group(agent, first)
    expect(group).to_have_count(1)
    expect(group.locator(".ac-review-text")).to_have_text([second, first])           # one group, the newest first
    expect(group.locator(".ac-review-meta").first).to_contain_text("Web chat")
    expect(group.locator(".ac-review-meta").first).to_contain_text(re.compile("Not understood|Low confidence"))
    rated = review_group(agent, question)
    expect(rated.locator(".ac-review-meta")).to_contain_text("Rated")
    expect(rated.locator(".ac-review-meta")).to_contain_text("answered as faq/payment_methods")

    # A label is required; then the group goes and the agent is told what was saved.
    group.get_by_role("button", name="Save label").click()
    expect(agent.locator("#review-status")).to_have_text("Choose the right answer first.")
    group.get_by_label("Right answer").select_option("not_covered")
    group.get_by_role("button", name="Save label").click()
    expect(agent.locator("#review-status")).to_have_text("Labelled 2 messages: Not covered by our documents.")
    expect(review_group(agent, first)).to_have_count(0)
    # The 👎 question was answered right after all: labelled with its answer, it is exported for training.
    rated.get_by_label("Right answer").select_option("faq/payment_methods")
    rated.get_by_role("button", name="Save label").click()
    expect(agent.locator("#review-status")).to_contain_text("Labelled 1 message:")
    expect(review_group(agent, question)).to_have_count(0)
    agent.reload()
    agent.get_by_role("button", name=re.compile("^Review queue")).click()
    expect(agent.locator("#review-title")).to_be_focused()
    expect(review_group(agent, question)).to_have_count(0)                           # kept

    out = tmp_path / "reviewed.yml"
    done = subprocess.run([sys.executable, "-m", "bot", "review", "export", "--out", str(out)], cwd=REPO_ROOT,
                          env=agent_gateway.process.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    exported = yaml.safe_load(out.read_text())["nlu"]
    by_label = {item["intent"]: item["examples"] for item in exported}
    assert f"- {question}" in by_label["faq/payment_methods"]
    assert tag not in "".join(examples for label, examples in by_label.items() if label != "faq/payment_methods")
    again = subprocess.run([sys.executable, "-m", "bot", "review", "export", "--out", str(tmp_path / "again.yml")],
                           cwd=REPO_ROOT, env=agent_gateway.process.env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "Nothing new to export" in again.stdout and not (tmp_path / "again.yml").exists()


def test_review_api_refuses_what_the_console_would_never_send(agent_gateway):
    console = agent_gateway.console(new_agent(agent_gateway, "zul"), PASSWORD)
    status, body = console.call("GET", "/api/agent/review")
    assert status == 200 and {"groups", "waiting", "labels"} <= set(body)
    assert {"key": "not_covered", "title": "Not covered by our documents"} in body["labels"]
    for bad in ({"items": [], "label": "faq/plans"}, {"items": ["1"], "label": "faq/plans"},
                {"items": [True], "label": "faq/plans"}, {"items": [1.5], "label": "faq/plans"},
                {"items": [2 ** 40], "label": "faq/plans"}, {"items": list(range(1, 300)), "label": "faq/plans"},
                {"items": 1, "label": "faq/plans"}, {"items": [1], "label": "faq/none"}, {"items": [1], "label": 3},
                {"items": [1]}, {"items": [1], "label": "<script>"}):
        status, body = console.call("POST", "/api/agent/review/label", bad)
        assert status == 400 and body["error"] in ("bad_request", "bad_label"), bad
    assert console.call("POST", "/api/agent/review/label", {"items": [1], "label": "faq/plans"},
                        csrf=False)[0] == 403
    assert console.call("POST", "/api/agent/review/label", {"items": [10 ** 9], "label": "faq/plans"}) == \
        (200, {"labelled": 0})                                  # no such message: nothing labelled
