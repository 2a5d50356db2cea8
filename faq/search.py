"""
Search: which published FAQ entries of a shop answer a customer's text, and how sure we are.

`search(shop, text, limit, context)` is the one entry point; the chat, the owner's pages and
`manage.py eval_retrieval` all call it. It is synchronous (embedding and SQL): async callers wrap
it in sync_to_async. It reads the shop's vectors from PostgreSQL and everything else from the
shop's index (faq/search_index.py: word statistics, classifier, threshold), built when the
entries change.

How an entry is ranked (measured on the public sets in ../shared/eval, see
docs/retrieval-research.md):
- Dense: each entry has several vectors (its question, question + answer, each alternative
  phrasing, and the question with each answer sentence, so a fact inside a long answer is found).
  PostgreSQL (pgvector) returns the shop's vectors nearest to the query. An entry scores
  0.4 * its best vector + 0.6 * the mean of its best two, plus a small vote (0.1 * share) among
  the query's ten nearest vectors.
- Classifier, for every shop: a ridge-regression classifier fitted on the shop's own vectors that
  each stand for one question of an entry (the question, each phrasing, the question with each
  answer sentence; closed form: 0.1 s for 1,000 entries) adds 0.25 * its output (0.2 with
  multilingual-e5-small's vectors: search_index.E5_CLASSIFIER_WEIGHT). It learns where
  one entry ends and the next begins, which plain nearest-vector matching blurs: in a COVID FAQ
  "coronavirus" is in every entry and "where ... from" in one.
- Words: BM25 with PostgreSQL's text-search parser, by the shop's language
  (faq/languages.py's `analysis`): English 'simple' (lower-cased words, no stemming, no stop
  words); French, Spanish, German, Portuguese, Italian and Dutch their Snowball configuration
  (stemming, stop words) over the text with its accents folded. Each divided by the query's best
  entry: 0.05 * BM25 over each entry's question and phrasings (question words stay: "where did it
  come from" and "what is it" differ only in them) + 0.1 * BM25 over question, phrasings and
  answer (customers of a small shop rarely share words with its questions, but often with its
  answers); 0.2 for the latter with multilingual-e5-small's vectors (a shop in another language).
- With multilingual-e5-small's vectors a phrasing's similarity counts 0.2 less (on the common
  scale: search_index.PHRASING_DISCOUNT): e5 puts a question near every wording in its own
  language, whatever it asks, so a shop's accepted wordings pulled its next customers' questions
  towards other entries.
The classifier and the words only rank. The same weights hold for every shop, whatever it has
learned: nothing switches at a number of phrasings.

How confidence is decided: one policy for every shop, whatever it has learned, on the dense score
only (nothing calibrates the classifier or the word bonus for a question the shop has never seen,
and any shared word would earn the bonus for an off-topic question). Calibrated per shop, from
the shop's own texts, never from customer queries (faq/search_index.py):
- Lead: the best entry must lead every other candidate by 0.03 (two close entries, "custom
  cakes" and "wedding cakes", are a "did you mean", not a guess).
- Then any one of four kinds of evidence makes it confident:
  1. The bar: each question and phrasing (the owner's, and every accepted customer wording) is
     asked as a pretend question with its whole entry left out; the best score it still gets is
     what an on-topic question the FAQ does not answer looks like for this shop. The bar sits
     above 95 % of those near misses, never below 0.68. Accepted wordings join the probes, so a
     shop whose entries grow alike raises its own bar.
  2. A phrasing: the question's nearest vector is a phrasing of the best entry, at least as
     close as the wording bar. The shop's phrasings (accepted wordings are real customers'
     questions) are its calibration data: each is asked with only itself left out (right when
     its nearest phrasing is its own entry's) and with its whole entry left out (any match is
     wrong); the wording bar is the loosest similarity at which at most 3 % of the asks at or
     above it went wrong, over at least 10 asks. Fewer (a shop with a handful of wordings), or
     none: no wording bar.
  3. A distinctive word: a word of the question (four letters or more, compared by its first
     five) that only the best entry's question or answer uses ("apple" when the payments answer
     alone names Apple Pay), with the dense score within 0.20 of the bar.
  4. The owner's texts: on the dense score over the entries' questions, answers and sentences
     alone (no phrasings), an entry leads by the same 0.03 and clears the bar calibrated on those
     texts alone (the shop's day-one bar), and it is still the best on the full dense score. A
     shop without phrasings gains nothing here (that is 1.); a shop that learns keeps every
     answer its owner's texts gave while that entry still scores best: accepted wordings add
     answers, they do not take one away by crowding its lead or lifting the bar.
- A question in another language than the FAQ's (docs/multilingual.md): routed to e5, it is
  matched on the FAQ's own texts only, no phrasings and no word bonus (e5 puts a text near every
  wording in its own language, whatever it asks); and when the detector reads it as another
  language at all, a phrasing (2.) is no evidence.
- A phrasing (2.) is no evidence with e5's vectors either (a shop in another language than
  English): on dev_fr_fleuriste's learning curve it let wrong answers through as wordings were
  accepted (wrong_rate 0 -> 0.103 -> 0.044, one seed); without it 0 -> 0 -> 0.
- Follow-ups: a turn that is not confident alone is searched again with the previous question;
  the blend may rank the previous topic first, but it is confident only when the turn alone
  scores that entry within 0.25 of the bar, or every word of the turn is in the shop's FAQ
  (search_index.ShopIndex.unknown_words: a stemmed shop's stems of one or two letters and words
  of when such as "demain" or "tomorrow" aside, its long ones compared by their start).
  With multilingual-e5-small's vectors a turn confident alone is also judged so when the search
  with the previous question ranks another entry first (FOLLOW_UP_AGREEMENT); when the search
  with the question before that one ranks another entry first, it gets "did you mean" from the
  blend with that earlier question (FOLLOW_UP_AGREEMENT_EARLIER).
- "Did you mean": when not confident, up to three of the five best hits within 0.3 of the bar
  (0.32 for a question routed cross-lingually, which shares no word with the FAQ),
  or within 0.4 when the entry's texts use a word of the question, and when any is offered, the
  best-ranked hit first if its entry's texts use a word of the question (TOP_WORD_SUGGESTION);
  none for off-topic text far from every entry that shares no word with it (issue 29: the
  fallback and the contact route, not unrelated entries). A turn searched with the previous
  question that does not follow up (a word the FAQ never uses) is offered only entries it would
  be offered alone, so an off-topic turn after a topic gets the reply it gets alone, never "did
  you mean <the previous topic>"; but when it is offered anything, the blend's best-ranked hit
  comes first if its entry's texts use a word of the turn, in a shop whose words are stems
  (FOLLOW_UP_TOP_WORD). A turn whose language is not sure is routed as the previous question
  and the turn read together (FOLLOW_UP_ROUTE: "c combien" after a French question to an
  English shop goes to e5); "alone" is then the turn searched with that route, so a terse
  thanks in such a conversation may be offered what that model offers it alone.
Search reads the signature of the shop's published vectors with its nearest vectors, so a process
notices another's edit and loads (or builds) the current index; and the version of each candidate
entry's row, so the hits' entries come from the process's cache when unchanged, with no statement
of their own (`_entries`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from faq import embedding, languages, search_index
from faq.models import FAQEntry, FAQVector, Shop
from faq.search_index import (
    ShopIndex,
    lexemes_sql,
    score_entries,
    shop_index,
    word_bonus,
)
from lib.internals import loaded_copy, prepared_models, vector_cursor

# Nearest vectors fetched per query. Entries outside them cannot reach the top anyway.
CANDIDATES = 200

# The best entry must lead the next by this much (dense score) to be confident.
CONFIDENCE_GAP = 0.03

# Follow-ups: wider lists for the merge, so an entry near the top of one list has a score in both;
# how much the search with the previous question counts (a terse follow-up carries little meaning).
FOLLOW_UP_LIMIT = 10
CONTEXT_WEIGHT = 0.65
# A blended answer is confident only if the turn alone scores the entry within this of the bar,
# or (FOLLOW_UP_KNOWN_WORDS) every word of the turn is one the shop's FAQ uses.
FOLLOW_UP_MARGIN = 0.25
FOLLOW_UP_KNOWN_WORDS = True
# With these models' vectors a turn that follows another is answered on its own only when the
# search with the previous question ranks the same entry first; otherwise it is judged as a
# follow-up (the blend below). multilingual-e5-small scores a terse turn high on whatever entry
# shares its one word ("et le dimanche ?" after "horaires du samedi ?": the Sunday-delivery
# entry): on dev_fr_fleuriste's conversations wrong 0.077 -> 0.044, one-click 0.758 -> 0.780.
# Not all-MiniLM-L6-v2's: on dev_bakery's it turned two right answers into suggestions for one
# wrong one (docs/multilingual.md).
FOLLOW_UP_AGREEMENT = frozenset({embedding.E5})
# ... and, with a turn before that one, the search with that earlier question must rank the same
# entry first too, or the turn gets "did you mean" (from the blend with that earlier question,
# never confident): a customer's topic often sits two turns back ("vous avez une carte de fidelite
# ?", "ca marche comment ?", "et avec les commandes sur le site ?" is the loyalty card's, not the
# online-order entry's). On dev_fr_fleuriste's conversations wrong 0.044 -> 0.022, one-click
# 0.769 -> 0.791; nothing else moved (docs/multilingual.md).
FOLLOW_UP_AGREEMENT_EARLIER = True
# A terse turn's language is seldom sure ("c combien", "vcs entregam?"): one the detector is not
# sure of is searched with the model the previous question and the turn read together are routed
# to, so a French conversation with an English shop stays on e5 (`_route`). dev_bakery_xling's
# conversations one-click 0.643 -> 0.714; no other set's figure moved (docs/multilingual.md).
FOLLOW_UP_ROUTE = True
# A turn that does not follow up (a word the FAQ never uses) is offered only what it is offered
# alone, but for the blend's best-ranked hit when that entry's texts use a word of the turn: it is
# then offered first (TOP_WORD_SUGGESTION), as the turn alone's best-ranked hit is. "tiene algun
# coste?" after "quiero cambiar mi cita del jueves" ("algun" is in no Spanish stop list): the
# blend ranks the cancelling entry first, whose answer says "coste", 0.406 below the bar alone.
# dev_es_peluqueria's conversations one-click 0.846 -> 0.923; no other figure moved. Only in a
# shop whose words are stems (stop words dropped): in an English shop "your" or "what" would do
# (dev_bakery's 0.894 -> 0.904 given up; docs/multilingual.md, "The conversation's language and
# the blend's best").
FOLLOW_UP_TOP_WORD = True

# "Did you mean": at most this many entries (Margins says how near the bar), from the best few
# hits (an implausible third hit leaves its place to the fourth or fifth).
SUGGESTIONS = 3
SUGGESTION_POOL = 5
# ... and when any is offered, the best-ranked hit is offered first if its entry's texts use a
# word of the question, however far below the bar its dense score is: the ranking (classifier and
# words) put it first, the dense margins left it out. "les roses sont arrivees toutes abimees"
# ranks the complaints entry ("Que faire si mes fleurs arrivent abîmées ...") first, 0.404 below
# e5's bar, and was offered the Saint-Valentin and funeral entries instead. Whether anything is
# offered does not change, so off-topic questions are offered nothing as before. One-click:
# dev_fr_fleuriste 0.898 -> 0.906, hint3_sofmattress 0.914 -> 0.919, hint3_curekart 0.927 ->
# 0.929; no other figure moved (docs/multilingual.md).
TOP_WORD_SUGGESTION = True


@dataclass(frozen=True)
class Margins:
    """The policy's distances below the shop's bar, on all-MiniLM-L6-v2's scale, which every
    model's similarities are put on (`embedding.similarity`); the bar and the wording bar
    calibrate themselves on the shop's texts, these do not."""

    # A word only the best entry's question or answer uses lowers its bar by this much.
    distinctive: float
    # "Did you mean" offers a hit this near the bar, or `suggestion_word` near when the entry's
    # texts use a word of the question (DISTINCTIVE_LENGTH letters or more). Off-topic text far
    # from every entry that shares no word with it ("can you fix my bike") gets none.
    suggestion: float
    suggestion_word: float


