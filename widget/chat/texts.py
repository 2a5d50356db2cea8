"""
Every text the chat widget shows, in one catalogue. The widget gets them in the shop's language
in its `ready` frame (docs/protocol.md) instead of shipping every language in widget.js, which
keeps the script small; it saves them, so the next page shows them before it connects.

Keys are the names widget.js asks for (`say('sources')`); `{name}`, `{email}` and `{phone}` are
filled in by the widget. The few texts shown before the first connection are also in widget.js in
English (its TEXTS). Add a text here, then run `manage.py makemessages` / `compilemessages` (see
README, "Languages").
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.utils.translation import get_language_info, override
from django.utils.translation import gettext_lazy as _

WIDGET_TEXTS = {
    "chat": _("Chat"),
    "panel": _("{name} chat"),
    "open": _("Open {name} chat"),
    "close": _("Close {name} chat"),
    "unread": _("(new message)"),
    "closeButton": _("Close chat"),
    "conversation": _("Conversation"),
    "placeholder": _("Ask a question…"),
    "input": _("Your question"),
    "send": _("Send"),
    "connecting": _("Connecting…"),
    "online": _("Online"),
    "offline": _("Offline — reconnecting…"),
    "queued": _("Queued — will send when back online"),
    "unavailable": _("This chat is not available"),
    "unavailableNotice": _("This chat is not available right now."),
    "typing": _("{name} is typing"),
    "sources": _("From our FAQ: "),
    "helpful": _("Was this helpful?"),
    "up": _("Helpful"),
    "down": _("Not helpful"),
    "didYouMean": _("Did you mean:"),
    "talkToPerson": _("Talk to a person"),
    "email": _("Email {email}"),
    "call": _("Call {phone}"),
    "contactPage": _("Contact page"),
    "tryAgain": _("Try again"),
    # The hand-off to a person (widget-handoff.js); {time} is the shop's usual reply time.
    "handoffIntro": _("Leave your question and we'll get back to you, usually within {time}."),
    "handoffIntroShort": _("Leave your question and we'll get back to you."),
    "yourEmail": _("Your email"),
    "yourPhone": _("Or your phone number"),
    "yourName": _("Your name (optional)"),
    "yourQuestion": _("Your question"),
    "sendQuestion": _("Send to the team"),
    "cancel": _("Cancel"),
    "team": _("From our team"),
    "personJoined": _("A person from our team has joined the chat."),
    "received": _("Sent to the team"),
}


# The answer to a question nothing in the FAQ is close to (not confident, no "did you mean"): one
# honest sentence instead of the shop's fallback, which is written to sit beside suggestions; the
# widget puts "Talk to a person" and the shop's contact route under it.
OFF_TOPIC = _("I can't help with that here, but our team can.")


# An FAQ answer given word for word to a customer who wrote in another language than the FAQ's:
# its first line, in the customer's language, says which language follows ("Nuestra respuesta
# (en inglés):"). One sentence per FAQ language, so each translation can inflect the name.
ANSWER_IN = {
    "en": _("Our answer (in English):"),
    "es": _("Our answer (in Spanish):"),
    "fr": _("Our answer (in French):"),
    "de": _("Our answer (in German):"),
    "it": _("Our answer (in Italian):"),
    "pt": _("Our answer (in Portuguese):"),
    "nl": _("Our answer (in Dutch):"),
    "ar": _("Our answer (in Arabic):"),
    "he": _("Our answer (in Hebrew):"),
}


def answer_intro(customer_language: str, faq_language: str) -> str:
    """The line that introduces an FAQ answer written in `faq_language` to a customer writing in
    `customer_language`; "" when they are the same (or either is not one of the widget's)."""
    customer, faq = supported(customer_language), supported(faq_language)
    if customer is None or faq is None or customer == faq:
        return ""
    with override(customer):
        return str(ANSWER_IN[faq])


def supported(code: str | None) -> str | None:
    """`code` as one of settings.LANGUAGES ("es", "pt-BR" -> "pt", "AR" -> "ar"), or None."""
    base = (code or "").strip().lower().replace("_", "-").split("-")[0]
    return base if base in dict(settings.LANGUAGES) else None


def chat_language(requested: str | None, shop_language: str) -> str:
    """The language of one chat: the script tag's data-lang when supported, else the shop's, else
    the site's default (English)."""
    return supported(requested) or supported(shop_language) or supported(settings.LANGUAGE_CODE)


def direction(language: str) -> str:
    """ "rtl" for Arabic and Hebrew, else "ltr" (Django's own language table says which)."""
    return "rtl" if get_language_info(language)["bidi"] else "ltr"


def widget_texts(language: str) -> dict[str, str]:
    """The widget's texts in `language` (a code of settings.LANGUAGES)."""
    return dict(_widget_texts(language))


@functools.lru_cache(maxsize=64)
def _widget_texts(language: str) -> dict[str, str]:
    # Translated once per language and process (every `ready` frame sends them): the catalogues
    # do not change while a process runs.
    with override(language):
        return {key: str(text) for key, text in WIDGET_TEXTS.items()}
