"""Knowledge retrieval: quality on the evaluation set and the engine's speed.

``python -m tools.bench.knowledge [--quick] [--chunks 1000 100000] [--out DIR]``:

- quality: the evaluation set in ``tests/knowledge/eval_corpus.py`` (21 documents, a PDF and a
  DOCX among them, 50 questions) through the product's own pipeline (parse, chunk, embed,
  index); hit@5 and MRR@5 for hybrid, lexical-only and vector-only search;
- ingestion throughput (chunks/s: embed + write), query latency p50/p99 at each size, the ANN
  index's recall@10 against exact search at the largest size;
- the latency a knowledge search adds to a chat turn (offline model, in process).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import json
import random
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.table import Table

from employeevirtual.knowledge.chunking import chunk_text
from employeevirtual.knowledge.embedding import DEFAULT_EMBEDDING_MODEL, make_embedder
from employeevirtual.knowledge.engine import ChunkRow, SearchMode
from employeevirtual.knowledge.lance import LanceEngine
from employeevirtual.knowledge.parsing import Limits, kind_of, parse

__all__ = ["EvalResult", "evaluate_corpus", "load_corpus", "make_docx", "make_pdf"]

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "knowledge" / "eval_corpus.py"
LIMITS = Limits(max_pages=1000, max_chars=2_000_000, max_unzipped_bytes=100 * 2**20)
MODES: tuple[SearchMode, ...] = ("hybrid", "lexical", "vector")
console = Console()


def make_pdf(pages: list[str]) -> bytes:
    """A real PDF with one text page per entry (fpdf2)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def make_docx(title: str, sections: list[tuple[str, str]]) -> bytes:
    """A real .docx (python-docx): a title, then a heading and a paragraph per section."""
    import docx

    document = docx.Document()
    document.add_heading(title, level=0)
    for heading, body in sections:
        document.add_heading(heading, level=1)
        document.add_paragraph(body)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def load_corpus() -> tuple[dict[str, str], list[tuple[str, str]]]:
    spec = importlib.util.spec_from_file_location("eval_corpus", CORPUS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.DOCS), list(module.QUESTIONS)


def _file_bytes(name: str, text: str) -> bytes:
    """The .pdf and .docx entries become real files; the rest is UTF-8 text."""
    if name.endswith(".pdf"):
        return make_pdf([text])
    if name.endswith(".docx"):
        lines = [line for line in text.strip().splitlines() if line.strip()]
        sections: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line.startswith("## "):
                sections.append((line[3:], ""))
            elif sections:
                sections[-1] = (sections[-1][0], (sections[-1][1] + " " + line).strip())
        return make_docx(lines[0], sections)
    return text.encode()


@dataclass
class EvalResult:
    documents: int
    chunks: int
    questions: int
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # mode -> hit@5, mrr@5
    misses: dict[str, list[str]] = field(default_factory=dict)


async def _index_corpus(
    engine: LanceEngine, docs: dict[str, str], *, max_tokens: int, overlap: int
) -> tuple[dict[str, UUID], int, UUID]:
    embedder = make_embedder(DEFAULT_EMBEDDING_MODEL)
    base, owner = uuid.uuid4(), uuid.uuid4()
    ids: dict[str, UUID] = {}
    total = 0
    for name, text in docs.items():
        kind, _ = kind_of(name)
        parsed = parse(kind, _file_bytes(name, text), LIMITS)
        chunks = chunk_text(parsed.text, max_tokens=max_tokens, overlap=overlap)
        document_id = ids[name] = uuid.uuid4()
        title = name.rsplit(".", 1)[0].replace("-", " ")
        texts = ["\n".join(p for p in (title, c.heading, c.text) if p) for c in chunks]
        vectors = (await embedder.embed_documents(texts)).embeddings
        await engine.upsert(
            [
                ChunkRow(
                    chunk_id=f"{document_id}:{c.position}",
                    document_id=document_id,
                    base_id=base,
                    owner_id=owner,
                    position=c.position,
                    title=title,
                    heading=c.heading,
                    text=c.text,
                    vector=v,
                )
                for c, v in zip(chunks, vectors, strict=True)
            ]
        )
        total += len(chunks)
    return ids, total, base


