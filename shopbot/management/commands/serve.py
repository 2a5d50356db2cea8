"""
`manage.py serve`: everything `make run` does after installing: export the embedding model (a no-op
once it is there; `manage.py export_model` in a child process, so torch never loads in this one),
prepare the database, start the background worker (`manage.py worker`, a child process) and serve
with daphne.

Keeping it in this process matters for the embedded database: pgserver stops PostgreSQL when the
last process using it exits, so the server started for `migrate` stays up for daphne and the worker,
and stops once both have (the worker is stopped, its job in hand finished, when daphne returns).
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections
from django.db.utils import OperationalError

from faq.demo import load_shop as load_demo_shop


def daphne_options() -> list[str]:
    """What `make run` and the test and benchmark servers (harness/daphne_process.py) pass
    daphne, as the production unit does (docs/production.md): a websocket message over
    WEBSOCKET_MAX_MESSAGE_BYTES is closed with 1009 by daphne before ShopBot reads it."""
    return ["--websocket-max-message-size", str(settings.WEBSOCKET_MAX_MESSAGE_BYTES)]


class Command(BaseCommand):
    help = "Prepare the database (migrate, demo shop, admin user) and serve the site with daphne."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument("--port", type=int, default=settings.PORT, help="Port (default: PORT).")
        parser.add_argument("--no-demo", action="store_true", help="Do not load the demo shop.")
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="Do not start `manage.py worker` beside daphne (one runs elsewhere).",
        )

    def handle(self, *args, host: str, port: int, no_demo: bool, no_worker: bool, **options):
        # Until daphne installs its own handlers, make SIGTERM a normal exit so the embedded
        # database is stopped by its exit hook instead of being left running.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

        try:
            connection.ensure_connection()
        except OperationalError as exc:
            raise CommandError(
                f"Cannot connect to the database: {str(exc).strip()}\n"
                "Check DATABASE_URL, or unset it to use the embedded PostgreSQL."
            ) from None
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self.stdout.write("Database ready.")
        # The embedding model for onnxruntime (a no-op once it is there), exported by a child
        # process: torch never enters this one, which loads the demo shop and then serves.
        exported = subprocess.run(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "export_model"],
            cwd=settings.BASE_DIR,
        )
        if exported.returncode != 0:
            raise CommandError("Could not export the embedding model (manage.py export_model).")

        shop = None
        if not no_demo:
            shop, created = load_demo_shop()
            if created:
                self.stdout.write(f"Loaded the demo shop {shop.name!r}.")
        self._ensure_admin()
        connections.close_all()

        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("ShopBot is starting:"))
        if shop:
            self.stdout.write(f"  Demo storefront:  {base}/")
            self.stdout.write(f"  Its FAQ page:     {base}{shop.get_absolute_url()}")
        self.stdout.write(f"  Admin:            {base}/admin/")
        if shop:
            self.stdout.write(f"  Embed snippet:    {shop.embed_snippet(base)}")
        self.stdout.write("Press Ctrl-C to stop.\n")
        sys.stdout.flush()

        from daphne.cli import CommandLineInterface

        worker = None
        if not no_worker:
            # Owners' edits are embedded, and emails sent, by the worker: its output goes to
            # this terminal too. (Ctrl-C reaches both; SIGTERM reaches it below.)
            manage = str(settings.BASE_DIR / "manage.py")
            worker = subprocess.Popen([sys.executable, manage, "worker"])
        try:
            # No --proxy-headers: the client address must come from the socket unless the host
            # says which proxy header to trust (TRUSTED_PROXY_HEADER, read by
            # widget/chat/limits.py); otherwise anyone could dodge the per-address limits with a
            # made-up X-Forwarded-For.
            CommandLineInterface().run(
                ["--bind", host, "--port", str(port), *daphne_options(), "shopbot.asgi:application"]
            )
        finally:
            if worker is not None:
                worker.send_signal(signal.SIGTERM)  # it finishes the job in hand
                worker.wait()

    def _ensure_admin(self) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "", password)
        self.stdout.write(
            self.style.WARNING(
                f"Created the admin user.  username: admin  password: {password}\n"
                "  (shown once; change it with: .venv/bin/python manage.py changepassword admin)"
            )
        )
