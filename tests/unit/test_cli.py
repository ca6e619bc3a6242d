"""The ``employeevirtual`` command: migrate and create-admin, run twice on the same data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from employeevirtual.cli import app
from employeevirtual.stores.mongo.secantus import SecantusServer


def test_migrate_and_create_admin_are_repeatable(
    tmp_path: Path, secantus: SecantusServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EV_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EV_MONGODB_URL", secantus.url)
    monkeypatch.setenv("EV_MONGODB_DATABASE", f"cli_{tmp_path.name}")
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(app, ["migrate"])
        assert result.exit_code == 0, result.output
        assert "latest migration" in result.output
    args = ["create-admin", "--email", "Root@Example.com", "--name", "Root"]
    result = runner.invoke(app, [*args, "--password", "a-long-unusual-passphrase"])
    assert result.exit_code == 0, result.output
    assert "admin root@example.com created" in result.output
    assert "a-long-unusual-passphrase" not in result.output
    again = runner.invoke(app, [*args, "--password", "a-long-unusual-passphrase"])
    assert again.exit_code == 1 and "already exists" in again.output
    short = runner.invoke(app, [*args, "--password", "short"])
    assert short.exit_code == 2 and "at least 8 characters" in short.output
    assert (tmp_path / "employeevirtual.db").exists()
