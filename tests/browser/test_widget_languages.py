"""
The widget in the shop's language, in a real browser against the real server: Spanish chosen by
data-lang on the script tag (the shop itself is English), Arabic by the shop's setting, right to
left, and an Arabic widget whose bubbles hold English text. Each test takes a screenshot; with
SHOPBOT_SAVE_SCREENSHOTS=1 they replace docs/screenshots/widget-es.png, widget-ar.png and
widget-ar-english.png (otherwise a test run leaves the tree clean).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from faq.models import Shop
from tests.browser.conftest import ANSWER_TIMEOUT, LISTED_HOST, SCREENSHOTS, ask, w

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

# The first answer of a fresh server waits for its first query embedding; with other test runs
# on the same two cores that took over 25 s here, so these wait longer than ANSWER_TIMEOUT.
FIRST_ANSWER_TIMEOUT = 90_000
WIDTH, HEIGHT = 1280, 800
GREETING = "Hi! Ask me anything about our bikes."
FALLBACK = "Sorry, I can't answer that yet."


@pytest.fixture(scope="module")
def site(shared_server, other_sites, django_db_blocker) -> Iterator[dict]:
    """The server; a website (tests/browser/pages/spanish.html, arabic.html, arabic-english.html)
    embedding three shops, committed (the server is another process): two with the default
    greeting and fallback, so those come translated too, and an Arabic one whose owner wrote them
    in English. No FAQ entries: every question gets the off-topic answer (in the customer's
    language) and the contact route, the most text the widget shows."""
    values: dict[str, str] = {"SERVER": shared_server.url}
    website = other_sites(LISTED_HOST, values)
    common = {
        "allowed_origins": website,
        "contact_email": "hola@flores.example",
        "contact_phone": "+34 910 000 000",
    }
    with django_db_blocker.unblock():
        spanish = Shop.objects.create(
            name="Flores Ana",
            bot_name="Ana",
            language="en",  # data-lang="es" on the tag wins
            accent_color="#b5476b",
            suggestions="¿Hacen envíos a Madrid?\n¿Cuál es el horario?",
            **common,
        )
        arabic = Shop.objects.create(
            name="زهور سلمى", bot_name="سلمى", language="ar", accent_color="#2f6f4f", **common
        )
        english_texts = Shop.objects.create(
            name="Salma's Bikes",
            bot_name="سلمى",
            language="ar",
            accent_color="#2f6f4f",
            greeting=GREETING,
            fallback_message=FALLBACK,
            **common,
        )
    values.update(
        SHOP_ES=spanish.public_key, SHOP_AR=arabic.public_key, SHOP_AR_EN=english_texts.public_key
    )
    shared_server.wait_ready()
    yield {"website": website}
    with django_db_blocker.unblock():
        Shop.objects.filter(pk__in=[spanish.pk, arabic.pk, english_texts.pk]).delete()


def open_page(browser: Browser, url: str) -> Page:
    """A fresh context (empty localStorage) on `url`, collecting script errors."""
    context = browser.new_context(
        viewport={"width": WIDTH, "height": HEIGHT}, reduced_motion="reduce"
    )
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    page.goto(url)
    return page


def screenshot(page: Page, name: str) -> None:
    """The right-hand part of the page: the open panel and the launcher."""
    page.locator("[data-testid=sb-input]").focus()
    page.mouse.move(1, 1)  # no hover highlight in the picture
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    clip = {"x": WIDTH - 440, "y": 0, "width": 440, "height": HEIGHT}
    page.screenshot(path=str(SCREENSHOTS / name), clip=clip)


def test_the_widget_in_spanish_with_data_lang(browser, site):
    page = open_page(browser, site["website"] + "/spanish.html")
    w(page, "sb-launcher").click()
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=ANSWER_TIMEOUT)
    expect(w(page, "sb-status")).to_have_text("En línea")
    expect(w(page, "sb-input")).to_have_attribute("placeholder", "Haz una pregunta…")
    expect(w(page, "sb-send")).to_have_attribute("aria-label", "Enviar")
    expect(w(page, "sb-panel")).to_have_attribute("aria-label", "Chat de Ana")
    expect(w(page, "sb-panel")).to_have_attribute("lang", "es")
    expect(w(page, "sb-greeting")).to_have_text(
        "¡Hola! Pregúntame lo que quieras sobre nuestra tienda."
    )
    expect(w(page, "sb-suggestion")).to_have_count(2)

    ask(page, "¿Venden tarjetas regalo?")
    final = page.locator("[data-testid=sb-bot][data-state=final]")
    expect(final).to_have_count(1, timeout=FIRST_ANSWER_TIMEOUT)
    expect(w(page, "sb-bot")).to_have_attribute("data-mode", "fallback")
    declined = "No puedo ayudarte con eso aquí, pero nuestro equipo sí."
    expect(w(page, "sb-bot")).to_have_text(declined)
    expect(w(page, "sb-contact")).to_contain_text("Hablar con una persona")
    expect(w(page, "sb-contact").locator("a").first).to_have_text("Escribir a hola@flores.example")
    # No thumbs under the fallback; their labels come translated with the rest, kept for later.
    expect(w(page, "sb-fb-up")).to_have_count(0)
    saved = page.evaluate("() => JSON.parse(localStorage.getItem(Object.keys(localStorage)[0]))")
    assert (saved["texts"]["up"], saved["texts"]["down"]) == ("Útil", "No es útil")
    screenshot(page, "widget-es.png")

    # The texts are saved: after a reload they show before the widget connects again.
    page.reload()
    expect(w(page, "sb-launcher")).to_have_attribute("aria-label", "Abrir el chat de Ana")
    assert page.problems == []
    page.context.close()


def test_the_widget_in_arabic_is_right_to_left(browser, site):
    page = open_page(browser, site["website"] + "/arabic.html")
    w(page, "sb-launcher").click()
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=ANSWER_TIMEOUT)
    panel = w(page, "sb-panel")
    expect(panel).to_have_attribute("dir", "rtl")
    assert panel.evaluate("node => getComputedStyle(node).direction") == "rtl"
    expect(w(page, "sb-status")).to_have_text("متصل")
    expect(w(page, "sb-input")).to_have_attribute("placeholder", "اطرح سؤالًا…")
    expect(w(page, "sb-greeting")).to_have_text("مرحبًا! اسألني أي شيء عن متجرنا.")

    ask(page, "هل تبيعون بطاقات الهدايا؟")
    final = page.locator("[data-testid=sb-bot][data-state=final]")
    expect(final).to_have_count(1, timeout=FIRST_ANSWER_TIMEOUT)
    expect(w(page, "sb-bot")).to_have_text("لا أستطيع المساعدة في ذلك هنا، لكن فريقنا يستطيع.")
    expect(w(page, "sb-contact")).to_contain_text("تحدث إلى شخص")
    # Mirrored: the customer's bubble on the left, the bot's on the right.
    user, bot = w(page, "sb-user").bounding_box(), w(page, "sb-bot").bounding_box()
    assert user["x"] < bot["x"]
    screenshot(page, "widget-ar.png")
    assert page.problems == []
    page.context.close()


# The first and the last character of a bubble's text, where the page draws them.
ENDS = """(node) => {
    const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
    const texts = [];
    while (walker.nextNode()) if (walker.currentNode.data.trim()) texts.push(walker.currentNode);
    const first = texts[0], last = texts[texts.length - 1], end = last.data.trimEnd().length;
    const range = document.createRange();
    range.setStart(first, 0);
    range.setEnd(first, 1);
    const start = range.getBoundingClientRect().left;
    range.setStart(last, end - 1);
    range.setEnd(last, end);
    return {first: first.data[0], start, last: last.data[end - 1],
            end: range.getBoundingClientRect().left};
}"""


def test_english_bubbles_in_an_arabic_widget_end_with_their_punctuation(browser, site):
    """The panel is right to left; a bubble holding English reads left to right (dir="auto"), so
    its "!", "?" and "." stay at its right end instead of jumping to the left."""
    page = open_page(browser, site["website"] + "/arabic-english.html")
    w(page, "sb-launcher").click()
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=ANSWER_TIMEOUT)
    expect(w(page, "sb-panel")).to_have_attribute("dir", "rtl")
    expect(w(page, "sb-status")).to_have_text("متصل")
    expect(w(page, "sb-greeting")).to_have_text(GREETING)

    ask(page, "Do you rent bikes?")
    final = page.locator("[data-testid=sb-bot][data-state=final]")
    expect(final).to_have_count(1, timeout=FIRST_ANSWER_TIMEOUT)
    # Nothing to suggest: the honest sentence, in the language the customer wrote in.
    expect(final).to_have_text("I can't help with that here, but our team can.")
    expect(w(page, "sb-contact")).to_contain_text("تحدث إلى شخص")
    bubbles = {
        "greeting": w(page, "sb-greeting").locator("p"),
        "question": w(page, "sb-user"),
        "answer": final.locator("p"),
    }
    for name, bubble in bubbles.items():
        ends = bubble.evaluate(ENDS)
        assert ends["last"] in "!?." and ends["end"] > ends["start"], (name, ends)
        assert bubble.evaluate("node => getComputedStyle(node).direction") == "ltr", name
    # Still placed as in Arabic: the customer's bubble on the left, the bot's on the right.
    assert w(page, "sb-user").bounding_box()["x"] < final.bounding_box()["x"]
    screenshot(page, "widget-ar-english.png")
    assert page.problems == []
    page.context.close()
