"""MCP server secrets (HTTP headers, stdio environment) encrypted at rest with Fernet.

The key comes from ``EV_SECRETS_KEY`` (comma-separated Fernet keys, newest first, so a key can be
rotated: every key decrypts, the first encrypts). Without a key, secrets can neither be stored
nor read: a server that needs none still works.
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

__all__ = ["SecretBox", "SecretsUnavailable"]


class SecretsUnavailable(Exception):
    """No key, a key that is not a Fernet key, or a stored value another key wrote."""


class SecretBox:
    def __init__(self, key: SecretStr | None) -> None:
        self._fernet: MultiFernet | None = None
        self.problem: str | None = None
        if key is None:
            self.problem = "EV_SECRETS_KEY is not set"
            return
        try:
            keys = [Fernet(k.strip()) for k in key.get_secret_value().split(",") if k.strip()]
        except ValueError:
            self.problem = "EV_SECRETS_KEY is not a valid Fernet key"
            return
        if not keys:
            self.problem = "EV_SECRETS_KEY is empty"
            return
        self._fernet = MultiFernet(keys)

    def _box(self) -> MultiFernet:
        if self._fernet is None:
            raise SecretsUnavailable(
                f"{self.problem}: set it to a Fernet key (Fernet.generate_key()) to store or "
                "use MCP server secrets"
            )
        return self._fernet

    def seal(self, values: dict[str, str]) -> str | None:
        """The encrypted form of ``values`` (None when there are none)."""
        if not values:
            return None
        return self._box().encrypt(json.dumps(values).encode()).decode()

    def open(self, token: str | None) -> dict[str, str]:
        if not token:
            return {}
        try:
            data = self._box().decrypt(token.encode())
        except InvalidToken:
            raise SecretsUnavailable(
                "the stored secrets do not decrypt with EV_SECRETS_KEY (was the key changed "
                "without keeping the old one after it?)"
            ) from None
        values = json.loads(data)
        return {str(k): str(v) for k, v in values.items()}
