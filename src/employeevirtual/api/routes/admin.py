from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends

from employeevirtual.accounts.admin import AdminService, UserChanges
from employeevirtual.api.access_schemas import UserPage, UserPatch
from employeevirtual.api.deps import AdminUser, ClientIP, SettingsDep, from_runtime
from employeevirtual.api.params import decode_cursor, encode_cursor, page_size
from employeevirtual.api.routing import Router
from employeevirtual.api.schemas import UserOut
from employeevirtual.errors import InvalidInput

router = Router(prefix="/api/admin", tags=["admin"])


AdminDep = Annotated[AdminService, Depends(from_runtime(lambda r: r.admin))]


def _decode(cursor: str) -> str:
    return decode_cursor(cursor, parts=1)[0]


@router.get("/users")
async def list_users(
    admin_user: AdminUser,
    admin: AdminDep,
    settings: SettingsDep,
    ip: ClientIP,
    limit: int | None = None,
    cursor: str | None = None,
) -> UserPage:
    """Every account, by email (admins only; each listing is audited)."""
    size = page_size(limit, settings.page_limit_default, settings.page_limit_max)
    rows, more = await admin.list_users(
        admin_user, limit=size, after_email=_decode(cursor) if cursor else None, client_ip=ip
    )
    next_cursor = encode_cursor(rows[-1].email) if more and rows else None
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
