"""Idempotency keys for chat turns (IETF httpapi ``Idempotency-Key`` draft, Stripe's practice).

A key belongs to one user. ``claim`` inserts it as *pending* in a small transaction of its own,
before the agent runs, so a concurrent duplicate finds it and gets 409 instead of running the
agent a second time. The turn's own SQL transaction completes it with the response (status and
body, built by ``chat.responses.turn_response``), fenced by the claim's token: acknowledged
still means committed, and a retry after that replays the stored response. A request that ends
before its commit releases the key. A pending key records the server instance running it; a
retry takes it over at once when that instance is known to be gone (see ``health.instance``),
and otherwise once its lease runs out. If the old owner was only slow, its commit finds the
token changed and rolls back, so the turn still happens once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.errors import Conflict, InvalidInput
from employeevirtual.health.instance import ServerInstance
from employeevirtual.stores.sql.engine import WriteConnection, write_transaction
from employeevirtual.stores.sql.idempotency import IdempotencyRepository, KeyOwner
from employeevirtual.tasks import Background, raise_if_cancelling

__all__ = ["IdempotencyClaim", "IdempotencyKeys", "StoredResponse", "fingerprint"]

log = logging.getLogger(__name__)

KEY_MAX = 255


def fingerprint(**fields: Any) -> str:
    """A digest of what makes two requests the same request (field order and form aside)."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: str


@dataclass(slots=True)
class IdempotencyClaim:
    """A key this request holds. ``response`` is set inside the turn's transaction, before its
    COMMIT, so it does not prove the turn committed: on any failure, call
    ``IdempotencyKeys.release`` (it spares a key that did commit)."""

    user_id: UUID
    key: str
    token: UUID
    response: StoredResponse | None = None

    @property
    def owner(self) -> KeyOwner:
        return KeyOwner(self.user_id, self.key, self.token)

    async def complete(
        self, conn: WriteConnection, response: StoredResponse, conversation_id: UUID
    ) -> None:
        """Inside the turn's transaction; raises Conflict (rolling the turn back) when the key
        was taken over meanwhile."""
        stored = await IdempotencyRepository(conn).complete(
            self.owner,
            status=response.status,
            body=response.body,
            conversation_id=conversation_id,
            now=datetime.now(UTC),
        )
        if not stored:
            raise Conflict(
                "this Idempotency-Key was taken over by a retry after its lease ran out; "
                "nothing was written by this request"
            )
        self.response = response


class IdempotencyKeys:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        lease_seconds: float,
        ttl_seconds: float,
        instance: ServerInstance | None = None,
    ) -> None:
        self.engine = engine
        self.instance = instance  # this server: the owner its claims record
        self.lease = timedelta(seconds=lease_seconds)
        self.ttl = timedelta(seconds=ttl_seconds)
        self._background = Background("idempotency-purge")

    async def claim(
        self,
        *,
        user_id: UUID,
        key: str,
        request_fingerprint: str,
    ) -> IdempotencyClaim | StoredResponse:
        """The claim to run the request under, or the stored response to replay.

        Raises InvalidInput (422) when the key was used for a different request, Conflict (409)
        while another request with the key is still running."""
        if not key or len(key) > KEY_MAX or not key.isprintable() or not key.isascii():
            raise InvalidInput(f"Idempotency-Key must be 1 to {KEY_MAX} printable ASCII characters")
        token = uuid.uuid4()
        for _ in range(3):
            now = datetime.now(UTC)
            try:
                async with write_transaction(self.engine) as conn:
                    await IdempotencyRepository(conn).insert_pending(
                        KeyOwner(user_id, key, token),
                        fingerprint=request_fingerprint,
                        now=now,
                        locked_until=now + self.lease,
                        owner_id=self._owner,
                    )
                return IdempotencyClaim(user_id, key, token)
            except IntegrityError:
                pass
            async with write_transaction(self.engine) as conn:
                repo = IdempotencyRepository(conn)
                stored = await repo.get(user_id=user_id, key=key)
                if stored is None:
                    continue  # released or purged meanwhile: try to insert again
                if stored.fingerprint != request_fingerprint:
                    raise InvalidInput(
                        "this Idempotency-Key was already used for a different request; "
                        "use a new key for a new request"
                    )
                if stored.status == "complete":
                    assert stored.response_status is not None
                    return StoredResponse(stored.response_status, stored.response_body or "")
                leased = stored.locked_until is not None and stored.locked_until > now
                if leased and not await self._owner_gone(stored.owner_id, conn):
                    raise Conflict(
                        "a request with this Idempotency-Key is still being processed; "
                        "retry shortly to get its response",
                        headers={"Retry-After": "1"},
                    )
                if await repo.take_over(
                    KeyOwner(user_id, key, token),
                    old_token=stored.token,
                    locked_until=now + self.lease,
                    owner_id=self._owner,
                ):
                    log.warning(
                        "took over an Idempotency-Key whose %s (user %s)",
                        "owner is gone" if leased else "lease expired",
                        user_id,
                    )
                    return IdempotencyClaim(user_id, key, token)
        raise Conflict(
            "this Idempotency-Key is contended; retry shortly", headers={"Retry-After": "1"}
        )

    @property
    def _owner(self) -> UUID | None:
        return self.instance.id if self.instance is not None else None

    async def _owner_gone(self, owner_id: UUID | None, conn: WriteConnection) -> bool:
        """Whether the server holding a leased key is known to be gone, read on the key's own
        transaction (``conn``). Unknown owners (keys from before owners were recorded, or no
        instance here to judge) keep the lease."""
        if owner_id is None or self.instance is None:
            return False
        try:
            return await self.instance.is_gone(owner_id, conn)
        except SQLAlchemyError:
            return False

    @asynccontextmanager
    async def released_on_failure(self, claim: IdempotencyClaim | None) -> AsyncIterator[None]:
        """Around a turn run under ``claim``: any failure, a failed COMMIT included (the
        response is set inside the transaction), releases the key so that a retry runs it;
        ``release`` spares a key that did commit (it is complete)."""
        try:
            yield
        except BaseException:
            if claim is not None:
                await self.release(claim)
            raise

    async def release(self, claim: IdempotencyClaim) -> None:
        """The request ended without committing: let a retry run it."""
        try:
            async with write_transaction(self.engine) as conn:
                await IdempotencyRepository(conn).release(claim.owner)
        except SQLAlchemyError as exc:  # the lease frees it later
            log.warning("could not release an Idempotency-Key: %s", type(exc).__name__)

    async def purge(self, *, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            return await IdempotencyRepository(conn).purge(created_before=now - self.ttl, now=now)

    async def _loop(self, interval: float) -> None:
        while True:
            try:
                purged = await self.purge()
                if purged:
                    log.info("purged %d expired Idempotency-Key(s)", purged)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("Idempotency-Key purge failed: %s", type(exc).__name__)
            raise_if_cancelling()
            await asyncio.sleep(interval)

    def start(self, interval: float = 3600.0) -> None:
        self._background.start(lambda: self._loop(interval))

    async def stop(self) -> None:
        await self._background.stop()
