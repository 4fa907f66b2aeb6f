"""Hybrid search: FAISS dense vectors + BM25 over jieba tokens, fused by weighted rank.

Dense vectors find paraphrases ("生活困难了怎么办" → 监测帮扶), BM25 pins exact terms and
numbers ("12317", "公益性岗位"). Reciprocal-rank fusion needs no score calibration between the
two, which matters because e5 cosines crowd into a narrow band. On top, a scope rule from
the catalog: a question that names a county or district ("信丰县…") prefers that place's
documents, one that says 全省 prefers provincial ones.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cadrebot.indexer.embedders import Embedder, manifest_matches
from cadrebot.indexer.lexicon import EMPTY_LEXICON, Lexicon, LexiconError, expand, load_lexicon
from cadrebot.indexer.sentences import QuestionShape, question_shape, split_sentences
from cadrebot.indexer.store import (
    IndexCorruptError,
    IndexMismatchError,
    IndexStore,
    IndexVersion,
    Opened,
)
from cadrebot.indexer.tokenizer import SYNONYMS, PolicyTokenizer
from cadrebot.indexer.types import Chunk, DocumentMeta
from cadrebot.settings import Settings

if TYPE_CHECKING:
    from cadrebot.indexer.structured import Structure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FusionParams:
    """Tuned on eval/dev.jsonl (see README, "Quality")."""

    rrf_k: float = 20.0
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    scope_bonus: float = 0.5  # relative to the best fused score
    candidates: int = 60
    # Rerank: how much the best single sentence's coverage of the question counts, next to
    # the fused score (both scaled to 0..1). A passage whose one sentence carries all the
    # question's terms, and the kind of fact asked for (a number, a date), is the answer.
    sentence_weight: float = 0.5
    shape_bonus: float = 0.3
    rerank_depth: int = 20
    # Everyday-words lexicon (knowledge/lexicon.toml): the policy terms a question's everyday
    # phrases map to are searched with this weight next to the user's own words (1.0), and
    # a passage carrying one covers the phrase's words at this share of their weight.
    lexicon_weight: float = 0.5
    lexicon_credit: float = 0.8


@dataclass(frozen=True)
class SearchHit:
    chunk: Chunk
    meta: DocumentMeta
    score: float  # fused score, comparable only within one query
    dense: float  # cosine similarity of query and passage
    lexical: float  # raw BM25 score (0 when no query term occurs)
    coverage: float  # idf-weighted share of the query's terms present in the passage
    # Per sentence of chunk.text (split_sentences order): coverage of the question's terms
    # by the sentence plus the chunk's title and headings, raised when it carries the kind
    # of fact asked for. The answer composer quotes the best of these.
    sentence_scores: tuple[float, ...] = ()

    @property
    def best_sentence(self) -> float:
        return max(self.sentence_scores, default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "doc_title": self.meta.title,
            "doc_number": self.meta.doc_number,
            "section": self.chunk.section_label(),
            "text": self.chunk.text,
            "score": round(self.score, 6),
        }


_REGION_SUFFIX = re.compile(r"(新区|县|区|市|省)$")


def scope_aliases(meta: DocumentMeta) -> set[str]:
    """Names a user would use for where a document applies (信丰县 → {信丰县, 信丰})."""
    if meta.level == "省":
        return {"全省", "省级", meta.region} - {""}
    aliases: set[str] = set()
    # "赣州市信丰县" → the innermost place is the one that makes the document specific.
    parts = [p for p in re.split(r"(?<=[省市])", meta.region) if p]
    if parts:
        inner = parts[-1]
        aliases.add(inner)
        short = _REGION_SUFFIX.sub("", inner)
        if len(short) >= 2:
            aliases.add(short)
        # "赣州蓉江新区" → also "蓉江新区" / "蓉江"
        for city in ("赣州", "景德镇"):
            if inner.startswith(city) and len(inner) > len(city) + 1:
                rest = inner[len(city) :]
                aliases.add(rest)
                aliases.add(_REGION_SUFFIX.sub("", rest))
    return {a for a in aliases if len(a) >= 2}


@dataclass(frozen=True)
class _CoveragePlan:
    """What :meth:`HybridSearcher.coverage` needs of a question's terms, worked out once."""

    alternatives: tuple[tuple[str, tuple[str, ...]], ...]  # term, its synonyms
    compounds: tuple[tuple[str, tuple[str, ...]], ...]  # term, the shorter terms composing it
    weights: dict[str, float]
    total: float
    # term, the lexicon's policy terms for it (each as the tokens that must all be present)
    mapped: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = ()
    mapped_credit: float = 1.0

    @classmethod
    def of(
        cls,
        terms: tuple[str, ...],
        weight: Callable[[str], float],
        mapped: dict[str, tuple[tuple[str, ...], ...]] | None = None,
        mapped_credit: float = 1.0,
    ) -> _CoveragePlan:
        compounds = []
        for t in terms:
            parts = tuple(p for p in terms if p != t and p in t)
            if parts and sum(len(p) for p in parts) >= len(t):
                compounds.append((t, parts))
        weights = {t: weight(t) for t in terms}
        return cls(
            tuple((t, tuple(SYNONYMS.get(t, ()))) for t in terms),
            tuple(compounds),
            weights,
            sum(weights[t] for t in terms),
            tuple((mapped or {}).items()),
            mapped_credit,
        )

    def coverage(self, text_tokens: set[str]) -> float:
        if not self.total:
            return 0.0
        found = {
            t
            for t, synonyms in self.alternatives
            if t in text_tokens or any(s in text_tokens for s in synonyms)
        }
        for t, parts in self.compounds:
            if all(p in found for p in parts):
                found.add(t)
        covered = sum(self.weights[t] for t in found)
        # A term the text lacks, but one of whose lexicon policy terms it has (养鸡 → 产业奖补),
        # counts at the lexicon's credit: the user's own words weigh more.
        for t, alternatives in self.mapped:
            if t not in found and any(all(a in text_tokens for a in alt) for alt in alternatives):
                covered += self.mapped_credit * self.weights[t]
        return covered / self.total


