"""The website chat widget in a real browser (headless Chromium from Debian's `chromium` package, driven by
Playwright) against a gateway on the real trained assistant (`gateway_url` in conftest.py).

Real answers: the assertions look at robust content ("RM", the language), not at full texts."""
import json
import re
import time
import uuid

import pytest

from conftest import skip_without_chromium

TIMEOUT_MS = 30_000

skip_without_chromium("widget")
pytestmark = pytest.mark.model

from playwright.sync_api import Page, expect  # noqa: E402

expect.set_options(timeout=TIMEOUT_MS)        # real NLU turns: generous waits for every expect()

BOT = '.ksos-message[data-role="bot"]'
CUSTOMER = '.ksos-message[data-role="customer"]'
ENGLISH_ONLY = re.compile(r"\b(the|per month|licences|please|you)\b", re.I)


def open_widget(browser, gateway_url: str, **context_options) -> Page:
    """The demo page in a fresh browser context (empty localStorage: a new customer), panel open and connected."""
    context = browser.new_context(locale="en-US", **context_options)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(gateway_url + "/")
    expect(page.locator(".ksos-panel")).to_be_visible()            # the demo page has data-open="true"
    wait_connected(page)
    return page


def wait_connected(page: Page) -> None:
    """Connected: hello answered (session and history received), no status line."""
    expect(page.locator(".ksos-root[data-connected]")).to_have_count(1)
    expect(page.locator(".ksos-status")).to_be_hidden()
    assert page.evaluate("() => localStorage.getItem('ksos-widget-session')")


@pytest.fixture
def widget(browser, gateway_url):
    page = open_widget(browser, gateway_url)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def send(page: Page, text: str) -> None:
    page.locator(".ksos-input").fill(text)
    page.locator(".ksos-input").press("Enter")


def stored_customer_message(page: Page, text: str):
    """The customer's message once the gateway stored it (it then has a seq, no longer pending)."""
    message = page.locator(f"{CUSTOMER}[data-seq]").filter(has=page.locator(".ksos-text", has_text=text)).last
    expect(message).to_be_visible()
    return message


def bot_reply_after(page: Page, customer_text: str, pattern: re.Pattern):
    """Wait for a bot message after the customer's `customer_text` that matches `pattern`, then for the end of the
    turn (the typing indicator off); return the text of all bot messages after the customer's."""
    stored_customer_message(page, customer_text)
    seq = int(page.locator(f"{CUSTOMER}[data-seq]").filter(has_text=customer_text).last.get_attribute("data-seq"))
    page.wait_for_function(
        """([seq, source]) => Array.from(document.querySelectorAll('.ksos-message[data-role="bot"][data-seq]'))
             .some(m => Number(m.dataset.seq) > seq && new RegExp(source, 'i').test(m.textContent))""",
        arg=[seq, pattern.pattern], timeout=TIMEOUT_MS)
    expect(page.locator(".ksos-typing")).to_be_hidden()
    replies = [m for m in page.locator(f"{BOT}[data-seq]").all() if int(m.get_attribute("data-seq")) > seq]
    return "\n".join(m.locator(".ksos-text").text_content() for m in replies)


def test_english_question_gets_a_price_in_ringgit(widget):
    send(widget, "how much is the Starter plan?")
    reply = bot_reply_after(widget, "how much is the Starter plan?", re.compile("RM"))
    assert "RM" in reply
    # The answer names its document, not its question number (that is for the agents).
    expect(widget.locator(f"{BOT}[data-seq] .ksos-source").last).to_have_text("Source: KSOS FAQ (Unifi, Aug 2023)")
    # shown once: the pending copy was replaced by the stored one
    expect(widget.locator(CUSTOMER).filter(has_text="how much is the Starter plan?")).to_have_count(1)
    expect(widget.locator(".ksos-message[data-state]")).to_have_count(0)
    # roles for screen readers: visually hidden prefixes, a polite log inside a labelled dialog
    expect(widget.locator(f"{CUSTOMER} .ksos-sr").first).to_have_text("You:")
    expect(widget.locator(f"{BOT} .ksos-sr").first).to_have_text("Assistant:")
    expect(widget.locator('.ksos-panel[role="dialog"]')).to_have_attribute("aria-label", "Chat with us")
    expect(widget.locator('.ksos-log[role="log"]')).to_have_attribute("aria-live", "polite")