async def evaluate_corpus(
    directory: Path, *, max_tokens: int = 200, overlap: int = 30, k: int = 5
) -> EvalResult:
    """Index the evaluation set in ``directory`` and score every question in each mode."""
    docs, questions = load_corpus()
    engine = LanceEngine(str(directory), embedding_model=DEFAULT_EMBEDDING_MODEL, dimensions=256)
    await engine.open()
    ids, chunks, base = await _index_corpus(engine, docs, max_tokens=max_tokens, overlap=overlap)
    embedder = make_embedder(DEFAULT_EMBEDDING_MODEL)
    result = EvalResult(documents=len(docs), chunks=chunks, questions=len(questions))
    for mode in MODES:
        hits = firsts = 0
        reciprocal = 0.0
        misses = []
        for question, answer in questions:
            vector = (await embedder.embed_query(question)).embeddings[0]
            found = await engine.search(
                text=question, vector=vector, base_ids=[base], limit=k, mode=mode
            )
            ranked = list(dict.fromkeys(h.document_id for h in found))
            if ids[answer] in ranked:
                hits += 1
                firsts += ranked[0] == ids[answer]
                reciprocal += 1 / (ranked.index(ids[answer]) + 1)
            else:
                misses.append(question)
        result.scores[mode] = {
            "hit@1": firsts / len(questions),
            f"hit@{k}": hits / len(questions),
            f"mrr@{k}": reciprocal / len(questions),
        }
        result.misses[mode] = misses
    await engine.close()
    return result


# -- speed ------------------------------------------------------------------------------------

_TOPICAL = """tent jacket refund warranty shipping order store price holiday laptop password
invoice repair zip sleeping bag stove poles delivery porto lisbon braga voucher points member
deposit rental breach policy expense hotel train team manager badge probation down fabric
recycled emissions logo wholesale discount card cash gift weekend week days hours euros"""
_WORDS = _TOPICAL.split()


def _vocabulary() -> list[str]:
    """Real words: the embedding tokenizer's whole-word pieces (about 12,000), so synthetic
    chunks differ as much as real ones do (a 50-word vocabulary made near-ties everywhere)."""
    from employeevirtual.knowledge.wordllama import wordllama_tokenizer

    pieces = wordllama_tokenizer().get_vocab()
    return sorted(
        w[1:] for w in pieces if w.startswith("\u2581") and w[1:].isalpha() and len(w) > 4
    )


