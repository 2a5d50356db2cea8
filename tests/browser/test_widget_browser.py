"""
The widget in a real browser (Debian's headless Chromium via Playwright) against the real server:
daphne running shopbot.asgi on the pytest test database, with the real embedding model, no LLM key
(answers are FAQ answers or the fallback) except in the one streaming test, which points a second
server at the fake Anthropic API.

Widget selectors are data-testid attributes inside the open shadow root of <shopbot-widget>;
Playwright's CSS locators pierce open shadow roots.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from faq.models import FAQEntry
from harness.daphne_process import DaphneProcess
from tests.browser.conftest import (
    ANSWER_TIMEOUT,
    DELIVERY,
    FIRST_ANSWER_TIMEOUT,
    SCREENSHOTS,
    SHARED_APP_NAME,
    XSS_QUESTION,
    ask,
    open_widget,
    record_frames,
    stored,
    w,
    wait_answers,
)
from tests.fake_anthropic import Scenario
from tests.support import bring_database_back, take_database_down
from widget.models import Conversation, CustomerWording, Message

REFUNDS = "What if I'm not happy with my order?"

# django_db: so pytest-django creates the test database at all. The data the server needs is
# committed by the module fixture (the server is another process); the tests only read.
pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_suggested_question_is_answered_from_the_faq_with_its_source(page, site):
    frames = record_frames(page)
    page.goto(site["server"].url)
    expect(w(page, "sb-launcher")).to_be_visible()
    assert frames["sockets"] == []  # nothing connects until the customer opens the chat

    w(page, "sb-launcher").click()
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=ANSWER_TIMEOUT)
    expect(w(page, "sb-title")).to_have_text("Poppy")
    expect(w(page, "sb-panel")).to_have_attribute("aria-label", "Poppy chat")
    expect(w(page, "sb-greeting")).to_contain_text("Hi, I'm Poppy from Petal & Stem!")
    expect(w(page, "sb-suggestion")).to_have_count(4)

    page.get_by_role("button", name="Do you deliver to Princeton?").click()
    expect(w(page, "sb-user")).to_have_text("Do you deliver to Princeton?")
    expect(w(page, "sb-suggestions")).to_be_hidden()
    wait_answers(page, 1)
    bot = w(page, "sb-bot")
    expect(bot).to_have_attribute("data-mode", "faq")
    expect(bot).to_contain_text("Our delivery area and fees: $9.95 in Hamilton")
    expect(w(page, "sb-sources")).to_have_text(f"From our FAQ: {DELIVERY}")
    expect(w(page, "sb-live")).to_contain_text("Poppy: Our delivery area and fees:")

    ask_id = w(page, "sb-user").get_attribute("data-ask-id")
    assert stored(ask_id) == [
        ("user", ""),
        ("bot", "faq"),
    ]
    server = site["server"].url
    assert frames["sockets"][0].url == (
        f"ws{server[4:]}/ws/chat/{site['shop'].public_key}/?page={quote(server + '/', safe='')}"
    )
    conversation = Conversation.objects.get(messages__ask_id=ask_id, messages__role="user")
    assert conversation.page_url == server + "/"


def test_reload_shows_the_transcript_again(page, site):
    open_widget(page, site["server"].url)
    ask(page, "What are your opening hours?")
    wait_answers(page, 1)
    answer = w(page, "sb-bot").inner_text()

    page.reload()
    w(page, "sb-launcher").click()
    wait_answers(page, 1)
    expect(w(page, "sb-user")).to_have_text("What are your opening hours?")
    expect(w(page, "sb-bot")).to_have_text(answer)
    expect(w(page, "sb-sources")).to_have_count(1)
    expect(w(page, "sb-suggestions")).to_be_hidden()

    ask(page, "Do you deliver on Sundays?")  # the resumed conversation carries on
    wait_answers(page, 2)
    expect(w(page, "sb-user")).to_have_count(2)


def test_thumbs_down_is_stored(page, site):
    frames = record_frames(page)
    open_widget(page, site["server"].url)
    ask(page, "How do I keep my flowers fresh?")
    wait_answers(page, 1)
    message_id = int(w(page, "sb-bot").get_attribute("data-message-id"))

    with frames["sockets"][0].expect_event(
        "framereceived", predicate=lambda payload: '"feedback_saved"' in payload
    ):
        w(page, "sb-fb-down").click()
    expect(w(page, "sb-fb-down")).to_have_attribute("aria-pressed", "true")
    expect(w(page, "sb-fb-up")).to_have_attribute("aria-pressed", "false")
    assert Message.objects.get(pk=message_id).feedback == "down"


def test_off_topic_question_shows_the_contact_route(page, site):
    open_widget(page, site["server"].url)
    ask(page, "Can you fix my car's brakes?")
    wait_answers(page, 1)
    expect(w(page, "sb-bot")).to_have_attribute("data-mode", "fallback")
    # Nothing to suggest: one honest sentence, not the shop's "not quite sure" fallback.
    expect(w(page, "sb-bot")).to_have_text("I can't help with that here, but our team can.")
    expect(w(page, "sb-did-you-mean")).to_have_count(0)
    expect(w(page, "sb-contact")).to_contain_text("Talk to a person")
    # The fallback already says the bot could not help: no thumbs asking it again.
    expect(w(page, "sb-fb-up")).to_have_count(0)
    expect(w(page, "sb-fb-down")).to_have_count(0)
    links = w(page, "sb-contact").locator("a")
    assert [a.get_attribute("href") for a in links.all()] == [
        "mailto:hello@petalandstem.example",
        "tel:6095550142",
        "https://petalandstem.example/contact",
    ]

    ask(page, "x" * 1001)  # over CHAT_MAX_MESSAGE_CHARS: refused on that message, chat goes on
    expect(w(page, "sb-error")).to_contain_text("Please keep your message under 1000 characters.")
    ask(page, "Do you deliver to Trenton?")
    wait_answers(page, 2)
    # "Talk to a person" under the off-topic answer asks a person that question, not the latest.
    w(page, "sb-contact").first.get_by_role("button", name="Talk to a person").click()
    expect(w(page, "sb-handoff-note")).to_have_value("Can you fix my car's brakes?")


def test_a_did_you_mean_click_is_answered_from_that_entry(page, site):
    frames = record_frames(page)
    open_widget(page, site["server"].url)
    ask(page, "I want my money back")  # below the demo shop's bar, plainly about refunds
    wait_answers(page, 1)
    expect(w(page, "sb-bot")).to_have_attribute("data-mode", "fallback")
    # With choices to offer, the shop's own fallback message sits above them.
    expect(w(page, "sb-bot")).to_contain_text("a real person at Petal & Stem would love to help")
    expect(w(page, "sb-contact")).to_be_visible()  # the way to a person stays beside the choices
    option = w(page, "sb-did-you-mean-option").filter(has_text=REFUNDS)
    expect(option).to_have_count(1)

    option.click()
    wait_answers(page, 2)
    expect(w(page, "sb-user").nth(1)).to_have_text(REFUNDS)
    second = w(page, "sb-bot").nth(1)
    expect(second).to_have_attribute("data-mode", "faq")
    expect(second).to_contain_text("If your order isn't right, please contact us within 24 hours")
    expect(w(page, "sb-sources")).to_have_text(f"From our FAQ: {REFUNDS}")

    entry = FAQEntry.objects.get(shop=site["shop"], question=REFUNDS)
    click = next(f for f in frames["sent"] if f.get("entry") is not None)
    assert (click["type"], click["text"], click["entry"]) == ("ask", REFUNDS, entry.pk)
    assert stored(click["id"]) == [("user", ""), ("bot", "faq")]
    wording = CustomerWording.objects.get(entry=entry)
    assert (wording.text, wording.count) == ("I want my money back", 1)


def test_queued_message_is_delivered_once_after_the_server_comes_back(page, site, start_server):
    # A server of its own: the one the other tests share is never killed.
    server: DaphneProcess = start_server()
    frames = record_frames(page)
    open_widget(page, server.url)
    ask(page, "Do you deliver to Princeton?")
    wait_answers(page, 1, timeout=FIRST_ANSWER_TIMEOUT)

    server.stop(kill=True)  # SIGKILL: the socket just drops, as with a crash or a lost network
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "offline")
    expect(w(page, "sb-status")).to_have_text("Offline — reconnecting…")
    ask(page, "Can I choose a delivery time?")
    expect(w(page, "sb-queued")).to_be_visible()
    ask_id = w(page, "sb-user").last.get_attribute("data-ask-id")

    server.start()  # same port: the widget's backoff finds it again
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=ANSWER_TIMEOUT)
    wait_answers(page, 2)
    expect(w(page, "sb-queued")).to_have_count(0)
    expect(page.locator(f'[data-testid=sb-user][data-ask-id="{ask_id}"]')).to_have_count(1)
    expect(page.locator(f'[data-testid=sb-bot][data-ask-id="{ask_id}"]')).to_have_count(1)
    expect(w(page, "sb-bot").last).to_contain_text("morning window")

    assert len(frames["sockets"]) >= 2
    assert [f for f in frames["sent"] if f.get("id") == ask_id and f["type"] == "ask"] == [
        {"type": "ask", "id": ask_id, "text": "Can I choose a delivery time?"}
    ]
    assert stored(ask_id) == [
        ("user", ""),
        ("bot", "faq"),
    ]


def test_hostile_host_css_cannot_break_the_widget(page, site):
    page.goto(site["listed"] + "/hostile.html")
    launcher = w(page, "sb-launcher")
    expect(launcher).to_be_visible()
    box = launcher.bounding_box()
    assert (box["width"], box["height"]) == (60, 60)
    assert box["x"] > 1100 and box["y"] > 650  # bottom right, on top of the host's fixed banner
    styles = page.evaluate(
        """() => { const s = getComputedStyle(document.querySelector('shopbot-widget'));
                   return [s.display, s.zIndex, s.transform, s.opacity, s.filter]; }"""
    )
    assert styles == ["block", "2147483647", "none", "1", "none"]

    launcher.click()  # Playwright clicks only what is on top at that point
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=ANSWER_TIMEOUT)
    font = page.evaluate(
        """() => getComputedStyle(document.querySelector('shopbot-widget').shadowRoot
                   .querySelector('[data-testid=sb-input]')).fontSize"""
    )
    assert font == "16px"
    expect(w(page, "sb-panel")).to_be_visible()
    ask(page, "Do you deliver to Princeton?")
    wait_answers(page, 1)
    expect(w(page, "sb-sources")).to_have_text(f"From our FAQ: {DELIVERY}")
    expect(w(page, "sb-fb-up")).to_be_visible()


def test_snippet_twice_data_attributes_and_the_one_global(page, site):
    page.goto(site["listed"] + "/twice.html")
    expect(w(page, "sb-panel")).to_be_visible()  # data-open="true"
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=ANSWER_TIMEOUT)
    assert page.evaluate("document.querySelectorAll('shopbot-widget').length") == 1
    assert w(page, "sb-launcher").bounding_box()["x"] < 100  # data-position="left"
    leaked = page.evaluate(
        """() => { const f = document.createElement('iframe'); document.body.appendChild(f);
                   const own = new Set(Object.getOwnPropertyNames(f.contentWindow)); f.remove();
                   return Object.getOwnPropertyNames(window).filter(k => !own.has(k)); }"""
    )
    assert leaked == ["ShopBot"]

    page.evaluate("ShopBot.close()")
    expect(w(page, "sb-panel")).to_be_hidden()
    page.evaluate("ShopBot.ask('What are your opening hours?')")  # opens and asks
    expect(w(page, "sb-panel")).to_be_visible()
    wait_answers(page, 1)
    expect(w(page, "sb-user")).to_have_text("What are your opening hours?")


def test_a_website_not_in_allowed_origins_gets_not_available(page, site):
    frames = record_frames(page)
    warnings: list[str] = []
    page.on("console", lambda message: warnings.append(message.text))
    page.goto(site["unlisted"] + "/plain.html")
    w(page, "sb-launcher").click()
    expect(w(page, "sb-unavailable")).to_have_text("This chat is not available right now.")
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "unavailable")
    expect(w(page, "sb-status")).to_have_text("This chat is not available")
    expect(w(page, "sb-input")).to_be_disabled()
    expect(w(page, "sb-suggestion")).to_have_count(0)
    assert any(f"({site['unlisted']}) is not allowed" in text for text in warnings), warnings
    assert len(frames["sockets"]) == 1 and frames["sent"] == []


def test_html_in_an_faq_answer_is_shown_as_text_and_runs_nothing(page, site):
    open_widget(page, site["server"].url)
    ask(page, XSS_QUESTION)
    wait_answers(page, 1)
    bot = w(page, "sb-bot")
    expect(bot).to_have_attribute("data-mode", "faq")
    expect(bot).to_contain_text('<img src=x onerror="window.__pwned=1;alert(1)">')
    expect(bot).to_contain_text("<script>window.__pwned=2</script>")
    expect(bot.locator("strong")).to_have_text(
        "Photo cards"
    )  # the safe markdown subset still works
    found = page.evaluate(
        """() => document.querySelector('shopbot-widget').shadowRoot
                   .querySelectorAll('img, script, iframe, [onerror]').length"""
    )
    assert found == 0
    assert page.evaluate("window.__pwned") is None
    # No dialog either: the page fixture fails the test on any.


def test_keyboard_only(page, site):
    page.goto(site["server"].url)
    expect(w(page, "sb-launcher")).to_be_visible()
    focused = 'document.querySelector("shopbot-widget").shadowRoot.activeElement?.dataset.testid'
    for _ in range(30):  # the storefront's own links come first
        page.keyboard.press("Tab")
        if page.evaluate(focused) == "sb-launcher":
            break
    assert page.evaluate(focused) == "sb-launcher"

    page.keyboard.press("Enter")
    expect(w(page, "sb-panel")).to_be_visible()
    assert page.evaluate(focused) == "sb-input"
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=ANSWER_TIMEOUT)
    page.keyboard.type("Do you do weddings?")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("In June?")
    page.keyboard.press("Enter")
    expect(w(page, "sb-user")).to_have_text("Do you do weddings?\nIn June?")
    wait_answers(page, 1)
    in_panel = """() => { const r = document.querySelector('shopbot-widget').shadowRoot;
        const panel = r.querySelector('[data-testid=sb-panel]');
        return !!r.activeElement && panel.contains(r.activeElement); }"""
    for _ in range(12):  # Tab cycles inside the open panel, never back to the page
        page.keyboard.press("Tab")
        assert page.evaluate(in_panel)

    page.keyboard.press("Escape")
    expect(w(page, "sb-panel")).to_be_hidden()
    assert page.evaluate(focused) == "sb-launcher"
    expect(w(page, "sb-launcher")).to_have_attribute("aria-expanded", "false")


def test_a_claude_answer_streams_in_as_it_arrives(page, site, claude, fake_llm):
    """The one test with an LLM: the second server, pointed at the fake Anthropic API, which
    sends the answer in chunks a second apart: the partial answer must be on screen before the
    last chunk. (A quarter of a second apart, a stall of half a second anywhere on 2 shared cores
    -- the browser, this process's fake API, the server -- showed the whole answer at once.)"""
    fake_llm.script(
        Scenario(
            text_chunks=["Yes, we deliver ", "to Princeton ", "for **$19.95**."],
            cite=[(0, "Delivery is $19.95 to Princeton")],
            delay=1.0,
        )
    )
    open_widget(page, claude.url)
    page.get_by_role("button", name="Do you deliver to Princeton?").click()
    streaming = page.locator("[data-testid=sb-bot][data-state=streaming]")
    expect(streaming).to_contain_text("Yes, we deliver", timeout=ANSWER_TIMEOUT)
    partial = streaming.inner_text()
    assert partial.startswith("Yes, we deliver") and "$19.95" not in partial
    assert w(page, "sb-live").text_content() == ""  # screen readers get the final answer only
    wait_answers(page, 1)
    bot = w(page, "sb-bot")
    expect(bot).to_have_text("Yes, we deliver to Princeton for $19.95.")
    expect(bot.locator("strong")).to_have_text("$19.95")
    expect(bot).to_have_attribute("data-mode", "llm")
    expect(w(page, "sb-sources")).to_have_text(f"From our FAQ: {DELIVERY}")
    assert len(fake_llm.requests) == 1
    ask_id = w(page, "sb-user").get_attribute("data-ask-id")
    assert stored(ask_id) == [("user", ""), ("bot", "llm")]


def test_an_answer_cut_mid_stream_is_asked_again_and_stored_once(page, site, claude, fake_llm):
    """The server dies while Claude's answer streams in: after reconnecting the widget re-sends
    the same ask id in place of the half answer, and the server answers that id exactly once."""
    # The module's server on the fake Claude (the shared one is never killed): killed, then
    # started again on its port, as the widget expects.
    server: DaphneProcess = claude
    cite = [(0, "Delivery is $19.95 to Princeton")]
    chunks = ["Well, ", "yes: ", "we ", "deliver ", "there."]
    fake_llm.script(Scenario(text_chunks=chunks, cite=cite, delay=0.5))
    fake_llm.script(Scenario(text_chunks=["Yes, we deliver to Princeton."], cite=cite))
    frames = record_frames(page)
    open_widget(page, server.url)
    ask(page, "Do you deliver to Princeton?")
    streaming = page.locator("[data-testid=sb-bot][data-state=streaming]")
    expect(streaming).to_contain_text("Well,", timeout=FIRST_ANSWER_TIMEOUT)

    server.stop(kill=True)  # mid-stream, as a crash would cut it
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "offline")
    expect(w(page, "sb-bot")).to_have_count(0)  # the half answer gives way to "queued"
    expect(w(page, "sb-queued")).to_be_visible()
    server.start()
    wait_answers(page, 1)
    expect(w(page, "sb-bot")).to_have_text("Yes, we deliver to Princeton.")
    expect(w(page, "sb-user")).to_have_count(1)

    ask_id = w(page, "sb-user").get_attribute("data-ask-id")
    assert [f["id"] for f in frames["sent"] if f["type"] == "ask"] == [ask_id, ask_id]
    assert stored(ask_id) == [("user", ""), ("bot", "llm")]