def test_malay_question_gets_a_malay_answer_in_one_message_and_the_widget_follows(widget):
    expect(widget.locator(".ksos-input")).to_have_attribute("placeholder", "Type your message…")
    send(widget, "berapa harga pelan Starter?")
    reply = bot_reply_after(widget, "berapa harga pelan Starter?", re.compile(r"RM\s?\d+ sebulan"))
    assert "pelan" in reply.lower()
    assert not ENGLISH_ONLY.search(reply), reply
    # One answer, one message: the whole answer is one bubble after the customer's message.
    seq = int(widget.locator(f"{CUSTOMER}[data-seq]").last.get_attribute("data-seq"))
    assert len([m for m in widget.locator(f"{BOT}[data-seq]").all() if int(m.get_attribute("data-seq")) > seq]) == 1
    # The conversation is in Malay now, and so are the widget's own texts, without a click on BM.
    expect(widget.locator(".ksos-input")).to_have_attribute("placeholder", "Taip mesej anda…")
    expect(widget.locator(".ksos-send")).to_have_text("Hantar")
    expect(widget.locator(".ksos-lang-ms")).to_have_attribute("aria-pressed", "true")
    expect(widget.locator(f"{BOT}[data-seq] .ksos-source").last).to_have_text(
        "Sumber: Soalan Lazim KSOS (Unifi, Ogos 2023)")
    expect(widget.locator(".ksos-feedback")).to_contain_text("Adakah ini membantu?")
    # A reload's history keeps the line, in the conversation's language.
    widget.reload()
    expect(widget.locator(f"{BOT}[data-seq] .ksos-source").last).to_have_text(
        "Sumber: Soalan Lazim KSOS (Unifi, Ogos 2023)")


@pytest.mark.parametrize("locale, words", [("en-US", "Hello! I'm the Unifi assistant"),
                                           ("ms-MY", "Helo! Saya pembantu Unifi")])
def test_a_first_open_is_greeted_in_the_pages_language_and_the_greeting_is_not_stored(browser, gateway_url,
                                                                                      locale, words):
    context = browser.new_context(locale=locale)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto(gateway_url + "/")
        wait_connected(page)
        greeting = page.locator(f"{BOT}[data-greeting]")
        expect(greeting).to_have_count(1)
        expect(greeting.locator(".ksos-text")).to_contain_text(words)
        expect(page.locator(f"{BOT}[data-seq]")).to_have_count(0)               # not in the transcript
        page.reload()
        wait_connected(page)
        expect(page.locator(f"{BOT}[data-greeting]")).to_have_count(1)          # a reload greets once, again
        send(page, "hi")
        bot_reply_after(page, "hi", re.compile("."))
        page.reload()
        wait_connected(page)
        expect(page.locator(f"{CUSTOMER}[data-seq]")).to_have_count(1)
        expect(page.locator(f"{BOT}[data-greeting]")).to_have_count(0)          # a conversation: its history only
    finally:
        context.close()


def test_an_answer_asks_whether_it_helped_and_a_thumbs_down_offers_a_person(widget):
    send(widget, "can I pay with boost?")
    bot_reply_after(widget, "can I pay with boost?", re.compile("Boost"))
    asking = widget.locator(".ksos-feedback")
    expect(asking).to_have_count(1)                          # under the newest answer only
    expect(asking).to_contain_text("Was this helpful?")
    expect(asking.locator("button")).to_have_count(2)
    expect(asking.locator('[data-rating="down"]')).to_have_accessible_name("Not helpful")
    asking.locator('[data-rating="down"]').click()
    expect(widget.locator('.ksos-feedback[data-rated="down"]')).to_contain_text("Thank you for your feedback.")
    sorry = widget.locator(f"{BOT}[data-seq]").filter(has_text="Sorry that didn't help")
    expect(sorry).to_have_count(1)
    expect(sorry.locator(".ksos-quick-reply")).to_have_text(["Talk to a person"])
    # A reload shows the rating kept, and the choice still offered.
    widget.reload()
    expect(widget.locator('.ksos-feedback[data-rated="down"]')).to_have_count(1)
    expect(widget.locator(".ksos-feedback:not([data-rated])")).to_have_count(0)
    widget.locator(".ksos-quick-reply", has_text="Talk to a person").click()
    expect(widget.locator(f"{BOT}[data-seq]").filter(has_text="Unifi agent").last).to_be_visible()


