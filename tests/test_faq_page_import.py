"""Import from your website: real pages served over HTTP on loopback, the real fetcher and parser,
the transactional importer, the real embedding model, the admin as an owner, and the chat."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from faq import indexing, webimport
from faq.markup import answer_html
from faq.models import FAQEntry, Shop
from faq.search import search
from tests.support import Chat, Site, make_owner

PAGES = Path(__file__).resolve().parent / "faq_pages"


@pytest.fixture
def site() -> Iterator[Site]:
    with Site.serving() as site:
        yield site


@pytest.fixture
def local_pages(settings):
    """The test pages live on loopback, which real imports refuse."""
    settings.IMPORT_ALLOW_PRIVATE_HOSTS = True


@pytest.fixture
def shop(db) -> Shop:
    return Shop.objects.create(name="Corner Shop")


def serve(site: Site, name: str) -> str:
    return site.page(f"/{name}", (PAGES / name).read_bytes())


def pairs(found: list[webimport.Found]) -> list[tuple[str, str, str]]:
    return [(f.question, f.answer, f.category) for f in found]


def failure(source: str) -> str:
    with pytest.raises(webimport.PageImportError) as caught:
        webimport.find_faqs(webimport.load(source))
    return str(caught.value)


# --- Finding questions on the pages owners have ------------------------------------------------


# Each page (tests/faq_pages/) as an owner's site makes it: the (question, answer, category) found
# on it, in order, and how they were found. {site} stands for the test site's address.
PAGES_FOUND = [
    pytest.param(
        "headings.html",
        [
            (
                "Do you cut car keys?",
                "We cut most car keys while you wait.\n\nChipped keys take a day.",
                "Keys & locks",
            ),
            (
                "Can you open a lock if I am locked out?",
                "No, call a locksmith; we can recommend:\n\n- Ace Locks, 555-0101\n"
                "- Quick Keys, 555-0102",
                "Keys & locks",
            ),
            (
                "Do you mix paint to match a sample?",
                "Yes. Bring a sample the size of a coin.",
                "Paint",
            ),
        ],
        "headings",
        id="question-headings-followed-by-paragraphs",
    ),
    pytest.param(
        "wordpress_yoast.html",
        [
            (
                "How long does a service take?",
                "A standard service takes two working days.\nBook ahead in spring.",
                "",
            ),
            (
                "Do you fit tubeless tyres?",
                "Yes, for £25 a wheel. We stock:\n\n- Schwalbe\n- Continental",
                "",
            ),
            (
                "Can I rent a bike?",
                # Relative links are made absolute against the page's address.
                "Yes: see [bike hire]({site}/hire/) for prices.",
                "",
            ),
        ],
        "schema.org data",
        id="wordpress-yoast-faq-block-from-its-json-ld",
    ),
    pytest.param(
        # The page also holds a broken JSON-LD block, which must not hide the good one.
        "wordpress_rankmath.html",
        [
            (
                "Is your packaging plastic-free?",
                "Yes. Our pouches are paper and plant-based film, and they go in the compost.",
                "Our tea",
            ),
            (
                "Do you ship abroad?",
                "We ship to the EU and the UK.\nOrders leave within 2 days.",
                "Delivery",
            ),
        ],
        "schema.org data",
        id="rank-math-json-ld-takes-categories-from-the-visible-sections",
    ),
    pytest.param(
        "shopify_details.html",
        [
            (
                "How long does shipping take?",
                "Orders ship within 1–2 business days.\n\nUS delivery takes 3–5 days.",
                "Shipping",
            ),
            ("Do you ship to Canada?", "Yes, for a flat $15.", "Shipping"),
            (
                "How long should I burn my candle?",
                "The first burn sets the memory:\n\n- Burn until the whole top has melted\n"
                "- Never more than 4 hours",
                "Candle care",
            ),
        ],
        "accordion",
        id="shopify-details-accordion-skips-the-menu-drawer-and-footer",
    ),
    pytest.param(
        "squarespace_accordion.html",
        [
            (
                "What should I bring to my first class?",
                "Comfortable clothes and water.\n\nWe lend mats for free.",
                "Classes",
            ),
            (
                "Cancellation policy",
                "Cancel up to 12 hours before class for a full credit.",
                "Classes",
            ),
            (
                "Can I pause my membership?",
                "Yes, once a year for up to a month. Email hello@juniper.example.",
                "Memberships",
            ),
        ],
        "accordion",
        id="squarespace-button-and-panel-accordion",
    ),
]


@pytest.mark.parametrize(("name", "expected", "source"), PAGES_FOUND)
def test_the_questions_on_a_page_owners_have(site, local_pages, name, expected, source):
    found = webimport.find_faqs(webimport.fetch(serve(site, name)))
    assert pairs(found) == [(q, a.replace("{site}", site.url), c) for q, a, c in expected]
    assert {f.source for f in found} == {source}


def test_definition_list_and_microdata_and_no_scripts_or_styles():
    page = webimport.Page(
        "faq.html",
        b"""<html><body><h2>Gifts</h2>
        <dl><dt>Do you gift wrap?</dt><dd>Yes, free.<script>alert(1)</script></dd>
            <dt>Can I add a card?</dt>
            <dd><p>Yes.</p><style>p{}</style><p>Up to 200 letters.</p></dd></dl>
        <div itemscope itemtype="https://schema.org/FAQPage">
          <div itemscope itemprop="mainEntity" itemtype="https://schema.org/Question">
            <h3 itemprop="name">Do you sell vouchers?</h3>
            <div itemscope itemprop="acceptedAnswer" itemtype="https://schema.org/Answer">
              <div itemprop="text"><p>Yes &amp; they never expire.</p></div></div></div></div>
        </body></html>""",
    )
    assert pairs(webimport.find_faqs(page)) == [
        ("Do you sell vouchers?", "Yes & they never expire.", "Gifts"),
        ("Do you gift wrap?", "Yes, free.", "Gifts"),
        ("Can I add a card?", "Yes.\n\nUp to 200 letters.", "Gifts"),
    ]


FAQ_WITH_RELATIVE_LINKS = """<details><summary>Do you ship abroad?</summary>
    <p>See our <a href="/shipping">shipping page</a> or <a href="returns.html#eu">returns</a>.
    <img src="images/map.png" alt="map"></p></details>"""


HELP = ("https://shop.example/shipping", "https://shop.example/help/returns.html#eu")


@pytest.mark.parametrize(
    "url, head, links",
    [
        # Fetched: relative to the page's own address, or to its <base href>.
        ("https://shop.example/help/faq", "", HELP),
        (
            "https://shop.example/faq",
            '<base href="https://cdn.example/en/">',
            ("https://cdn.example/shipping", "https://cdn.example/en/returns.html#eu"),
        ),
        # Uploaded: the address the page names itself by, or the one "Save Page As" noted.
        ("faq.html", '<link rel="canonical" href="https://shop.example/help/faq">', HELP),
        ("faq.html", '<meta property="og:url" content="https://shop.example/help/faq">', HELP),
        ("faq.html", "<!-- saved from url=(0031)https://shop.example/help/faq -->", HELP),
    ],
)
def test_relative_links_in_answers_are_made_absolute_against_the_pages_address(url, head, links):
    html = f"<html><head>{head}</head><body>{FAQ_WITH_RELATIVE_LINKS}</body></html>"
    (found,) = webimport.find_faqs(webimport.Page(url, html.encode()))
    shipping, returns = links
    assert found.answer == f"See our [shipping page]({shipping}) or [returns]({returns})."
    # As the FAQ page and the chat show it: a real link to the shop's site.
    assert f'href="{shipping}"' in answer_html(found.answer)


def test_an_uploaded_page_with_no_address_keeps_the_text_of_its_relative_links():
    html = f"<html><body>{FAQ_WITH_RELATIVE_LINKS}</body></html>"
    (found,) = webimport.find_faqs(webimport.Page("faq.html", html.encode()))
    # Nothing to resolve them against: the words stay, no link to nowhere.
    assert found.answer == "See our shipping page or returns."


# --- Pages and addresses that cannot be imported ----------------------------------------------


def test_a_page_without_an_faq_says_what_to_do(site, local_pages):
    assert failure(serve(site, "no_faq.html")) == (
        "No questions and answers were found on that page; check that it is your FAQ page, "
        "or import a CSV file instead."
    )


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
def test_a_5_mb_page_is_refused(site, local_pages, declared):
    body = b"<html><body>" + b"<p>Do you deliver? Yes.</p>" * 200_000 + b"</body></html>"
    assert len(body) > 5_000_000

    def send(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        if declared:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the importer hung up at 2 MB, as it should

    site.routes["/big"] = send
    assert failure(f"{site.url}/big").startswith("The page is larger than 2 MB;")


def test_a_non_html_response_is_refused(site, local_pages):
    url = site.page("/faq.pdf", b"%PDF-1.7 ...", content_type="application/pdf")
    assert failure(url) == (
        "The address gives application/pdf, not a web page; give the address of the FAQ page "
        "itself."
    )
    assert "not a saved web page" in failure(str(PAGES.parent / "fake_anthropic.py"))


def test_a_stalled_server_times_out(site, local_pages, settings):
    settings.IMPORT_FETCH_TIMEOUT = 0.5

    def stall(handler):
        site.release.wait()  # answers only once the test is over

    site.routes["/slow"] = stall
    assert failure(f"{site.url}/slow") == (
        "The website did not send the page within 0.5 seconds; try again later, or save the "
        "page in your browser and upload the file."
    )


def test_loopback_and_private_addresses_are_refused_by_default(site, settings):
    assert settings.IMPORT_ALLOW_PRIVATE_HOSTS is False
    url = serve(site, "headings.html")
    assert failure(url).startswith(
        "ShopBot does not fetch addresses on private or local networks (127.0.0.1)"
    )
    port = site.server.server_address[1]
    assert "(localhost is " in failure(f"http://localhost:{port}/headings.html")
    for address in ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "169.254.169.254",
                    "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1",
                    "224.0.0.1"]:  # fmt: skip
        assert not webimport.is_public_address(address), address
    assert webimport.is_public_address("93.184.215.14")
    assert webimport.is_public_address("2606:4700::1111")


def test_a_redirect_to_a_loopback_address_is_refused(site, settings, monkeypatch):
    """The first hop is allowed, the redirect's target is checked again and refused."""
    assert settings.IMPORT_ALLOW_PRIVATE_HOSTS is False
    # Only this site's exact address stands in for a public web server; every other address
    # goes through the real check.
    real = webimport.is_public_address
    monkeypatch.setattr(webimport, "is_public_address", lambda a: a == "127.0.0.1" or real(a))
    port = site.server.server_address[1]
    serve(site, "headings.html")
    assert webimport.find_faqs(webimport.fetch(f"{site.url}/headings.html"))  # allowed
    url = site.redirect("/faq", f"http://127.0.0.2:{port}/headings.html")
    assert failure(url).startswith(
        "ShopBot does not fetch addresses on private or local networks (127.0.0.2)"
    )
    url = site.redirect("/faq2", f"http://[::1]:{port}/headings.html")
    assert "networks (::1)" in failure(url)


