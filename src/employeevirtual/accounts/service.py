"""Registration, login and the first admin."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

from pymongo.errors import PyMongoError
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from employeevirtual.security.login_throttle import LoginThrottle
from employeevirtual.security.password_policy import PasswordPolicy
from employeevirtual.security.passwords import hash_password, verify_password
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.records import UserRecord, UserRole
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.claims import ClaimRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.users import NewUser, UserReader, UserRepository

FIRST_ADMIN = "first_admin"

__all__ = ["AccountService"]

log = logging.getLogger(__name__)


class AccountService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        documents: DocumentStore,
        allow_signup: bool,
        password_policy: PasswordPolicy | None = None,
        throttle: LoginThrottle | None = None,
        first_user_admin: bool = True,
    ) -> None:
        self.engine = engine
        self.documents = documents
        self.allow_signup = allow_signup
        self.first_user_admin = first_user_admin
        self.password_policy = password_policy or PasswordPolicy()
        self.throttle = throttle

    async def register(
        self, *, email: str, password: str, name: str, role: UserRole | None = None
    ) -> UserRecord:
        """Create a user; the very first one is an admin when ``first_user_admin`` (once per
        installation, atomically). ``role`` is for the CLI only."""
        if role is None and not self.allow_signup:
            raise Forbidden("registration is closed on this server; ask an administrator")
        email = email.strip().lower()
        problems = self.password_policy.problems(password, email=email, name=name)
        if problems:
            raise InvalidInput(
                "the password does not meet the rules: " + " ".join(problems), problems=problems
            )
        password_hash = hash_password(password)
        now = datetime.now(UTC)
        try:
            async with write_transaction(self.engine) as conn:
                users = UserRepository(conn)
                if await users.get_by_email(email) is not None:
                    raise Conflict(f"a user with email {email} already exists; log in instead")
                granted: UserRole = role or "user"
                first_admin = (
                    role is None
                    and self.first_user_admin
                    and await users.count() == 0
                    # the claim's primary key makes "first" atomic: of concurrent first
                    # sign-ups exactly one gets it, on every backend
                    and await ClaimRepository(conn).claim(FIRST_ADMIN, now=now)
                )
                if first_admin:
                    granted = "admin"
                user = await users.create(
                    NewUser(email, name.strip(), password_hash, granted), now=now
                )
                if first_admin:
                    await ClaimRepository(conn).record_holder(FIRST_ADMIN, user.id)
                await AuditRepository(conn).record(
                    action="user.register",
                    actor_id=user.id,
                    target_type="user",
                    target_id=str(user.id),
                    details={"role": granted},
                    now=now,
                )
        except IntegrityError:
            raise Conflict(f"a user with email {email} already exists; log in instead") from None
        return user

    async def authenticate(self, *, email: str, password: str, client_ip: str | None) -> UserRecord:
        """The user, or Unauthorized; RateLimited (audited) after too many failures for the
        account or the address. The throttle fails closed: no Redis, no login (503)."""
        email = email.strip().lower()
        address = client_ip or "unknown"
        if self.throttle is not None:
            try:
                decision = await self.throttle.check(email, address)
            except RedisError:
                raise Unavailable(
                    "login is unavailable (throttle store down); retry shortly"
                ) from None
            if not decision.allowed:
                await self._record_throttled(email, client_ip, decision.retry_after or 1)
                raise RateLimited(
                    "too many failed logins from this address (for this account, or in all); "
                    f"retry in {decision.retry_after} s",
                    headers=decision.headers(),
                    retry_after=decision.retry_after,
                )
        user = await self._check_password(email, password, client_ip)
        if self.throttle is not None:
            try:
                if user is None:
                    await self.throttle.record_failure(email, address)
                else:
                    await self.throttle.record_success(email, address)
            except RedisError:
                raise Unavailable(
                    "login is unavailable (throttle store down); retry shortly"
                ) from None
        if user is None:
            raise Unauthorized("wrong email or password")
        try:
            await self.documents.log_activity(
                user_id=user.id, activity="login", details={"client_ip": client_ip}
            )
        except PyMongoError as exc:
            log.warning("could not log login activity: %s", type(exc).__name__)
        return user

    async def _record_throttled(self, email: str, client_ip: str | None, retry_after: int) -> None:
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            user = await UserRepository(conn).get_by_email(email)
            await AuditRepository(conn).record(
                action="auth.login_throttled",
                actor_id=None,
                target_type="user",
                target_id=str(user.id) if user else None,
                details={"email_known": user is not None, "retry_after": retry_after},
                client_ip=client_ip,
                now=now,
            )

    async def _check_password(
        self, email: str, password: str, client_ip: str | None
    ) -> UserRecord | None:
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            user = await UserRepository(conn).get_by_email(email)
            ok = verify_password(password, user.password_hash if user else None)
            ok = ok and user is not None and user.is_active
            await AuditRepository(conn).record(
                action="auth.login" if ok else "auth.login_failed",
                actor_id=user.id if user else None,
                target_type="user",
                target_id=str(user.id) if user else None,
                details={} if ok else {"email_known": user is not None},
                client_ip=client_ip,
                now=now,
            )
        return user if ok else None

    async def get_active(self, user_id: UUID) -> UserRecord | None:
        async with read_connection(self.engine) as conn:
            user = await UserReader(conn).get(user_id)
        return user if user is not None and user.is_active else None
