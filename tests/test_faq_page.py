"""The public FAQ page (/faq/<slug>/), its JSON-LD, the HTML export, and the chat's source links
(real database, real embedding model, the real consumer)."""

from __future__ import annotations

import json
import re

import pytest
from bs4 import BeautifulSoup
from channels.db import database_sync_to_async as db
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import call_command

from faq.markup import answer_html
from faq.models import FAQEntry, OriginSeen, Shop
from tests.support import DELIVERY, Chat, make_demo_shop
from widget.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


def jsonld_of(html: str) -> dict:
    """The page's FAQPage JSON-LD (a shop with opening hours also has its LocalBusiness)."""
    scripts = BeautifulSoup(html, "lxml").find_all("script", type="application/ld+json")
    blocks = [json.loads(script.string) for script in scripts]
    faq_pages = [block for block in blocks if block.get("@type") == "FAQPage"]
    assert len(faq_pages) == 1
    return faq_pages[0]


def questions_in(data: dict) -> list[tuple[str, str]]:
    assert data["@context"] == "https://schema.org" and data["@type"] == "FAQPage"
    return [
        (item["name"], item["acceptedAnswer"]["text"])
        for item in data["mainEntity"]
        if item["@type"] == "Question" and item["acceptedAnswer"]["@type"] == "Answer"
    ]


def test_the_page_lists_exactly_the_published_entries_with_anchors_and_jsonld(client, demo_shop):
    hidden = FAQEntry.objects.filter(shop=demo_shop).order_by("pk")[:3]
    hidden_ids = [e.pk for e in hidden]
    FAQEntry.objects.filter(pk__in=hidden_ids).update(published=False)
    # An answer that tries to end the JSON-LD script early stays inside it.
    tricky = FAQEntry.objects.filter(shop=demo_shop, published=True).first()
    FAQEntry.objects.filter(pk=tricky.pk).update(answer="See </script><b>x</b> & more")

    response = client.get(f"/faq/{demo_shop.slug}/")

    assert response.status_code == 200
    html = response.content.decode()
    published = list(FAQEntry.objects.filter(shop=demo_shop, published=True))
    assert len(published) == 31
    assert sorted(questions_in(jsonld_of(html))) == sorted(
        (e.question, answer_html(e.answer)) for e in published
    )
    assert "&lt;/script&gt;&lt;b&gt;x&lt;/b&gt; &amp; more" in str(jsonld_of(html))
    soup = BeautifulSoup(html, "lxml")
    anchors = {a["id"] for a in soup.select("article.faq-entry")}
    assert anchors == {f"faq-{e.pk}" for e in published}
    assert sorted(h.get_text() for h in soup.select("article.faq-entry h3")) == sorted(
        e.question for e in published
    )
    for entry in FAQEntry.objects.filter(pk__in=hidden_ids):
        assert entry.answer not in html and f'"faq-{entry.pk}"' not in html
    # By category, the widget embedded with this shop's key, and the date of the last change.
    headings = [h.get_text() for h in soup.select("section.faq-section > h2")]
    in_owners_order = list(dict.fromkeys(e.category for e in sorted(published, key=lambda e: e.pk)))
    assert "Delivery" in headings and headings == [c for c in in_owners_order if c]
    widget = soup.find("script", src="http://testserver/widget.js")
    assert widget["data-shop"] == demo_shop.public_key
    assert soup.find("time")["datetime"].startswith(str(max(e.updated for e in published).date()))


MARKDOWN_ANSWER = (
    "Yes! Check our [used bikes page](https://bikes.example/used?a=1&b=2) or **call** us.\n"
    "- Road bikes\n"
    "- *City* bikes, see https://bikes.example/city.\n"
    "\n"
    "Not [this](javascript:alert(1)) nor <b>that</b>."
)
MARKDOWN_HTML = (
    '<p>Yes! Check our <a href="https://bikes.example/used?a=1&amp;b=2">used bikes page</a> or '
    "<strong>call</strong> us.</p>"
    '<ul><li>Road bikes</li><li><em>City</em> bikes, see <a href="https://bikes.example/city">'
    "https://bikes.example/city</a>.</li></ul>"
    "<p>Not [this](javascript:alert(1)) nor &lt;b&gt;that&lt;/b&gt;.</p>"
)


