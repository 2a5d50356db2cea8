"""
The shop's search index: what search needs beyond the vectors in PostgreSQL, built from the shop's
published entries only (never from customer queries).

- `Lexicon`: BM25 weights of the shop's words (one over questions and phrasings, one over those
  and the answers), and `word_bonus`, the word score search adds. The words are split by
  PostgreSQL with the shop language's analysis (`text_words`, `lexemes_sql`;
  faq/languages.py's `analysis`: Snowball stemming and stop words, accents folded; English as
  written).
- `fit_classifier`: the per-shop ridge classifier (it only ranks); it can also give exact
  leave-one-entry-out outputs, which no bar uses since confidence left the full score.
- `score_entries`: the dense score of each entry from vector similarities (shared by search and
  calibration, so a probe is scored exactly as a customer's question is).
- `build_index`: all of it, and the three bars of the confidence policy, calibrated on the
  shop's own texts leave-one-out (faq/search.py's docstring explains the policy): the bar on the
  dense score (questions and phrasings asked with their entry left out), the same bar over the
  owner's texts alone (`owner_threshold`, no phrasings: the day-one bar learning never takes
  away), and the wording bar (the phrasings asked with only themselves and with their entry left
  out: the loosest similarity at which they are answered right 97 % of the time).
- `check_wording`: whether a wording the owner is about to accept would pull another entry's
  questions, and what accepting it changes.
- `ShopIndex.distinctive_entries`: which entries alone use a word of a question.
- `ShopIndex`: the result, one per shop and model (a shop's entries may be embedded by two:
  faq/embedding.py's `shop_models`), stored as plain arrays in the SearchIndex table;
  `IndexCache` holds the most recently searched RETRIEVAL_CACHE_SHOPS of them per process;
  `shop_index` returns the current one (cache, else stored, else built now).
- `update_index` / `update_index_if_changed`: the write path (faq/indexing.py) calls them after
  the re-embedding commits, so the customer who asks next does not wait for the build.

This module never imports faq/search.py: the write path depends on it alone.
"""

from __future__ import annotations

import io
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import connection, models
from django.db.models import Count, Sum

from faq import embedding, languages
from faq.models import FAQEntry, FAQVector, SearchIndex, Shop
from lib import jobs

BEST_TWO_MIX = 0.6
VOTE_NEIGHBOURS = 10
VOTE_WEIGHT = 0.1
CLASSIFIER_WEIGHT = 0.25
# With multilingual-e5-small's vectors (a shop in another language than English) the classifier
# counts less: 0.25 was measured on MiniLM's vectors, and over e5's it tipped close calls
# between two entries to the wrong one more often than to the right one. Chosen on
# dev_fr_fleuriste (recall@1 0.808 -> 0.818, recall@3 0.899 -> 0.909, the same at 0.1 and 0.15;
# no other day-one figure moved; 0.2 the mildest, and the one whose learning curve's recall@1 is
# nowhere lower), held on dev_de_radladen and dev_es_peluqueria (every figure unchanged) and
# dev_bakery_xling (questions routed to e5; none lower) (docs/multilingual.md).
E5_CLASSIFIER_WEIGHT = 0.2
CLASSIFIER_RIDGE = 0.1  # regularisation of the ridge classifier
# What the classifier learns from: every vector that stands for one question of an entry (its
# question, each phrasing, the question with each answer sentence). It learns which directions
# tell this shop's entries apart ("coronavirus" is in every entry of a COVID FAQ, "where ... from"
# in one). (The second round fitted shops with 20 phrasings or more on questions and phrasings
# only, with word weights 0.1 / 0.15: after accepted wordings that switch cost dev_bakery 7 points
# of recall@1 on the learning curve, and HINT3 nothing.)
CLASSIFIER_KINDS = [FAQVector.QUESTION, FAQVector.ALTERNATIVE, FAQVector.QUESTION_SENTENCE]
# Word matching: BM25 over the questions and phrasings (question words: "where ... from"), and
# over those and the answers (facts inside answers: "donuts" in the seasonal-menu answer).
QUESTION_WORDS_WEIGHT = 0.05
ALL_WORDS_WEIGHT = 0.1
# The weight over questions, phrasings and answers with multilingual-e5-small's vectors (a shop
# in another language than English), whose words are stemmed and folded (languages.analysis):
# on dev_fr_fleuriste recall@1 0.758 -> 0.808 and recall@3 0.889 -> 0.899 against 0.1
# (0.3 gave 0.818 / 0.909 with no question-words weight; chosen the milder), and no figure of its
# learning curve worse (docs/multilingual.md).
E5_ALL_WORDS_WEIGHT = 0.2
BM25_K1 = 1.2
BM25_B = 0.5

# With multilingual-e5-small's vectors, a phrasing's similarity (the owner's and every accepted
# customer wording) counts this much less in the dense score, on `embedding.similarity`'s scale:
# e5 puts a text near every other text in its own language, whatever it asks, so a shop's
# customers' wordings pulled its customers' next questions towards other entries (the French
# florist's recall@1 fell as it learned: docs/multilingual.md). Search and the bar's near misses
# score alike.
PHRASING_DISCOUNT = {embedding.E5: 0.2}


