"""Helpers for knowledge tests: bases, uploads, waiting for ingestion, small PDF/DOCX files."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tools.bench.knowledge import make_docx, make_pdf

__all__ = ["create_base", "make_docx", "make_pdf", "upload", "wait_done"]


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