def test_an_answer_arriving_while_closed_marks_the_bubble(page, site):
    open_widget(page, site["server"].url)
    page.evaluate("ShopBot.ask('What are your opening hours?'); ShopBot.close()")
    launcher = w(page, "sb-launcher")
    expect(launcher).to_have_attribute(
        "aria-label", "Open Poppy chat (new message)", timeout=ANSWER_TIMEOUT
    )
    launcher.click()
    expect(launcher).to_have_attribute("aria-label", "Close Poppy chat")
    wait_answers(page, 1)


def test_no_animation_under_reduced_motion(browser, site):
    context = browser.new_context(reduced_motion="reduce")
    page = context.new_page()
    open_widget(page, site["server"].url)
    animation = page.evaluate(
        """() => getComputedStyle(document.querySelector('shopbot-widget').shadowRoot
                   .querySelector('[data-testid=sb-panel]')).animationName"""
    )
    context.close()
    assert animation == "none"


def test_a_full_conversation_starts_a_new_one_and_try_again_is_answered(page, site, start_server):
    """At the conversation-length limit the widget says so, starts a new conversation by itself,
    and "Try again" asks the same question there."""
    server = start_server(CHAT_MAX_ASKS_PER_CONVERSATION="1")
    open_widget(page, server.url)
    ask(page, "How do I keep my flowers fresh?")
    wait_answers(page, 1)
    first_ask = w(page, "sb-user").get_attribute("data-ask-id")
    first = Message.objects.get(ask_id=first_ask, role="user").conversation

    ask(page, "Do you sell gift cards?")
    error = w(page, "sb-error")
    expect(error).to_contain_text("length limit", timeout=ANSWER_TIMEOUT)
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=ANSWER_TIMEOUT)
    error.get_by_role("button", name="Try again").click()
    wait_answers(page, 2)

    assert first.messages.count() == 2  # nothing more was stored in the full conversation
    second = Message.objects.get(
        role="user", text="Do you sell gift cards?", conversation__started__gt=first.started
    ).conversation
    assert list(second.messages.values_list("role", flat=True)) == ["user", "bot"]
    assert second.shop_id == first.shop_id


