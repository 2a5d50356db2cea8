"""A small SMTP listener for replies to customer requests, for deployments without an MTA of
their own (aiosmtpd). Every message goes through the same path as `receive_email`
(widget/inbound_email.py); the SMTP reply carries its outcome."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiosmtpd.smtp import SMTP, Envelope, Session
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from widget import inbound_email

logger = logging.getLogger(__name__)


def _receive(content: bytes, recipients: list[str], sender: str) -> inbound_email.Outcome:
    close_old_connections()  # a connection a database restart cut is replaced
    try:
        return inbound_email.receive(content, recipients, sender)
    finally:
        close_old_connections()


class ReplyHandler:
    """aiosmtpd's handler: recipients other than reply+...@INBOUND_EMAIL_DOMAIN are refused at
    RCPT; each message is handled on a worker thread (the ORM and the mail server block)."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if not inbound_email.reply_token(address):
            return "550 5.1.1 No such reply address"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        outcome = await sync_to_async(_receive, thread_sensitive=False)(
            envelope.original_content or envelope.content,
            list(envelope.rcpt_tos),
            envelope.mail_from or "",
        )
        return outcome.smtp_reply


async def serve(host: str, port: int) -> None:
    """Listen until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(
        lambda: SMTP(
            ReplyHandler(),
            data_size_limit=settings.INBOUND_EMAIL_MAX_BYTES,
            hostname=settings.INBOUND_EMAIL_DOMAIN,
        ),
        host=host,
        port=port,
    )
    logger.info("Mail gateway listening on %s:%s", host, port)
    async with server:
        await stop.wait()
    logger.info("Mail gateway stopped")


class Command(BaseCommand):
    help = (
        "Run a small SMTP server receiving replies to customer requests "
        "(reply+TOKEN@INBOUND_EMAIL_DOMAIN) for deployments without an MTA; stops on SIGTERM."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument("--port", type=int, default=8025, help="Port to listen on.")

    def handle(self, *args, **options) -> None:
        if not settings.INBOUND_EMAIL_DOMAIN:
            raise CommandError("Set INBOUND_EMAIL_DOMAIN first: replies by email are off.")
        try:
            asyncio.run(serve(options["host"], options["port"]))
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from None