def _synthetic(rng: random.Random, n: int, words: list[str] | None = None) -> list[str]:
    pool = words or _WORDS
    return [" ".join(rng.choices(pool, k=rng.randint(25, 60))) for _ in range(n)]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench_engine(
    directory: Path, sizes: list[int], *, queries: int, recall_queries: int
) -> dict[str, Any]:
    rng = random.Random(12)
    embedder = make_embedder(DEFAULT_EMBEDDING_MODEL)
    engine = LanceEngine(
        str(directory),
        embedding_model=DEFAULT_EMBEDDING_MODEL,
        dimensions=256,
        ann_min_rows=max(sizes),
    )
    await engine.open()
    base, owner, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    words = _vocabulary()
    out: dict[str, Any] = {"sizes": {}, "ann": {"ef": engine.ann_ef, "refine": engine.ann_refine}}
    have = 0
    embed_seconds = write_seconds = 0.0
    for size in sorted(sizes):
        while have < size:
            batch = min(2000, size - have)
            texts = _synthetic(rng, batch, words)
            started = time.perf_counter()
            vectors = (await embedder.embed_documents(texts)).embeddings
            embedded = time.perf_counter()
            document = uuid.uuid4()
            await engine.upsert(
                [
                    ChunkRow(
                        chunk_id=f"{document}:{i}",
                        document_id=document,
                        # one chunk in ten belongs to another base: the filter has work to do
                        base_id=other if (have + i) % 10 == 0 else base,
                        owner_id=owner,
                        position=i,
                        title="synthetic",
                        heading="",
                        text=t,
                        vector=v,
                    )
                    for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
                ]
            )
            embed_seconds += embedded - started
            write_seconds += time.perf_counter() - embedded
            have += batch
        started = time.perf_counter()
        await engine.optimize()  # the ANN index at the largest size; FTS folded in
        optimize_seconds = time.perf_counter() - started
        questions = _synthetic(rng, queries, words)
        vectors = (await embedder.embed_documents(questions)).embeddings
        timings: dict[str, dict[str, float]] = {}
        for mode in MODES:
            latencies = []
            for q, v in zip(questions, vectors, strict=True):
                started = time.perf_counter()
                await engine.search(text=q, vector=v, base_ids=[base], limit=5, mode=mode)
                latencies.append((time.perf_counter() - started) * 1000)
            timings[mode] = {
                "p50_ms": _percentile(latencies, 0.5),
                "p99_ms": _percentile(latencies, 0.99),
            }
        out["sizes"][str(size)] = {
            "chunks": have,
            "ann_index": await engine.has_ann_index(),
            "optimize_s": optimize_seconds,
            "query": timings,
        }
    out["ingest"] = {
        "chunks": have,
        "embed_chunks_per_s": have / embed_seconds,
        "write_chunks_per_s": have / write_seconds,
        "chunks_per_s": have / (embed_seconds + write_seconds),
    }
    # recall@10 of the ANN index against exact (brute-force) search at the largest size
    questions = _synthetic(rng, recall_queries, words)
    vectors = (await embedder.embed_documents(questions)).embeddings
    recalls = []
    for q, v in zip(questions, vectors, strict=True):
        ann = await engine.search(text=q, vector=v, base_ids=[base], limit=10, mode="vector")
        exact = await engine.search(
            text=q, vector=v, base_ids=[base], limit=10, mode="vector", exact=True
        )
        truth = {h.chunk_id for h in exact}
        recalls.append(len(truth & {h.chunk_id for h in ann}) / max(1, len(truth)))
    out["ann_recall_at_10"] = {
        "chunks": have,
        "queries": recall_queries,
        "ann_index": await engine.has_ann_index(),
        "recall": statistics.fmean(recalls),
        "min": min(recalls),
    }
    await engine.close()
    return out


