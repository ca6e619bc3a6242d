"""Property-based run of Schemathesis over the app's own OpenAPI document: every operation,
authenticated, positive and negative examples; no 5xx and no response that breaks the
schema. The app runs in-process (ASGI) on the test's real stores.

Command (also in README): ``.venv/bin/pytest -q tests/access/test_schemathesis.py``
Examples per operation: ``EV_SCHEMATHESIS_EXAMPLES`` (default 6 in ``make test``; x2 modes x
every operation); ``make test-slow`` runs 120 per operation."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.parameters import ParameterLocation
from schemathesis.python import asgi
from schemathesis.specs.openapi._hypothesis import can_negate_headers, can_negate_path_parameters

from employeevirtual.main import create_app
from employeevirtual.settings import Settings
from support.api import PASSWORD
from support.hostile import BAD_BEFORE, BAD_CURSORS, hostile_strings, naive_cursor, storable
from support.server_process import free_port

EXAMPLES = int(os.environ.get("EV_SCHEMATHESIS_EXAMPLES", "6"))
LONG_EXAMPLES = 120
MCP_PORT = free_port()  # nothing listens there: a registered server is "unavailable"


def _account(client: Any, email: str, name: str) -> tuple[str, dict[str, str]]:
    r = client.post("/api/auth/register", json={"email": email, "password": PASSWORD, "name": name})
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    r = client.post("/api/auth/login", data={"username": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return user_id, {"Authorization": f"Bearer {r.json()['access_token']}"}


def _property(strategy: Any, headers: dict[str, str], examples: int) -> Callable[[], int]:
    """A Hypothesis test over ``strategy``: call the app, validate the answer; returns a
    runner that gives the number of calls made."""
    calls = 0

    @hypothesis.given(case=strategy)
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        nonlocal calls
        calls += 1
        response = case.call(headers=headers)
        # positive_data_acceptance is left out: business rules stricter than any schema
        # (password blocklist, whitespace-only messages, model names, settings-dependent
        # maximums) answer valid-looking input with a documented 422
        case.validate_response(
            response, headers=headers, excluded_checks=[positive_data_acceptance]
        )

    def run() -> int:
        check()
        return calls

    return run


def _nothing_to_negate(operation: Any, fixed_path: bool) -> bool:
    """Whether a negative case of ``operation`` cannot exist: no location Schemathesis could break
    (its own rules, as in ``_draw_negated_locations``; path parameters given count as none). It
    rejects every such draw, and Hypothesis gives up (``Unsatisfiable``) only after ~1,000 of
    them: a second or more per operation, two thirds of the run. The long run checks that every
    operation this skips is indeed unsatisfiable."""
    for location in (
        ParameterLocation.PATH,
        ParameterLocation.HEADER,
        ParameterLocation.COOKIE,
        ParameterLocation.QUERY,
    ):
        properties = operation.get_parameter_set(location).schema["properties"]
        if not properties or (location == ParameterLocation.PATH and fixed_path):
            continue
        if location == ParameterLocation.PATH and not can_negate_path_parameters(operation):
            continue
        if location.is_in_header and not can_negate_headers(operation, location):
            continue
        return False
    return not (operation.body and any(item.is_negatable for item in operation.body.items))


def _one_case(strategy: Any) -> Any:
    """The case Hypothesis draws first from ``strategy`` (derandomized: the same every run)."""
    drawn: list[Any] = []

    @hypothesis.given(case=strategy)
    @hypothesis.settings(
        max_examples=1,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def draw(case: Any) -> None:
        drawn.append(case)

    draw()
    return drawn[0]


def _call_and_validate(case: Any, headers: dict[str, str]) -> None:
    response = case.call(headers=headers)
    case.validate_response(response, headers=headers, excluded_checks=[positive_data_acceptance])


def streamed_user_message_id(body: str) -> str:
    """The user message id from a streamed turn's ``turn`` event."""
    for block in body.split("\n\n"):
        if "event: turn" in block:
            data = next(line for line in block.splitlines() if line.startswith("data: "))
            return str(json.loads(data[6:])["user_message"]["id"])
    raise AssertionError("no turn event")


