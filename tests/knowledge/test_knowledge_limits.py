"""Every knowledge limit answers a clear 4xx, and a hostile or damaged file fails its own
document with a readable reason while the rest of the base stays ready."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from employeevirtual.main import create_app
from employeevirtual.settings import Settings
from support.api import register_and_login
from support.knowledge import create_base, make_docx, make_pdf, upload, wait_done


@pytest.fixture
async def small(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    limited = settings.model_copy(
        update={
            "knowledge_max_file_bytes": 200 * 1024,
            "knowledge_max_documents_per_base": 4,
            "knowledge_max_bases_per_user": 2,
            "knowledge_max_pages": 3,
            "knowledge_max_chars": 5000,
            "knowledge_max_unzipped_bytes": 200_000,
        }
    )
    app = create_app(limited)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def _pdf_bomb() -> bytes:
    """A one-page PDF whose content stream inflates to 80 MB from ~80 kB."""
    stream = zlib.compress(b"0" * 80_000_000, 9)
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R"
        b"/Resources<</Font<</F1<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>>>>>>>",
        b"<</Length %d/Filter/FlateDecode>>stream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<</Root 1 0 R/Size %d>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _zip_bomb_docx() -> bytes:
    """A .docx whose document.xml inflates to 1 MB of zeros from a few kB."""
    real = zipfile.ZipFile(io.BytesIO(make_docx("Bomb", [("A", "b")])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for item in real.infolist():
            bomb.writestr(item, real.read(item))
        bomb.writestr("word/padding.bin", b"\0" * 1_000_000)
    return out.getvalue()


async def test_limits_answer_clear_4xx(small: httpx.AsyncClient) -> None:
    headers = await register_and_login(small)
    base = await create_base(small, headers)
    bid = base["id"]

    r = await small.post(
        f"/api/knowledge-bases/{bid}/documents",
        files={"file": ("tool.exe", b"MZ\x90\x00")},
        headers=headers,
    )
    assert r.status_code == 415 and ".pdf" in r.json()["detail"], r.text

    r = await small.post(
        f"/api/knowledge-bases/{bid}/documents",
        files={"file": ("big.txt", b"x" * (200 * 1024 + 1))},
        headers=headers,
    )
    assert r.status_code == 413 and "EV_KNOWLEDGE_MAX_FILE_BYTES" in r.json()["detail"], r.text

    # far over: refused by the body limit before the route reads anything
    r = await small.post(
        f"/api/knowledge-bases/{bid}/documents",
        files={"file": ("huge.txt", b"x" * (600 * 1024))},
        headers=headers,
    )
    assert r.status_code == 413, r.text

    pdf = make_pdf([f"page {i}" for i in range(5)])
    r = await small.post(
        f"/api/knowledge-bases/{bid}/documents",
        files={"file": ("long.pdf", pdf)},
        headers=headers,
    )
    assert r.status_code == 422 and "5 pages" in r.json()["detail"], r.text

    r = await small.post(
        f"/api/knowledge-bases/{bid}/documents",
        files={"file": ("bomb.docx", _zip_bomb_docx())},
        headers=headers,
    )
    assert r.status_code == 422 and "zip bomb" in r.json()["detail"], r.text

    for i in range(4):
        await upload(small, headers, bid, f"n{i}.txt", f"note number {i}".encode())
    r = await small.post(
        f"/api/knowledge-bases/{bid}/documents",
        files={"file": ("n4.txt", b"one too many")},
        headers=headers,
    )
    assert r.status_code == 409 and "EV_KNOWLEDGE_MAX_DOCUMENTS_PER_BASE" in r.text, r.text

    await create_base(small, headers, name="second")
    r = await small.post("/api/knowledge-bases", json={"name": "third"}, headers=headers)
    assert r.status_code == 409 and "EV_KNOWLEDGE_MAX_BASES_PER_USER" in r.text, r.text

    r = await small.get("/api/knowledge-bases?limit=1000", headers=headers)
    assert r.status_code == 422, r.text


async def test_damaged_files_fail_alone_with_a_reason(small: httpx.AsyncClient) -> None:
    headers = await register_and_login(small)
    base = await create_base(small, headers)
    bid = base["id"]
    good = await upload(small, headers, bid, "good.md", b"# Hours\n\nWe open at nine.")
    pdf = make_pdf(["Warranty terms for every tent we sell, three years."])
    truncated = await upload(small, headers, bid, "cut.pdf", pdf[: len(pdf) // 2])
    long_text = await upload(small, headers, bid, "long.txt", b"word " * 2000)
    bomb = await upload(small, headers, bid, "bomb.pdf", _pdf_bomb())

    failed = await wait_done(small, headers, bid, truncated["id"])
    assert failed["status"] == "failed"
    assert "PDF" in failed["error"] or "pdf" in failed["error"], failed
    too_long = await wait_done(small, headers, bid, long_text["id"])
    assert too_long["status"] == "failed"
    assert "EV_KNOWLEDGE_MAX_CHARS" in too_long["error"], too_long
    exploded = await wait_done(small, headers, bid, bomb["id"])
    assert exploded["status"] == "failed", exploded
    assert "page 1 of the PDF cannot be read" in exploded["error"], exploded
    ok: dict[str, Any] = await wait_done(small, headers, bid, good["id"])
    assert ok["status"] == "ready" and ok["chunks_total"] >= 1

    r = await small.post(
        f"/api/knowledge-bases/{bid}/search", json={"query": "when do you open"}, headers=headers
    )
    assert [s["document_id"] for s in r.json()["results"]] == [good["id"]]
