"""Typed dependencies: the runtime's services and the authenticated caller."""

from __future__ import annotations

from typing import Annotated, cast
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from employeevirtual.accounts.service import AccountService
from employeevirtual.agents.service import AgentService
from employeevirtual.chat.conversations import ConversationService
from employeevirtual.chat.service import ChatService
from employeevirtual.errors import Unauthorized
from employeevirtual.runtime import Runtime
from employeevirtual.security.tokens import InvalidToken
from employeevirtual.settings import Settings
from employeevirtual.stores.records import UserRecord

_bearer = OAuth2PasswordBearer(tokenUrl="/api/auth/login", auto_error=False)


# async on purpose: FastAPI runs a plain `def` dependency in a worker thread, per request
async def get_runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def _settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


async def _accounts(runtime: RuntimeDep) -> AccountService:
    return runtime.accounts


async def _agents(runtime: RuntimeDep) -> AgentService:
    return runtime.agents


async def _conversations(runtime: RuntimeDep) -> ConversationService:
    return runtime.conversations


async def _chat(runtime: RuntimeDep) -> ChatService:
    return runtime.chat


SettingsDep = Annotated[Settings, Depends(_settings)]
AccountsDep = Annotated[AccountService, Depends(_accounts)]
AgentsDep = Annotated[AgentService, Depends(_agents)]
ConversationsDep = Annotated[ConversationService, Depends(_conversations)]
ChatDep = Annotated[ChatService, Depends(_chat)]


async def current_user(
    runtime: RuntimeDep, token: Annotated[str | None, Depends(_bearer)]
) -> UserRecord:
    if not token:
        raise Unauthorized("missing bearer token: log in at /api/auth/login")
    try:
        user_id = runtime.tokens.subject(token)
    except InvalidToken as exc:
        raise Unauthorized(str(exc)) from None
    user = await runtime.accounts.get_active(user_id)
    if user is None:
        raise Unauthorized("the token's user no longer exists or is deactivated")
    return user


CurrentUser = Annotated[UserRecord, Depends(current_user)]


async def current_user_id(
    runtime: RuntimeDep, token: Annotated[str | None, Depends(_bearer)]
) -> UUID:
    """The token's subject, unchecked against the store: only for services that check the user
    exists and is active inside their own read (the chat turn), saving a round trip."""
    if not token:
        raise Unauthorized("missing bearer token: log in at /api/auth/login")
    try:
        return runtime.tokens.subject(token)
    except InvalidToken as exc:
        raise Unauthorized(str(exc)) from None


CurrentUserId = Annotated[UUID, Depends(current_user_id)]


async def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


ClientIP = Annotated[str | None, Depends(client_ip)]
