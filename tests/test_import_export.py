"""Import and export of FAQs as CSV and JSON: commands and admin upload, all or nothing."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from faq import embedding, importing, indexing
from faq.demo import DEMO_FILE, demo_data
from faq.models import FAQEntry, FAQVector, Shop
from faq.search import search

GOOD_CSV = (
    "question,answer,alternatives,category,published\n"
    'Do you sell gift cards?,"Yes, from $25.","gift voucher\npresent card",Payments,yes\n'
    "Are you open on Sundays?,No; we rest on Sundays.,sunday hours | open sunday,Hours,\n"
    "Is parking free?,Yes.,,,no\n"
)


@pytest.fixture
def shop(db) -> Shop:
    return Shop.objects.create(name="Corner Shop")


def snapshot(shop: Shop) -> list[tuple]:
    return list(
        shop.entries.order_by("pk").values_list(
            "pk", "question", "answer", "alternatives", "category", "published"
        )
    )


def test_csv_import_creates_entries_with_fresh_vectors(
    shop, tmp_path, capsys, django_capture_on_commit_callbacks
):
    path = tmp_path / "faq.csv"
    path.write_text(GOOD_CSV)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_faqs", shop.pk, str(path))
    assert "3 created, 0 updated, 0 unchanged" in capsys.readouterr().out
    cards = shop.entries.get(question="Do you sell gift cards?")
    assert cards.alternative_list == ["gift voucher", "present card"]
    sundays = shop.entries.get(question="Are you open on Sundays?")
    assert sundays.alternative_list == ["sunday hours", "open sunday"] and sundays.published
    assert not shop.entries.get(question="Is parking free?").published
    assert set(indexing.states(shop.entries.all()).values()) == {indexing.FRESH}
    assert search(shop, "can I buy a voucher").best.entry == cards


def test_bad_rows_are_all_reported_with_line_numbers_and_nothing_changes(shop, tmp_path):
    FAQEntry.objects.create(shop=shop, question="Do you sell gift cards?", answer="No.")
    before = snapshot(shop)
    vectors_before = FAQVector.objects.count()
    long_question = "why " * 100
    path = tmp_path / "faq.csv"
    path.write_text(
        "question,answer,alternatives,category,published\n"
        'Do you sell gift cards?,"Yes, from $25.",,Payments,yes\n'  # line 2: fine (an update)
        ",An answer without a question,,,\n"  # line 3
        "A question without an answer?,,,,\n"  # line 4
        f"{long_question},Too long.,,,\n"  # line 5
        'Multi-line answer?,"One\ntwo",,,maybe\n'  # line 6 (the row spans lines 6-7)
        "do you sell  GIFT cards?,Again.,,,\n"  # line 8: duplicate of line 2
    )
    with pytest.raises(CommandError, match="Nothing was imported: 5 problem"):
        call_command("import_faqs", shop.pk, str(path))
    assert snapshot(shop) == before
    assert FAQVector.objects.count() == vectors_before

    with pytest.raises(importing.ImportFailed) as failure:
        importing.import_file(shop, path.read_bytes(), "csv")
    assert [str(e) for e in failure.value.errors] == [
        "line 3: question is missing",
        "line 4: answer is missing",
        "line 5: question is too long (399 characters, at most 300)",
        "line 6: published must be yes or no, not 'maybe'",
        "line 8: duplicate question (same as line 2)",
    ]


def test_json_errors_name_the_line_of_each_faq(shop):
    text = """{
  "faqs": [
    {"question": "Fine?", "answer": "Yes."},
    {"question": "No answer?"},
    {
      "question": "Bad flag?",
      "answer": "Yes.",
      "published": "sometimes",
      "alternatives": "one\\ntwo"
    },
    {"question": "Bad alternatives?", "answer": "x", "alternatives": [1, 2]},
    "just a string"
  ]
}"""
    with pytest.raises(importing.ImportFailed) as failure:
        importing.import_file(shop, text, "json")
    assert [str(e) for e in failure.value.errors] == [
        "line 4: answer is missing",
        "line 5: published must be yes or no, not 'sometimes'",
        "line 11: alternatives must be a list of texts",
        "line 12: FAQ #5 is not an object",
    ]
    for bad, message in [
        ("{oops", "line 1: not valid JSON"),
        ('{"entries": []}', 'expected {"faqs"'),
        (b"\xff\xfe", "not UTF-8"),
        ("question;answer\nx;y\n", "header row must name"),
    ]:
        fmt = "csv" if "question;" in str(bad) else "json"
        with pytest.raises(importing.ImportFailed, match=message.replace("{", r"\{")):
            importing.import_file(shop, bad, fmt)
    assert not shop.entries.exists()


def test_reimport_updates_matched_entries_and_replace_deletes_the_rest(
    shop, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        importing.import_file(shop, GOOD_CSV, "csv")
        FAQEntry.objects.create(shop=shop, question="Old entry?", answer="Gone soon.")
    cards = shop.entries.get(question="Do you sell gift cards?")
    vector_ids = set(cards.vectors.values_list("pk", flat=True))
    update = (
        "question,answer,alternatives,category,published\n"
        'DO YOU SELL GIFT CARDS?,"Yes, from $25.",gift voucher | present card,Gifts,yes\n'
        "Are you open on Sundays?,No; we rest on Sundays.,sunday hours | open sunday,Hours,\n"
        "Is parking free?,Yes.,,,no\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = importing.import_file(shop, update, "csv", replace=True)
    assert (result.created, result.updated, result.unchanged, result.deleted) == (0, 1, 2, 1)
    cards.refresh_from_db()
    assert cards.category == "Gifts" and cards.question == "DO YOU SELL GIFT CARDS?"
    assert not shop.entries.filter(question="Old entry?").exists()
    # The question's text changed, so its two texts were re-embedded; the alternatives were not
    # (by each model the shop is embedded with).
    models = len(embedding.shop_models(shop.language))
    assert len(vector_ids & set(cards.vectors.values_list("pk", flat=True))) == 2 * models
    assert set(indexing.states(shop.entries.all()).values()) == {indexing.FRESH}


def test_the_demo_file_imports_and_export_round_trips(
    shop, tmp_path, capsys, django_capture_on_commit_callbacks, demo_vectors_reused
):
    # The import's embedding runs, with the session's vectors of the demo's texts (this is a test
    # of importing and exporting: test_csv_import_creates_entries_with_fresh_vectors embeds).
    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_faqs", shop.pk, str(DEMO_FILE))
    faqs = demo_data()["faqs"]
    assert shop.entries.count() == len(faqs)
    assert set(indexing.states(shop.entries.all()).values()) == {indexing.FRESH}
    capsys.readouterr()

    for fmt in ("csv", "json"):
        out = tmp_path / f"export.{fmt}"
        call_command("export_faqs", shop.pk, "-o", str(out))
        other = Shop.objects.create(name=f"Copy {fmt}")
        call_command("import_faqs", other.pk, str(out))  # texts only: its embedding never runs
        assert sorted(r[1:] for r in snapshot(other)) == sorted(r[1:] for r in snapshot(shop))

    capsys.readouterr()
    call_command("export_faqs", shop.pk, "--format", "json")
    exported = json.loads(capsys.readouterr().out)["faqs"]
    by_question = {f["question"]: f for f in exported}
    for faq in faqs:
        assert by_question[faq["question"]]["alternatives"] == faq["alternatives"]
    call_command("export_faqs", shop.pk)
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == len(faqs) and rows[0].keys() == set(importing.COLUMNS)


def test_admin_upload_reports_bad_rows_and_imports_good_files(client, shop):
    user = User.objects.create_superuser("root", "root@example.com", "a-long-test-password-1")
    client.force_login(user)
    assert client.get("/admin/faq/faqentry/import/").status_code == 200

    bad = SimpleUploadedFile("faq.csv", b"question,answer\nNo answer?,\n,No question\n")
    response = client.post("/admin/faq/faqentry/import/", {"shop": shop.pk, "file": bad})
    html = response.content.decode()
    assert "Nothing was imported" in html
    assert "line 2: answer is missing" in html and "line 3: question is missing" in html
    assert not shop.entries.exists()

    good = SimpleUploadedFile("faq.csv", GOOD_CSV.encode())
    response = client.post("/admin/faq/faqentry/import/", {"shop": shop.pk, "file": good})
    assert response.status_code == 302
    assert response["Location"] == f"/admin/faq/shop/{shop.pk}/change/"  # the checklist
    assert shop.entries.count() == 3

    unknown = SimpleUploadedFile("faq.txt", b"whatever")
    response = client.post("/admin/faq/faqentry/import/", {"shop": shop.pk, "file": unknown})
    assert "Cannot tell the format" in response.content.decode()