# docs/retrieval.md has the measurements.
MARGINS = Margins(distinctive=0.2, suggestion=0.3, suggestion_word=0.4)
# A question routed cross-lingually (embedding.Route.cross_lingual: a Spanish question to an
# English FAQ) shares no word with the entries, so it can never earn `suggestion_word`: it is
# offered hits this near the bar. On eval/dev_bakery_xling.json one-click 0.784 -> 0.814, for
# off-topic questions offered "did you mean" more often (no suggestion 0.46 -> 0.29);
# docs/multilingual.md. It was 0.35 below e5's bar when that bar was calibrated on passages; with
# the bar calibrated on questions (search_index.QUESTION_PROBE_MODELS, 0.07 lower on dev_bakery),
# the narrowest margin that keeps that set's one-click (0.814) is 0.32 (0.31: 0.808).
CROSS_LINGUAL_SUGGESTION = 0.32


@dataclass
class Hit:
    entry: FAQEntry
    score: float  # what the hits are ranked by
    confidence: float | None = None  # what is compared with the threshold (the score by default)

    def __post_init__(self) -> None:
        if self.confidence is None:
            self.confidence = self.score


@dataclass
class SearchResult:
    hits: list[Hit] = field(default_factory=list)
    confident: bool = False
    threshold: float | None = None
    # When not confident: at most SUGGESTIONS entries plausibly related to the text ("did you
    # mean"), best first; empty when confident or when the text is plainly off-topic.
    suggestions: list[Hit] = field(default_factory=list)

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None