def test_quick_reply_is_sent_as_the_customers_message(widget):
    # an account question from a customer who is not verified: the assistant offers verification with buttons
    send(widget, "is my account suspended?")
    quick_replies = widget.locator(".ksos-quick-reply")
    expect(quick_replies.first).to_be_visible()
    expect(widget.locator(".ksos-quick-replies")).to_have_count(1)        # under the newest bot message only
    assert widget.locator(f"{BOT}[data-seq]").last.locator(".ksos-quick-reply").count() == quick_replies.count()
    title = quick_replies.first.text_content()
    quick_replies.first.click()
    expect(widget.locator(".ksos-quick-reply")).to_have_count(0)           # answered: the buttons are gone
    stored_customer_message(widget, title)
    expect(widget.locator(CUSTOMER).last.locator(".ksos-text")).to_have_text(title)
    bot_reply_after(widget, title, re.compile("."))


def test_reload_shows_the_same_history_without_duplicates(widget):
    for text in ("hi", "how much is the Starter plan?"):
        send(widget, text)
        bot_reply_after(widget, text, re.compile("."))
    before = [(m.get_attribute("data-seq"), m.get_attribute("data-role"), m.locator(".ksos-text").text_content())
              for m in widget.locator(".ksos-message[data-seq]").all()]
    assert len(before) >= 4
    widget.reload()
    wait_connected(widget)
    expect(widget.locator(".ksos-message[data-seq]")).to_have_count(len(before))
    after = [(m.get_attribute("data-seq"), m.get_attribute("data-role"), m.locator(".ksos-text").text_content())
             for m in widget.locator(".ksos-message[data-seq]").all()]
    assert after == before
    assert len({seq for seq, _, _ in after}) == len(after)


def test_message_text_is_never_html(widget):
    attack = '<img src=x onerror="window.__xss=1">'
    send(widget, attack)
    message = stored_customer_message(widget, attack)
    assert message.locator(".ksos-text").text_content() == attack
    bot_reply_after(widget, attack, re.compile("."))
    assert widget.locator(".ksos-log img").count() == 0
    assert widget.evaluate("() => typeof window.__xss") == "undefined"


def test_links_in_answers_are_safe_anchors(widget):
    # the customer's own text is linkified the same way as the assistant's
    send(widget, "email help@unifi.com.my or see www.unifi.com.my/support. javascript:alert(1)")
    message = stored_customer_message(widget, "help@unifi.com.my")
    links = message.locator("a")
    expect(links).to_have_count(2)
    assert links.nth(0).get_attribute("href") == "mailto:help@unifi.com.my"
    assert links.nth(1).get_attribute("href") == "https://www.unifi.com.my/support"
    assert links.nth(1).get_attribute("rel") == "noopener noreferrer"
    assert links.nth(1).get_attribute("target") == "_blank"
    # What the gateway keeps has the email redacted: after a reload the history shows the placeholder.
    widget.reload()
    wait_connected(widget)
    expect(widget.locator(CUSTOMER).filter(has_text="[email] or see www.unifi.com.my/support")).to_have_count(1)


def test_switching_to_malay_changes_the_widget_and_the_assistant(widget):
    expect(widget.locator(".ksos-lang-en")).to_have_attribute("aria-pressed", "true")
    widget.locator(".ksos-lang-ms").click()
    expect(widget.locator(".ksos-lang-ms")).to_have_attribute("aria-pressed", "true")
    expect(widget.locator(".ksos-lang-en")).to_have_attribute("aria-pressed", "false")
    expect(widget.locator(".ksos-input")).to_have_attribute("placeholder", "Taip mesej anda…")
    expect(widget.locator(".ksos-send")).to_have_text("Hantar")
    reply = bot_reply_after(widget, "Bahasa Melayu", re.compile(r"\b(saya|anda|Bahasa Melayu|sila)\b"))
    assert not ENGLISH_ONLY.search(reply), reply
    assert widget.evaluate("() => localStorage.getItem('ksos-widget-language')") == "ms"
    expect(widget.locator(f"{BOT} .ksos-sr").first).to_have_text("Pembantu:")
    expect(widget.locator(".ksos-launcher")).to_have_attribute("aria-label", "Tutup sembang")
    # the next question is answered in Malay too
    send(widget, "berapa harga pelan Starter?")
    assert "RM" in bot_reply_after(widget, "berapa harga pelan Starter?", re.compile(r"RM\s?\d+ sebulan"))