def test_redirects_are_followed_a_few_times_and_only_to_http(site, local_pages):
    serve(site, "headings.html")
    site.redirect("/a", "/b")
    site.redirect("/b", f"{site.url}/headings.html")
    assert len(webimport.find_faqs(webimport.fetch(f"{site.url}/a"))) == 3
    for n in range(5):
        site.redirect(f"/loop{n}", f"/loop{n + 1}")
    assert failure(f"{site.url}/loop0").startswith("The address redirected more than 3 times;")
    site.redirect("/ftp", "ftp://example.com/faq.html")
    assert failure(f"{site.url}/ftp").startswith("Only http:// and https:// addresses")
    assert failure("file:///etc/passwd").startswith("Only http:// and https:// addresses")
    assert failure(f"{site.url}/missing").startswith("The website answered 404")


# --- Importing ---------------------------------------------------------------------------------


def test_command_dry_run_then_import_then_nothing_new(
    site, local_pages, shop, capsys, django_capture_on_commit_callbacks
):
    url = serve(site, "shopify_details.html")
    call_command("import_faq_page", shop.pk, url, "--dry-run")
    out = capsys.readouterr().out
    assert "Dry run, nothing imported into 'Corner Shop': 3 new, 0 updated, 0 unchanged." in out
    assert "new  Do you ship to Canada? [Shipping]" in out
    assert not shop.entries.exists()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_faq_page", shop.pk, url)
    assert "Imported into 'Corner Shop': 3 new, 0 updated, 0 unchanged." in capsys.readouterr().out
    canada = shop.entries.get(question="Do you ship to Canada?")
    assert (canada.answer, canada.category, canada.published) == (
        "Yes, for a flat $15.",
        "Shipping",
        True,
    )
    assert set(indexing.states(shop.entries.all()).values()) == {indexing.FRESH}
    assert search(shop, "can you send candles to canada").best.entry == canada

    call_command("import_faq_page", shop.pk, str(PAGES / "shopify_details.html"))
    assert "0 new, 0 updated, 3 unchanged." in capsys.readouterr().out

    with pytest.raises(CommandError, match="No questions and answers were found"):
        call_command("import_faq_page", shop.pk, str(PAGES / "no_faq.html"))
    with pytest.raises(CommandError, match="There is no shop with id"):
        call_command("import_faq_page", 999_999, url)