def discount_phrasings(model: str, sims: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """`sims` (queries, vectors) with the phrasings' columns (`kinds`: each vector's kind)
    lowered by the model's PHRASING_DISCOUNT."""
    discount = PHRASING_DISCOUNT.get(model, 0.0)
    if not discount:
        return sims
    return np.where(kinds == FAQVector.ALTERNATIVE, sims - discount, sims)


# Confidence (faq/search.py's docstring): the texts that probe the other entries as pretend
# questions, the share of those near misses the bar sits above, and the floor under it.
PROBE_KINDS = [FAQVector.QUESTION, FAQVector.ALTERNATIVE]
# Models whose FAQ questions are embedded otherwise than customers' questions: multilingual-e5-small
# embeds the owner's question as a passage ("passage: "), a customer's as a query ("query: "),
# and a passage sits nearer other passages than a query does. The bar's probes stand for
# customers' questions, so with these models each question is embedded once more as a customer's
# question (`question_probes`) to probe with. With the passages as probes the French florist's
# bar sat at 0.925, above most of its right answers (0.60-0.85), and e5's bar on dev_bakery at
# 0.766 against MiniLM's 0.680 on the same shop; asked as questions, 0.814 and 0.697.
QUESTION_PROBE_MODELS = frozenset({embedding.E5})
# The questions' probe vectors one process keeps (a shop's index is built again at every change
# of its entries; its questions rarely change).
PROBE_CACHE_SIZE = 4096
NEAR_MISS_QUANTILE = 0.95
THRESHOLD_FLOOR = 0.68
# The wording bar: the shop's own phrasings asked leave-one-out are its calibration data. The bar
# is the lowest similarity at which at most WORDING_WRONG_SHARE of the asks at or above it went to
# a wrong entry, counted over at least WORDING_MIN_ASKS asks (fewer: no wording bar; a shop with a
# handful of wordings has not shown that its nearest wording is safe to answer from). Before, the
# bar sat just above the single closest wrong ask: with few wordings nothing had come close yet,
# so it was loose (dev_bakery's curve at half its wordings: wrong_rate 0.024-0.036), and with more
# it only rose.
WORDING_WRONG_SHARE = 0.03
WORDING_MIN_ASKS = 10
# A word of the owner's text counts as evidence for its entry when no other entry's question or
# answer uses it, and it is at least this long ("apple", not "the" or "on").
DISTINCTIVE_LENGTH = 4
# For a shop whose words are stemmed (languages.analysis: a Snowball configuration), a
# distinctive word is a stem of at least this many letters (compared by one more): a stem is
# shorter than its word, and a short one is a question's common verb ("vendez-vous" is `vend`,
# "livrez" `livr`): "vous vendez des vases ?" was answered from the gift-card entry, whose question
# alone says "Vendez-vous". On dev_fr_fleuriste direct 0.232 -> 0.263 and conversations' wrong
# 0.055 -> 0.044 (docs/multilingual.md).
STEMMED_DISTINCTIVE_LENGTH = 5
# A stemmed shop's word of STEMMED_DISTINCTIVE_LENGTH + 1 letters or more is in the FAQ when a word
# of the FAQ starts with the same that many letters (`ShopIndex.knows`, `uses_word`): Snowball
# stems a word whose accents were folded away otherwise than the same word inflected otherwise
# ("dépoussiérez-les" in an answer is `depoussi`, the customer's "depoussierer" `depoussier`). And
# a stem of one or two letters that the stop words left ("ca" for "ça", "ok", "q" for "que") tells
# nothing of a turn's topic: it never makes a turn an unknown one (`unknown_words`). On
# dev_fr_fleuriste's conversations one-click 0.791 -> 0.813 ("ca marche comment ?" after the loyalty
# card, "et pour les depoussierer ?" after dried flowers), dev_de_radladen's single questions 0.922
# -> 0.941; no other figure of any set moved (docs/multilingual.md).
SHORT_STEM = 2
# Words that say when, not what ("elle est prevue pour demain midi" after "je dois annuler une
# commande"): a FAQ rarely writes "tomorrow" or "noon", so such a turn counted as one with a word
# the FAQ never uses and did not follow up; they never make a turn an unknown one
# (`unknown_words`). Per analysis (`languages.Analysis.name`), as written; their words under that
# analysis are what is compared (`when_words`). Measured with a list of modal and light verbs
# too ("peux", "veux", "mettre", "faire"...): no turn of any set moved, so none. On
# dev_fr_fleuriste's conversations one-click 0.813 -> 0.824; no figure of dev_de_radladen,
# dev_es_peluqueria or dev_bakery moved (docs/multilingual.md).
WHEN_WORDS = {
    "simple": "today tomorrow yesterday tonight morning afternoon evening noon now",
    "french+fold": "aujourd'hui demain hier matin midi soir maintenant",
    "spanish+fold": "hoy mañana ayer tarde noche mediodía ahora",
    "german+fold": "heute morgen gestern abend mittag jetzt",
}
_when_words: dict[str, frozenset[str]] = {}


def when_words(analysis: str) -> frozenset[str]:
    """WHEN_WORDS' words under the analysis named `analysis` (none for another), split by
    PostgreSQL once per process."""
    if analysis not in _when_words:
        config, _, fold = analysis.partition("+")
        text = WHEN_WORDS.get(analysis, "")
        words = text_words([text], languages.Analysis(config, fold == "fold"))[0] if text else []
        _when_words[analysis] = frozenset(words)
    return _when_words[analysis]


# PostgreSQL's text-search parser, one array element per occurrence of each lexeme, with the
# shop's analysis (faq/languages.py's `analysis`: a configuration such as 'french', 'simple' for
# English). {config} is the configuration, {text} the text as written; {folded} the text with its
# accents folded (`Analysis.prepare`).
LEXEMES_SQL = (
    "ARRAY(SELECT l.lexeme FROM unnest(to_tsvector({config}, {text})) AS l, "
    "generate_series(1, cardinality(l.positions)) ORDER BY l.lexeme)"
)
# With accents folded, the folded text's lexemes (so "livree" and "livrée", "cumpleanos" and
# "cumpleaños" stem alike), at the positions that are no stop word in the text as written: the
# configurations' stop-word lists are spelt with accents ("été", "für", "más"), which folding
# would otherwise turn into words. Folding never changes how the parser splits words (canonical
# decomposition only), so the two texts' positions correspond.
FOLDED_LEXEMES_SQL = (
    "ARRAY(SELECT l.lexeme FROM unnest(to_tsvector({config}, {folded})) AS l, "
    "unnest(l.positions) AS p WHERE p = ANY(ARRAY(SELECT unnest(o.positions) "
    "FROM unnest(to_tsvector({config}, {text})) AS o)) ORDER BY l.lexeme, p)"
)


def lexemes_sql(analysis: languages.Analysis, config: str, text: str, folded: str) -> str:
    """The SQL expression of a text's words under `analysis`, given the SQL of its configuration
    (a regconfig), of the text and of its folded form (`Analysis.prepare`)."""
    template = FOLDED_LEXEMES_SQL if analysis.fold else LEXEMES_SQL
    return template.format(config=config, text=text, folded=folded)


def _sparse():
    """scipy.sparse, imported on first use: 0.09 s of a process's start-up, and only the
    processes that search or build an index need it (every process imports this module)."""
    from scipy import sparse

    return sparse


class Lexicon:
    """BM25 over the shop's entries, each entry one document (its question and phrasings).

    The BM25 weight of every (word, entry) pair is precomputed into a sparse matrix, so scoring
    many texts at once (calibration probes every phrasing) is one sparse product.
    """

    def __init__(self, documents: list[list[str]]) -> None:
        counts = [Counter(words) for words in documents]
        self.vocabulary: dict[str, int] = {}
        for words in counts:
            for word in words:
                self.vocabulary.setdefault(word, len(self.vocabulary))
        self.size = len(documents)
        lengths = np.array([len(words) for words in documents], dtype=np.float64)
        mean_length = lengths.mean() if self.size and lengths.mean() > 0 else 1.0
        length_norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths / mean_length)
        containing = np.zeros(len(self.vocabulary))
        rows, columns, values = [], [], []
        for number, words in enumerate(counts):
            for word, count in words.items():
                containing[self.vocabulary[word]] += 1
                rows.append(self.vocabulary[word])
                columns.append(number)
                values.append(count * (BM25_K1 + 1) / (count + length_norm[number]))
        self.idf = np.log(1 + (self.size - containing + 0.5) / (containing + 0.5))
        sparse = _sparse()
        saturation = sparse.csr_matrix(
            (values, (rows, columns)), shape=(len(self.vocabulary), self.size)
        )
        self.weights = sparse.csr_matrix(saturation.multiply(self.idf[:, None]))

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The lexicon as plain arrays (for ShopIndex.to_bytes); words joined by NUL, which
        PostgreSQL text never holds."""
        words = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        return {
            f"{prefix}_words": np.frombuffer("\0".join(words).encode(), dtype=np.uint8),
            f"{prefix}_idf": self.idf,
            f"{prefix}_data": self.weights.data,
            f"{prefix}_indices": self.weights.indices,
            f"{prefix}_indptr": self.weights.indptr,
            f"{prefix}_shape": np.array(self.weights.shape),
        }

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> Lexicon:
        lexicon = cls.__new__(cls)
        joined = arrays[f"{prefix}_words"].tobytes().decode()
        words = joined.split("\0") if joined else []
        lexicon.vocabulary = {word: number for number, word in enumerate(words)}
        lexicon.idf = arrays[f"{prefix}_idf"]
        shape = tuple(int(n) for n in arrays[f"{prefix}_shape"])
        lexicon.weights = _sparse().csr_matrix(
            (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
            shape=shape,
        )
        lexicon.size = shape[1]
        return lexicon

    def scores(self, words: list[str]) -> np.ndarray:
        """(entries,) BM25 scores of one text."""
        return self.scores_many([words])[0]

    def scores_many(self, texts: list[list[str]]) -> np.ndarray:
        """(texts, entries) BM25 scores; each distinct word of a text counts once."""
        if len(texts) == 1:
            # A customer's one text: the rows of its words added up directly (in the order the
            # sparse product adds them), without building two sparse matrices a search.
            known = sorted({self.vocabulary[w] for w in texts[0] if w in self.vocabulary})
            segments = [slice(self.weights.indptr[w], self.weights.indptr[w + 1]) for w in known]
            if not segments:
                return np.zeros((1, self.size))
            return np.bincount(
                np.concatenate([self.weights.indices[s] for s in segments]),
                weights=np.concatenate([self.weights.data[s] for s in segments]),
                minlength=self.size,
            )[None, :]
        rows, columns = [], []
        for number, words in enumerate(texts):
            known = {self.vocabulary[w] for w in words if w in self.vocabulary}
            rows += [number] * len(known)
            columns += known
        incidence = _sparse().csr_matrix(
            (np.ones(len(rows)), (rows, columns)), shape=(len(texts), len(self.vocabulary))
        )
        return (incidence @ self.weights).toarray()

    def columns_of(self, number: int) -> np.ndarray:
        """The entry columns whose texts use the word numbered `number` in `vocabulary`."""
        return self.weights.indices[self.weights.indptr[number] : self.weights.indptr[number + 1]]

    def prefix_columns(self, length: int, min_length: int = 0) -> dict[str, set[int]]:
        """The entry columns whose texts use a word, by the word's first `length` characters
        (words shorter than `min_length` left out)."""
        prefixes: dict[str, set[int]] = {}
        for word, number in self.vocabulary.items():
            if len(word) >= min_length:
                prefixes.setdefault(word[:length], set()).update(self.columns_of(number).tolist())
        return prefixes

    def word_weight(self, word: str) -> float:
        """The word's inverse document frequency in this shop (0 for a word it never uses)."""
        number = self.vocabulary.get(word)
        return 0.0 if number is None else float(self.idf[number])


