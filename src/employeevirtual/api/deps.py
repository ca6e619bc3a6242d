"""Typed dependencies: the runtime's services and the authenticated caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar, cast
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from employeevirtual.accounts.service import AccountService
from employeevirtual.agents.service import AgentService
from employeevirtual.chat.conversations import ConversationService
from employeevirtual.chat.live import LiveTurns
from employeevirtual.chat.service import ChatService
from employeevirtual.errors import Forbidden, Unauthorized
from employeevirtual.knowledge.service import KnowledgeService
from employeevirtual.runtime import Runtime
from employeevirtual.security.api_keys import looks_like_api_key
from employeevirtual.security.tokens import InvalidToken
from employeevirtual.settings import Settings
from employeevirtual.stores.records import UserRecord

T = TypeVar("T")

_bearer = OAuth2PasswordBearer(
    tokenUrl="/api/auth/login",
    auto_error=False,
    description="a token from /api/auth/login, or an API key (ev_live_...)",
)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (ev_live_...)")


def runtime_of(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


# async on purpose: FastAPI runs a plain `def` dependency in a worker thread, per request.
# The dependencies below take the request, not ``RuntimeDep``: FastAPI walks a dependency's
# whole sub-tree on every use, cached or not, so each nesting level costs every request.
async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def from_runtime(part: Callable[[Runtime], T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency answering one part of the runtime: ``Depends(from_runtime(lambda r: r.x))``
    (async, like ``get_runtime``)."""

    async def dependency(request: Request) -> T:
        return part(runtime_of(request))

    return dependency


SettingsDep = Annotated[Settings, Depends(from_runtime(lambda r: r.settings))]
LiveDep = Annotated[LiveTurns, Depends(from_runtime(lambda r: r.live))]
AccountsDep = Annotated[AccountService, Depends(from_runtime(lambda r: r.accounts))]
AgentsDep = Annotated[AgentService, Depends(from_runtime(lambda r: r.agents))]
ConversationsDep = Annotated[ConversationService, Depends(from_runtime(lambda r: r.conversations))]
ChatDep = Annotated[ChatService, Depends(from_runtime(lambda r: r.chat))]
KnowledgeDep = Annotated[KnowledgeService, Depends(from_runtime(lambda r: r.knowledge))]


async def _authenticate(
    runtime: Runtime, token: str | None, api_key: str | None, *, load_user: bool
) -> UserRecord | UUID:
    if token and api_key:
        raise Unauthorized("send one credential: either Authorization: Bearer or X-API-Key")
    credential = token or api_key
    if not credential:
        raise Unauthorized(
            "missing bearer token: log in at /api/auth/login, or send an API key as "
            "'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )
    if looks_like_api_key(credential):
        user = await runtime.api_keys.authenticate(credential)
        if user is None:
            raise Unauthorized(
                "the API key is not valid: unknown, revoked, or its user is inactive"
            )
        return user
    if api_key:
        raise Unauthorized("X-API-Key does not hold an API key (they start with ev_live_)")
    try:
        user_id = runtime.tokens.subject(credential)
    except InvalidToken as exc:
        raise Unauthorized(str(exc)) from None
    if not load_user:
        return user_id
    found = await runtime.accounts.get_active(user_id)
    if found is None:
        raise Unauthorized("the token's user no longer exists or is deactivated")
    return found


# the two credentials as dependencies (each is a security scheme of the OpenAPI document)
BearerToken = Annotated[str | None, Depends(_bearer)]
ApiKey = Annotated[str | None, Depends(_api_key)]


async def current_user(request: Request, token: BearerToken, api_key: ApiKey) -> UserRecord:
    """The caller, loaded on every request so a deactivated user is refused at once."""
    user = await _authenticate(runtime_of(request), token, api_key, load_user=True)
    assert isinstance(user, UserRecord)
    return user


CurrentUser = Annotated[UserRecord, Depends(current_user)]


async def caller_id(runtime: Runtime, token: str | None, api_key: str | None) -> UUID:
    """The caller's id. A token's subject is not checked against the store here: only for
    services that check the user exists and is active inside their own read (the chat turn),
    saving a round trip. An API key is always looked up (it has to be)."""
    caller = await _authenticate(runtime, token, api_key, load_user=False)
    return caller.id if isinstance(caller, UserRecord) else caller


async def current_user_id(request: Request, token: BearerToken, api_key: ApiKey) -> UUID:
    """``caller_id`` as a dependency."""
    return await caller_id(runtime_of(request), token, api_key)


CurrentUserId = Annotated[UUID, Depends(current_user_id)]


async def require_active(runtime: Runtime, user_id: UUID) -> UserRecord:
    """The ``CurrentUserId`` caller loaded, for a path that reads or writes before the service
    that would check them (an Idempotency-Key's claim and replay)."""
    found = await runtime.accounts.get_active(user_id)
    if found is None:
        raise Unauthorized("the token's user no longer exists or is deactivated")
    return found


async def admin_user(user: CurrentUser) -> UserRecord:
    if not user.is_admin:
        raise Forbidden("this needs the admin role")
    return user


AdminUser = Annotated[UserRecord, Depends(admin_user)]


async def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


ClientIP = Annotated[str | None, Depends(client_ip)]
