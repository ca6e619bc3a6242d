"""Console screens for what other issues added to the API: the admin's MCP servers and the
agent form's tool picker with ``server/tool`` names (issue 13)."""

from __future__ import annotations

import re
import shlex
import uuid

from harness import Api
from playwright.sync_api import Page, expect
from test_console import problems, ui_login

from support.mcp_process import STDIO_COMMAND


def test_admin_registers_an_mcp_server_and_an_agent_picks_its_tools(page: Page, admin: Api) -> None:
    name = f"orders{uuid.uuid4().hex[:6]}"
    ui_login(page, admin.email)
    page.goto("/#/admin")
    # a bad value shows the API's own message beside the field
    page.fill("#mcp-name", "Not A Name!")
    page.select_option("#mcp-transport", "stdio")
    page.fill("#mcp-target", shlex.join(STDIO_COMMAND))
    page.get_by_role("button", name="Register server").click()
    expect(page.locator("#mcp-name-error")).to_contain_text("should match pattern")

    page.fill("#mcp-name", name)
    page.get_by_role("button", name="Register server").click()
    row = page.locator(f"tr[data-server='{name}']")
    # registering starts the server's process and reads its tools (slow on a loaded machine)
    expect(row).to_contain_text("available", timeout=150_000)
    expect(row).to_contain_text(f"{name}/lookup_order")
    listed = {s["name"]: s for s in admin.call("GET", "/api/admin/mcp-servers")["items"]}
    assert listed[name]["status"] == "available"
    shown = row.locator("li code").all_inner_texts()
    assert shown == [t["name"] for t in listed[name]["tools"]]  # the API's tools, in its order

    # the agent form offers them under their server, named server/tool
    page.goto("/#/agents/new")
    group = page.locator(f"[data-tool-group='{name}']")
    expect(group).to_contain_text(f"MCP server {name}")
    page.fill("#agent-name", "Order desk")
    group.locator("label", has_text=f"{name}/lookup_order").locator("input").check()
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(r"#/agents$"))
    mine = [a for a in admin.call("GET", "/api/agents") if a["name"] == "Order desk"]
    assert mine and mine[-1]["tools"] == [f"{name}/lookup_order"]

    # deleted: gone from the list and from the API
    page.goto("/#/admin")
    row.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    listed_after = admin.call("GET", "/api/admin/mcp-servers")["items"]
    assert name not in {s["name"] for s in listed_after}
    assert problems(page) == []


def test_a_person_reads_corrects_and_forgets_what_agents_remember(page: Page, api: Api) -> None:
    """The Profile screen's memories (issue 18): the API's list, an edit, a delete."""
    agent = api.agent("Rememberer")  # memory is on by default
    for fact in ("I prefer tea to coffee", "my team meets on Mondays"):
        api.chat(f"remember that {fact}", agent_id=agent["id"])  # the offline model saves it
    stored = api.call("GET", "/api/memories")["items"]
    assert len(stored) == 2, stored

    ui_login(page, api.email)
    page.goto("/#/profile")
    listed = page.get_by_test_id("memories").locator("li")
    expect(listed).to_have_count(2)
    assert listed.locator(".memory-text").all_inner_texts() == [m["content"] for m in stored]
    expect(listed.first).to_contain_text("Rememberer")

    tea = next(m for m in stored if "tea" in m["content"])
    item = page.locator(f"li[data-memory='{tea['id']}']")
    item.get_by_role("button", name="Edit").click()
    item.get_by_role("textbox").fill("I prefer green tea")
    item.get_by_role("button", name="Save").click()
    expect(item.locator(".memory-text")).to_have_text("I prefer green tea")
    after = {m["id"]: m["content"] for m in api.call("GET", "/api/memories")["items"]}
    assert after[tea["id"]] == "I prefer green tea"

    item.get_by_role("button", name="Delete").click()
    expect(item).to_have_count(0)
    left = api.call("GET", "/api/memories")["items"]
    assert [m["id"] for m in left] == [m["id"] for m in stored if m["id"] != tea["id"]]
    assert problems(page) == []