def classifier_weight(model: str) -> float:
    """How much the shop's classifier counts in the ranking with this model's vectors."""
    return E5_CLASSIFIER_WEIGHT if model == embedding.E5 else CLASSIFIER_WEIGHT


def relative(scores: np.ndarray) -> np.ndarray:
    """Scores divided by the best one (rows of a 2-D array each by its own best)."""
    best = scores.max(axis=-1, keepdims=True) if scores.size else scores
    return scores / np.maximum(best, 1e-9)


# Bumped whenever what build_index computes changes (scoring, calibration, the classifier's
# training vectors): an index stored by an earlier version is rebuilt on the next search instead
# of being used with the new scoring.
INDEX_VERSION = 6


@dataclass
class ShopIndex:
    """What search needs beyond the vectors in PostgreSQL, built from the shop's published
    entries only."""

    signature: tuple
    model: str  # faq/embedding.py's MINILM or E5: the vectors it was built from
    entry_ids: np.ndarray  # sorted; column i of everything below is entry_ids[i]
    threshold: float  # the bar on the dense score
    wording_bar: float  # the bar on the nearest phrasing's similarity (inf: no phrasings)
    # The bar on the dense score over the owner's own texts alone (no phrasings): the day-one
    # bar, which accepted wordings never take away (faq/search.py, `_owners_answer`).
    owner_threshold: float
    lexicon: Lexicon  # questions and phrasings
    full_lexicon: Lexicon  # questions, phrasings and answers
    owner_lexicon: Lexicon  # questions and answers only: the owner's own words
    classifier: np.ndarray | None  # (dimensions, entries) ridge weights (None: one entry)
    # The text analysis the lexicons were built with (languages.Analysis.name): a shop whose
    # language changes to one analysed otherwise gets its index built again (`shop_index`).
    analysis: str = "simple"
    # distinctive_entries' word prefixes -> entry columns, made on first use
    _prefix_entries: dict[str, set[int]] | None = field(default=None, repr=False, compare=False)
    # knows' and uses_word's word prefixes (a stemmed shop's) -> entry columns, made on first use
    _prefix_columns: dict[str, set[int]] | None = field(default=None, repr=False, compare=False)

    @property
    def stemmed(self) -> bool:
        """Whether the shop's words are stems (a Snowball configuration, not 'simple')."""
        return self.analysis.split("+")[0] != "simple"

    def distinctive_entries(self, words: list[str]) -> set[int]:
        """The entries (columns) whose question or answer, alone in the shop, uses one of these
        words (of at least DISTINCTIVE_LENGTH characters; STEMMED_DISTINCTIVE_LENGTH for stems):
        "apple" when only the payments answer names Apple Pay. Words are compared by their first
        DISTINCTIVE_LENGTH + 1 characters, so "sundays" in one answer and "sunday" in another
        are no evidence."""
        length = STEMMED_DISTINCTIVE_LENGTH if self.stemmed else DISTINCTIVE_LENGTH
        if self._prefix_entries is None:
            self._prefix_entries = self.owner_lexicon.prefix_columns(length + 1)
        found = set()
        for word in set(words):
            if len(word) < length:
                continue
            columns = self._prefix_entries.get(word[: length + 1], set())
            if len(columns) == 1:
                found |= columns
        return found

    def uses_word(self, entry_id: int, words: list[str]) -> bool:
        """Whether the entry's question, answer or phrasings use one of these words (of at
        least DISTINCTIVE_LENGTH characters), as written; a stemmed shop's long words by their
        first STEMMED_DISTINCTIVE_LENGTH + 1 letters as well (SHORT_STEM's comment)."""
        column = int(np.searchsorted(self.entry_ids, entry_id))
        if column >= len(self.entry_ids) or self.entry_ids[column] != entry_id:
            return False
        lexicon = self.full_lexicon
        for word in set(words):
            number = lexicon.vocabulary.get(word) if len(word) >= DISTINCTIVE_LENGTH else None
            if number is not None and column in lexicon.columns_of(number):
                return True
            if column in self._prefix_columns_of(word):
                return True
        return False

    def knows(self, word: str) -> bool:
        """Whether the shop's FAQ (questions, phrasings, answers) uses the word; a stemmed
        shop's long words by their first STEMMED_DISTINCTIVE_LENGTH + 1 letters as well."""
        return word in self.full_lexicon.vocabulary or bool(self._prefix_columns_of(word))

    def unknown_words(self, words: list[str]) -> list[str]:
        """The words the shop's FAQ does not use (`knows`), but for a stemmed shop's stems of
        SHORT_STEM letters or fewer and words of when (WHEN_WORDS), which tell nothing of a
        text's topic."""
        short = SHORT_STEM if self.stemmed else 0
        when = when_words(self.analysis)
        return [
            word
            for word in words
            if len(word) > short and word not in when and not self.knows(word)
        ]

    def _prefix_columns_of(self, word: str) -> set[int]:
        """The entry columns whose texts (questions, phrasings, answers) use a word starting with
        the first STEMMED_DISTINCTIVE_LENGTH + 1 letters of `word`: none for a shop whose words
        are not stems, or for a shorter word."""
        length = STEMMED_DISTINCTIVE_LENGTH + 1
        if not self.stemmed or len(word) < length:
            return set()
        if self._prefix_columns is None:
            self._prefix_columns = self.full_lexicon.prefix_columns(length, min_length=length)
        return self._prefix_columns.get(word[:length], set())

    def to_bytes(self) -> bytes:
        """The index as an .npz file (plain arrays, no pickle), for the SearchIndex table."""
        arrays = {
            "version": np.array(INDEX_VERSION),
            "signature": np.array(self.signature, dtype=np.int64),
            "model": np.frombuffer(self.model.encode(), dtype=np.uint8),
            "entry_ids": self.entry_ids,
            "threshold": np.array(self.threshold),
            "wording_bar": np.array(self.wording_bar),
            "owner_threshold": np.array(self.owner_threshold),
            "analysis": np.frombuffer(self.analysis.encode(), dtype=np.uint8),
            **self.lexicon.to_arrays("lexicon"),
            **self.full_lexicon.to_arrays("full"),
            **self.owner_lexicon.to_arrays("owner"),
        }
        if self.classifier is not None:
            arrays["classifier"] = self.classifier
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ShopIndex | None:
        """The stored index, or None if an earlier INDEX_VERSION stored it."""
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            if "version" not in arrays.files or int(arrays["version"]) != INDEX_VERSION:
                return None
            return cls(
                signature=tuple(int(n) for n in arrays["signature"]),
                model=arrays["model"].tobytes().decode(),
                entry_ids=arrays["entry_ids"],
                threshold=float(arrays["threshold"]),
                wording_bar=float(arrays["wording_bar"]),
                owner_threshold=float(arrays["owner_threshold"]),
                lexicon=Lexicon.from_arrays(arrays, "lexicon"),
                full_lexicon=Lexicon.from_arrays(arrays, "full"),
                owner_lexicon=Lexicon.from_arrays(arrays, "owner"),
                classifier=arrays["classifier"] if "classifier" in arrays.files else None,
                analysis=arrays["analysis"].tobytes().decode(),
            )


