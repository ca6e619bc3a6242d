"""Password rules at registration and login throttling (429 + Retry-After, audited)."""

from __future__ import annotations

import httpx

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from support.access import account, app_client, audit_rows, counts
from support.api import PASSWORD


async def test_weak_passwords_are_refused_listing_every_problem(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    before = await counts(runtime)
    cases = {
        "short": ["at least 10 characters"],
        "password123": ["too common"],
        "maria-silva-2026!": ["must not contain your name"],
        "zeca.pagodinho.9@x": ["must not contain your email"],
        "abc": ["at least 10 characters", "too common"],
    }
    for password, expected in cases.items():
        body = {
            "email": "zeca.pagodinho.9@example.com",
            "password": password,
            "name": "Maria Silva",
        }
        r = await client.post("/api/auth/register", json=body)
        assert r.status_code == 422, (password, r.text)
        problems = r.json()["problems"]
        for fragment in expected:
            assert any(fragment in p for p in problems), (password, problems)
        assert "password does not meet the rules" in r.json()["detail"]
        assert password not in r.text  # the password is never echoed
    assert await counts(runtime) == before
    r = await client.post(
        "/api/auth/register", json={"email": "m@example.com", "password": PASSWORD, "name": "M"}
    )
    assert r.status_code == 201


async def test_login_is_throttled_per_account_and_address(settings: Settings) -> None:
    """OWASP's way: growing delays for one account from one address; failures from other
    addresses lock nobody out (five from rotating addresses used to lock the account)."""
    async with app_client(settings, login_max_failures=3, login_delay_base_seconds=30) as (
        client,
        runtime,
    ):
        user = await account(client)
        for _ in range(3):
            r = await client.post(
                "/api/auth/login", data={"username": user.email, "password": "wrong-password!"}
            )
            assert r.status_code == 401
        # from the guessing address, even the right password waits out the delay
        r = await client.post(
            "/api/auth/login", data={"username": user.email, "password": PASSWORD}
        )
        assert r.status_code == 429, r.text
        assert int(r.headers["Retry-After"]) == 30
        assert r.headers["RateLimit-Remaining"] == "0"
        assert "too many failed logins" in r.json()["detail"]
        (row,) = await audit_rows(runtime, "auth.login_throttled")
        assert row["target_id"] == user.id
        assert row["client_ip"] == "203.0.113.7"
        assert len(await audit_rows(runtime, "auth.login_failed")) == 3
        # the owner, from another address, logs in at once
        app = client._transport.app  # type: ignore[attr-defined]
        for peer in ("198.51.100.20", "198.51.100.21"):
            transport = httpx.ASGITransport(app=app, client=(peer, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as other:
                for _ in range(6 if peer.endswith("20") else 0):  # an attacker's address
                    await other.post(
                        "/api/auth/login", data={"username": user.email, "password": "nope!!"}
                    )
                r = await other.post(
                    "/api/auth/login", data={"username": user.email, "password": PASSWORD}
                )
                assert r.status_code == (429 if peer.endswith("20") else 200), r.text


async def test_rotating_addresses_lock_nobody_out(settings: Settings) -> None:
    async with app_client(settings, login_max_failures=5) as (client, _runtime):
        user = await account(client)
        app = client._transport.app  # type: ignore[attr-defined]
        for i in range(12):
            transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{i}", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as attacker:
                r = await attacker.post(
                    "/api/auth/login", data={"username": user.email, "password": "guess-" + str(i)}
                )
                assert r.status_code == 401
        r = await client.post(
            "/api/auth/login", data={"username": user.email, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text


async def test_login_is_capped_per_address(settings: Settings) -> None:
    """One address spraying many accounts is stopped even though no account is hit twice."""
    async with app_client(settings, login_address_max_failures=3) as (client, runtime):
        for i in range(3):
            r = await client.post(
                "/api/auth/login", data={"username": f"nobody{i}@example.com", "password": "x" * 12}
            )
            assert r.status_code == 401
        r = await client.post(
            "/api/auth/login", data={"username": "someone@example.com", "password": "x" * 12}
        )
        assert r.status_code == 429
        assert "Retry-After" in r.headers
        (row,) = await audit_rows(runtime, "auth.login_throttled")
        assert row["details"]["email_known"] is False