def _hostile_values() -> tuple[str, ...]:
    """Issue 8's inputs that answered 500 and a sample of the hostile-strings corpus (query
    strings carry no lone surrogates: percent-encoded UTF-8 cannot hold one)."""
    sample = [s for s in hostile_strings()[::12] if "\x00" not in s and storable(s)]
    return (*BAD_BEFORE, *BAD_CURSORS, naive_cursor(), "a\x00b", *sample)


def _hostile_inputs(
    schema: Any,
    client: Any,
    real_ids: dict[str, str],
    user: dict[str, str],
    admin: dict[str, str],
) -> tuple[int, list[str]]:
    """Every query parameter of every operation given each hostile value (the rest of the
    request generated once per operation, the answer validated by Schemathesis like any case);
    every JSON body replaced by NaN, Infinity, a lone surrogate or a NUL: always a 4xx with a
    JSON problem, never a 5xx."""
    failures: list[str] = []
    calls = 0
    values = _hostile_values()
    for result in schema.get_all_operations():
        operation = result.ok()
        headers = admin if operation.path.startswith("/api/admin") else user
        path_parameters = {p.name: real_ids[p.name] for p in operation.path_parameters}
        base = None
        for parameter in operation.query:
            if base is None:
                base = _one_case(operation.as_strategy(path_parameters=path_parameters))
            for value in values:
                case = base.derive(query={**base.query, parameter.name: value}, keep_auth=True)
                try:
                    _call_and_validate(case, headers)
                    calls += 1
                except (BaseExceptionGroup, AssertionError) as exc:
                    failures.append(f"{operation.label} ?{parameter.name}={value[:30]!r}: {exc}")
        if not any("json" in alt.media_type for alt in operation.body):
            continue
        path = operation.path.format(**path_parameters)
        for raw in (
            b'{"name": NaN}',
            b'{"message": Infinity, "name": -Infinity}',
            b'{"name": "\\ud800", "message": "\\ud800"}',
            b'{"name": "a\\u0000b", "message": "a\\u0000b"}',
        ):
            r = client.request(
                operation.method.upper(),
                path,
                data=raw,
                headers={**headers, "content-type": "application/json"},
            )
            calls += 1
            ok = 400 <= r.status_code < 500 and r.headers.get("content-type", "").startswith(
                "application/json"
            )
            if not ok or "X-Request-ID" not in r.headers:
                failures.append(f"{operation.label} body {raw!r}: {r.status_code} {r.text[:200]}")
    return calls, failures


def test_schemathesis_finds_no_5xx_and_no_schema_violation(settings: Settings) -> None:
    _fuzz(settings, EXAMPLES, skip_unnegatable=True)


@pytest.mark.slow
def test_schemathesis_long_run(settings: Settings) -> None:
    """The same run with 20x the suite's generated examples per operation (``make test-slow``),
    negative cases tried for every operation: those ``_nothing_to_negate`` skips in the suite must
    be the ones Hypothesis cannot satisfy."""
    _fuzz(settings, LONG_EXAMPLES, skip_unnegatable=False)