def test_updates_keep_the_owners_phrasings_category_and_published_flag(shop):
    entry = FAQEntry.objects.create(
        shop=shop,
        question="do you cut CAR keys?",
        answer="Old answer.",
        alternatives="car key copy\nspare car key",
        category="Keys",
        published=False,
    )
    same = FAQEntry.objects.create(
        shop=shop,
        question="Do you mix paint to match a sample?",
        answer="Yes. Bring a sample the size of a coin.",
        category="Paint",
    )
    found = webimport.find_faqs(webimport.read_file((PAGES / "headings.html").read_bytes(), "x"))
    statuses = [(c.found.question, c.status) for c in webimport.compare(shop, found)]
    assert statuses == [
        ("Do you cut car keys?", "update"),
        ("Can you open a lock if I am locked out?", "new"),
        ("Do you mix paint to match a sample?", "unchanged"),
    ]
    result = webimport.import_found(shop, found)
    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    entry.refresh_from_db()
    assert entry.question == "Do you cut car keys?"
    assert entry.answer.startswith("We cut most car keys")
    assert entry.alternative_list == ["car key copy", "spare car key"]
    assert (entry.category, entry.published) == ("Keys & locks", False)
    assert shop.entries.get(pk=same.pk).updated == same.updated


@pytest.mark.django_db(transaction=True)
async def test_an_imported_entry_answers_in_the_chat(site, local_pages, chat_without_claude):
    shop = await database_sync_to_async(Shop.objects.create)(name="Juniper Yoga")
    url = serve(site, "squarespace_accordion.html")
    await database_sync_to_async(call_command)("import_faq_page", shop.pk, url)
    entry = await database_sync_to_async(FAQEntry.objects.get)(
        shop=shop, question="What should I bring to my first class?"
    )
    async with Chat(shop.public_key) as chat:
        await chat.ready()
        _, answer = await chat.ask("what do I need to bring for my first yoga class?")
    assert answer["mode"] == "faq"
    assert answer["text"] == "Comfortable clothes and water.\n\nWe lend mats for free."
    url = f"/faq/{shop.slug}/#faq-{entry.pk}"  # the hosted FAQ page (no Host header: a path)
    assert answer["sources"] == [{"id": entry.pk, "question": entry.question, "url": url}]


