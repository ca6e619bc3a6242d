"""Small HTTP helpers for tests: register, log in, create an agent, chat."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

PASSWORD = "a-long-unusual-passphrase-42"


async def register_and_login(
    client: httpx.AsyncClient, *, email: str | None = None, name: str = "Ana"
) -> dict[str, str]:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    r = await client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/auth/login", data={"username": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def create_agent(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    body = {"name": "Assistente", "instructions": "Be concise.", **fields}
    r = await client.post("/api/agents", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json())