def word_bonus(index: ShopIndex, texts: list[list[str]]) -> np.ndarray:
    """(texts, entries) weighted word-match bonus, each BM25 relative to the text's best entry."""
    parts = []
    for weight, lex in (
        (QUESTION_WORDS_WEIGHT, index.lexicon),
        (
            E5_ALL_WORDS_WEIGHT if index.model == embedding.E5 else ALL_WORDS_WEIGHT,
            index.full_lexicon,
        ),
    ):
        scores = lex.scores_many(texts)
        parts.append(weight * relative(scores))
    return parts[0] + parts[1]


def score_entries(sims: np.ndarray, vec_entry: np.ndarray, n_entries: int) -> np.ndarray:
    """Dense entry scores from vector similarities.

    sims: (queries, vectors) cosine similarities, -inf where a vector is left out.
    vec_entry: (vectors,) the entry number (0..n_entries-1) of each vector.
    Returns (queries, n_entries), -inf for an entry with no usable vector.
    """
    n_queries = sims.shape[0]
    scores = np.full((n_queries, n_entries), -np.inf, dtype=np.float32)
    if sims.shape[1] == 0:
        return scores
    # Per entry, its best vector and its best two, in whole-array operations (a loop over the
    # entries cost a search 2 ms of the GIL at 200 candidates): the columns grouped by entry,
    # each group's maximum, then the maximum again without the group's first best column.
    order = np.argsort(vec_entry, kind="stable")
    grouped = sims[:, order]
    # The groups of the sorted entry numbers (what np.unique's index and counts give, without
    # sorting them again).
    sorted_entries = vec_entry[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_entries[1:] != sorted_entries[:-1])))
    group_entries = sorted_entries[starts]
    sizes = np.diff(np.concatenate((starts, [len(sorted_entries)])))
    best = np.maximum.reduceat(grouped, starts, axis=1)
    is_best = grouped == np.repeat(best, sizes, axis=1)
    seen = np.cumsum(is_best, axis=1)
    before_group = np.repeat(np.where(starts > 0, seen[:, starts - 1], 0), sizes, axis=1)
    first_best = is_best & (seen - before_group == 1)
    second = np.maximum.reduceat(np.where(first_best, -np.inf, grouped), starts, axis=1)
    # An entry with one usable vector: its mean of two is that vector alone.
    mean_two = np.where(np.isfinite(second), (best + second) / 2, best)
    scores[:, group_entries] = (1 - BEST_TWO_MIX) * best + BEST_TWO_MIX * mean_two

    k = min(VOTE_NEIGHBOURS, sims.shape[1])
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    for q in range(n_queries):
        near_sims = sims[q, nearest[q]]
        usable = np.isfinite(near_sims)
        votes = np.bincount(
            vec_entry[nearest[q][usable]],
            weights=np.maximum(near_sims[usable], 0),
            minlength=n_entries,
        )
        if votes.sum() > 0:
            scores[q] += VOTE_WEIGHT * votes / votes.sum()
    return scores