def test_with_the_database_down_the_widget_says_try_again_and_waits_long(page, site):
    """Issue 28, the customer's side of the "try again later" close: the real server with the
    real database taken down sends the `unavailable` sentence and closes with 4013; the widget
    shows the sentence, and waits long before reconnecting (a quick retry would come within
    half a second), then is back once the database is. The page's clock is Playwright's, so
    the wait is stepped through, not slept."""
    # Sockets counted in the page as they are made (a Python-side websocket event may arrive
    # after the assertion that needs it).
    page.add_init_script(
        "(() => { const Real = WebSocket; window.sockets = 0; window.WebSocket = class extends"
        " Real { constructor(...args) { super(...args); window.sockets += 1; } }; })()"
    )
    page.clock.install()
    take_database_down(SHARED_APP_NAME)  # site's server's sessions: this test's own lives on
    try:
        page.goto(site["listed"] + "/plain.html")  # a static page: it needs no database
        w(page, "sb-launcher").click()
        expect(w(page, "sb-error")).to_have_text(
            "Sorry, the chat is having trouble right now. Please try again in a moment.",
            timeout=ANSWER_TIMEOUT,
        )
        expect(w(page, "sb-root")).to_have_attribute("data-conn", "offline")
        page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 1)  # seconds, in Python
    finally:
        bring_database_back()
    page.clock.run_for(5_000)
    assert page.evaluate("window.sockets") == 1
    # Back once the database is: the long backoff's first step is 7.5-15 s, and the first try
    # may still meet a session cut while the database was down (then 15-30 s more).
    page.clock.resume()
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=90_000)
    assert page.evaluate("window.sockets") >= 2


