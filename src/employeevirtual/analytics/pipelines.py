"""The aggregation pipelines behind usage analytics, as plain data (MongoDB's own language).

Raw ``chat_analytics`` documents (one per agent run) are mapped onto a *normalized* row, the
shape of a daily rollup (one per day × agent × user × model): the rollup pipeline groups those
rows per day, and a dashboard query groups the recent raw runs the same way
(``raw_usage_pipeline``) and adds them to the rollup documents it reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from employeevirtual.analytics.histogram import bucket_expression

__all__ = [
    "DIMENSIONS",
    "SUMS",
    "normalized_from_raw",
    "raw_usage_pipeline",
    "rollup_pipeline",
]

Document = dict[str, Any]

# group_by name -> field of the normalized row
DIMENSIONS = {"day": "day", "agent": "agent_id", "user": "user_id", "model": "model"}

# additive counters of a normalized row / rollup
SUMS = (
    "turns",
    "failed_provider",
    "failed_timeout",
    "failed_limit",
    "failed_cancelled",
    "failed_other",
    "input_tokens",
    "output_tokens",
    "cost",
    "time_sum",
    "time_count",
    "tool_calls",
    "delegated_runs",
    "feedback_up",
    "feedback_down",
)

_FAILED = {"provider", "timeout", "limit", "cancelled"}


def _is(value: str) -> Document:
    return {"$cond": [{"$eq": ["$status", value]}, 1, 0]}


def _num(field: str) -> Document:
    return {"$ifNull": [f"${field}", 0]}


def normalized_from_raw() -> list[Document]:
    """Stages mapping raw run documents onto normalized rows (``hist`` = one bucket or none)."""
    ok = {"$eq": ["$status", "success"]}
    time = {"$ifNull": ["$execution_time", 0]}
    return [
        {
            "$project": {
                "_id": 0,
                "day": {"$dateTrunc": {"date": "$timestamp", "unit": "day"}},
                "agent_id": 1,
                "user_id": 1,
                "model": {"$ifNull": ["$model", "unknown"]},
                # a delegated run (issue 13) is attributed usage, not a turn of its own
                "turns": {"$cond": [{"$eq": ["$status", "delegated"]}, 0, 1]},
                "failed_provider": _is("provider"),
                "failed_timeout": _is("timeout"),
                "failed_limit": _is("limit"),
                "failed_cancelled": _is("cancelled"),
                "failed_other": {
                    "$cond": [
                        {"$in": ["$status", ["success", "delegated", *sorted(_FAILED)]]},
                        0,
                        1,
                    ]
                },
                "input_tokens": _num("input_tokens"),
                "output_tokens": _num("output_tokens"),
                "cost": _num("cost"),
                "time_sum": {"$cond": [ok, time, 0]},
                "time_count": {"$cond": [ok, 1, 0]},
                "tool_calls": _num("tool_calls"),
                "delegated_runs": _num("delegated_runs"),
                "feedback_up": {"$cond": [{"$eq": ["$feedback.rating", "up"]}, 1, 0]},
                "feedback_down": {"$cond": [{"$eq": ["$feedback.rating", "down"]}, 1, 0]},
                "hist": {
                    "$cond": [
                        ok,
                        [{"k": {"$toString": bucket_expression("$execution_time")}, "v": 1}],
                        [],
                    ]
                },
            }
        }
    ]


def _range(field: str, start: datetime, end: datetime) -> Document:
    return {field: {"$gte": start, "$lt": end}}


def _key_part(field: str) -> Document:
    """One field of the group key as text: ``=value``, ``~`` for null, ``-`` when missing (a
    group of its own, as in the key document)."""
    value = f"$_id.{field}"
    return {
        "$switch": {
            "branches": [
                {"case": {"$eq": [{"$type": value}, "missing"]}, "then": "-"},
                {"case": {"$eq": [{"$type": value}, "null"]}, "then": "~"},
            ],
            "default": {"$concat": ["=", {"$toString": value}]},
        }
    }


def rollup_id() -> Document:
    """A rollup document's ``_id``: its group key as one string (``2026-03-10|=<agent>|=<user>|
    =<model>``; the ids are UUIDs). Not the key document itself: SecantusDB (the embedded
    default) finds a string ``_id`` by a point lookup but a document ``_id`` only by scanning
    the collection, and ``$merge`` looks each rolled group up by ``_id``, then replaces it."""
    return {
        "$concat": [
            {"$dateToString": {"date": "$_id.day", "format": "%Y-%m-%d"}},
            *(part for k in ("agent_id", "user_id", "model") for part in ("|", _key_part(k))),
        ]
    }


def rollup_pipeline(start: datetime, end: datetime, into: str | None) -> list[Document]:
    """Raw runs of ``[start, end)`` -> one document per day × agent × user × model, with ``_id``
    its group key (``rollup_id``): ``$merge`` (whenMatched replace) makes a re-run leave the
    same documents. ``into=None`` returns the documents instead (the check compares them)."""
    keys = {"day": "$day", "agent_id": "$agent_id", "user_id": "$user_id", "model": "$model"}
    sums = {name: {"$sum": f"${name}"} for name in SUMS}
    stages: list[Document] = [
        {"$match": _range("timestamp", start, end)},
        *normalized_from_raw(),
        # per bucket first, so the histogram is a count per bucket
        {"$unwind": {"path": "$hist", "preserveNullAndEmptyArrays": True}},
        {
            "$group": {
                "_id": {**keys, "b": "$hist.k"},
                **sums,
            }
        },
        {
            "$group": {
                "_id": {k: f"$_id.{k}" for k in keys},
                **{name: {"$sum": f"${name}"} for name in SUMS},
                "hist": {"$push": {"k": "$_id.b", "v": "$time_count"}},
            }
        },
        {
            "$project": {
                "_id": rollup_id(),
                "day": "$_id.day",
                "agent_id": "$_id.agent_id",
                "user_id": "$_id.user_id",
                "model": "$_id.model",
                **dict.fromkeys(SUMS, 1),
                "hist": {
                    "$arrayToObject": {
                        "$filter": {
                            "input": "$hist",
                            "cond": {
                                "$and": [{"$ne": ["$$this.k", None]}, {"$gt": ["$$this.v", 0]}]
                            },
                        }
                    }
                },
            }
        },
    ]
    if into is not None:
        stages.append(
            {
                "$merge": {
                    "into": into,
                    "on": "_id",
                    "whenMatched": "replace",
                    "whenNotMatched": "insert",
                }
            }
        )
    return stages


def _facet(key: Document | None) -> Document:
    return {
        "$facet": {
            "rows": [{"$group": {"_id": key, **{n: {"$sum": f"${n}"} for n in SUMS}}}],
            "hist": [
                {"$unwind": "$hist"},
                {"$group": {"_id": {"g": key, "k": "$hist.k"}, "v": {"$sum": "$hist.v"}}},
            ],
        }
    }


def raw_usage_pipeline(
    *, start: datetime, end: datetime, filters: Document, group_by: list[str]
) -> list[Document]:
    """Raw runs of ``[start, end)`` grouped by ``group_by``: one document with ``rows`` (per
    group: the counters) and ``hist`` (per group and bucket: ``{g, k, v}``). It starts with an
    indexed ``$match``; a query runs it only over the runs after the last rollup round."""
    key = {DIMENSIONS[name]: f"${DIMENSIONS[name]}" for name in group_by} or None
    return [
        {"$match": {**filters, **_range("timestamp", start, end)}},
        *normalized_from_raw(),
        _facet(key),
    ]