def test_answer_html_renders_the_widgets_markdown_subset_and_escapes_the_rest():
    assert answer_html(MARKDOWN_ANSWER) == MARKDOWN_HTML
    assert answer_html("Line one\nline two\n\n3. third\n4. fourth") == (
        '<p>Line one<br>line two</p><ol start="3"><li>third</li><li>fourth</li></ol>'
    )
    assert answer_html("[mail](mailto:a@b.example) [x](/relative) [t](tel:+15550100)") == (
        '<p><a href="mailto:a@b.example">mail</a> [x](/relative) <a href="tel:+15550100">t</a></p>'
    )


def test_links_and_lists_show_as_html_on_the_page_in_jsonld_and_in_the_export(
    client, demo_shop, tmp_path
):
    entry = FAQEntry.objects.create(
        shop=demo_shop, question="Do you sell used bikes?", answer=MARKDOWN_ANSWER
    )
    html = client.get(f"/faq/{demo_shop.slug}/").content.decode()
    out = tmp_path / "faq.html"
    call_command("export_faqs", demo_shop.pk, format="html", output=str(out))
    for page in (html, out.read_text()):
        soup = BeautifulSoup(page, "lxml")
        answer = soup.find(id=f"faq-{entry.pk}").select_one(".faq-answer")
        assert answer.select_one("a")["href"] == "https://bikes.example/used?a=1&b=2"
        assert [li.get_text() for li in answer.select("ul li")] == [
            "Road bikes",
            "City bikes, see https://bikes.example/city.",
        ]
        assert "[used bikes page]" not in answer.get_text() and not answer.select("b")
        assert dict(questions_in(jsonld_of(page)))["Do you sell used bikes?"] == MARKDOWN_HTML
    # The search results render it too.
    response = client.get(f"/faq/{demo_shop.slug}/", {"q": "do you sell used bikes"})
    results = BeautifulSoup(response.content, "lxml").find(attrs={"data-testid": "faq-results"})
    assert results.select_one(".faq-answer a")["href"] == "https://bikes.example/used?a=1&b=2"


def test_the_page_keeps_the_owners_order_of_categories_and_entries(client, db):
    shop = Shop.objects.create(name="Spoke & Chain")
    for question, category in [
        ("Zebra question?", "Rentals"),
        ("Apple question?", "Rentals"),
        ("Do you repair?", "Repairs"),
        ("Any question?", ""),
        ("Bikes to buy?", "Buying"),
    ]:
        FAQEntry.objects.create(shop=shop, question=question, answer="Yes.", category=category)

    def page_order():
        soup = BeautifulSoup(client.get(f"/faq/{shop.slug}/").content, "lxml")
        return [
            (s.h2.get_text(), [h.get_text() for h in s.select("h3")])
            for s in soup.select("section.faq-section")
        ]

    # As added, not alphabetically; the uncategorised last.
    assert page_order() == [
        ("Rentals", ["Zebra question?", "Apple question?"]),
        ("Repairs", ["Do you repair?"]),
        ("Buying", ["Bikes to buy?"]),
        ("Other questions", ["Any question?"]),
    ]
    # The owner moves "Buying" first and "Apple" before "Zebra" with the order field.
    FAQEntry.objects.filter(question="Bikes to buy?").update(position=-2)
    FAQEntry.objects.filter(question="Apple question?").update(position=-1)
    assert [name for name, _ in page_order()] == ["Buying", "Rentals", "Repairs", "Other questions"]
    assert page_order()[1][1] == ["Apple question?", "Zebra question?"]


