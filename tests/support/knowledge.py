"""Helpers for knowledge tests: bases, uploads, waiting for ingestion, small PDF/DOCX files."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx


async def create_base(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    r = await client.post(
        "/api/knowledge-bases", json={"name": "Handbook", **fields}, headers=headers
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    base_id: str,
    filename: str,
    data: bytes,
    *,
    title: str | None = None,
    expect: int = 202,
) -> dict[str, Any]:
    r = await client.post(
        f"/api/knowledge-bases/{base_id}/documents",
        files={"file": (filename, data)},
        data={"title": title} if title else None,
        headers=headers,
    )
    assert r.status_code == expect, r.text
    return dict(r.json())


async def wait_done(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    base_id: str,
    document_id: str,
    *,
    seconds: float = 60.0,
) -> dict[str, Any]:
    """Poll the document until it is ready or failed."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        r = await client.get(
            f"/api/knowledge-bases/{base_id}/documents/{document_id}", headers=headers
        )
        assert r.status_code == 200, r.text
        doc = dict(r.json())
        if doc["status"] in ("ready", "failed"):
            return doc
        assert asyncio.get_running_loop().time() < deadline, f"still {doc['status']}: {doc}"
        await asyncio.sleep(0.1)


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