def relative_luminance(colour: str) -> float:
    """WCAG relative luminance of a computed CSS colour, "rgb(r, g, b)"."""
    channels = [int(c) / 255 for c in re.findall(r"\d+", colour)[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted([relative_luminance(a), relative_luminance(b)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_faq_source_link_is_readable_in_dark_mode(browser, site):
    """The "From our FAQ" links had the browser's default blue: 1.8:1 on the dark panel."""
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    open_widget(page, site["server"].url)
    ask(page, "Do you deliver to Princeton?")
    wait_answers(page, 1)
    source_link = w(page, "sb-sources").locator("a")
    expect(source_link).to_have_text(DELIVERY)
    colour = source_link.evaluate("a => getComputedStyle(a).color")
    background = w(page, "sb-panel").evaluate("p => getComputedStyle(p).backgroundColor")
    context.close()
    assert relative_luminance(background) < 0.05  # the dark panel
    assert contrast(colour, background) >= 4.5, (colour, background)


def test_talk_to_a_person_looks_like_an_action_before_the_handoff_module_loads(page, site):
    modules: list[str] = []
    page.on("request", lambda r: modules.append(r.url) if "widget-handoff" in r.url else None)
    open_widget(page, site["server"].url)
    talk = page.locator("[data-testid=sb-panel] .header .talk")
    expect(talk).to_have_text("Talk to a person")
    status = w(page, "sb-status")
    assert talk.evaluate("b => getComputedStyle(b).textDecorationLine") == "underline"
    assert talk.evaluate("b => getComputedStyle(b).fontSize") == status.evaluate(
        "s => getComputedStyle(s).fontSize"
    )
    assert talk.evaluate("b => getComputedStyle(b).cursor") == "pointer"
    assert modules == []  # the styles above are widget.js's own

    talk.click()  # the module comes now, and opens the form
    expect(w(page, "sb-handoff-form")).to_be_visible(timeout=ANSWER_TIMEOUT)
    assert len(modules) == 1


VISIBLE_BOX = """(node) => { const r = node.getBoundingClientRect();
    return {x: r.left, y: r.top, width: r.width, height: r.height}; }"""
SCREEN = """() => ({x: visualViewport.offsetLeft, y: visualViewport.offsetTop,
                   width: visualViewport.width, height: visualViewport.height})"""


def on_screen(box: dict, screen: dict) -> bool:
    """The box lies within the visual viewport (both in layout viewport coordinates)."""
    return (
        box["width"] > 0
        and box["x"] >= screen["x"] - 0.5
        and box["y"] >= screen["y"] - 0.5
        and box["x"] + box["width"] <= screen["x"] + screen["width"] + 0.5
        and box["y"] + box["height"] <= screen["y"] + screen["height"] + 0.5
    )


def test_on_a_page_wider_than_the_phone_the_chat_fits_the_screen(browser, site):
    """A home-made page 425 px wide on a 390 px phone: the browser lays the page out wider (and
    so taller) than the screen, and a full-screen chat sized to that layout put its launcher,
    close and Send buttons off the screen. It is sized to the visual viewport instead. (Its
    screenshot: docs/screenshots/widget-mobile-wide-page.png with SHOPBOT_SAVE_SCREENSHOTS=1.)"""
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        reduced_motion="reduce",  # the panel measured where it stays, not as it slides in
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(site["listed"] + "/wide.html")
    assert page.evaluate("innerWidth") > 390  # the layout is wider than the screen
    screen = page.evaluate(SCREEN)
    launcher = w(page, "sb-launcher")
    expect(launcher).to_be_visible()
    assert on_screen(launcher.evaluate(VISIBLE_BOX), screen)

    launcher.tap()
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=ANSWER_TIMEOUT)
    screen = page.evaluate(SCREEN)
    panel = w(page, "sb-panel").evaluate(VISIBLE_BOX)
    assert panel == pytest.approx(screen, abs=1)  # the whole screen, and no more
    for testid in ("sb-close", "sb-send", "sb-input"):
        assert on_screen(w(page, testid).evaluate(VISIBLE_BOX), screen), testid

    w(page, "sb-input").fill("Do you deliver to Princeton?")
    w(page, "sb-send").tap()
    wait_answers(page, 1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "widget-mobile-wide-page.png"))
    w(page, "sb-close").tap()
    expect(w(page, "sb-panel")).to_be_hidden()
    context.close()
    assert problems == []
