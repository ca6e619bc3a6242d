"""The agent form's settings in Chromium against the real server: each one reaches the API, and
a value the API refuses shows the API's own message beside its field."""

from __future__ import annotations

import json
from collections.abc import Callable

from harness import PASSWORD, Api
from playwright.sync_api import Page, Route, expect
from test_console import problems, ui_login


def test_memory_setting_is_created_edited_and_refused_beside_its_field(
    page: Page, api: Api
) -> None:
    ui_login(page, api.email)
    page.goto("/#/agents/new")
    page.fill("#agent-name", "Forgetful")
    remember = page.get_by_label("Remember: notes about the person", exact=False)
    shared = page.get_by_label("Share memories across", exact=False)
    expect(remember).to_be_checked()  # the API's defaults: on, shared
    expect(shared).to_be_checked()
    shared.uncheck()
    page.get_by_role("button", name="Create").click()
    link = page.get_by_role("link", name="Forgetful")
    expect(link).to_be_visible()
    (agent,) = [a for a in api.call("GET", "/api/agents") if a["name"] == "Forgetful"]
    assert agent["memory"] == {"enabled": True, "shared": False}

    link.click()
    expect(remember).to_be_checked()
    expect(shared).not_to_be_checked()  # the stored setting, read back
    remember.uncheck()
    expect(shared).to_be_disabled()  # sharing means nothing without memory
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("link", name="Forgetful")).to_be_visible()
    stored = api.call("GET", f"/api/agents/{agent['id']}")["memory"]
    assert stored == {"enabled": False, "shared": False}

    # a value the API refuses (a checkbox cannot send one: the request is rewritten on its way)
    # shows the API's own message beside the memory setting
    bad = {"name": "Forgetful", "memory": {"enabled": "sometimes", "shared": True}}
    refused = api.client.patch(f"/api/agents/{agent['id']}", headers=api.headers, json=bad)
    assert refused.status_code == 422
    message = next(i["msg"] for i in refused.json()["detail"] if i["loc"][1] == "memory")

    def spoil(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        body["memory"]["enabled"] = "sometimes"
        route.continue_(post_data=json.dumps(body))

    page.route(
        f"**/api/agents/{agent['id']}",
        lambda r: spoil(r) if r.request.method == "PATCH" else r.continue_(),
    )
    page.get_by_role("link", name="Forgetful").click()
    page.get_by_role("button", name="Save").click()
    error = page.locator("#agent-memory-error")
    expect(error).to_have_text(message)
    expect(page.get_by_test_id("agent-memory")).to_have_attribute(
        "aria-describedby", "agent-memory-help agent-memory-error"
    )
    expect(remember).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#agent-name-error")).to_have_count(0)  # beside memory, nowhere else
    assert api.call("GET", f"/api/agents/{agent['id']}")["memory"] == stored
    assert problems(page) == []


def test_memory_setting_in_portuguese(
    browser_context_factory: Callable[..., Page], api: Api
) -> None:
    page = browser_context_factory(viewport={"width": 1280, "height": 800}, locale="pt-BR")
    page.goto("/")
    page.fill("#email", api.email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    expect(page.locator("header.top")).to_be_visible()
    page.goto("/#/agents/new")
    memory = page.get_by_role("group", name="Memória")
    expect(memory).to_be_visible()
    expect(memory.get_by_label("Lembrar: notas sobre a pessoa", exact=False)).to_be_checked()
    expect(memory.get_by_label("Compartilhar as memórias", exact=False)).to_be_checked()
