"""Small HTTP helpers for tests: the one account helper (register + log in), create an agent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

PASSWORD = "a-long-unusual-passphrase-42"


@dataclass
class Account:
    id: str
    email: str
    headers: dict[str, str]


async def account(
    client: httpx.AsyncClient, *, name: str = "Ana", email: str | None = None
) -> Account:
    """A new user, registered and logged in through the API (the first one is the admin)."""
    email = email or f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    r = await client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    r = await client.post("/api/auth/login", data={"username": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return Account(user_id, email, {"Authorization": f"Bearer {r.json()['access_token']}"})


async def register_and_login(
    client: httpx.AsyncClient, *, email: str | None = None, name: str = "Ana"
) -> dict[str, str]:
    """``account``'s headers alone (what most tests need)."""
    return (await account(client, name=name, email=email)).headers


async def create_agent(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    body = {"name": "Assistente", "instructions": "Be concise.", **fields}
    r = await client.post("/api/agents", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json())