def test_search_finds_an_entry_by_a_customers_wording(client, demo_shop):
    delivery = FAQEntry.objects.get(shop=demo_shop, question=DELIVERY)
    # A wording the bot is sure of is headed as such; one it is not sure of (the chat would offer
    # "did you mean") still lists the right entry first, as the closest question.
    for query, heading in [
        ("do u deliver to princeton", "Best matches"),
        ("can you bring flowers to princeton", "Closest questions"),
    ]:
        response = client.get(f"/faq/{demo_shop.slug}/", {"q": query})
        soup = BeautifulSoup(response.content, "lxml")
        results = soup.find(attrs={"data-testid": "faq-results"})
        first = results.select_one("ol li a")
        assert first.get_text() == DELIVERY and first["href"] == f"#faq-{delivery.pk}"
        assert heading in results.h2.get_text()


def test_search_never_shows_unpublished_or_other_shops_entries(
    client, demo_shop, demo_texts_embedded
):
    other = make_demo_shop(demo_texts_embedded, name="Thorn & Twig")
    FAQEntry.objects.filter(shop=demo_shop, question=DELIVERY).update(published=False)
    response = client.get(f"/faq/{demo_shop.slug}/", {"q": "Do you deliver to Princeton?"})
    html = response.content.decode()
    assert DELIVERY not in html
    other_ids = set(FAQEntry.objects.filter(shop=other).values_list("pk", flat=True))
    linked = {int(m) for m in re.findall(r'href="#faq-(\d+)"', html)}
    assert linked and not linked & other_ids
    assert client.get("/faq/no-such-shop/").status_code == 404


def test_slugs_come_from_the_name_are_unique_and_editable(db):
    first = Shop.objects.create(name="Petal & Stem")
    second = Shop.objects.create(name="Petal & Stem")
    assert (first.slug, second.slug) == ("petal-stem", "petal-stem-2")
    second.slug = "petals-two"
    second.save()
    assert Shop.objects.get(pk=second.pk).slug == "petals-two"
    second.slug = "petal-stem"
    with pytest.raises(ValidationError):
        second.full_clean()


def test_an_owner_changes_only_their_own_shops_faq_page_settings(client, demo_texts_embedded):
    mine = make_demo_shop(demo_texts_embedded, name="Petal & Stem")
    theirs = make_demo_shop(demo_texts_embedded, name="Thorn & Twig")
    call_command("create_owner", mine.pk, "alice", password="a-long-test-password-1")
    client.force_login(User.objects.get(username="alice"))

    page = client.get(f"/admin/faq/shop/{mine.pk}/change/")
    assert page.status_code == 200 and "/faq/petal-stem/" in page.content.decode()
    assert client.get(f"/admin/faq/shop/{theirs.pk}/change/").status_code in (302, 404)
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "owners"}
    data.update(slug="theirs-now", faq_location="own", faq_page_url="javascript:alert(1)")
    response = client.post(f"/admin/faq/shop/{theirs.pk}/change/", data)
    assert response.status_code in (302, 404)
    assert Shop.objects.get(pk=theirs.pk).slug == "thorn-twig"
    # On their own shop, an address that is not http(s) is refused.
    response = client.post(f"/admin/faq/shop/{mine.pk}/change/", data)
    assert response.status_code == 200 and "faq_page_url" in response.context["adminform"].errors
    assert Shop.objects.get(pk=mine.pk).faq_page_url == ""
    data["faq_page_url"] = ""  # "my own page" with no address
    response = client.post(f"/admin/faq/shop/{mine.pk}/change/", data)
    assert "faq_page_url" in response.context["adminform"].errors
    data["faq_page_url"] = "https://petals.example/faq"
    assert client.post(f"/admin/faq/shop/{mine.pk}/change/", data).status_code == 302
    mine.refresh_from_db()
    assert (mine.slug, mine.faq_location) == ("theirs-now", "own")
    assert mine.faq_page_url == "https://petals.example/faq"

    # The HTML export action, on the owner's own entries only.
    FAQEntry.objects.filter(shop=mine, question=DELIVERY).update(published=False)
    ids = list(FAQEntry.objects.values_list("pk", flat=True))  # both shops' entries selected
    response = client.post(
        "/admin/faq/faqentry/", {"action": "export_html", "_selected_action": ids}
    )
    assert response["Content-Type"] == "text/html; charset=utf-8"
    questions = [q for q, _ in questions_in(jsonld_of(response.content.decode()))]
    mine_published = FAQEntry.objects.filter(shop=mine, published=True)
    assert sorted(questions) == sorted(e.question for e in mine_published)


