from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Response, status

from employeevirtual.accounts.api_keys import ApiKeyService
from employeevirtual.api.access_schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut
from employeevirtual.api.deps import ClientIP, CurrentUser, from_runtime
from employeevirtual.api.routing import Router

router = Router(prefix="/api/api-keys", tags=["api keys"])


ApiKeysDep = Annotated[ApiKeyService, Depends(from_runtime(lambda r: r.api_keys))]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_api_key(
    body: ApiKeyIn, user: CurrentUser, keys: ApiKeysDep, ip: ClientIP
) -> ApiKeyCreated:
    """A new key for server-to-server calls (``Authorization: Bearer`` or ``X-API-Key``).
    The key is in this answer only; the server keeps its SHA-256 digest."""
    key, plaintext = await keys.create(user, name=body.name, client_ip=ip)
    return ApiKeyCreated(**ApiKeyOut.of(key).model_dump(), key=plaintext)


@router.get("")
async def list_api_keys(user: CurrentUser, keys: ApiKeysDep) -> list[ApiKeyOut]:
    """The caller's active keys (prefix only, never the key)."""
    return [ApiKeyOut.of(k) for k in await keys.list(user)]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(
    key_id: UUID, user: CurrentUser, keys: ApiKeysDep, ip: ClientIP
) -> Response:
    """Revoke one of the caller's keys; it stops working at once."""
    await keys.revoke(user, key_id, client_ip=ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
