"""The importers against hostile input (issue 28): pages built to make reading them quadratic,
absurdly nested JSON-LD, addresses that hide a loopback IPv4 address inside IPv6, and a CSV row
with thousands of phrasings. Each is refused with one sentence or read in one pass; nothing is
half imported. (Figures: `bench/bench_webimport.py`.)"""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.core.exceptions import ValidationError

from faq import importing, webimport
from faq.models import FAQEntry, Shop

# Bounds a hang (the quadratic reader ran for over half an hour on the big page), not speed.
HANG_SECONDS = 120


def accordions(count: int) -> bytes:
    """A page of `count` button-and-panel accordions (aria-controls), the shape of the attacker's
    1.9 MB page."""
    items = "".join(
        f'<button aria-controls="p{n}">Q{n}?</button><div id="p{n}">A{n}.</div>\n'
        for n in range(count)
    )
    return f"<html><body><main><h2>Orders</h2>{items}</main></body></html>".encode()


def headings(sections: int, per_section: int) -> bytes:
    parts = ["<html><body><h1>Help</h1>"]
    for s in range(sections):
        parts.append(f"<h2>Section {s}</h2>")
        parts += [f"<h3>Question {s}-{n}?</h3><p>Answer {s}-{n}.</p>\n" for n in range(per_section)]
    return "".join(parts + ["</body></html>"]).encode()


def read_within_bound(data: bytes, **kwargs) -> list[webimport.Found] | Exception:
    """find_faqs on a thread of its own; its outcome (the pairs or the error), or a failure if it
    is still reading after HANG_SECONDS (a daemon thread, so a hang cannot hold the run open)."""
    outcome: list = []

    def read() -> None:
        try:
            outcome.append(webimport.find_faqs(webimport.read_file(data, "faq.html"), **kwargs))
        except Exception as exc:
            outcome.append(exc)

    started = time.process_time()
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(HANG_SECONDS)
    assert outcome, f"still reading the page after {HANG_SECONDS} s"
    print(f"{len(data):,} bytes read in {time.process_time() - started:.2f} s of CPU")
    return outcome[0]


@pytest.mark.slow
def test_a_page_of_26000_accordions_is_read_in_one_pass():
    data = accordions(26_000)
    assert 1_500_000 < len(data) <= webimport.MAX_PAGE_BYTES
    outcome = read_within_bound(data)
    if isinstance(outcome, webimport.PageImportError):  # a machine too slow for the budget
        assert str(outcome).startswith("Reading that page took more than")
        return
    assert not isinstance(outcome, Exception), outcome
    assert len(outcome) == 26_000
    assert (outcome[0].question, outcome[0].answer, outcome[0].category) == (
        "Q0?",
        "A0.",
        "Orders",
    )
    assert outcome[-1].question == "Q25999?"


def test_reading_stops_with_one_sentence_when_its_cpu_budget_is_spent():
    outcome = read_within_bound(accordions(26_000), cpu_seconds=0.01)
    assert isinstance(outcome, webimport.PageImportError)
    assert str(outcome) == (
        "Reading that page took more than 0.01 seconds; save just your FAQ page from the "
        "browser and upload it, or import a CSV file instead."
    )


def test_thousands_of_question_headings_keep_their_sections():
    outcome = read_within_bound(headings(sections=20, per_section=250))
    assert not isinstance(outcome, Exception), outcome
    assert len(outcome) == 5000
    assert {f.category for f in outcome[:250]} == {"Section 0"}
    assert {f.category for f in outcome[-250:]} == {"Section 19"}
    assert outcome[-1].answer == "Answer 19-249."


def test_absurdly_nested_json_ld_is_skipped_and_deep_questions_still_found():
    question = {"@type": "Question", "name": "Do you ship?", "acceptedAnswer": {"text": "Yes."}}
    # Nested 900 levels: json reads it, the old recursive visit of it did not.
    deep = '{"@type": "Thing", "about": [' * 450 + json.dumps(question) + "]}" * 450
    blocks = [
        "[" * 100_000 + "]" * 100_000,  # json.loads gives up on this one (RecursionError)
        deep,
        json.dumps({"@type": "Question", "name": "Gift cards?", "acceptedAnswer": {"text": "Yes"}}),
    ]
    scripts = "".join(f'<script type="application/ld+json">{b}</script>' for b in blocks)
    page = webimport.read_file(f"<html><body>{scripts}</body></html>".encode(), "faq.html")
    found = webimport.find_faqs(page)
    assert [(f.question, f.answer) for f in found] == [
        ("Do you ship?", "Yes."),
        ("Gift cards?", "Yes"),
    ]


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254 (cloud metadata)
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:127.0.0.1",  # IPv4-mapped
    ],
)
def test_ipv6_addresses_carrying_a_private_ipv4_address_are_refused(address, settings):
    assert settings.IMPORT_ALLOW_PRIVATE_HOSTS is False
    assert not webimport.is_public_address(address)
    with pytest.raises(webimport.PageImportError) as caught:
        webimport.fetch(f"http://[{address}]:9/faq")
    assert str(caught.value).startswith(
        f"ShopBot does not fetch addresses on private or local networks ({address})"
    )


def test_ipv6_addresses_carrying_a_public_ipv4_address_are_public():
    assert webimport.is_public_address("64:ff9b::808:808")  # NAT64 of 8.8.8.8
    assert webimport.is_public_address("2002:808:808::1")  # 6to4 of 8.8.8.8


def test_a_csv_row_with_thousands_of_phrasings_is_refused_whole(db):
    shop = Shop.objects.create(name="Corner Shop")
    phrasings = "\n".join(f"q{n}" for n in range(20_000))  # within csv's 128 KiB a cell
    data = f'question,answer,alternatives\nDo you ship?,Yes.,"{phrasings}"\n'
    with pytest.raises(importing.ImportFailed) as caught:
        importing.import_file(shop, data.encode(), "csv")
    assert [str(e) for e in caught.value.errors] == [
        "line 2: too many alternative phrasings (20000, at most 100); keep the ways customers "
        "really ask"
    ]
    assert not shop.entries.exists()

    fits = " | ".join(f"way {n} to ask" for n in range(FAQEntry.MAX_ALTERNATIVES))
    assert importing.parse(f'question,answer,alternatives\nQ?,A.,"{fits}"\n', "csv")


def test_an_entry_with_too_many_phrasings_does_not_validate(db):
    shop = Shop.objects.create(name="Corner Shop")
    entry = FAQEntry(
        shop=shop, question="Q?", answer="A.", alternatives="\n".join(map(str, range(101)))
    )
    with pytest.raises(ValidationError) as caught:
        entry.full_clean()
    assert caught.value.message_dict["alternatives"] == [
        "101 alternative phrasings; at most 100: keep the ways customers really ask."
    ]