def test_phone_viewport_panel_fills_the_screen(browser, gateway_url):
    page = open_widget(browser, gateway_url, viewport={"width": 375, "height": 667}, is_mobile=True,
                       has_touch=True)
    try:
        box = page.locator(".ksos-panel").bounding_box()
        assert box["x"] == 0 and box["width"] == 375 and box["y"] == 0 and box["height"] == 667
        field = page.locator(".ksos-input")
        expect(field).to_be_in_viewport()
        assert field.evaluate("e => parseFloat(getComputedStyle(e).fontSize)") >= 16
        field.tap()
        send(page, "how much is the Starter plan?")
        assert "RM" in bot_reply_after(page, "how much is the Starter plan?", re.compile("RM"))
    finally:
        page.context.close()


def test_keyboard_only(widget):
    widget.evaluate("() => document.activeElement && document.activeElement.blur()")
    for _ in range(40):                                   # Tab from the top of the page to the message field
        widget.keyboard.press("Tab")
        if widget.evaluate("() => document.activeElement.classList.contains('ksos-input')"):
            break
    else:
        pytest.fail("the message field is not reachable with Tab")
    text = f"hello {uuid.uuid4().hex[:6]}"
    widget.keyboard.type(text)
    widget.keyboard.press("Shift+Enter")                  # a new line, not a send
    widget.keyboard.type("again")
    assert widget.locator(".ksos-input").input_value() == text + "\nagain"
    widget.keyboard.press("Enter")
    message = stored_customer_message(widget, text)
    assert message.locator(".ksos-text").text_content() == text + "\nagain"
    expect(widget.locator(".ksos-input")).to_have_value("")
    widget.keyboard.press("Escape")
    expect(widget.locator(".ksos-panel")).to_be_hidden()
    launcher = widget.locator(".ksos-launcher")
    expect(launcher).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    widget.keyboard.press("Enter")                        # and open it again from the launcher
    expect(widget.locator(".ksos-panel")).to_be_visible()
    expect(widget.locator(".ksos-input")).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "true")


class FlakyNetwork:
    """Sits between the page and the gateway (Playwright's WebSocket routing) to cut the connection at will."""

    def __init__(self, page: Page):
        self.up = True
        self.sockets = []
        self.sent = []                         # the message frames the page sent, in order
        self.identities = []                   # the tokens of the identity frames the page sent, in order
        self.rewrite = None                    # optional: change a message frame on its way to the gateway
        self.cut_on_next_message = None        # "drop": lose the frame; "deliver": pass it on; then cut
        self.refused = 0                       # connections refused while down
        page.route_web_socket(re.compile(r"/widget/ws$"), self.route)

    def route(self, socket):
        if not self.up:
            self.refused += 1
            socket.close()
            return
        server = socket.connect_to_server()
        self.sockets.append(socket)

        def to_server(message):
            frame = json.loads(message)
            if frame.get("type") == "identity":
                self.identities.append(frame.get("token"))
            if frame.get("type") == "message":
                self.sent.append(frame)
                if self.rewrite:
                    message = json.dumps(self.rewrite(frame))
                cut, self.cut_on_next_message = self.cut_on_next_message, None
                if cut:
                    if cut == "deliver":
                        server.send(message)
                    self.down()
                    return
            server.send(message)

        socket.on_message(to_server)
        server.on_message(lambda message: socket.send(message))

    @property
    def sent_ids(self):
        return [frame["id"] for frame in self.sent]

    def down(self):
        self.up = False
        for socket in self.sockets:
            socket.close()
        self.sockets = []


def outbox(page: Page):
    return page.evaluate("() => JSON.parse(localStorage.getItem('ksos-widget-outbox') || '[]')")


@pytest.fixture
def flaky(browser, gateway_url):
    page = browser.new_context(locale="en-US").new_page()
    page.context.set_default_timeout(TIMEOUT_MS)
    network = FlakyNetwork(page)
    page.goto(gateway_url + "/")
    wait_connected(page)
    yield page, network
    page.context.close()


def test_messages_typed_offline_survive_a_reload_and_are_sent_once(flaky):
    page, network = flaky
    network.down()
    expect(page.locator(".ksos-status")).to_have_text("Reconnecting…")
    send(page, "how much is the Starter plan?")
    expect(page.locator('.ksos-message[data-state="pending"]')).to_have_count(1)
    [queued] = outbox(page)
    page.reload()                                         # still offline: the pending message comes back
    expect(page.locator('.ksos-message[data-state="pending"] .ksos-text')).to_have_text(
        "how much is the Starter plan?")
    network.up = True
    assert "RM" in bot_reply_after(page, "how much is the Starter plan?", re.compile("RM"))
    expect(page.locator(CUSTOMER)).to_have_count(1)
    assert network.sent_ids == [queued["id"]]
    assert outbox(page) == []
    expect(page.locator(".ksos-status")).to_be_hidden()


