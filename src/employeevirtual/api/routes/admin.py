from __future__ import annotations

import base64
import binascii
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from employeevirtual.accounts.admin import AdminService, UserChanges
from employeevirtual.api.access_schemas import UserPage, UserPatch
from employeevirtual.api.deps import AdminUser, ClientIP, RuntimeDep, SettingsDep
from employeevirtual.api.schemas import UserOut
from employeevirtual.errors import InvalidInput

router = APIRouter(prefix="/api/admin", tags=["admin"])


def _admin(runtime: RuntimeDep) -> AdminService:
    return runtime.admin


AdminDep = Annotated[AdminService, Depends(_admin)]


def _decode(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is not valid; pass next_cursor from a previous page") from None


@router.get("/users")
async def list_users(
    _admin_user: AdminUser,
    admin: AdminDep,
    settings: SettingsDep,
    limit: int | None = None,
    cursor: str | None = None,
) -> UserPage:
    """Every account, by email (admins only)."""
    size = settings.page_limit_default if limit is None else limit
    if not 1 <= size <= settings.page_limit_max:
        raise InvalidInput(f"limit must be between 1 and {settings.page_limit_max}")
    rows, more = await admin.list_users(limit=size, after_email=_decode(cursor) if cursor else None)
    next_cursor = (
        base64.urlsafe_b64encode(rows[-1].email.encode()).decode() if more and rows else None
    )
    return UserPage(items=[UserOut.of(u) for u in rows], next_cursor=next_cursor)


@router.patch("/users/{user_id}")
async def update_user(
    user_id: UUID, body: UserPatch, admin_user: AdminUser, admin: AdminDep, ip: ClientIP
) -> UserOut:
    """Change a user's role or deactivate/reactivate them (admins only). A deactivated
    user's tokens and API keys are refused from the next request on."""
    changes = body.model_dump(exclude_unset=True)
    if any(value is None for value in changes.values()):
        raise InvalidInput("role and is_active cannot be null")
    return UserOut.of(
        await admin.update_user(admin_user, user_id, UserChanges(**changes), client_ip=ip)
    )
