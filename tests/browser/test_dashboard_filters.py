"""The dashboard's charts per agent and per model: the API's ``agent_id`` and ``model``
filters, picked on the page, and the page's numbers equal to the API's for the same filter."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from harness import Api
from playwright.sync_api import Page, expect
from test_console import problems, ui_login


def test_dashboard_narrows_to_one_agent_and_one_model(page: Page, api: Api) -> None:
    busy = api.agent("Busy Bee")
    quiet = api.agent("Quiet One")
    for text in ("one", "two", "three"):
        cid = api.chat(f"busy {text}", agent_id=busy["id"])["conversation_id"]
    api.chat("busy again", conversation_id=cid)
    api.chat("quiet", agent_id=quiet["id"])
    # a turn's run reaches the usage figures with the next sync-ack flush (EV_SYNC_ACK_SECONDS),
    # later on a loaded machine: the page is opened once all five are counted
    today = datetime.now(UTC).date().isoformat()
    for _ in range(100):
        rows = api.call("GET", "/api/analytics/usage", params={"from": today, "to": today})["rows"]
        if rows and rows[0]["turns"] == 5:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the usage API never counted the five turns: {rows}")
    ui_login(page, api.email)
    page.goto("/#/dashboard")
    first, last = page.locator("#dash-from").input_value(), page.locator("#dash-to").input_value()

    def usage(**filters: str) -> dict[str, Any]:
        query = {"from": first, "to": last, **filters}
        return dict(api.call("GET", "/api/analytics/usage", params=query)["rows"][0])

    kpi = page.get_by_test_id("totals").locator("[data-kpi=turns]")
    expect(kpi).to_have_text("5")  # this user's own turns: both agents
    picker = page.locator("#dash-agent")
    expect(picker.locator("option")).to_have_text(["All agents", "Busy Bee", "Quiet One"])
    with page.expect_request(re.compile(rf"/api/analytics/usage\?.*agent_id={busy['id']}")):
        picker.select_option(label="Busy Bee")
    only = usage(agent_id=busy["id"])
    assert only["turns"] == 4
    expect(kpi).to_have_text(f"{only['turns']:,}")
    tokens = f"{only['input_tokens'] + only['output_tokens']:,}"
    expect(page.get_by_test_id("totals").locator("[data-kpi=tokens]")).to_have_text(tokens)
    per_agent = page.get_by_test_id("per-agent").locator("tbody tr")
    expect(per_agent).to_have_count(1)
    expect(per_agent).to_contain_text("Busy Bee")
    # the choices stay while the filter narrows the breakdown to one agent
    expect(picker.locator("option")).to_have_count(3)

    model = page.locator("#dash-model")
    expect(model.locator("option")).to_have_text(["All models", "offline"])
    model.select_option("offline")
    both = usage(agent_id=busy["id"], model="offline")
    expect(kpi).to_have_text(f"{both['turns']:,}")
    expect(page.get_by_test_id("per-model").locator("tbody tr")).to_have_count(1)

    picker.select_option(label="Quiet One")
    expect(kpi).to_have_text(f"{usage(agent_id=quiet['id'], model='offline')['turns']:,}")
    expect(kpi).to_have_text("1")
    picker.select_option("")
    model.select_option("")
    expect(kpi).to_have_text("5")
    assert problems(page) == []
