"""Shop owners see and change only their own shops' FAQ in the admin (real database, real model)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from faq.models import FAQEntry, Shop
from faq.owners import OWNERS_GROUP, shops_for
from tests.support import make_demo_shop, make_owner


@pytest.fixture
def two_shops(db, demo_texts_embedded) -> tuple[Shop, Shop]:
    return (
        make_demo_shop(demo_texts_embedded, name="Petal & Stem"),
        make_demo_shop(demo_texts_embedded, name="Thorn & Twig"),
    )


@pytest.fixture
def owners(two_shops) -> tuple[User, User]:
    return make_owner(two_shops[0], "alice"), make_owner(two_shops[1], "bob")


def test_create_owner_makes_a_staff_user_in_the_owners_group(db, capsys):
    shop = Shop.objects.create(name="Corner Shop")
    call_command("create_owner", shop.pk, "carol", email="carol@example.com")
    out = capsys.readouterr().out
    user = User.objects.get(username="carol")
    password = out.split("Password: ")[1].split()[0]
    assert user.check_password(password) and len(password) >= 16
    assert user.is_staff and not user.is_superuser and user.email == "carol@example.com"
    assert list(shop.owners.all()) == [user]
    assert user.has_perms(
        ["faq.change_shop", "faq.add_faqentry", "faq.delete_faqentry", "widget.view_message"]
    )
    assert not user.has_perm("faq.add_shop") and not user.has_perm("faq.delete_shop")
    assert user.groups.filter(name=OWNERS_GROUP).exists()

    # Linking an existing user to a second shop keeps their password and prints none.
    other = Shop.objects.create(name="Second Shop")
    call_command("create_owner", other.pk, "carol")
    assert "Password" not in capsys.readouterr().out
    assert User.objects.get(username="carol").check_password(password)
    assert set(shops_for(user)) == {shop, other}

    with pytest.raises(CommandError, match="no shop with id"):
        call_command("create_owner", 999999, "dave")
    assert not User.objects.filter(username="dave").exists()


def test_owner_lists_only_their_own_entries_and_shops(client, two_shops, owners):
    mine, theirs = two_shops
    client.force_login(owners[0])
    response = client.get("/admin/faq/faqentry/")
    assert response.status_code == 200
    shown = {e.shop_id for e in response.context["cl"].result_list}
    assert shown == {mine.pk}
    assert response.context["cl"].result_count == mine.entries.count()
    assert "Thorn &amp; Twig" not in response.content.decode()  # not even in the shop filter

    response = client.get("/admin/faq/shop/")
    assert [s.pk for s in response.context["cl"].result_list] == [mine.pk]


def test_another_shops_objects_are_404(client, two_shops, owners):
    mine, theirs = two_shops
    client.force_login(owners[0])
    my_entry, their_entry = mine.entries.first(), theirs.entries.first()
    assert client.get(f"/admin/faq/faqentry/{my_entry.pk}/change/").status_code == 200
    for url in [
        f"/admin/faq/faqentry/{their_entry.pk}/change/",
        f"/admin/faq/faqentry/{their_entry.pk}/delete/",
        f"/admin/faq/faqentry/{their_entry.pk}/history/",
        f"/admin/faq/shop/{theirs.pk}/change/",
        f"/admin/faq/shop/{theirs.pk}/try/?q=delivery",
    ]:
        assert client.get(url).status_code == 404, url
    response = client.post(f"/admin/faq/faqentry/{their_entry.pk}/delete/", {"post": "yes"})
    assert response.status_code == 404
    assert FAQEntry.objects.filter(pk=their_entry.pk).exists()


def test_owner_cannot_move_an_entry_to_another_shop(client, two_shops, owners):
    mine, theirs = two_shops
    client.force_login(owners[0])
    entry = mine.entries.first()
    form = {
        "shop": theirs.pk,
        "question": entry.question,
        "answer": entry.answer,
        "alternatives": entry.alternatives,
        "category": entry.category,
        "published": "on",
    }
    response = client.post(f"/admin/faq/faqentry/{entry.pk}/change/", form)
    assert response.status_code == 200  # the form again, with the error
    assert "shop" in response.context["adminform"].form.errors
    assert FAQEntry.objects.get(pk=entry.pk).shop_id == mine.pk
    add_form = client.get("/admin/faq/faqentry/add/").context["adminform"].form
    assert add_form.initial["shop"] == mine.pk  # their only shop, preselected
    assert list(add_form.fields["shop"].queryset) == [mine]
    response = client.post("/admin/faq/faqentry/add/", dict(form, question="New question?"))
    assert "shop" in response.context["adminform"].form.errors
    assert not FAQEntry.objects.filter(question="New question?").exists()


def test_actions_and_export_touch_only_own_entries(client, two_shops, owners):
    mine, theirs = two_shops
    client.force_login(owners[0])
    ids = [e.pk for e in FAQEntry.objects.all()]
    response = client.post(
        "/admin/faq/faqentry/", {"action": "unpublish", "_selected_action": ids, "index": "0"}
    )
    assert response.status_code == 302
    assert not mine.entries.filter(published=True).exists()
    assert not theirs.entries.filter(published=False).exists()

    response = client.post(
        "/admin/faq/faqentry/", {"action": "export_json", "_selected_action": ids, "index": "0"}
    )
    exported = json.loads(response.content)["faqs"]
    assert len(exported) == mine.entries.count() == theirs.entries.count()
    assert response["Content-Disposition"] == 'attachment; filename="petal-stem-faq.json"'


def test_try_a_question_and_import_are_scoped(client, two_shops, owners):
    mine, theirs = two_shops
    client.force_login(owners[0])
    response = client.get(f"/admin/faq/shop/{mine.pk}/try/", {"q": "do you deliver to princeton"})
    assert response.status_code == 200
    hits = response.context["result"].hits
    assert hits and all(h.entry.shop_id == mine.pk for h in hits)

    upload = SimpleUploadedFile("faq.csv", b"question,answer\nIs this mine?,Yes.\n")
    response = client.post("/admin/faq/faqentry/import/", {"shop": theirs.pk, "file": upload})
    assert response.status_code == 200 and "shop" in response.context["form"].errors
    assert not FAQEntry.objects.filter(question="Is this mine?").exists()


def test_owner_cannot_add_or_delete_shops_or_change_owners(client, two_shops, owners):
    mine, _ = two_shops
    alice, bob = owners
    client.force_login(alice)
    assert client.get("/admin/faq/shop/add/").status_code == 403
    assert client.get(f"/admin/faq/shop/{mine.pk}/delete/").status_code == 403
    response = client.get(f"/admin/faq/shop/{mine.pk}/change/")
    assert response.status_code == 200
    fields = response.context["adminform"].form.fields
    assert "owners" not in fields and "monthly_token_budget" not in fields  # read-only to owners
    assert "name" in fields and "fallback_message" in fields
    assert f"data-shop=&quot;{mine.public_key}&quot;" in response.content.decode()

    # Posting an owners list anyway is ignored: the field is read-only for owners.
    data = {
        "name": "Petal & Stem (renamed)",
        "allowed_origins": "https://petal.example",
        "bot_name": "Poppy",
        "greeting": "Hi",
        "suggestions": "",
        "accent_color": "#B5476B",
        "position": "right",
        "fallback_message": "Sorry",
        "reply_time": "one business day",  # the hand-off's setting (a required field)
        "language": "en",
        "owners": [bob.pk],
    }
    response = client.post(f"/admin/faq/shop/{mine.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    mine.refresh_from_db()
    assert mine.name == "Petal & Stem (renamed)"
    assert list(mine.owners.all()) == [alice]


def test_superuser_sees_every_shop(client, two_shops):
    admin = User.objects.create_superuser("root", "root@example.com", "a-long-test-password-1")
    client.force_login(admin)
    response = client.get("/admin/faq/faqentry/")
    assert response.context["cl"].result_count == FAQEntry.objects.count()
    assert {e.shop_id for e in response.context["cl"].result_list} == {s.pk for s in two_shops}
    theirs = two_shops[1]
    response = client.get(f"/admin/faq/shop/{theirs.pk}/change/")
    assert {"owners", "monthly_token_budget"} <= set(response.context["adminform"].form.fields)
    assert client.get("/admin/faq/shop/add/").status_code == 200
    assert set(shops_for(admin)) == set(two_shops)


def test_non_staff_and_anonymous_users_have_no_shops(db, two_shops):
    from django.contrib.auth.models import AnonymousUser

    user = User.objects.create_user("eve")
    two_shops[0].owners.add(user)  # an owner link alone is not enough without staff status
    assert not shops_for(user).exists()
    assert not shops_for(AnonymousUser()).exists()


def test_a_shop_added_in_the_admin_gets_its_key_on_saving_and_its_creator_as_owner(db, client):
    """The add form shows no public key (one shown there was the unsaved form's, never the
    shop's), and a shop added with no owner chosen is its creator's."""
    admin = User.objects.create_superuser("root", "root@example.com", "a-long-test-password-1")
    client.force_login(admin)
    page = client.get("/admin/faq/shop/add/")
    assert "public_key" not in page.context["adminform"].form.fields
    assert b"pk_" not in page.content
    data = {
        field.html_name: "on" if field.value() is True else field.value()
        for field in page.context["adminform"].form
        if field.value() not in (None, False) and field.name != "owners"
    }
    data.update(name="Bramble Bikes", allowed_origins="https://bramble.example")
    response = client.post("/admin/faq/shop/add/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    shop = Shop.objects.get(name="Bramble Bikes")
    # On to the new shop's page, with its set-up checklist, not the list of shops.
    assert response["Location"] == f"/admin/faq/shop/{shop.pk}/change/"
    assert shop.public_key.startswith("pk_")
    assert list(shop.owners.all()) == [admin]
