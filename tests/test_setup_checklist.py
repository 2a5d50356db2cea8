"""The set-up checklist on the shop's admin page, item by item, from a new shop to a live chat
(real database, real model, the real consumer for "seen live")."""

from __future__ import annotations

from datetime import time

import pytest
from asgiref.sync import async_to_sync
from bs4 import BeautifulSoup
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import call_command

from faq.hours.models import ShopHours
from faq.models import FAQEntry, OriginSeen, Shop
from tests.support import Chat

pytestmark = pytest.mark.django_db(transaction=True)


def checklist(client, shop: Shop) -> dict[str, tuple[bool, str, str]]:
    """key -> (done, text, link) as the owner sees them."""
    response = client.get(f"/admin/faq/shop/{shop.pk}/change/")
    assert response.status_code == 200
    box = BeautifulSoup(response.content, "lxml").find(attrs={"data-testid": "setup-checklist"})
    return {
        li["data-item"]: (
            li["data-done"] == "true",
            " ".join(li.get_text().split()),
            li.find("a")["href"],
        )
        for li in box.find("ul").find_all("li", recursive=False)
    }


def connect_from(shop: Shop, origin: str) -> None:
    async def go():
        headers = [(b"origin", origin.encode()), (b"host", b"bot.example.com")]
        async with Chat(shop.public_key, headers=headers) as chat:
            await chat.ready()

    async_to_sync(go)()


def test_the_checklist_follows_the_owner_from_a_new_shop_to_a_live_chat(client, settings):
    settings.ANTHROPIC_API_KEY = ""
    shop = Shop.objects.create(name="Juniper Yoga")
    call_command("create_owner", shop.pk, "june", password="a-long-test-password-1")
    client.force_login(User.objects.get(username="june"))

    items = checklist(client, shop)
    assert list(items) == ["entries", "tried", "contact", "hours", "origins", "live", "claude"]
    assert [k for k, (done, _, _) in items.items() if done] == ["claude"]
    assert items["entries"][2] == f"/admin/faq/faqentry/?shop__id__exact={shop.pk}"
    assert items["tried"][2] == "#try-question" and items["contact"][2] == "#id_contact_email"
    assert items["contact"][1].endswith("Add an email, phone or contact page")
    assert items["hours"][2] == f"/admin/faq/shop/{shop.pk}/hours/"
    # No key on this server: a new shop answers from the FAQ, no orange to-do.
    assert not shop.use_claude and "Answers: FAQ only (done)" in items["claude"][1]
    Shop.objects.filter(pk=shop.pk).update(use_claude=True)
    assert "no ANTHROPIC_API_KEY" in checklist(client, shop)["claude"][1]
    settings.ANTHROPIC_API_KEY = "sk-test"
    assert Shop.objects.create(name="With a key").use_claude

    FAQEntry.objects.create(shop=shop, question="Can I pause my membership?", answer="Yes.")
    FAQEntry.objects.create(shop=shop, question="Hidden", answer="No.", published=False)
    client.get(f"/admin/faq/shop/{shop.pk}/try/", {"q": "pause membership"})
    Shop.objects.filter(pk=shop.pk).update(
        contact_email="hello@juniper.example",
        allowed_origins="https://juniper.example\nhttps://www.juniper.example",
        use_claude=False,
    )
    shop.refresh_from_db()
    assert shop.question_tried is not None
    hours = ShopHours.objects.create(shop=shop, time_zone="America/New_York")
    hours.week.create(weekday=0, opens=time(9), closes=time(17))

    items = checklist(client, shop)
    assert "In the time zone America/New_York" in items["hours"][1]
    assert {k for k, (done, _, _) in items.items() if not done} == {"live"}
    assert "1 of 2 entries published" in items["entries"][1]
    assert "hello@juniper.example" in items["contact"][1]
    assert not items["contact"][1].endswith("Add an email, phone or contact page")
    assert "https://juniper.example: not seen yet" in items["live"][1]

    connect_from(shop, "https://juniper.example")
    connect_from(shop, "https://juniper.example")
    seen = OriginSeen.objects.get(shop=shop)
    assert seen.origin == "https://juniper.example" and seen.last_seen > seen.first_seen
    items = checklist(client, shop)
    assert all(done for done, _, _ in items.values())
    assert "https://www.juniper.example: not seen yet" in items["live"][1]
    assert "https://juniper.example: first" in items["live"][1]


def test_another_owners_checklist_is_not_reachable(client, settings):
    mine = Shop.objects.create(name="Mine")
    theirs = Shop.objects.create(name="Theirs")
    call_command("create_owner", mine.pk, "me", password="a-long-test-password-1")
    client.force_login(User.objects.get(username="me"))
    assert client.get(f"/admin/faq/shop/{theirs.pk}/change/").status_code in (302, 404)
    client.get(f"/admin/faq/shop/{theirs.pk}/try/", {"q": "anything"})
    assert Shop.objects.get(pk=theirs.pk).question_tried is None


def test_a_website_without_its_scheme_is_normalised_or_refused_by_the_model(client, settings):
    settings.ANTHROPIC_API_KEY = ""
    shop = Shop.objects.create(name="Spoke & Chain")
    call_command("create_owner", shop.pk, "sam", password="a-long-test-password-1")
    client.force_login(User.objects.get(username="sam"))
    page = client.get(f"/admin/faq/shop/{shop.pk}/change/")
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "owners"}

    # What the owner typed that a browser can never send as an origin is refused, nothing saved.
    data["allowed_origins"] = "www.spoke.example\nftp://spoke.example\n*.spoke.example"
    response = client.post(f"/admin/faq/shop/{shop.pk}/change/", data)
    assert response.status_code == 200
    errors = response.context["adminform"].errors["allowed_origins"]
    assert "only http:// and https://" in errors[0] and "no wildcards" in errors[1]
    assert Shop.objects.get(pk=shop.pk).allowed_origins == ""

    # A bare host means https://host; http only when written out; paths and repeats dropped.
    data["allowed_origins"] = (
        "www.spoke.example\n127.0.0.1:8401\nhttp://127.0.0.1:8402/shop\nhttps://WWW.spoke.example/"
    )
    assert client.post(f"/admin/faq/shop/{shop.pk}/change/", data).status_code == 302
    shop.refresh_from_db()
    assert shop.allowed_origins == (
        "https://www.spoke.example\nhttps://127.0.0.1:8401\nhttp://127.0.0.1:8402"
    )
    # The shell and imports go through the same rule.
    shop.allowed_origins = "shop"
    with pytest.raises(ValidationError, match="give the whole host name"):
        shop.full_clean()

    # A row saved before the rule (no scheme) is never ticked: the chat cannot open there.
    Shop.objects.filter(pk=shop.pk).update(allowed_origins="www.spoke.example")
    items = checklist(client, shop)
    assert not items["origins"][0] and not items["live"][0]
    assert "The chat cannot open on www.spoke.example" in items["origins"][1]
    # Fixed, it is ticked, and "seen live" only once the chat opened from that site.
    Shop.objects.filter(pk=shop.pk).update(allowed_origins="https://www.spoke.example")
    items = checklist(client, shop)
    assert items["origins"][0] and not items["live"][0]
    connect_from(shop, "https://www.spoke.example")
    assert checklist(client, shop)["live"][0]