def fit_classifier(
    vectors: np.ndarray, vec_entry: np.ndarray, n_entries: int, with_left_out: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """A ridge-regression classifier (one-hot targets) and, for every training row, its output
    when the row's whole entry is left out of the fit (exact, without refitting; None without
    `with_left_out`)."""
    x = vectors.astype(np.float64)
    targets = np.zeros((len(x), n_entries))
    targets[np.arange(len(x)), vec_entry] = 1.0
    inverse = np.linalg.inv(x.T @ x + CLASSIFIER_RIDGE * np.eye(x.shape[1]))
    weights = inverse @ (x.T @ targets)
    if not with_left_out:
        return weights.astype(np.float32), None
    projected = x @ inverse  # computed once: per entry only small blocks remain
    residuals = targets - x @ weights
    left_out = np.zeros_like(targets)
    order = np.argsort(vec_entry, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(vec_entry[order]) != 0])
    for rows in np.split(order, starts[1:]):
        hat = projected[rows] @ x[rows].T
        residual = residuals[rows]
        # Leave-group-out identity for ridge: y - (I - H)^-1 (y - y_hat).
        left_out[rows] = targets[rows] - np.linalg.solve(np.eye(len(rows)) - hat, residual)
    return weights.astype(np.float32), left_out


def build_index(
    signature: tuple,
    entry_ids: list[int],
    kinds: list[str],
    vectors: np.ndarray,
    words: list[list[str]],
    model: str | None = None,
    analysis: str = "simple",
    probes: np.ndarray | None = None,
) -> ShopIndex:
    """The shop's index from its published vectors of one model (one row per vector: its entry
    id, kind, vector and words, split by the text analysis named `analysis`), including the two
    bars of the confidence policy (faq/search.py's docstring), on the scale of
    `embedding.similarity`. `probes`: the vector each row is asked with as a pretend question
    for the bar (`question_probes`), the row's own vector without."""
    model = model or embedding.default_model()
    probes = vectors if probes is None else probes
    unique_ids, vec_entry = np.unique(np.array(entry_ids, dtype=np.int64), return_inverse=True)
    n_entries = len(unique_ids)
    kinds_arr = np.array(kinds)
    searchable = np.isin(kinds_arr, [FAQVector.QUESTION, FAQVector.ALTERNATIVE])
    documents: list[list[str]] = [[] for _ in range(n_entries)]
    for row in np.flatnonzero(searchable):
        documents[vec_entry[row]] += words[row]
    # The question + answer text stands for the question and the whole answer.
    full_documents: list[list[str]] = [[] for _ in range(n_entries)]
    for row in np.flatnonzero(
        np.isin(kinds_arr, [FAQVector.QUESTION_ANSWER, FAQVector.ALTERNATIVE])
    ):
        full_documents[vec_entry[row]] += words[row]
    owner_documents: list[list[str]] = [[] for _ in range(n_entries)]
    for row in np.flatnonzero(kinds_arr == FAQVector.QUESTION_ANSWER):
        owner_documents[vec_entry[row]] += words[row]
    lexicon, full_lexicon = Lexicon(documents), Lexicon(full_documents)

    classifier = None
    training = np.flatnonzero(np.isin(kinds_arr, CLASSIFIER_KINDS))
    if n_entries >= 2 and len(training):
        classifier, _ = fit_classifier(
            vectors[training], vec_entry[training], n_entries, with_left_out=False
        )
    bar_inputs = (vectors, probes, vec_entry, n_entries, kinds_arr)
    threshold = _near_miss_bar(*bar_inputs, np.ones(len(kinds_arr), dtype=bool), model)
    owner_threshold = _near_miss_bar(*bar_inputs, kinds_arr != FAQVector.ALTERNATIVE, model)
    wording_bar = np.inf
    if n_entries >= 2:
        wording_bar = _wording_bar(vectors, vec_entry, kinds_arr)
    return ShopIndex(
        signature=signature,
        model=model,
        entry_ids=unique_ids,
        threshold=threshold,
        wording_bar=wording_bar,
        owner_threshold=owner_threshold,
        lexicon=lexicon,
        full_lexicon=full_lexicon,
        owner_lexicon=Lexicon(owner_documents),
        classifier=classifier,
        analysis=analysis,
    )