def _fuzz(settings: Settings, examples: int, *, skip_unnegatable: bool) -> None:
    app = create_app(
        settings.model_copy(
            update={
                # the fuzzer is one client hammering every endpoint: let it through
                "rate_limit_global": 1_000_000,
                "rate_limit_chat": 1_000_000,
                "login_max_failures": 1_000_000,
                "max_concurrent_turns": 100,
                # MCP servers may be registered at a loopback port where nothing listens
                "mcp_allowed_hosts": [f"127.0.0.1:{MCP_PORT}"],
                "mcp_allow_private": True,
                "mcp_connect_timeout_seconds": 1.0,
            }
        )
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the app's lifespan
    try:
        with asgi.get_client(app) as client:
            _, admin = _account(client, "admin@example.com", "Admin")
            _, user = _account(client, "user@example.com", "User")
            victim_id, _ = _account(client, "victim@example.com", "Victim")
            agent = client.post("/api/agents", json={"name": "A"}, headers=user).json()
            r = client.post(
                "/api/chat/agent", json={"message": "hi", "agent_id": agent["id"]}, headers=user
            )
            conversation_id = r.json()["conversation_id"]
            # the offline model saves a memory when told to remember something
            client.post(
                "/api/chat/agent",
                json={"message": "remember that I like tea", "conversation_id": conversation_id},
                headers=user,
            )
            memories = client.get("/api/memories", headers=user).json()["items"]
            key = client.post("/api/api-keys", json={"name": "k"}, headers=user).json()
            base = client.post("/api/knowledge-bases", json={"name": "kb"}, headers=user).json()
            document = client.post(
                f"/api/knowledge-bases/{base['id']}/documents",
                files={"file": ("n.txt", b"a note")},
                headers=user,
            ).json()
            streamed = client.post(
                "/api/chat/agent",
                json={"message": "again", "conversation_id": conversation_id},
                headers={**user, "Accept": "text/event-stream"},
            )
            budget = client.post(
                "/api/admin/budgets",
                json={"scope": "agent", "scope_id": agent["id"], "max_tokens": 10**9},
                headers=admin,
            ).json()
            export = client.post("/api/users/me/export", headers=user).json()
            mcp_server = client.post(
                "/api/admin/mcp-servers",
                json={
                    "name": "fuzz",
                    "transport": "http",
                    "url": f"http://127.0.0.1:{MCP_PORT}/mcp",
                },
                headers=admin,
            ).json()
            doomed_id, _ = _account(client, "doomed@example.com", "Doomed")
            erasure = client.request(
                "DELETE", f"/api/admin/users/{doomed_id}", json={}, headers=admin
            ).json()
        real_ids = {
            "budget_id": budget["id"],
            "server_id": mcp_server["id"],
            "export_id": export["id"],
            "erasure_id": erasure["id"],
            "turn_id": streamed.headers["X-Turn-Id"],
            "agent_id": agent["id"],
            "conversation_id": conversation_id,
            "key_id": key["id"],
            "user_id": victim_id,
            "base_id": base["id"],
            "document_id": document["id"],
            "message_id": streamed_user_message_id(streamed.text),
            "memory_id": memories[0]["id"],
        }
        failures: list[str] = []
        calls = 0
        skipped = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            headers = admin if operation.path.startswith("/api/admin") else user
            names = {p.name for p in operation.path_parameters}
            variants: list[dict[str, Any] | None] = [None]
            if names:
                variants.append({n: real_ids[n] for n in names})
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                for path_parameters in variants:
                    unnegatable = mode == GenerationMode.NEGATIVE and _nothing_to_negate(
                        operation, fixed_path=path_parameters is not None
                    )
                    if unnegatable and skip_unnegatable:
                        skipped += 1
                        continue
                    strategy = operation.as_strategy(
                        generation_mode=mode, path_parameters=path_parameters
                    )

                    run = _property(strategy, headers, examples // len(variants) or 1)
                    try:
                        calls += run()
                    except hypothesis.errors.Unsatisfiable:
                        continue  # nothing to make negative (an operation without inputs)
                    except (BaseExceptionGroup, AssertionError) as exc:  # report them all
                        failures.append(f"{operation.label} [{mode.value}]: {exc}")
                    if unnegatable:
                        failures.append(
                            f"{operation.label} [negative, path given: {bool(path_parameters)}]: "
                            "made negative cases that _nothing_to_negate says cannot exist"
                        )
        hostile_calls, hostile_failures = _hostile_inputs(schema, client, real_ids, user, admin)
        calls += hostile_calls
        failures += hostile_failures
        if failures:
            Path(os.environ.get("EV_SCHEMATHESIS_REPORT", "/dev/null")).write_text(
                "\n\n".join(failures)
            )
        assert not failures, "\n\n".join(failures)
        print(f"schemathesis: {calls} calls, {skipped} unnegatable operations skipped")
        assert calls >= 200, calls
        # the schema's inputs-free operations (GET /api/users/me, ...) and those whose path
        # parameters are given: if none is skipped, the shortcut no longer sees them
        assert skipped >= 20 if skip_unnegatable else skipped == 0, skipped
    finally:
        asgi.shutdown_lifespans()


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