def search(shop: Shop, text: str, limit: int = 5, context: list[str] | None = None) -> SearchResult:
    """The shop's published entries best matching `text`, best first, whether the best one is
    good enough to answer with, and "did you mean" suggestions when it is not.

    `context`: the customer's earlier questions in the conversation, oldest first. A follow-up
    ("and on Sundays?") is answered in their light; a turn that stands on its own never borrows
    their confidence.
    """
    route = _route(text, shop.language, context or [])
    alone = _search(shop, text, max(limit, FOLLOW_UP_LIMIT), route)
    result, plausible = _with_context(shop, text, limit, context or [], alone)
    if not result.confident:
        result.suggestions = _suggestions(alone, result, plausible)
    return result


def _route(text: str, shop_language: str, context: list[str]) -> embedding.Route:
    """The model a turn is searched with: its own language's (`embedding.question_route`), or,
    when the detector is not sure of the turn's language and a question comes before it, the
    language of that question and the turn read together (FOLLOW_UP_ROUTE)."""
    if FOLLOW_UP_ROUTE and context and not languages.sure_language(text, languages.SURE):
        return embedding.question_route(f"{context[-1]}\n{text}", shop_language)
    return embedding.question_route(text, shop_language)


# Whether a hit may be offered as "did you mean" (`as_first`: as the best-ranked hit offered first).
Plausible = Callable[..., bool]


