"""Keyset paging on (key, tiebreak): the condition for the rows that follow a page's last row,
so a page reads the same at row 10 and at row 100,000 (no OFFSET). The tiebreak (usually the
id) orders rows with the same key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, or_

__all__ = ["after_asc", "after_desc"]


def after_desc(
    key: ColumnElement[Any], tiebreak: ColumnElement[Any], last: tuple[Any, Any]
) -> ColumnElement[bool]:
    """Ordered by ``key`` then ``tiebreak``, both descending: below the last row's pair."""
    at, last_tiebreak = last
    return or_(key < at, and_(key == at, tiebreak < last_tiebreak))


def after_asc(
    key: ColumnElement[Any], tiebreak: ColumnElement[Any], last: tuple[Any, Any]
) -> ColumnElement[bool]:
    """Ordered by ``key`` then ``tiebreak``, both ascending: above the last row's pair."""
    at, last_tiebreak = last
    return or_(key > at, and_(key == at, tiebreak > last_tiebreak))
