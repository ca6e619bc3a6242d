"""Which memories a turn is given: all of them while they fit, else the most relevant to the
person's message, found the way knowledge is (issue 12): a lexical ranking and a vector ranking
by the same embedding model, fused by reciprocal rank.

Memories stay in SQL, one row each, and a scope holds at most a few hundred (the per-scope
limit), so both rankings are exact and take microseconds over the rows the turn already read;
no second index has to be kept in step, and a forgotten memory is gone from the next turn.
Vectors are cached in process by text (a memory's text is its identity for the embedding)."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, OrderedDict
from collections.abc import Sequence

from pydantic_ai import Embedder

from employeevirtual.stores.sql.memory import MemoryRecord

__all__ = ["Recall"]

log = logging.getLogger(__name__)

RRF_K = 60  # reciprocal rank fusion's constant, as LanceDB's RRFReranker
_WORD = re.compile(r"\w+", re.UNICODE)


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) > 2]


def _lexical(query: str, texts: Sequence[str]) -> list[float]:
    """BM25 over the scope's memories as the corpus."""
    docs = [_terms(t) for t in texts]
    wanted = set(_terms(query))
    n = len(docs)
    average = sum(len(d) for d in docs) / n if n else 0.0
    frequency = Counter(term for d in docs for term in set(d))
    scores = []
    for doc in docs:
        counts = Counter(doc)
        score = 0.0
        for term in wanted & counts.keys():
            idf = math.log(1 + (n - frequency[term] + 0.5) / (frequency[term] + 0.5))
            tf = counts[term]
            score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(doc) / (average or 1)))
        scores.append(score)
    return scores


class Recall:
    def __init__(self, embedder: Embedder | None, *, cache_size: int = 20_000) -> None:
        self.embedder = embedder
        self.cache_size = cache_size
        self._vectors: OrderedDict[str, Sequence[float]] = OrderedDict()

    async def _embed(self, texts: Sequence[str]) -> list[Sequence[float]]:
        assert self.embedder is not None
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            result = await self.embedder.embed_documents(missing)
            for text, vector in zip(missing, result.embeddings, strict=True):
                self._vectors[text] = vector
            while len(self._vectors) > self.cache_size:
                self._vectors.popitem(last=False)
        return [self._vectors[t] for t in texts]

    async def _vector(self, query: str, texts: Sequence[str]) -> list[float] | None:
        if self.embedder is None:
            return None
        try:
            vectors = await self._embed(texts)
            wanted = (await self.embedder.embed_query(query)).embeddings[0]
        except Exception as exc:  # an embedding provider down: lexical ranking alone
            log.warning("memory recall without vectors (%s)", type(exc).__name__)
            return None
        norm = math.sqrt(sum(x * x for x in wanted)) or 1.0
        scores = []
        for vector in vectors:
            dot = sum(a * b for a, b in zip(wanted, vector, strict=False))
            scores.append(dot / (norm * (math.sqrt(sum(x * x for x in vector)) or 1.0)))
        return scores

    async def select(
        self, memories: Sequence[MemoryRecord], query: str, *, limit: int
    ) -> list[MemoryRecord]:
        """At most ``limit`` memories, oldest first: every one when they fit."""
        if len(memories) <= limit:
            return list(memories)
        texts = [m.content for m in memories]
        rankings = [_lexical(query, texts)]
        vector = await self._vector(query, texts)
        if vector is not None:
            rankings.append(vector)
        fused = [0.0] * len(memories)
        for scores in rankings:
            order = sorted(range(len(memories)), key=lambda i: (-scores[i], i))
            for rank, index in enumerate(order):
                fused[index] += 1.0 / (RRF_K + rank + 1)
        # ties (nothing matched): the newest memories
        best = sorted(range(len(memories)), key=lambda i: (-fused[i], -i))[:limit]
        return [memories[i] for i in sorted(best)]
