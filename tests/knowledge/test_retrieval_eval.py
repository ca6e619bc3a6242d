"""Retrieval quality on the evaluation set (``eval_corpus.py``: 21 documents of a fictional
company, a PDF and a DOCX among them, 50 questions): indexed through the product's parse ->
chunk -> embed (embedded WordLlama) -> LanceDB pipeline, scored for hybrid, lexical-only and
vector-only search. Hybrid must find the answering document in the top 5 for 90% of the
questions; the three modes are printed side by side (``pytest -s``)."""

from __future__ import annotations

from pathlib import Path

from tools.bench.knowledge import evaluate_corpus


async def test_hybrid_retrieval_hit_at_5(tmp_path: Path) -> None:
    result = await evaluate_corpus(tmp_path / "index")
    assert result.documents == 21 and result.questions == 50
    assert result.chunks >= result.documents
    print(f"\n{result.questions} questions, {result.documents} documents, {result.chunks} chunks")
    print(f"{'mode':8} {'hit@1':>6} {'hit@5':>6} {'MRR@5':>6}")
    for mode, score in result.scores.items():
        print(f"{mode:8} {score['hit@1']:6.3f} {score['hit@5']:6.3f} {score['mrr@5']:6.3f}")
        print(f"         missed: {result.misses[mode]}")
    assert set(result.scores) == {"hybrid", "lexical", "vector"}
    assert result.scores["hybrid"]["hit@5"] >= 0.9, result.misses["hybrid"]