class HybridSearcher:
    """Loads the current index version and answers ranked-passage queries."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        tokenizer: PolicyTokenizer | None = None,
        params: FusionParams | None = None,
        lexicon_path: Path | None = None,
    ) -> None:
        self._settings = settings
        self._embedder = embedder
        self._tokenizer = tokenizer or PolicyTokenizer()
        self.params = params or FusionParams()
        self._store = IndexStore(settings.index_dir)
        self._index: IndexVersion | None = None
        self._aliases: dict[str, set[str]] = {}
        self._idf: dict[str, float] = {}
        self._corpus_text = ""
        self._token_cache: dict[int, tuple[set[str], list[tuple[str, set[str]]]]] = {}
        self._lock = threading.Lock()
        # The published version last found damaged (not retried until another is published).
        self._rejected: str | None = None
        # Everyday words → policy terms, read with each index version and when the file
        # changes (None: no lexicon).
        self._lexicon_path = lexicon_path
        self._lexicon: Lexicon = EMPTY_LEXICON
        self._lexicon_seen: tuple[float, int] | None = None
        self._target_tokens: dict[str, tuple[str, ...]] = {}
        # The section tree and parsed 责任单位 of the loaded version (indexer/structured.py).
        self._structure: tuple[str, Structure] | None = None

    # -- loading ---------------------------------------------------------------------------
    def load(self) -> None:
        """Load the current index (and the model).

        A version that does not verify is skipped for the newest older one that does (logged
        as a warning). Raises :class:`IndexCorruptError` when none is usable,
        :class:`IndexMismatchError` when it was built by another embedder.
        """
        self._tokenizer.warm_up()
        opened = self._store.open_newest_intact()
        self._note(opened)
        assert opened.index is not None
        self._install(opened.index)

    def reload_if_changed(self) -> bool:
        """Switch to a newer index version if one was published; returns True when it did.

        A published version that does not verify is not switched to (the newest intact
        version is, if it is not the one loaded); it is logged once, not on every poll.
        """
        self._reload_lexicon_if_changed()
        current = self._store.current_name()
        loaded = self.loaded_version
        if current is None or current in (loaded, self._rejected):
            return False
        if loaded is None:
            self.load()
            return True
        try:
            opened = self._store.open_newest_intact(loaded=loaded)
        except IndexCorruptError as error:  # only versions older than the one loaded verify
            log.warning("%s; still answering from %s", error.reason, loaded)
            self._rejected = current
            return False
        self._note(opened)
        if opened.index is None:
            return False
        self._install(opened.index)
        return True

    def _note(self, opened: Opened) -> None:
        """Log (once per published version) when the version answering is not the current."""
        self._rejected = opened.wanted if opened.fell_back else None
        if opened.damaged:
            log.warning(
                "index version %s failed verification (%s); answering from %s, the newest "
                "intact version. Run `cadrebot index` to repair.",
                ", ".join(str(e.version) for e in opened.damaged),
                "; ".join(e.reason for e in opened.damaged),
                opened.name,
            )
        elif opened.wanted is None:
            log.warning(
                "index CURRENT names no version; answering from %s, the newest intact one",
                opened.name,
            )

    def _install(self, index: IndexVersion) -> None:
        if not manifest_matches(index.manifest, self._embedder):
            built = index.manifest.get("embedder", {})
            raise IndexMismatchError(
                f"索引是用 {built.get('backend')}:{built.get('model_id')} 建立的，"
                f"当前配置的是 {self._embedder.backend}:{self._embedder.model_id}。"
                "请运行 `cadrebot index --rebuild` 重建索引。"
            )
        self._embedder.warm_up()
        aliases = {doc_id: scope_aliases(meta) for doc_id, meta in index.documents.items()}
        idf = self._compute_idf(index)
        corpus_text = "\n".join(
            [m.title + m.region + m.issuer for m in index.documents.values()]
            + [c.text for c in index.chunks]
        )
        self._read_lexicon()
        with self._lock:
            self._index, self._aliases, self._idf = index, aliases, idf
            self._corpus_text = corpus_text
            self._token_cache = {}

    # -- the everyday-words lexicon -----------------------------------------------------------
    @property
    def lexicon(self) -> Lexicon:
        return self._lexicon

    def _lexicon_stamp(self) -> tuple[float, int] | None:
        if self._lexicon_path is None:
            return None
        try:
            st = self._lexicon_path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def _read_lexicon(self) -> None:
        """(Re)read the lexicon file; a bad file is logged and the previous lexicon kept."""
        if self._lexicon_path is None:
            return
        self._lexicon_seen = self._lexicon_stamp()
        try:
            lexicon = load_lexicon(self._lexicon_path)
        except LexiconError as error:
            log.warning("everyday-words lexicon not (re)loaded, keeping the previous: %s", error)
            return
        if lexicon.entries != self._lexicon.entries:
            log.info("lexicon %s: %d phrases (%s)", self._lexicon_path, len(lexicon), lexicon.stamp)
        with self._lock:
            self._lexicon = lexicon
            self._target_tokens = {}

    def _reload_lexicon_if_changed(self) -> None:
        if self._lexicon_path is not None and self._lexicon_stamp() != self._lexicon_seen:
            self._read_lexicon()

    def _tokens_of_target(self, term: str) -> tuple[str, ...]:
        cached = self._target_tokens.get(term)
        if cached is None:
            cached = tuple(dict.fromkeys(self._tokenizer.tokens(term))) or (term,)
            self._target_tokens[term] = cached
        return cached

    def expansion(
        self, query: str, terms: list[str]
    ) -> tuple[dict[str, tuple[tuple[str, ...], ...]], list[str]]:
        """What the lexicon adds to a question: per question term, the policy terms its
        everyday phrase maps to (each as tokens); and those tokens, for BM25.
        """
        matches = expand(self._lexicon, query)
        if not matches:
            return {}, []
        mapped: dict[str, tuple[tuple[str, ...], ...]] = {}
        for t in terms:
            targets = [
                target for m in matches if t in m.phrase or m.phrase in t for target in m.terms
            ]
            if targets:
                mapped[t] = tuple(
                    dict.fromkeys(self._tokens_of_target(x) for x in dict.fromkeys(targets))
                )
        own = set(terms)
        extra = [
            tok
            for m in matches
            for target in m.terms
            for tok in self._tokens_of_target(target)
            if tok not in own
        ]
        return mapped, list(dict.fromkeys(extra))

    @property
    def loaded_version(self) -> str | None:
        """The version answering now, or None before :meth:`load` (never loads)."""
        index = self._index
        return index.name if index is not None else None

    @property
    def index(self) -> IndexVersion:
        if self._index is None:
            self.load()
        assert self._index is not None
        return self._index

    @property
    def version(self) -> str:
        return self.index.name

    def structure(self) -> Structure:
        """The loaded version's section tree and parsed 责任单位, built once per version."""
        from cadrebot.indexer.structured import build_structure  # it imports this module

        index = self.index
        cached = self._structure
        if cached is None or cached[0] != index.name:
            cached = (index.name, build_structure(index.chunks, index.documents))
            self._structure = cached
        return cached[1]

    def _compute_idf(self, index: IndexVersion) -> dict[str, float]:
        vocab: dict[str, int] = index.bm25.vocab_dict or {}
        n_docs = max(1, index.chunk_count)
        # document frequency from the sparse score matrix (column counts per token id)
        indptr = np.asarray(index.bm25.scores["indptr"])
        df = np.diff(indptr)
        return {
            token: math.log(1 + (n_docs - df[tid] + 0.5) / (df[tid] + 0.5))
            for token, tid in vocab.items()
            if tid < len(df)
        }

    # -- querying --------------------------------------------------------------------------
    def query_terms(self, query: str) -> list[str]:
        return list(dict.fromkeys(self._tokenizer.tokens(query)))

    def term_weight(self, term: str) -> float:
        # Terms the knowledge base never uses get a high weight: a question about 公积金
        # should not count as covered because 贷款 happens to occur.
        return self._idf.get(term, 8.0)

    def coverage(self, terms: list[str], text_tokens: set[str]) -> float:
        """idf-weighted share of the question's terms present in ``text_tokens``.

        A term counts as present when a synonym is, and a compound (产业奖补) when the
        shorter question terms that make it up (产业 + 奖补) all are: search-mode
        segmentation yields both, and the passage may word it apart ("奖补项目").
        """
        return self._coverage_plan(terms).coverage(text_tokens)

    def _coverage_plan(self, terms: list[str]) -> _CoveragePlan:
        # A search scores a few hundred sentences against the same terms: what depends on
        # the terms only is worked out once per question (see :meth:`search`).
        return _CoveragePlan.of(tuple(terms), self.term_weight)

    def place_names(self, query: str) -> list[str]:
        return self._tokenizer.place_names(query)

    def known_place(self, name: str) -> bool:
        """Whether the knowledge base mentions a place at all (上海市 → 上海 → no)."""
        _ = self.index
        short = _REGION_SUFFIX.sub("", name)
        return name in self._corpus_text or (len(short) >= 2 and short in self._corpus_text)

    def scope_of(self, query: str) -> set[str]:
        """Documents the question names by place (信丰县, 蓉江新区, 全省 …)."""
        index = self.index
        named = {d for d, aliases in self._aliases.items() if any(a in query for a in aliases)}
        local = {d for d in named if index.documents[d].level != "省"}
        return local or named

    def _chunk_tokens(self, i: int) -> tuple[set[str], list[tuple[str, set[str]]]]:
        """Tokens of a chunk's location (title, headings) and of each of its sentences."""
        cached = self._token_cache.get(i)
        if cached is not None:
            return cached
        index = self.index
        where, sentence_tokens = index.tokens[i]
        sentences = split_sentences(index.chunks[i].text)
        if len(sentences) != len(sentence_tokens):  # an index from an older pipeline
            sentence_tokens = [" ".join(self._tokenizer.tokens(s)) for s in sentences]
        parsed = (
            set(where.split()),
            [(s, set(t.split())) for s, t in zip(sentences, sentence_tokens, strict=True)],
        )
        if len(self._token_cache) > 50_000:
            self._token_cache.clear()
        self._token_cache[i] = parsed
        return parsed

    def _sentence_scores(
        self, i: int, plan: _CoveragePlan, shape: QuestionShape
    ) -> tuple[tuple[float, ...], float]:
        """(score of each sentence, whole-passage coverage) for candidate ``i``."""
        where, sentences = self._chunk_tokens(i)
        everything = set(where)
        scores: list[float] = []
        for sentence, tokens in sentences:
            everything |= tokens
            # Terms the sentence itself carries count fully; terms only its title or
            # headings carry count half: the answer is the sentence that says it.
            score = (plan.coverage(tokens | where) + plan.coverage(tokens)) / 2
            if shape.specific and shape.matches(sentence):
                score *= 1 + self.params.shape_bonus
            scores.append(score)
        return tuple(scores), plan.coverage(everything)

    def search(self, query: str, top_k: int = 5) -> list[SearchHit]:
        index = self.index
        n = index.chunk_count
        if n == 0 or not query.strip():
            return []
        p = self.params
        pool = min(n, max(p.candidates, top_k))
        qvec = self._embedder.embed_query(query).reshape(1, -1)
        dense_scores, dense_ids = index.vectors.search(qvec, pool)
        dense_rank = {int(i): r for r, i in enumerate(dense_ids[0]) if i >= 0}
        dense_of = {int(i): float(s) for s, i in zip(dense_scores[0], dense_ids[0], strict=True)}

        terms = self.query_terms(query)
        mapped, lexicon_terms = self.expansion(query, terms)
        lexical_rank: dict[int, int] = {}
        if terms or lexicon_terms:
            expanded = terms + [s for t in terms for s in SYNONYMS.get(t, ()) if s not in terms]
            scores = index.bm25.get_scores(expanded) if expanded else np.zeros(n, dtype=np.float32)
            lexicon_terms = [t for t in lexicon_terms if t not in expanded]
            if lexicon_terms:  # the lexicon's policy terms, weighted below the user's words
                scores = scores + p.lexicon_weight * index.bm25.get_scores(lexicon_terms)
            # Only the top `pool` are needed: partition first, sort just those (a full
            # argsort is the slowest step at 100k chunks).
            top_ids = np.argpartition(-scores, pool - 1)[:pool] if pool < n else np.arange(n)
            order = top_ids[np.argsort(-scores[top_ids])]
            for r, i in enumerate(order):
                if scores[i] <= 0:
                    break
                lexical_rank[int(i)] = r
            all_lexical = scores
        else:
            all_lexical = np.zeros(n, dtype=np.float32)

        fused: dict[int, float] = {}
        for i in set(dense_rank) | set(lexical_rank):
            s = 0.0
            if i in dense_rank:
                s += p.dense_weight / (p.rrf_k + dense_rank[i] + 1)
            if i in lexical_rank:
                s += p.lexical_weight / (p.rrf_k + lexical_rank[i] + 1)
            fused[i] = s
        scoped = self.scope_of(query)
        if scoped and fused:
            bonus = p.scope_bonus * max(fused.values())
            for i in fused:
                if index.chunks[i].doc_id in scoped:
                    fused[i] += bonus

        shape = question_shape(query)
        top = max(fused.values()) if fused else 1.0
        pool_ids = sorted(fused, key=lambda i: fused[i], reverse=True)[: max(p.rerank_depth, top_k)]
        final: dict[int, float] = {}
        coverage_of: dict[int, float] = {}
        sentence_scores: dict[int, tuple[float, ...]] = {}
        plan = _CoveragePlan.of(tuple(terms), self.term_weight, mapped, p.lexicon_credit)
        for i in pool_ids:
            sentence_scores[i], coverage_of[i] = self._sentence_scores(i, plan, shape)
            best_sentence = max(sentence_scores[i], default=0.0)
            final[i] = fused[i] / top + p.sentence_weight * best_sentence
        ranked = sorted(pool_ids, key=lambda i: final[i], reverse=True)[:top_k]
        hits: list[SearchHit] = []
        for i in ranked:
            chunk = index.chunks[i]
            dense = dense_of.get(i)
            if dense is None:  # found by BM25 only: score it against its stored vector
                dense = float(index.vectors.reconstruct(i) @ qvec[0])
            hits.append(
                SearchHit(
                    chunk=chunk,
                    meta=index.documents[chunk.doc_id],
                    score=final[i],
                    dense=dense,
                    lexical=float(all_lexical[i]),
                    coverage=coverage_of[i],
                    sentence_scores=sentence_scores[i],
                )
            )
        return hits