def _near_miss_bar(
    vectors: np.ndarray,
    asked: np.ndarray,
    vec_entry: np.ndarray,
    n_entries: int,
    kinds: np.ndarray,
    used: np.ndarray,
    model: str,
) -> float:
    """The bar on the dense score over the `used` vectors: each of their questions and phrasings
    (PROBE_KINDS) asked as a pretend question (its row of `asked`: `question_probes`) with its
    whole entry left out; the best score it still gets is a near miss, and the bar sits above
    NEAR_MISS_QUANTILE of them, never below THRESHOLD_FLOOR."""
    rows = np.flatnonzero(used)
    probes = np.flatnonzero(used & np.isin(kinds, PROBE_KINDS))
    if n_entries < 2 or not len(probes):
        return THRESHOLD_FLOOR
    sims = embedding.similarity(model, asked[probes] @ vectors[rows].T)
    sims = discount_phrasings(model, sims, kinds[rows][None, :])
    # Leave the probe's whole entry out: what remains is a near miss, not an answer.
    sims[vec_entry[rows][None, :] == vec_entry[probes][:, None]] = -np.inf
    best = score_entries(sims, vec_entry[rows], n_entries).max(axis=1)
    best = best[np.isfinite(best)]
    if not len(best):
        return THRESHOLD_FLOOR
    return max(float(np.quantile(best, NEAR_MISS_QUANTILE)), THRESHOLD_FLOOR)


def _wording_bar(vectors: np.ndarray, vec_entry: np.ndarray, kinds: np.ndarray) -> float:
    """The similarity above which a question's nearest phrasing names its entry, calibrated by
    leave-one-out over the shop's phrasings (the owner's and the accepted customer wordings).

    Each phrasing is asked twice: with only itself left out (an answerable question: right when
    its nearest phrasing is of its own entry) and with its whole entry left out (a question the
    shop does not answer: its nearest text of another entry, of any kind, is a wrong match). The
    bar is the lowest similarity at which, of the asks at or above it, at most WORDING_WRONG_SHARE
    went to a wrong entry, and there are at least WORDING_MIN_ASKS of them: the loosest bar the
    shop's own wordings show to be safe. inf without enough phrasings (nothing to calibrate on)."""
    rows = np.flatnonzero(kinds == FAQVector.ALTERNATIVE)
    if not len(rows) or len(np.unique(vec_entry)) < 2:
        return float("inf")
    is_phrasing = kinds == FAQVector.ALTERNATIVE
    sims = vectors[rows] @ vectors.T
    sims[np.arange(len(rows)), rows] = -np.inf
    events = []  # (similarity, wrong) of each ask whose nearest vector is a phrasing
    for masked in (False, True):
        if masked:
            sims[vec_entry[None, :] == vec_entry[rows][:, None]] = -np.inf
        nearest = sims.argmax(axis=1)
        similarity = sims[np.arange(len(rows)), nearest]
        # Unanswerable asks count whatever their nearest vector: a customer's question that is
        # this close to any text of another entry must not be taken for a phrasing's.
        fires = np.isfinite(similarity) & (masked | is_phrasing[nearest])
        wrong = vec_entry[nearest] != vec_entry[rows]
        events += list(zip(similarity[fires], wrong[fires], strict=True))
    if not events:
        return float("inf")
    # Most similar first; ties broken wrong-first, so a bar never sits inside a tie it cannot keep.
    events.sort(key=lambda event: (-event[0], not event[1]))
    similarity = np.array([sim for sim, _ in events], dtype=np.float64)
    wrong = np.cumsum([bool(w) for _, w in events])
    asks = np.arange(1, len(events) + 1)
    # A bar at events[i] answers every ask down to the last one of that similarity.
    last_of_tie = np.r_[similarity[1:] != similarity[:-1], True]
    safe = last_of_tie & (asks >= WORDING_MIN_ASKS) & (wrong <= WORDING_WRONG_SHARE * asks)
    if not safe.any():
        return float("inf")
    return float(similarity[np.flatnonzero(safe)[-1]])