def test_export_html_holds_the_published_entries_and_their_anchors(demo_shop, tmp_path):
    FAQEntry.objects.filter(shop=demo_shop, question=DELIVERY).update(published=False)
    out = tmp_path / "faq.html"
    call_command("export_faqs", demo_shop.pk, format="html", output=str(out))
    html = out.read_text()
    published = list(FAQEntry.objects.filter(shop=demo_shop, published=True))
    assert sorted(questions_in(jsonld_of(html))) == sorted(
        (e.question, answer_html(e.answer)) for e in published
    )
    soup = BeautifulSoup(html, "lxml")
    assert {a["id"] for a in soup.select("article.faq-entry")} == {f"faq-{e.pk}" for e in published}
    assert DELIVERY not in html and "<script src" not in html


async def test_the_answers_source_links_to_its_entry_on_the_faq_page(demo_shop):
    delivery = await db(FAQEntry.objects.get)(shop=demo_shop, question=DELIVERY)
    headers = [(b"host", b"localhost:8000")]  # a host of ALLOWED_HOSTS: this site's address
    async with Chat(demo_shop.public_key, headers=headers) as chat:
        ready = await chat.ready()
        _, answer = await chat.ask("Do you deliver to Princeton?", "ask-1")
    hosted = f"http://localhost:8000/faq/petal-stem/#faq-{delivery.pk}"
    assert answer["sources"] == [{"id": delivery.pk, "question": DELIVERY, "url": hosted}]

    # The owner's own page: links go there, old answers included (worked out when sent).
    await db(Shop.objects.filter(pk=demo_shop.pk).update)(
        faq_location=Shop.OWN_PAGE, faq_page_url="https://petals.example/faq"
    )
    query = f"conversation={ready['conversation']}"
    async with Chat(demo_shop.public_key, query, headers=headers) as chat:
        history = (await chat.ready())["history"]
    own = f"https://petals.example/faq#faq-{delivery.pk}"
    assert history[1]["sources"] == [{"id": delivery.pk, "question": DELIVERY, "url": own}]
    # What is stored is the source itself; the link is not frozen into the database.
    reply = await db(Message.objects.get)(conversation_id=ready["conversation"], role="bot")
    assert reply.sources == [{"id": delivery.pk, "question": DELIVERY}]


async def test_a_connection_from_a_listed_site_is_recorded_first_and_last(demo_shop):
    await db(Shop.objects.filter(pk=demo_shop.pk).update)(allowed_origins="https://petals.example")
    for _ in range(2):
        headers = [(b"origin", b"https://PETALS.example"), (b"host", b"bot.example.com")]
        async with Chat(demo_shop.public_key, headers=headers) as chat:
            await chat.ready()
    # The ShopBot site itself (the hosted FAQ page, the storefront) is not a listed site.
    headers = [(b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000")]
    async with Chat(demo_shop.public_key, headers=headers) as chat:
        await chat.ready()
    seen = await db(lambda: list(OriginSeen.objects.filter(shop=demo_shop)))()
    assert [s.origin for s in seen] == ["https://petals.example"]
    assert seen[0].last_seen > seen[0].first_seen


def test_hostile_queries_are_shown_as_text_and_never_fail(client, demo_shop):
    for query in ["\x00", "<script>alert(1)</script>", "x" * 5000, "   "]:
        response = client.get(f"/faq/{demo_shop.slug}/", {"q": query})
        assert response.status_code == 200
        assert b"<script>alert(1)" not in response.content
