"""A SecantusDB server that notes every write that scans a whole collection.

Run as a script (``ScanLoggingSecantus`` starts it): it patches SecantusDB's write-path candidate
lookup (``Storage._candidates_iter``: updates, deletes, findAndModify) so that a filter no index
answers appends ``<collection>\\t<filter's top-level keys>`` to the file named by
``EV_TEST_SCAN_LOG``, then runs SecantusDB's own command line. Such a write scans every document
of its collection under the collection's lock: its cost grows with the collection.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from employeevirtual.stores.mongo.secantus import SecantusServer

SCAN_LOG_ENV = "EV_TEST_SCAN_LOG"


class ScanLoggingSecantus(SecantusServer):
    """``SecantusServer`` started through this script, its scans noted in ``scan_log``."""

    def __init__(
        self,
        *,
        storage_path: str,
        log_path: str,
        scan_log: Path,
        enable_test_commands: bool = False,
    ) -> None:
        super().__init__(
            storage_path=storage_path,
            log_path=log_path,
            enable_test_commands=enable_test_commands,
        )
        self.scan_log = scan_log
        os.environ[SCAN_LOG_ENV] = str(scan_log)  # the child inherits the environment

    def _command_line(self) -> list[str]:
        return [sys.executable, __file__, *super()._command_line()[1:]]

    def forget_scans(self) -> None:
        self.scan_log.unlink(missing_ok=True)

    def scans(self) -> list[tuple[str, str]]:
        if not self.scan_log.exists():
            return []
        lines = self.scan_log.read_text().splitlines()
        return [(c, keys) for c, keys in (line.split("\t", 1) for line in lines)]


def _patch(log_path: str) -> None:
    import secantus.storage as storage

    lock = threading.Lock()
    original = storage.Storage._candidates_iter

    def candidates(self: Any, db: str, coll: str, filter: dict[str, Any] | None) -> Any:
        if filter and self._try_index_id_keys(db, coll, filter) is None:
            with lock, open(log_path, "a") as out:
                out.write(f"{coll}\t{json.dumps(sorted(filter))}\n")
        return original(self, db, coll, filter)

    storage.Storage._candidates_iter = candidates  # type: ignore[method-assign]


if __name__ == "__main__":
    from secantus.cli import main

    _patch(os.environ[SCAN_LOG_ENV])
    sys.exit(main())