@dataclass
class WordingCheck:
    """What accepting a wording as a phrasing of an entry would do (for the owner's pages)."""

    entry: FAQEntry
    pulls: FAQEntry | None  # another entry the wording sits closer to: accepting it is a conflict
    own_similarity: float  # to the nearest of the entry's own texts
    other_similarity: float  # to the nearest text of any other published entry

    @property
    def effect(self) -> str:
        """One line for the owner: what accepting changes."""
        if self.pulls is None:
            return (
                f'Customers asking like this will be matched to "{self.entry.question}" and, '
                "when they ask this closely, answered with it directly."
            )
        return (
            f'This wording is closer to "{self.pulls.question}" than to "{self.entry.question}": '
            "accepted, it would pull that entry's questions here and risk wrong answers."
        )


def check_wording(entry: FAQEntry, text: str) -> WordingCheck:
    """Whether `text`, accepted as a phrasing of `entry`, would pull another entry's questions:
    it sits closer to another published entry's texts (question, answer, phrasings, accepted
    wordings) than to the entry's own. Embeds the text (the model, not a search)."""
    model = embedding.shop_models(entry.shop.language)[0]
    vector = embedding.embed_one(" ".join(text.split()), model)
    rows = list(
        FAQVector.objects.filter(
            shop_id=entry.shop_id,
            model_name=embedding.model_name(model),
            entry__shop_id=entry.shop_id,
        )
        .filter(models.Q(entry__published=True) | models.Q(entry_id=entry.pk))
        .values_list("entry_id", "embedding")
    )
    best: dict[int, float] = {}
    for entry_id, stored in rows:
        similarity = float(np.dot(np.asarray(stored, dtype=np.float32), vector))
        best[entry_id] = max(similarity, best.get(entry_id, -1.0))
    own = best.pop(entry.pk, -1.0)
    other_id = max(best, key=best.__getitem__, default=None)
    other = best.get(other_id, -1.0)
    pulls = FAQEntry.objects.get(pk=other_id) if other_id is not None and other > own else None
    return WordingCheck(entry=entry, pulls=pulls, own_similarity=own, other_similarity=other)