def _anything(hit: Hit, as_first: bool = False) -> bool:
    return True


def _suggestions(alone: _Scored, result: SearchResult, plausible: Plausible) -> list[Hit]:
    """The "did you mean" offers: of the best few hits, those plausibly related (`_related`),
    best first; and when any is offered, the best-ranked hit first if its entry's texts use a
    word of the question (TOP_WORD_SUGGESTION)."""
    offered = [
        hit
        for hit in result.hits[:SUGGESTION_POOL]
        if _related(alone, hit, result.threshold) and plausible(hit)
    ][:SUGGESTIONS]
    if not TOP_WORD_SUGGESTION or not offered:  # offered ones are hits: there is a first
        return offered
    top = result.hits[0]
    if (
        top.entry.pk not in {hit.entry.pk for hit in offered}
        and plausible(top, as_first=True)
        and alone.index is not None
        and alone.index.uses_word(top.entry.pk, alone.words)
    ):
        offered = [top, *offered][:SUGGESTIONS]
    return offered


def _related(alone: _Scored, hit: Hit, threshold: float) -> bool:
    """Whether a hit is plausibly what the customer meant: near the bar, or a little less near
    when the entry's texts use one of the question's words (Margins)."""
    margin = MARGINS
    if hit.confidence >= threshold - margin.suggestion:
        return True
    if (
        alone.route is not None
        and alone.route.cross_lingual
        and hit.confidence >= threshold - CROSS_LINGUAL_SUGGESTION
    ):
        return True
    return (
        hit.confidence >= threshold - margin.suggestion_word
        and alone.index is not None
        and alone.index.uses_word(hit.entry.pk, alone.words)
    )


@dataclass
class _Scored:
    """One text searched alone: the result, and what the follow-up rules need beyond it."""

    result: SearchResult
    confidence: dict[int, float] = field(default_factory=dict)  # every candidate entry's
    words: list[str] = field(default_factory=list)
    index: ShopIndex | None = None
    route: embedding.Route | None = None  # the model the text was searched with

    def near_bar(self, pk: int, margin: float) -> bool:
        """Whether this text alone scores the entry within `margin` of the shop's bar."""
        threshold = self.result.threshold
        return threshold is not None and self.confidence.get(pk, -np.inf) >= threshold - margin

    def all_words_known(self) -> bool:
        """Every word of the text is in the shop's FAQ (questions, phrasings, answers; a stemmed
        shop's stems of one or two letters and words of when aside, and its long ones compared by
        their start: `ShopIndex.unknown_words`), and there is one."""
        if self.index is None or not self.words:
            return False
        return not self.index.unknown_words(self.words) and any(
            self.index.knows(word) for word in self.words
        )


def _with_context(
    shop: Shop, text: str, limit: int, context: list[str], alone: _Scored
) -> tuple[SearchResult, Plausible]:
    """Retrieval for `text`, helped by the latest earlier question if the text alone is not
    confident (or, with a model of FOLLOW_UP_AGREEMENT, if the search with that question ranks
    another entry first; or, with FOLLOW_UP_AGREEMENT_EARLIER, by the question before it, never
    confidently, if the search with that one does); and which hits are plausible as suggestions.

    The blended search may rank the previous topic first, but it is confident only when the
    turn itself points there: the turn alone scores that entry within FOLLOW_UP_MARGIN of the
    bar, or every word of the turn is one the shop's FAQ uses ("and on sundays?", "how much is
    that?"). "Who is the president" after a question about hours stays unconfident, and unless
    the turn follows up it is offered only entries it is offered alone.
    """
    previous = context[-1] if context else None
    first = alone.result
    agreement = alone.route is not None and alone.route.model in FOLLOW_UP_AGREEMENT
    if not previous or not first.hits or (first.confident and not agreement):
        return replace(first, hits=first.hits[:limit]), _anything
    # With the turn's own model: the blend compares scores of one index.
    joined = _search(shop, f"{previous}\n{text}", max(limit, FOLLOW_UP_LIMIT), alone.route).result
    agrees = (
        first.confident and bool(joined.hits) and joined.hits[0].entry.pk == first.hits[0].entry.pk
    )
    disagrees_earlier = False
    if agrees and FOLLOW_UP_AGREEMENT_EARLIER and len(context) >= 2:
        # The question before the previous one must point the same way too.
        earlier = _search(
            shop, f"{context[-2]}\n{text}", max(limit, FOLLOW_UP_LIMIT), alone.route
        ).result
        disagrees_earlier = (
            bool(earlier.hits) and earlier.hits[0].entry.pk != first.hits[0].entry.pk
        )
        if disagrees_earlier:
            joined = earlier  # the blend below offers that earlier topic beside the turn's own
    if not joined.hits or (agrees and not disagrees_earlier):
        # A turn confident alone whose conversation points the same way (FOLLOW_UP_AGREEMENT).
        return replace(first, hits=first.hits[:limit]), _anything

    # An entry missing from one list scored at most that list's lowest score.
    def blend(attribute: str) -> dict[int, float]:
        alone_floor = getattr(first.hits[-1], attribute)
        context_floor = getattr(joined.hits[-1], attribute)
        alone_scores = {hit.entry.pk: getattr(hit, attribute) for hit in first.hits}
        context_scores = {hit.entry.pk: getattr(hit, attribute) for hit in joined.hits}
        return {
            pk: (1 - CONTEXT_WEIGHT) * alone_scores.get(pk, alone_floor)
            + CONTEXT_WEIGHT * context_scores.get(pk, context_floor)
            for pk in entries
        }

    entries = {hit.entry.pk: hit.entry for hit in first.hits + joined.hits}
    scores, confidences = blend("score"), blend("confidence")
    merged = sorted(
        (Hit(entry, scores[pk], confidences[pk]) for pk, entry in entries.items()),
        key=lambda hit: hit.score,
        reverse=True,
    )[:limit]
    follows_up = FOLLOW_UP_KNOWN_WORDS and alone.all_words_known()
    top = merged[0]
    confident = (
        not disagrees_earlier
        and top.confidence >= first.threshold
        and (follows_up or alone.near_bar(top.entry.pk, FOLLOW_UP_MARGIN))
    )

    # A turn that does not follow up is offered only entries its own search would offer (its
    # plausible few, in the blend's order): never the earlier topic it does not point to ("do you
    # have another location in columbus" after a delivery question; issue 29); but the blend's
    # best-ranked hit when its entry's texts use a word of the turn (FOLLOW_UP_TOP_WORD).
    own = {
        hit.entry.pk
        for hit in first.hits[:limit][:SUGGESTION_POOL]
        if _related(alone, hit, first.threshold)
    }

    # The blend's best-ranked hit first only in a shop whose words are stems: their analysis
    # drops stop words, where an English shop's keeps "your" and "what", which nearly every entry
    # uses and would let an off-topic turn be offered the earlier topic first (issue 29).
    top_word = FOLLOW_UP_TOP_WORD and alone.index is not None and alone.index.stemmed

    def plausible(hit: Hit, as_first: bool = False) -> bool:
        return follows_up or hit.entry.pk in own or (as_first and top_word)

    return replace(first, hits=merged, confident=confident), plausible


def _search(shop: Shop, text: str, limit: int, route: embedding.Route) -> _Scored:
    """One text alone, with one of the shop's models: ranking and confidence."""
    model = route.model
    text = " ".join(text.split())
    if not text:
        return _Scored(SearchResult(), route=route)
    query = embedding.embed_query(text, model)
    rows, words, versions, signature = _nearest_vectors(shop, query, text, model)
    if not rows:
        return _Scored(SearchResult(), words=words, route=route)
    index = shop_index(shop, signature, model)
    if route.cross_lingual:
        # The FAQ's own texts only: e5 puts a question near every text in its own language,
        # whatever it asks, so accepted wordings in the customer's language would outrank the
        # right entry's question (docs/multilingual.md, "Learning").
        rows = [row for row in rows if row[1] != FAQVector.ALTERNATIVE]

    # Candidates: entries with a vector among the nearest (and still in the index).
    row_entries = np.array([row[0] for row in rows])
    sims = np.array([row[2] for row in rows], dtype=np.float32)
    sims = embedding.similarity(model, sims, route.cross_lingual)
    sims = search_index.discount_phrasings(model, sims, np.array([row[1] for row in rows]))
    known, row_columns = _index_columns(index.entry_ids, row_entries)
    sims = sims[known]
    if not len(sims):
        return _Scored(
            SearchResult(threshold=index.threshold), words=words, index=index, route=route
        )
    candidates, codes, columns = _candidates(index.entry_ids, row_columns[known])

    semantic = score_entries(sims[None, :], codes, len(candidates))[0]
    learned = np.zeros_like(semantic)
    if index.classifier is not None:
        learned = search_index.classifier_weight(model) * (query @ index.classifier[:, columns])
    # A question in another language shares with the FAQ only the wordings' common words
    # ("de", "los", "q"), which BM25 weighs as rare: no word bonus.
    lexical = np.zeros_like(semantic)
    if not route.cross_lingual:
        lexical = word_bonus(index, [words])[0][columns]
    ranking = semantic + learned + lexical
    # Nothing calibrates the classifier or the words for a question the shop has never seen:
    # confidence is on the dense score.
    confidence = semantic

    order = np.argsort(-ranking, kind="stable")[:limit]
    confident = _confident(index, confidence, columns, order[0], rows, words, route)
    if not confident and not route.cross_lingual:
        # The owner's texts alone (rows are filtered to them for a cross-lingual question
        # already): an answer they support is not taken away by accepted wordings.
        # Without phrasings among them it is the search above: nothing to add.
        kinds = np.array([row[1] for row in rows])[known]
        own = kinds != FAQVector.ALTERNATIVE
        answer = None
        if not own.all():
            owner = score_entries(sims[None, own], codes[own], len(candidates))[0]
            answer = _owners_answer(index, semantic, owner)
        if answer is not None:
            order = np.r_[answer, order[order != answer]][:limit]
            confident = True
    entries = _entries([int(candidates[i]) for i in order], versions)
    hits = [
        Hit(entries[int(candidates[i])], float(ranking[i]), float(confidence[i]))
        for i in order
        if int(candidates[i]) in entries
    ]
    # The best candidate's entry may have vanished meanwhile (deleted): no guess then.
    confident = confident and bool(hits) and hits[0].entry.pk == int(candidates[order[0]])
    return _Scored(
        SearchResult(hits=hits, confident=confident, threshold=index.threshold),
        confidence={int(pk): float(c) for pk, c in zip(candidates, confidence, strict=True)},
        words=words,
        index=index,
        route=route,
    )


def _index_columns(entry_ids: np.ndarray, row_entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each row's entry is in the index (`entry_ids`, sorted), and its column there where
    it is: `np.isin` by one binary search, without isin's sorts (with `_candidates`, 30 -> 12 us
    a search of 200 rows)."""
    row_columns = np.searchsorted(entry_ids, row_entries)
    known = np.zeros(len(row_entries), dtype=bool)
    inside = row_columns < len(entry_ids)
    known[inside] = entry_ids[row_columns[inside]] == row_entries[inside]
    return known, row_columns


def _candidates(
    entry_ids: np.ndarray, row_columns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates' entry ids (sorted), each row's candidate number and each candidate's
    column in the index, from the rows' columns: what `np.unique(row_entries,
    return_inverse=True)` and a search of the index gave, by a mark per column."""
    present = np.zeros(len(entry_ids), dtype=bool)
    present[row_columns] = True
    columns = np.flatnonzero(present)
    codes = (np.cumsum(present) - 1)[row_columns]
    return entry_ids[columns], codes, columns


def _confident(
    index: ShopIndex,
    confidence: np.ndarray,
    columns: np.ndarray,
    top: int,
    rows: list[tuple],
    words: list[str],
    route: embedding.Route,
) -> bool:
    """Whether the best candidate (`top`) is sure enough to answer with (the module docstring's
    policy, 1. to 3.)."""
    best = float(confidence[top])
    others = np.delete(confidence, top)
    if len(others) and best - others.max() < CONFIDENCE_GAP:
        return False  # two close entries: a "did you mean", not a guess
    if best >= index.threshold:
        return True
    nearest_entry, nearest_kind, nearest_similarity = rows[0][:3]
    if (
        nearest_kind == FAQVector.ALTERNATIVE
        and not route.other_language
        and route.model != embedding.E5
        and nearest_entry == int(index.entry_ids[columns[top]])
        and nearest_similarity >= index.wording_bar
    ):
        return True
    distinctive = index.distinctive_entries(words) == {int(columns[top])}
    return distinctive and best >= index.threshold - MARGINS.distinctive


def _owners_answer(index: ShopIndex, semantic: np.ndarray, owner: np.ndarray) -> int | None:
    """The candidate the owner's own texts answer with (4. of the module docstring), or None.

    `owner` is the dense score over the entries' questions, answers and sentences alone, without
    phrasings; the entry must lead there by CONFIDENCE_GAP and clear the bar calibrated on those
    texts alone (`ShopIndex.owner_threshold`, the shop's day-one bar), and it must still be the
    best on the dense score with the phrasings. A shop without phrasings gets nothing new here;
    a shop that accepts wordings keeps the answers its owner's texts gave: a wording accepted for
    a neighbouring entry narrows the lead or lifts the bar of the full score, and without this the
    bot answered fewer questions as it learned (dev_bakery's curve, one seed, 0.333 -> 0.289)."""
    if not len(owner):
        return None
    top = int(np.argmax(owner))
    others = np.delete(owner, top)
    if not np.isfinite(owner[top]) or owner[top] < index.owner_threshold:
        return None
    if len(others) and owner[top] - others.max() < CONFIDENCE_GAP:
        return None
    return top if semantic[top] >= semantic.max() else None


# The vectors carry their shop (kept equal to their entry's by a foreign key, migration
# faq.0009), so the (shop, model_name) index finds them without reading other shops' rows; the
# entries' shop index finds the published ones to join.
#
# The similarity is computed inside: what the CTE materialises (and the window then buffers) is a
# few numbers a row, not the 1.5 kB vectors (30 MB at 20,000 vectors, far over the default
# 4 MB work_mem).
_SHOP_VECTORS = """
    SELECT v.id, v.entry_id, v.kind, 1 - (v.embedding <=> %(query)s::vector) AS similarity
    FROM faq_faqvector v JOIN faq_faqentry e ON e.id = v.entry_id
    WHERE v.shop_id = %(shop)s AND e.shop_id = %(shop)s AND e.published
      AND v.model_name = %(model)s
"""

# The version of an entry's row as it is: a hash of the whole row's text (every column), so any
# change of any field, by any writer (a save, a queryset update, an import), is a new version.
ENTRY_VERSION_SQL = "hashtextextended({row}::text, 0)"

# The similarity the rows of the candidates' entry versions carry: below any cosine similarity,
# so they come last.
_VERSION_ROW = -2.0


def _nearest_vectors(
    shop: Shop, query: np.ndarray, text: str, model: str
) -> tuple[list[tuple], list[str], dict[int, int], tuple]:
    """(entry_id, kind, similarity) of the shop's nearest published vectors of `model`, the
    words of `text` (split as the shop's texts are: `languages.analysis`), the version of each
    candidate entry's row (ENTRY_VERSION_SQL), by entry id, and the signature of the shop's
    published vectors of `model` (their count and sum of ids; (None, None) without any).

    The scan is exact over the shop's own rows (a small shop has hundreds, a big one thousands;
    there is no vector index: an approximate whole-table one, filtered by shop, could miss
    entries). The window totals are over all the shop's vectors and tell when the shop index is
    stale; they come once, on the words' row (on each of 200 rows, their conversion, a Decimal
    each, was a tenth of the statement's Python time).

    The text's words come in the same round trip: a UNION ALL row of their own, first (its
    similarity 2 is above any cosine similarity), so a shop without vectors still gets them; and
    so do the candidates' versions, a row each, last, for `_entries`: the hits' entries need no
    statement of their own while this process has them (issue 32).
    """
    analysis = languages.analysis(shop.language)
    words_sql = lexemes_sql(analysis, "%(config)s::regconfig", "%(text)s", "%(folded)s")
    version_sql = ENTRY_VERSION_SQL.format(row="e")
    with vector_cursor() as cursor:
        cursor.execute(
            f"""
            WITH shop_vectors AS MATERIALIZED ({_SHOP_VECTORS}),
            nearest AS MATERIALIZED (
                SELECT entry_id, kind, similarity, COUNT(*) OVER () AS vectors,
                       SUM(id) OVER () AS id_sum
                FROM shop_vectors
                ORDER BY similarity DESC
                LIMIT %(limit)s
            )
            (SELECT NULL::bigint, NULL, 2.0::float8, (SELECT vectors FROM nearest LIMIT 1),
                    (SELECT id_sum FROM nearest LIMIT 1), {words_sql})
            UNION ALL
            (SELECT entry_id, kind, similarity, NULL, NULL, NULL::text[] FROM nearest)
            UNION ALL
            (SELECT e.id, NULL, {_VERSION_ROW}::float8, {version_sql}, NULL, NULL
             FROM faq_faqentry e
             WHERE e.shop_id = %(shop)s AND e.id IN (SELECT entry_id FROM nearest))
            ORDER BY 3 DESC
            """,
            {
                "text": text,
                "folded": analysis.prepare(text),
                "config": analysis.config,
                "shop": shop.pk,
                "model": embedding.model_name(model),
                "query": query,
                "limit": CANDIDATES,
            },
        )
        rows = cursor.fetchall()
    words, signature = rows[0][5], (rows[0][3], rows[0][4])
    end = len(rows)
    while end > 1 and rows[end - 1][2] == _VERSION_ROW:
        end -= 1
    versions = {row[0]: row[3] for row in rows[end:]}
    return [row[:3] for row in rows[1:end]], words, versions, signature


# The entries this process has read, by id, with the version they were read at: most searches
# find their hits' entries here, unchanged (their versions came with the nearest vectors), and
# send no statement for them. Bounded: emptied when it grows past ENTRY_CACHE_SIZE.
ENTRY_CACHE_SIZE = 5000
_entry_cache: dict[int, tuple[int, FAQEntry]] = {}


def _entries(ids: list[int], versions: dict[int, int]) -> dict[int, FAQEntry]:
    """The entries of these ids, by id: what `FAQEntry.objects.in_bulk(ids)` gives, each a new
    instance. From this process's cache when it holds the version `versions` names (the search's
    own statement read them), else by one prepared statement (lib/internals.py) for those
    missing, which the cache then keeps with the version they were read at. An entry deleted
    meanwhile is missing from the result."""
    found, missing = {}, []
    for pk in ids:
        cached = _entry_cache.get(pk)
        if cached is not None and cached[0] == versions.get(pk):
            found[pk] = loaded_copy(cached[1])
        else:
            missing.append(pk)
    if missing:
        entries = prepared_models(
            FAQEntry,
            '"faq_faqentry"."id" = ANY(%s::bigint[])',
            [missing],
            {_VERSION: ENTRY_VERSION_SQL.format(row='"faq_faqentry"')},
        )
        if len(_entry_cache) + len(entries) > ENTRY_CACHE_SIZE:
            _entry_cache.clear()
        for entry in entries:
            version = vars(entry).pop(_VERSION)
            _entry_cache[entry.pk] = (version, entry)
            found[entry.pk] = loaded_copy(entry)
    return found


_VERSION = "row_version"
