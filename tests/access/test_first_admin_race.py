"""Exactly one admin from concurrent first sign-ups, on every backend (issue 8, item 2): the
role was decided from count(*) == 0 under READ COMMITTED, and PostgreSQL made 5-7 admins."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import select

from employeevirtual.settings import Settings
from employeevirtual.stores.sql.tables import claims, users
from support.access import app_client
from support.api import PASSWORD


async def test_concurrent_first_signups_make_exactly_one_admin(settings: Settings) -> None:
    for _round in range(2):  # the claim is once per installation: a second wave makes none
        async with app_client(settings, rate_limit_global=10_000) as (client, runtime):
            results = await asyncio.gather(
                *(
                    client.post(
                        "/api/auth/register",
                        json={
                            "email": f"racer{_round}-{i}@example.com",
                            "password": PASSWORD,
                            "name": f"Racer {i}",
                        },
                    )
                    for i in range(10)
                )
            )
            assert [r.status_code for r in results] == [201] * 10, [r.text for r in results]
            async with runtime.engine.connect() as conn:
                roles = Counter((await conn.execute(select(users.c.role))).scalars())
                holder = (await conn.execute(select(claims.c.claimed_by))).scalars().all()
            assert roles == Counter({"admin": 1, "user": 10 * _round + 9}), roles
            admins = [r.json()["id"] for r in results if r.json()["role"] == "admin"]
            if _round == 0:
                assert len(admins) == 1 and [str(h) for h in holder] == admins
            else:
                assert admins == []


async def test_sign_up_makes_no_admin_when_turned_off(settings: Settings) -> None:
    async with app_client(settings, first_user_admin=False) as (client, runtime):
        r = await client.post(
            "/api/auth/register",
            json={"email": "first@example.com", "password": PASSWORD, "name": "First"},
        )
        assert r.status_code == 201 and r.json()["role"] == "user"
        # create-admin (the CLI's path) still makes one
        admin = await runtime.accounts.register(
            email="ops@example.com", password=PASSWORD, name="Ops", role="admin"
        )
        assert admin.role == "admin"