async def bench_turns(directory: Path, turns: int) -> dict[str, Any]:
    """Turn latency with and without a knowledge search: the whole app in process (SQLite, the
    session's own SecantusDB), the offline model, the evaluation set as the base."""
    import httpx

    from employeevirtual.main import create_app
    from employeevirtual.settings import Settings

    docs, questions = load_corpus()
    settings = Settings(
        _env_file=None,
        data_dir=directory / "data",
        secret_key="bench-signing-key-0123456789abcdef",
        rate_limit_chat=1_000_000,
        rate_limit_global=1_000_000,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
            password = "a-long-unusual-passphrase-42"
            await client.post(
                "/api/auth/register", json={"email": email, "password": password, "name": "B"}
            )
            r = await client.post("/api/auth/login", data={"username": email, "password": password})
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            base = (
                await client.post("/api/knowledge-bases", json={"name": "kb"}, headers=headers)
            ).json()
            pending = []
            for name, text in docs.items():
                r = await client.post(
                    f"/api/knowledge-bases/{base['id']}/documents",
                    files={"file": (name, _file_bytes(name, text))},
                    headers=headers,
                )
                pending.append(r.json()["id"])
            for document_id in pending:
                while True:
                    r = await client.get(
                        f"/api/knowledge-bases/{base['id']}/documents/{document_id}",
                        headers=headers,
                    )
                    if r.json()["status"] in ("ready", "failed"):
                        break
                    await asyncio.sleep(0.05)
            plain = (
                await client.post("/api/agents", json={"name": "plain"}, headers=headers)
            ).json()
            reader = (
                await client.post(
                    "/api/agents",
                    json={"name": "reader", "knowledge_base_ids": [base["id"]]},
                    headers=headers,
                )
            ).json()
            results: dict[str, Any] = {}
            for label, agent in (("without_knowledge", plain), ("with_knowledge", reader)):
                r = await client.post(
                    "/api/chat/agent",
                    json={"message": "hello", "agent_id": agent["id"]},
                    headers=headers,
                )
                conversation = r.json()["conversation_id"]
                latencies = []
                for i in range(turns):
                    question = questions[i % len(questions)][0]
                    started = time.perf_counter()
                    r = await client.post(
                        "/api/chat/agent",
                        json={"message": question, "conversation_id": conversation},
                        headers=headers,
                    )
                    latencies.append((time.perf_counter() - started) * 1000)
                    assert r.status_code == 200, r.text
                results[label] = {
                    "turns": turns,
                    "p50_ms": _percentile(latencies, 0.5),
                    "p99_ms": _percentile(latencies, 0.99),
                }
            results["added_p50_ms"] = (
                results["with_knowledge"]["p50_ms"] - results["without_knowledge"]["p50_ms"]
            )
            return results


def _report(results: dict[str, Any]) -> None:
    quality = results["quality"]
    table = Table(
        title=f"Retrieval quality: {quality['questions']} questions, {quality['documents']} "
        f"documents, {quality['chunks']} chunks"
    )
    table.add_column("mode")
    table.add_column("hit@1", justify="right")
    table.add_column("hit@5", justify="right")
    table.add_column("MRR@5", justify="right")
    for mode, score in quality["scores"].items():
        table.add_row(
            mode, f"{score['hit@1']:.3f}", f"{score['hit@5']:.3f}", f"{score['mrr@5']:.3f}"
        )
    console.print(table)
    engine = results.get("engine")
    if engine:
        table = Table(title="Engine (LanceDB, embedded): query latency, top 5, one base filter")
        for column in ("chunks", "ANN index", "mode", "p50 ms", "p99 ms"):
            table.add_column(column, justify="right")
        for size in engine["sizes"].values():
            for mode, t in size["query"].items():
                table.add_row(
                    f"{size['chunks']:,}",
                    "yes" if size["ann_index"] else "no",
                    mode,
                    f"{t['p50_ms']:.1f}",
                    f"{t['p99_ms']:.1f}",
                )
        console.print(table)
        ingest = engine["ingest"]
        console.print(
            f"ingestion: {ingest['chunks_per_s']:,.0f} chunks/s (embedding "
            f"{ingest['embed_chunks_per_s']:,.0f}/s, writing {ingest['write_chunks_per_s']:,.0f}/s)"
        )
        recall = engine["ann_recall_at_10"]
        console.print(
            f"ANN recall@10 vs exact at {recall['chunks']:,} chunks: {recall['recall']:.3f} "
            f"(min {recall['min']:.2f}, {recall['queries']} queries, index: {recall['ann_index']})"
        )
    turns = results.get("turns")
    if turns:
        console.print(
            f"turn p50 without knowledge {turns['without_knowledge']['p50_ms']:.1f} ms, with a "
            f"knowledge search {turns['with_knowledge']['p50_ms']:.1f} ms: added "
            f"{turns['added_p50_ms']:.1f} ms (p99 {turns['without_knowledge']['p99_ms']:.1f} / "
            f"{turns['with_knowledge']['p99_ms']:.1f} ms)"
        )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ev-knowledge-bench-") as tmp:
        root = Path(tmp)
        results["quality"] = asdict(await evaluate_corpus(root / "eval"))
        if not args.quality_only:
            results["engine"] = await bench_engine(
                root / "engine",
                args.chunks,
                queries=args.queries,
                recall_queries=args.recall_queries,
            )
            results["turns"] = await bench_turns(root / "turns", args.turns)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.knowledge")
    parser.add_argument("--quick", action="store_true", help="1,000 and 5,000 chunks, few runs")
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--chunks", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=200)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    if args.quick:
        args.chunks, args.queries, args.recall_queries, args.turns = [1000, 5000], 50, 50, 20
    results = asyncio.run(run(args))
    _report(results)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"knowledge-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    console.print(f"written {path}")


if __name__ == "__main__":
    main()
