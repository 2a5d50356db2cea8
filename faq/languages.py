"""
Which of the widget's languages (settings.LANGUAGES) a customer's text is written in: py3langid
(langid.py's naive Bayes over byte n-grams, BSD-3-Clause, its model shipped in the package),
restricted to those languages, loaded once per process on first use.

Short messages are where it errs ("do u deliver" reads as Portuguese, "gluten free?" as German),
and with a probability that says so: callers that act on a language ask for a sure one
(`sure_language`).
"""

from __future__ import annotations

import threading

from django.conf import settings

# The probability from which a detected language is taken as the text's (routing a question to
# another model, introducing an answer in the customer's language). Measured on the dev sets'
# 3,000 English customer messages, none is read as another language at 0.8 or above
# (docs/multilingual.md).
SURE = 0.8

_lock = threading.Lock()
_identifier = None


def _get():
    global _identifier
    if _identifier is None:
        with _lock:
            if _identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                full = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                full.set_languages([code for code, _ in settings.LANGUAGES])
                # Made again from the nine languages' columns alone, so the 97 languages' model
                # (28 MB) is freed; its byte automaton (about 50 MB) stays.
                _identifier = LanguageIdentifier(
                    full.nb_ptc,
                    full.nb_pc,
                    full.nb_classes,
                    full.tk_nextmove,
                    full.tk_output,
                    norm_probs=True,
                    tk_row=full.tk_row,
                )
    return _identifier


def detect(text: str) -> tuple[str, float]:
    """(language code, probability) of the text, among settings.LANGUAGES."""
    language, probability = _get().classify(text)
    return str(language), float(probability)


def sure_language(text: str, at_least: float) -> str | None:
    """The text's language when the detector gives it at least `at_least`, else None."""
    language, probability = detect(text)
    return language if probability >= at_least else None