# --- The admin, as an owner ---------------------------------------------------------------------


@pytest.fixture
def owner(shop) -> User:
    return make_owner(shop, "olive")


def test_owner_previews_and_imports_the_ticked_rows(
    client, owner, shop, site, local_pages, django_capture_on_commit_callbacks
):
    FAQEntry.objects.create(shop=shop, question="Cancellation policy", answer="24 hours.")
    client.force_login(owner)
    page_url = reverse("admin:faq_shop_import_page", args=[shop.pk])
    assert (
        "Import from your website"
        in client.get(reverse("admin:faq_shop_change", args=[shop.pk])).content.decode()
    )
    # From the FAQ list, an owner of one shop goes straight to that shop's page.
    response = client.get(reverse("admin:faq_faqentry_import_page"))
    assert response.status_code == 302 and response["Location"] == page_url

    url = serve(site, "squarespace_accordion.html")
    response = client.post(page_url, {"url": url})
    assert response.status_code == 200
    html = " ".join(response.content.decode().split())
    assert f"Found 3 questions on <strong>{url}</strong>: 2 new, 1 would update an entry" in html
    assert "Can I pause my membership?" in html and "Now: <p>24 hours.</p>" in html
    assert not shop.entries.filter(question="Can I pause my membership?").exists()

    payload = response.context["payload"]
    rows = [c.found.question for c in response.context["candidates"]]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(page_url, {"payload": payload, "row": ["1", "2"]})
    assert response.status_code == 302
    assert response["Location"] == f"/admin/faq/shop/{shop.pk}/change/"  # the checklist
    assert set(shop.entries.values_list("question", flat=True)) == {rows[1], rows[2]}
    assert shop.entries.get(question="Cancellation policy").answer.startswith("Cancel up to 12")
    assert set(indexing.states(shop.entries.all()).values()) == {indexing.FRESH}
    messages = [str(m) for m in response.wsgi_request._messages]
    assert messages == [
        f"Imported 2 questions from {url} into Corner Shop: 1 new, 1 updated, 0 unchanged."
    ]


