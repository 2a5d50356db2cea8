"""
Which of the widget's languages (settings.LANGUAGES) a customer's text is written in: py3langid
(langid.py's naive Bayes over byte n-grams, BSD-3-Clause, its model shipped in the package),
restricted to those languages, loaded once per process on first use.

Short messages are where it errs ("do u deliver" reads as Portuguese, "gluten free?" as German),
and with a probability that says so: callers that act on a language ask for a sure one
(`sure_language`).

It also says how a shop's texts, and the questions asked to it, are split into words for the
word statistics (`analysis`: PostgreSQL's Snowball configuration of the shop's language, accents
folded; English as written).
"""

from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass

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


# Each thread's last detection: an ask detects its question's language twice (the search's
# route, then the answer's language), on one thread.
_last = threading.local()


def detect(text: str) -> tuple[str, float]:
    """(language code, probability) of the text, among settings.LANGUAGES."""
    last = getattr(_last, "detection", None)
    if last is not None and last[0] == text:
        return last[1]
    language, probability = _get().classify(text)
    detection = str(language), float(probability)
    _last.detection = (text, detection)
    return detection


def sure_language(text: str, at_least: float) -> str | None:
    """The text's language when the detector gives it at least `at_least`, else None."""
    language, probability = detect(text)
    return language if probability >= at_least else None


# Text analysis for the word statistics (BM25, distinctive words: faq/search_index.py), by the
# shop's language: PostgreSQL's own Snowball text-search configurations (stemming and stop words,
# built into every PostgreSQL, the embedded pgserver's included), and accents folded away, since
# customers type "livraison rapide le dimanche ?" as "livraison rapide le dimanche", "envío" as
# "envio" and "für" as "fur". English keeps 'simple' (lower-cased words as written): its figures
# were tuned on it and its customers' questions take exactly the path they took before.
# Arabic and Hebrew have no stemmer here ('simple'), but their diacritics are folded too.
TEXT_SEARCH_CONFIGS = {
    "fr": "french",
    "es": "spanish",
    "de": "german",
    "pt": "portuguese",
    "it": "italian",
    "nl": "dutch",
}
# Languages whose texts are analysed as written (no folding): English.
UNFOLDED = frozenset({"en"})


@dataclass(frozen=True)
class Analysis:
    """How a shop's texts, and the questions asked to it, are split into words: a PostgreSQL
    text-search configuration, and whether accents are folded away first."""

    config: str = "simple"
    fold: bool = False

    @property
    def name(self) -> str:
        """Stored with a shop's index: an index built with another analysis is built again."""
        return f"{self.config}{'+fold' if self.fold else ''}"

    def prepare(self, text: str) -> str:
        """The text as PostgreSQL's parser gets it."""
        return fold_accents(text) if self.fold else text


def analysis(language: str) -> Analysis:
    """The analysis of a shop's texts in `language` (a code of settings.LANGUAGES)."""
    code = (language or "").split("-")[0].lower()
    return Analysis(TEXT_SEARCH_CONFIGS.get(code, "simple"), code not in UNFOLDED)


def fold_accents(text: str) -> str:
    """The text without combining marks ("Fête des mères" -> "Fete des meres", "Größe" ->
    "Große": PostgreSQL's German stemmer folds the umlauts and ß itself); a plain PostgreSQL may
    lack the `unaccent` extension (the embedded pgserver does), so this is Python's. Canonical
    decomposition only (NFD, not NFKD): "ﬁ" or "½" keep their form, so PostgreSQL's parser splits
    the folded text into the same words at the same positions as the text as written."""
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )
