"""Named text-attack recipes from the literature, resolved through a registry of
callables (never ``eval``).

Each recipe is a function returning a configured :class:`~advx.text.attack.TextAttack`;
its docstring cites the paper and says where advx departs from it and where the paper
and its released code disagree. Settings not fixed by the paper are keyword arguments.

Example:
    >>> from advx.text import recipes
    >>> recipes.names()
    ['deepwordbug', 'hotflip', 'pwws', 'textfooler']
    >>> attack = recipes.create("deepwordbug", max_queries=300)
    >>> attack.max_queries
    300
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import advx.text.constraints as C
import advx.text.transformations as T
from advx.errors import ConfigError
from advx.text.attack import TextAttack
from advx.text.embeddings import MINILM_SYNONYM_COS
from advx.text.search import BeamSearch, GreedySearch


@dataclass(frozen=True)
class Recipe:
    """A registered recipe: slug, one-line summary, builder and whether it is white-box."""

    slug: str
    summary: str
    build: Callable[..., TextAttack]
    white_box: bool = False

    def settings(self) -> list[str]:
        """Keyword settings the builder accepts."""
        return [p for p in inspect.signature(self.build).parameters if p != "model"]


_RECIPES: dict[str, Recipe] = {}


def recipe(slug: str, summary: str, *, white_box: bool = False) -> Callable[[Any], Any]:
    """Decorator registering a builder ``fn(model=None, **settings) -> TextAttack``."""

    def deco(fn: Callable[..., TextAttack]) -> Callable[..., TextAttack]:
        if slug in _RECIPES:
            raise ConfigError(f"text recipe {slug!r} registered twice")
        _RECIPES[slug] = Recipe(slug, summary, fn, white_box)
        return fn

    return deco


def names() -> list[str]:
    """All recipe slugs, sorted."""
    return sorted(_RECIPES)


def get(slug: str) -> Recipe:
    """The recipe ``slug``; :class:`~advx.errors.ConfigError` naming the known ones."""
    if not isinstance(slug, str) or slug not in _RECIPES:
        raise ConfigError(f"unknown text recipe {slug!r}; known: {', '.join(names())}")
    return _RECIPES[slug]


def create(slug: str, model: Any = None, **settings: Any) -> TextAttack:
    """Build recipe ``slug`` (for ``model`` when the recipe needs it, e.g. HotFlip);
    unknown settings raise :class:`~advx.errors.ConfigError` listing the valid ones."""
    r = get(slug)
    unknown = sorted(set(settings) - set(r.settings()))
    if unknown:
        raise ConfigError(f"{slug}: unknown settings {unknown}; valid: {r.settings()}")
    return r.build(model=model, **settings)


@recipe("deepwordbug", "character edits on the most important words (Gao et al. 2018)")
def deepwordbug(
    model: Any = None,
    *,
    max_queries: int | None = None,
    seed: int | None = 0,
    edits: tuple[str, ...] = ("swap", "substitute", "delete", "insert"),
    max_edit_distance: int = 30,
    max_words_share: float | None = None,
    budget_aware: bool = False,
    min_importance: float | None = None,
    edits_per_kind: int | None = 1,
    ranking: str = "unk",
) -> TextAttack:
    """DeepWordBug: Gao, Lanchantin, Soffa & Qi (2018), "Black-box generation of
    adversarial text sequences to evade deep learning classifiers", IEEE S&P Workshops.

    Composition: rank words by the score change when each is replaced by ``[UNK]``;
    in that order, try one random edit of each kind (swap adjacent letters, substitute,
    delete, insert a letter) on the word, keep the best; stop when the label flips.
    Constraints: each word edited at most once, stop words untouched, total Levenshtein
    distance <= ``max_edit_distance`` (30).

    Departures and disagreements:

    * the paper scores words with temporal head/tail scores or their combination; its
      released code and TextAttack's recipe use the replace-with-unknown score
      (the paper's "Replace-1"), as here;
    * the paper edits a fixed number of top words (its "power"); the released code
      and TextAttack stop at the first success, and so does advx (fewer queries);
    * advx leaves stop words untouched (TextAttack too; the paper does not say), so
      negations cannot be typo'd away;
    * two options, off by default (the paper's loop), measured in bench/README.md:
      ``min_importance=0.0`` skips words whose replacement by ``[UNK]`` does not move the
      score toward the goal (a typo mostly makes a word unknown, so their edits rarely
      help; fewer queries, a little less success), and ``budget_aware`` spends the last
      word of a ``max_words_share`` cap only on an edit that flips the label (see
      :func:`~advx.text.search.greedy_search`; more queries, success within noise).

    Args:
        max_queries: per-example budget (None: unlimited).
        seed: seed of the random edits.
        edits: character edits to try (add ``"keyboard"``, ``"homoglyph"`` for
            TextBugger-style typos).
        max_edit_distance: total Levenshtein budget over all edited words.
        max_words_share: optional cap on the share of words changed.
        budget_aware: under the cap, keep the last word for an edit that succeeds.
        min_importance: skip words whose ``[UNK]`` importance is at or below this.
        edits_per_kind: random edits of each kind tried per word (default 1, the
            paper's; ``None``: every edit of each kind, about ``52 * len(word)`` per
            word). The best-scoring one is kept, as with one.
        ranking: word importance, ``"unk"`` (default, the released code's),
            ``"delete"``, or ``"gradient"`` (white-box targets: one gradient query
            instead of one query per word).
    """
    cons: list[C.Constraint] = [
        C.NoRepeat(),
        C.StopwordsUntouched(),
        C.MaxEditDistance(total=max_edit_distance),
    ]
    if max_words_share is not None:
        cons.append(C.MaxWordsChanged(share=max_words_share))
    return TextAttack(
        transformation=T.CharEdit(
            kinds=tuple(edits),
            random_one=edits_per_kind is not None,
            draws=1 if edits_per_kind is None else edits_per_kind,
        ),
        constraints=tuple(cons),
        search=GreedySearch(
            ranking=ranking, budget_aware=budget_aware, min_importance=min_importance
        ),
        max_queries=max_queries,
        seed=seed,
        name="deepwordbug",
    )


@recipe("pwws", "WordNet synonyms by probability weighted word saliency (Ren et al. 2019)")
def pwws(
    model: Any = None,
    *,
    max_queries: int | None = None,
    seed: int | None = 0,
    max_words_share: float | None = None,
) -> TextAttack:
    """PWWS: Ren, Deng, He & Che (2019), "Generating natural language adversarial examples
    through probability weighted word saliency", ACL.

    Composition: for every word, its saliency (score change when replaced by
    ``[UNK]``) and the best WordNet synonym swap (largest score gain); words are ordered
    by ``softmax(saliency)_i * gain_i`` and their best swaps applied one after another
    until the label flips. Constraints: each word changed once, stop words untouched.

    Departures and disagreements:

    * the paper also swaps named entities for entities of the same type from other
      classes; advx (like TextAttack's recipe) does not: it needs an NER tagger and
      class-specific entity lists;
    * the paper applies the precomputed best swaps (one query per step), as advx does;
      TextAttack's implementation instead re-searches each word's synonyms on the
      current text at every step, spending more queries;
    * synonyms come from every WordNet sense of the word's base forms, without the
      paper's part-of-speech filter (advx has no tagger; see
      :class:`~advx.text.constraints.SamePartOfSpeech` for a context-free stand-in).
    """
    cons: list[C.Constraint] = [C.NoRepeat(), C.StopwordsUntouched()]
    if max_words_share is not None:
        cons.append(C.MaxWordsChanged(share=max_words_share))
    return TextAttack(
        transformation=T.WordNetSynonyms(),
        constraints=tuple(cons),
        search=GreedySearch(ranking="weighted-saliency"),
        max_queries=max_queries,
        seed=seed,
        name="pwws",
    )


@recipe("textfooler", "embedding-neighbour swaps under a similarity floor (Jin et al. 2020)")
def textfooler(
    model: Any = None,
    *,
    max_queries: int | None = None,
    seed: int | None = 0,
    k: int = 50,
    min_word_cos: float = MINILM_SYNONYM_COS,
    min_sentence_cos: float = 0.8,
    window: int | None = 15,
    max_words_share: float | None = None,
    budget_aware: bool = False,
    skip_short_texts: bool = False,
) -> TextAttack:
    """TextFooler: Jin, Jin, Zhou & Szolovits (2020), "Is BERT really robust? A strong
    baseline for natural language attack on text classification and entailment", AAAI.

    Composition: rank words by the score change when each is deleted; in that order,
    replace the word by one of its ``k`` nearest neighbours in a word-embedding space
    that pass the constraints, stop at the first success (the best-scoring successful
    swap) or keep the best swap. Constraints: each word once, stop words untouched,
    no WordNet antonyms, same part of speech (per WordNet), sentence similarity of at
    least ``min_sentence_cos`` against the original over a ``window``-word span.

    Departures and disagreements:

    * **similarity model**: the paper uses the Universal Sentence Encoder; advx uses
      all-MiniLM-L6-v2 mean-pooled embeddings (offline), with a plain cosine floor of
      0.8. The paper's threshold (0.7, on USE) and TextAttack's (0.84 angular, USE)
      are not comparable to a MiniLM cosine; 0.8 keeps one- and two-word swaps of a
      tweet and rejects most meaning changes;
    * **word embeddings**: the paper uses counter-fitted GloVe vectors with a cosine
      floor of 0.5; advx uses MiniLM's input token embeddings, whose cosines run much
      lower, with the floor :data:`~advx.text.embeddings.MINILM_SYNONYM_COS` (0.3,
      chosen so a word keeps a comparable list of neighbours: median 16 of the 50 on
      tweet words, against 4 at 0.4, which starved the search), and rejects WordNet
      antonyms to stand in for counter-fitting;
    * **part of speech**: the paper tags the sentence (NLTK tagger); advx asks WordNet
      whether the two words can share a part of speech (context-free);
    * the paper compares the window against the *previous* text and its released code
      skips the check for short texts; advx compares against the original (stricter:
      similarity cannot drift step by step);
    * when several swaps of a word flip the label, the paper keeps the one most similar
      to the original; advx keeps the one the model is most confident about (one
      search loop for all recipes; both pass the same similarity floor);
    * the released code (and TextAttack) skips the sentence-similarity check for texts
      shorter than the window; advx checks every text unless ``skip_short_texts``;
    * ``budget_aware`` (off by default): under a word cap, the last word of the budget
      goes only to a swap that flips the label, as for DeepWordBug.
    """
    from advx.text.embeddings import WordEmbeddings

    cons: list[C.Constraint] = [
        C.NoRepeat(),
        C.StopwordsUntouched(),
        C.NotAntonym(),
        C.SamePartOfSpeech(),
    ]
    if max_words_share is not None:
        cons.append(C.MaxWordsChanged(share=max_words_share))
    cons.append(
        C.SentenceSimilarity(min_cos=min_sentence_cos, window=window, skip_short=skip_short_texts)
    )
    return TextAttack(
        transformation=T.EmbeddingNeighbours(
            space=WordEmbeddings.minilm(), k=k, min_cos=min_word_cos
        ),
        constraints=tuple(cons),
        search=GreedySearch(ranking="delete", budget_aware=budget_aware),
        max_queries=max_queries,
        seed=seed,
        name="textfooler",
    )


@recipe("hotflip", "gradient-guided word flips, greedy (Ebrahimi et al. 2018)", white_box=True)
def hotflip(
    model: Any = None,
    *,
    max_queries: int | None = None,
    seed: int | None = 0,
    top_n: int = 5,
    beam_width: int = 1,
    max_words: int | None = None,
    max_words_share: float | None = 0.2,
    min_word_cos: float = MINILM_SYNONYM_COS,
) -> TextAttack:
    """HotFlip: Ebrahimi, Rao, Lowd & Dou (2018), "HotFlip: white-box adversarial examples
    for text classification", ACL.

    Composition: at each step one gradient of the loss with respect to the word
    embeddings ranks every (position, word) flip by its first-order gain
    ``(e_new - e_old) . grad``; the ``top_n`` best flips are scored for real and the best
    kept (greedy; ``beam_width > 1`` for beam search). Constraints: each word once, stop
    words untouched, at most ``max_words_share`` of the words (or ``max_words``), new
    words within ``min_word_cos`` of the old ones in MiniLM's token embeddings, not
    WordNet antonyms, same part of speech (per WordNet).

    Departures and disagreements:

    * the paper's main attack flips characters (one-hot character inputs); its
      word-level variant, which advx implements (the models here read words), keeps
      flips meaningful with an embedding-similarity floor and a limit of two words;
      TextAttack's recipe does the same with counter-fitted embeddings (cos >= 0.8),
      a POS check and a beam of 10 over one proposal per step (a beam of 5 over 10
      proposals bought nothing over greedy on the tweet models, at 5x the queries);
    * advx scores the ``top_n`` first-order proposals for real instead of trusting
      the first-order estimate alone (the paper's greedy uses the estimate, its beam
      search the real loss), and uses a share-of-words limit that scales with length.
    """
    from advx.text.embeddings import WordEmbeddings

    space = WordEmbeddings.minilm()
    cons: list[C.Constraint] = [C.NoRepeat(), C.StopwordsUntouched()]
    if max_words is not None or max_words_share is not None:
        cons.append(C.MaxWordsChanged(share=max_words_share, count=max_words))
    cons += [
        C.WordEmbeddingCosine(space=space, min_cos=min_word_cos),
        C.NotAntonym(),
        C.SamePartOfSpeech(),
    ]
    return TextAttack(
        transformation=T.GradientFlip(top_n=top_n, neighbours=space, min_cos=min_word_cos),
        constraints=tuple(cons),
        search=BeamSearch(beam_width=beam_width),
        max_queries=max_queries,
        seed=seed,
        name="hotflip",
    )
