"""All configuration, read from ``EV_*`` environment variables or a ``.env`` file: one class,
``Settings``, made of one group of fields per part of the product (the modules beside this one)."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from employeevirtual.settings.access import AccessSettings
from employeevirtual.settings.knowledge import KnowledgeSettings
from employeevirtual.settings.mcp import McpSettings
from employeevirtual.settings.memory import MemorySettings
from employeevirtual.settings.models import ModelSettings
from employeevirtual.settings.observability import ObservabilitySettings
from employeevirtual.settings.people import PeopleSettings
from employeevirtual.settings.server import ServerSettings
from employeevirtual.settings.stores import StoreSettings
from employeevirtual.settings.sync import SyncSettings
from employeevirtual.settings.turns import TurnSettings

__all__ = ["Settings"]


class Settings(
    BaseSettings,
    StoreSettings,
    AccessSettings,
    ModelSettings,
    TurnSettings,
    SyncSettings,
    ServerSettings,
    KnowledgeSettings,
    ObservabilitySettings,
    PeopleSettings,
    MemorySettings,
    McpSettings,
):
    model_config = SettingsConfigDict(
        env_prefix="EV_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # where the embedded default keeps everything (SQLite file, SecantusDB files, secret key)
    data_dir: Path = Path("./data")

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def export_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def knowledge_index(self) -> str:
        return self.knowledge_index_uri or str(self.data_dir / "knowledge" / "index")

    @property
    def knowledge_files(self) -> Path:
        return self.knowledge_files_dir or self.data_dir / "knowledge" / "files"

    @property
    def sql_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'employeevirtual.db'}"

    @cached_property
    def signing_key(self) -> str:
        """The configured secret, or one generated once and kept in the data directory."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(key)
        return key
