"""Keyset pages read as ``limit + 1`` rows: the extra row only says that another page follows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from employeevirtual.cursors import parse_time_cursor, time_page


@dataclass(frozen=True)
class Row:
    id: UUID
    created_at: datetime


def _rows(n: int) -> list[Row]:
    start = datetime(2026, 11, 26, tzinfo=UTC)
    return [Row(uuid4(), start - timedelta(seconds=i)) for i in range(n)]


def test_a_full_page_with_one_more_row_points_at_its_last_row() -> None:
    rows = _rows(4)
    page, cursor = time_page(rows, 3)
    assert page == rows[:3]
    assert cursor is not None
    assert parse_time_cursor(cursor) == (rows[2].created_at, rows[2].id)


def test_the_last_page_has_no_cursor() -> None:
    for n in (0, 2, 3):
        rows = _rows(n)
        assert time_page(rows, 3) == (rows, None)
