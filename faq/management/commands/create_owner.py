"""Give a shop an owner: a staff account that sees only that shop in the admin."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from faq.management.shops import shop_or_error
from faq.owners import owners_group


class Command(BaseCommand):
    help = (
        "Create (or link) a staff user as an owner of a shop. Owners see and edit only their own "
        "shops' settings, FAQ and conversations in the admin."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("shop_id", type=int, help="The shop's id (see the admin's Shops list)")
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password", default="", help="Omit to generate one (printed once) for a new user"
        )

    def handle(self, *args, shop_id: int, username: str, email: str, password: str, **options):
        shop = shop_or_error(shop_id)
        User = get_user_model()
        if password:
            # The same validators as the admin's password forms (AUTH_PASSWORD_VALIDATORS).
            try:
                validate_password(password, User(username=username, email=email))
            except ValidationError as exc:
                raise CommandError("That password is too weak: " + " ".join(exc.messages)) from None
        generated = ""
        with transaction.atomic():
            user, created = User.objects.get_or_create(username=username)
            if created:
                if not password:
                    password = generated = secrets.token_urlsafe(12)
            if password:
                user.set_password(password)
            if email:
                user.email = email
            user.is_staff = True
            user.save()
            try:
                user.groups.add(owners_group())
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc)) from None
            shop.owners.add(user)
        verb = "Created" if created else "Linked existing"
        self.stdout.write(
            f"{verb} user {username!r} as an owner of shop {shop.name!r} (id {shop.pk})."
        )
        if generated:
            self.stdout.write(f"Password: {generated}")
            self.stdout.write("It is shown only once; the owner can change it in the admin.")