def test_the_preview_shows_answers_rendered_not_as_markdown(client, owner, shop):
    client.force_login(owner)
    page = (
        "<html><body><h1>FAQ</h1><details><summary>Do you sell used bikes?</summary>"
        '<p>Yes, see our <a href="https://shop.example/used">used bikes page</a>:</p>'
        "<ul><li>road bikes</li><li>kids' bikes</li></ul></details></body></html>"
    )
    saved = SimpleUploadedFile("faq.html", page.encode())
    response = client.post(reverse("admin:faq_shop_import_page", args=[shop.pk]), {"file": saved})
    (candidate,) = response.context["candidates"]
    assert "](https://shop.example/used)" in candidate.found.answer  # kept as markdown
    answer = BeautifulSoup(response.content, "lxml").select_one(".import-preview .answer")
    assert answer.select_one("a")["href"] == "https://shop.example/used"
    assert [li.get_text() for li in answer.select("li")] == ["road bikes", "kids' bikes"]
    assert "](" not in answer.get_text() and "- road" not in answer.get_text()


def test_owner_uploads_a_saved_page_and_sees_one_sentence_errors(client, owner, shop, site):
    client.force_login(owner)
    page_url = reverse("admin:faq_shop_import_page", args=[shop.pk])
    saved = SimpleUploadedFile("faq.html", (PAGES / "headings.html").read_bytes())
    response = client.post(page_url, {"file": saved})
    assert [c.status for c in response.context["candidates"]] == ["new", "new", "new"]

    # The loopback site is refused: the setting is off here.
    response = client.post(page_url, {"url": serve(site, "headings.html")})
    assert response.context["error"].startswith("ShopBot does not fetch addresses on private")
    assert 'class="errornote"' in response.content.decode() and not shop.entries.exists()

    empty = SimpleUploadedFile("about.html", (PAGES / "no_faq.html").read_bytes())
    response = client.post(page_url, {"file": empty})
    assert response.context["error"].startswith("No questions and answers were found")
    response = client.post(page_url, {})
    assert "Give the address of your FAQ page, or upload" in response.content.decode()

    # Nothing ticked, or a payload that was altered: nothing changes.
    saved.seek(0)
    payload = client.post(page_url, {"file": saved}).context["payload"]
    response = client.post(page_url, {"payload": payload})
    assert response.context["error"] == "Tick at least one question to import."
    assert client.post(page_url, {"payload": payload + "x", "row": "0"}).status_code == 400
    assert not shop.entries.exists()


def test_owner_cannot_import_into_another_shop(client, owner, shop):
    other = Shop.objects.create(name="Someone Else's")
    client.force_login(owner)
    page_url = reverse("admin:faq_shop_import_page", args=[other.pk])
    assert client.get(page_url).status_code == 404
    saved = SimpleUploadedFile("a.html", b"<h2>Q?</h2><p>A</p>")
    assert client.post(page_url, {"file": saved}).status_code == 404
    assert client.post(page_url, {"url": "https://example.com/"}).status_code == 404
    chooser = reverse("admin:faq_faqentry_import_page") + f"?shop__id__exact={other.pk}"
    assert client.get(chooser).status_code == 404

    # A preview made for the owner's own shop cannot be replayed against the other one.
    own = reverse("admin:faq_shop_import_page", args=[shop.pk])
    payload = client.post(
        own, {"file": SimpleUploadedFile("a.html", b"<h2>Open late?</h2><p>No.</p>")}
    ).context["payload"]
    assert signing.loads(payload, salt="faq.webimport.preview")["shop"] == shop.pk
    assert client.post(page_url, {"payload": payload, "row": "0"}).status_code == 404
    assert not other.entries.exists()


def test_a_superuser_with_several_shops_picks_one_from_the_faq_list(admin_client, shop):
    other = Shop.objects.create(name="Another Shop")
    response = admin_client.get(reverse("admin:faq_faqentry_import_page"))
    html = response.content.decode()
    for each in (shop, other):
        assert reverse("admin:faq_shop_import_page", args=[each.pk]) in html
    filtered = reverse("admin:faq_faqentry_import_page") + f"?shop__id__exact={other.pk}"
    response = admin_client.get(filtered)
    assert response["Location"] == reverse("admin:faq_shop_import_page", args=[other.pk])
    changelist = admin_client.get(reverse("admin:faq_faqentry_changelist")).content.decode()
    assert "Import from your website" in changelist