@pytest.mark.parametrize("lost", ["drop", "deliver"])
def test_a_message_cut_off_in_flight_is_resent_with_the_same_id_and_shown_once(flaky, lost):
    """drop: the frame never reached the gateway; deliver: it did, but the connection died before the ack."""
    page, network = flaky
    network.cut_on_next_message = lost
    send(page, "berapa harga pelan Starter?")
    expect(page.locator(".ksos-status")).to_be_visible()
    for _ in range(100):                            # until the widget has tried again while the network is down
        if network.refused:                         # (Playwright runs the route handler while the page waits)
            break
        page.wait_for_timeout(50)
    assert network.refused >= 1
    network.up = True
    reply = bot_reply_after(page, "berapa harga pelan Starter?", re.compile(r"RM\s?\d+ sebulan"))
    assert "RM" in reply
    expect(page.locator(CUSTOMER)).to_have_count(1)
    expect(page.locator(".ksos-message[data-state]")).to_have_count(0)
    assert outbox(page) == []
    first = network.sent_ids[0]
    assert network.sent_ids == ([first, first] if lost == "drop" else [first])
    assert page.locator(CUSTOMER).get_attribute("data-client-id") == first


def test_an_error_frame_marks_the_message_failed_and_shows_the_notice(flaky):
    page, network = flaky
    network.rewrite = lambda frame: {**frame, "text": "   "}        # the gateway receives an empty message
    send(page, "hello")
    expect(page.locator('.ksos-message[data-state="failed"] .ksos-text')).to_have_text("hello")
    expect(page.locator('.ksos-message[data-role="notice"]')).to_contain_text("empty")
    assert outbox(page) == []


def test_the_identity_token_is_checked_by_the_gateway_never_sent_with_messages_nor_stored(browser, agent_gateway):
    """The host page signs its customer in: the token goes to the gateway once, in an identity frame (not with
    every message), verifies the conversation, and is kept nowhere in the page; withdrawing it logs out."""
    from bot.accounts.verification import sign_identity_token
    from conftest import IDENTITY_TOKEN_SECRET

    page = browser.new_context(locale="en-US").new_page()
    page.context.set_default_timeout(TIMEOUT_MS)
    network = FlakyNetwork(page)
    page.goto(agent_gateway.url + "/")
    wait_connected(page)
    issued = int(time.time())
    token = sign_identity_token("1000000003", issued, issued + 600, IDENTITY_TOKEN_SECRET)
    page.evaluate("token => KSOSWidget.setIdentityToken(token)", token)
    send(page, "is my account suspended?")
    reply = bot_reply_after(page, "is my account suspended?", re.compile("suspended since"))
    assert "RM" in reply and network.identities == [token]
    assert all("identity_token" not in frame.get("metadata", {}) for frame in network.sent)
    storage = page.evaluate("() => JSON.stringify(Object.assign({}, localStorage, sessionStorage))")
    assert token not in storage and token not in page.locator(".ksos-root").inner_text()
    before = page.evaluate("() => localStorage.getItem('ksos-widget-session')")
    page.evaluate("() => KSOSWidget.setIdentityToken(null)")          # the customer signed out of the site
    # The next person at this browser starts afresh: a new session, nothing of the signed-in conversation shown.
    expect(page.locator(CUSTOMER).filter(has_text="is my account suspended?")).to_have_count(0)
    page.wait_for_function("old => { const now = localStorage.getItem('ksos-widget-session'); "
                           "return now && now !== old; }", arg=before)
    wait_connected(page)
    send(page, "what is my balance?")
    reply = bot_reply_after(page, "what is my balance?", re.compile("Shall we do that now"))
    # The sign-out frame clears it, and every frame of the new session (one per reconnect) carries none.
    assert "RM250" not in reply and network.identities[:2] == [token, None]
    assert all(sent is None for sent in network.identities[1:])
    page.context.close()


def test_including_the_script_twice_adds_one_widget(widget, gateway_url):
    widget.add_script_tag(url=gateway_url + "/widget.js")          # resolves once the script has run
    expect(widget.locator(".ksos-root")).to_have_count(1)
    expect(widget.locator("style.ksos-style")).to_have_count(1)
    widget.evaluate("() => { KSOSWidget.close(); KSOSWidget.open(); }")
    expect(widget.locator(".ksos-panel")).to_be_visible()
    expect(widget.locator(".ksos-input")).to_be_focused()