class IndexCache:
    """The shop indexes one process holds, at most `size` (RETRIEVAL_CACHE_SHOPS) shops' and
    models': the least recently used is dropped first, and loaded again from the database when
    next searched."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._indexes: OrderedDict[tuple[int, str], ShopIndex] = OrderedDict()
        self._lock = threading.Lock()  # searches run on many threads

    def get(self, shop_id: int, signature: tuple, model: str | None = None) -> ShopIndex | None:
        key = (shop_id, model or embedding.default_model())
        with self._lock:
            index = self._indexes.get(key)
            if index is None or index.signature != signature:
                return None
            self._indexes.move_to_end(key)
            return index

    def put(self, shop_id: int, index: ShopIndex) -> None:
        key = (shop_id, index.model)
        with self._lock:
            self._indexes[key] = index
            self._indexes.move_to_end(key)
            while len(self._indexes) > self.size:
                self._indexes.popitem(last=False)

    def __contains__(self, shop_id: int) -> bool:
        return any(key[0] == shop_id for key in list(self._indexes))

    def __len__(self) -> int:
        return len(self._indexes)

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()


cache = IndexCache(settings.RETRIEVAL_CACHE_SHOPS)


def shop_index(shop: Shop, signature: tuple, model: str | None = None) -> ShopIndex:
    """The shop's index for this signature of its published vectors of `model` (the shop's own
    by default): from this process's cache, else the one stored when its entries last changed
    (one query), else built now (and stored)."""
    model = model or embedding.shop_models(shop.language)[0]
    analysis = languages.analysis(shop.language).name
    index = cache.get(shop.pk, signature, model)
    if index is not None and index.analysis == analysis:
        return index
    stored = (
        SearchIndex.objects.filter(
            shop_id=shop.pk,
            model_name=embedding.model_name(model),
            vector_count=signature[0],
            vector_id_sum=signature[1],
        )
        .values_list("data", flat=True)
        .first()
    )
    if stored is None and jobs.waiting("faq.reindex", shop_id=shop.pk).exists():
        # Entries were deleted or hidden and the worker has not rebuilt the index yet: answer
        # from the last one until it is in (search drops the entries it no longer finds).
        stored = (
            SearchIndex.objects.filter(shop_id=shop.pk, model_name=embedding.model_name(model))
            .values_list("data", flat=True)
            .first()
        )
        last = ShopIndex.from_bytes(bytes(stored)) if stored is not None else None
        if last is not None and last.analysis == analysis:
            return last
    # Built here only when nothing stored matches: e.g. a migration or a bulk update changed the
    # vectors without going through faq/indexing.py.
    index = ShopIndex.from_bytes(bytes(stored)) if stored is not None else None
    if index is None or index.analysis != analysis:  # built before the shop's language changed
        index = update_index(shop.pk, model)
    cache.put(shop.pk, index)
    return index


def update_index(shop_id: int, model: str | None = None) -> ShopIndex:
    """Build the shop's index of `model` (its own by default) from its published vectors now,
    store it for every process, and keep it in this one's cache. faq/indexing.py calls it after
    each change to entries commits, so the customer who asks next does not wait for it."""
    model = model or _own_model(shop_id)
    language = Shop.objects.filter(pk=shop_id).values_list("language", flat=True).first()
    analysis = languages.analysis(language or settings.LANGUAGE_CODE)
    rows = list(
        published_vectors(shop_id, model)
        .order_by("id")
        .values_list("id", "entry_id", "kind", "text", "embedding")
    )
    # The signature search reads from the same rows (count and sum of ids, see faq/search.py).
    signature = (len(rows), sum(row[0] for row in rows))
    vectors = np.array([row[4] for row in rows], dtype=np.float32)
    if not rows:
        vectors = np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    # Words of the texts BM25 counts (the sentences are in the question + answer text already).
    counted = (FAQVector.QUESTION, FAQVector.ALTERNATIVE, FAQVector.QUESTION_ANSWER)
    words = text_words([row[3] if row[2] in counted else "" for row in rows], analysis)
    index = build_index(
        signature,
        [r[1] for r in rows],
        [r[2] for r in rows],
        vectors,
        words,
        model,
        analysis.name,
        question_probes(model, vectors, [(r[2], r[3]) for r in rows]),
    )
    SearchIndex.objects.update_or_create(
        shop_id=shop_id,
        model_name=embedding.model_name(model),
        defaults={
            "vector_count": signature[0],
            "vector_id_sum": signature[1],
            "data": index.to_bytes(),
        },
    )
    cache.put(shop_id, index)
    return index


_probe_cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_probe_lock = threading.Lock()


def question_probes(
    model: str, vectors: np.ndarray, rows: list[tuple[str, str]]
) -> np.ndarray | None:
    """The vector each row (kind, text) is asked with as a pretend question for the bar, with a
    model of QUESTION_PROBE_MODELS: each question embedded as a customer's question; the row's
    own vector for the rest (phrasings are embedded so already). None for other models."""
    if model not in QUESTION_PROBE_MODELS:
        return None
    asked = [n for n, (kind, _) in enumerate(rows) if kind == FAQVector.QUESTION]
    texts = [rows[n][1] for n in asked]
    with _probe_lock:
        found = {t: _probe_cache[(model, t)] for t in texts if (model, t) in _probe_cache}
    missing = [t for t in dict.fromkeys(texts) if t not in found]
    if missing:
        found |= dict(zip(missing, embedding.embed_questions(missing, model), strict=True))
    with _probe_lock:
        for text in dict.fromkeys(texts):
            _probe_cache[(model, text)] = found[text]
            _probe_cache.move_to_end((model, text))
        while len(_probe_cache) > PROBE_CACHE_SIZE:
            _probe_cache.popitem(last=False)
    probes = vectors.copy()
    for n, text in zip(asked, texts, strict=True):
        probes[n] = found[text]
    return probes


def update_index_if_changed(shop_id: int) -> None:
    """update_index for each of the shop's models, unless the stored index already matches the
    shop's published vectors (a change of category only, or the second of several deletes in
    one transaction)."""
    language = Shop.objects.filter(pk=shop_id).values_list("language", flat=True).first()
    if language is None:
        return  # the shop itself was deleted (its entries' deletes called this)
    models = embedding.shop_models(language)
    # Indexes of models the shop no longer uses (its language changed).
    SearchIndex.objects.filter(shop_id=shop_id).exclude(
        model_name__in=[embedding.model_name(m) for m in models]
    ).delete()
    for model in models:
        signature = published_signature(shop_id, model)
        if not SearchIndex.objects.filter(
            shop_id=shop_id,
            model_name=embedding.model_name(model),
            vector_count=signature[0],
            vector_id_sum=signature[1],
        ).exists():
            update_index(shop_id, model)


def _own_model(shop_id: int) -> str:
    language = Shop.objects.filter(pk=shop_id).values_list("language", flat=True).first()
    return embedding.shop_models(language or settings.LANGUAGE_CODE)[0]


def published_signature(shop_id: int, model: str | None = None) -> tuple[int, int]:
    """(count, sum of ids) of the shop's published vectors of `model` (its own by default): the
    same as search's window totals."""
    totals = published_vectors(shop_id, model).aggregate(count=Count("id"), id_sum=Sum("id"))
    return totals["count"], totals["id_sum"] or 0


def text_words(texts: list[str], analysis: languages.Analysis | None = None) -> list[list[str]]:
    """The words of each text, split by PostgreSQL's text-search parser with `analysis` (the
    shop's: `languages.analysis`; 'simple' without), in one query."""
    if not texts:
        return []
    analysis = analysis or languages.Analysis()
    words = lexemes_sql(analysis, "%(config)s::regconfig", "t.text", "t.folded")
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT {words}
            FROM unnest(%(texts)s::text[], %(folded)s::text[]) WITH ORDINALITY
                 AS t(text, folded, n)
            ORDER BY t.n
            """,
            {
                "config": analysis.config,
                "texts": texts,
                "folded": [analysis.prepare(text) for text in texts],
            },
        )
        return [row[0] for row in cursor.fetchall()]


def published_vectors(shop_id: int, model: str | None = None):
    # Both shop ids (equal by a foreign key): each table is then read through its shop index.
    return FAQVector.objects.filter(
        shop_id=shop_id,
        entry__shop_id=shop_id,
        entry__published=True,
        model_name=embedding.model_name(model or _own_model(shop_id)),
    )
