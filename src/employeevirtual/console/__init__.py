"""The web console: a static single-page app (sources in the top-level ``console/`` folder,
built into ``static/`` and committed) served at ``/``. It talks only to the public API."""

from employeevirtual.console.files import CONSOLE_CSP, STATIC_DIR, mount_console

__all__ = ["CONSOLE_CSP", "STATIC_DIR", "mount_console"]
