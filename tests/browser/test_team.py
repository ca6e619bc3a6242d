"""Teams in the console (issue 13 through issue 16): the agent form's colleagues (delegation and
handoff) saved through the API, with the API's refusal beside the field; delegated runs and
handoffs shown in the chat, live and from the history."""

from __future__ import annotations

import re
from pathlib import Path

from harness import Api
from playwright.sync_api import Page, expect
from test_console import problems, ui_login


def _mine(api: Api, name: str) -> dict[str, object]:
    (agent,) = [a for a in api.call("GET", "/api/agents") if a["name"] == name]
    return dict(agent)


def test_agent_form_sets_delegates_and_shows_the_api_refusal_beside_the_field(
    page: Page, api: Api, console_url: str, screenshots: Path
) -> None:
    billing = api.agent("Billing")
    legal = api.agent("Legal")
    outsider = Api(console_url).register("Olga")
    try:
        shared = outsider.agent("Olga's Shared Desk", visibility="shared")
        private = outsider.agent("Olga's Private Desk")
    finally:
        outsider.close()

    ui_login(page, api.email)
    page.goto("/#/agents/new")
    colleagues = page.get_by_test_id("agent-delegates")
    # the caller's own agents and others' shared ones, never another user's private agent
    expect(colleagues.locator(f'input[value="{billing["id"]}"]')).to_have_count(1)
    expect(
        colleagues.locator("label", has=page.locator(f'input[value="{shared["id"]}"]'))
    ).to_contain_text("shared")
    expect(colleagues.locator(f'input[value="{private["id"]}"]')).to_have_count(0)

    page.fill("#agent-name", "Desk")
    colleagues.locator(f'input[value="{billing["id"]}"]').check()
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(r"#/agents$"))
    desk = _mine(api, "Desk")
    assert desk["delegate_ids"] == [billing["id"]]  # the API saw the form's choice

    # Billing naming Desk would close a cycle: the API's own message, beside the field
    page.goto(f"/#/agents/{billing['id']}")
    expect(page.locator("#agent-name")).to_have_value("Billing")
    colleagues.locator(f'input[value="{desk["id"]}"]').check()
    page.get_by_role("button", name="Save").click()
    error = page.locator("#agent-delegates-error")
    expect(error).to_contain_text("these delegates would make a cycle")
    expect(error).to_contain_text(f"Desk ({desk['id']})")
    page.screenshot(path=screenshots / "agent-form-delegates-error.png")
    assert _mine(api, "Billing")["delegate_ids"] == []
    expect(page).to_have_url(re.compile(rf"#/agents/{billing['id']}$"))  # still on the form

    # editing Desk shows its colleague ticked; adding one more is saved as well
    page.goto(f"/#/agents/{desk['id']}")
    expect(colleagues.locator(f'input[value="{billing["id"]}"]')).to_be_checked()
    expect(colleagues.locator(f'input[value="{desk["id"]}"]')).to_have_count(0)  # not itself
    colleagues.locator(f'input[value="{legal["id"]}"]').check()
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"#/agents$"))
    assert _mine(api, "Desk")["delegate_ids"] == [billing["id"], legal["id"]]
    assert problems(page) == []


def test_delegated_runs_and_handoffs_show_in_the_chat(page: Page, api: Api) -> None:
    billing = api.agent("Billing")
    desk = api.agent("Desk", delegate_ids=[billing["id"]])
    ui_login(page, api.email)
    page.locator("#main-nav").get_by_role("link", name="Chat").click()
    page.select_option("#agent-picker", desk["id"])

    # the offline model asks its colleague when told to: the delegated run folds under the answer
    page.locator("#composer-input").fill("ask Billing: what is owed on invoice 7?")
    page.get_by_role("button", name="Send").click()
    done = page.locator(".msg-agent:not(.msg-live)")  # answers whose turn is over (committed)
    expect(done).to_have_count(1, timeout=30_000)
    answer = done.first
    expect(answer).to_contain_text("My colleague answered")
    expect(page).to_have_url(re.compile(r"#/chat/[0-9a-f-]{36}$"))
    conv_id = page.url.rsplit("/", 1)[-1]
    runs = answer.get_by_test_id("delegations")
    expect(runs.locator("summary")).to_have_text("Delegated runs (1)")
    runs.locator("summary").click()
    expect(runs).to_contain_text("asked Billing")
    expect(runs).to_contain_text("what is owed on invoice 7?")
    expect(runs).to_contain_text("success")

    # the person hands the conversation to Billing: the next answer says so, live
    page.select_option("#handoff-picker", billing["id"])
    page.locator("#composer-input").fill("please take it from here")
    page.get_by_role("button", name="Send").click()
    expect(done).to_have_count(2, timeout=30_000)
    expect(page.locator(".msg-live")).to_have_count(0)
    moved = page.locator(".msg-agent").nth(1).get_by_test_id("handoff")
    expect(moved).to_have_text(re.compile(r"Handed over to Billing\s+by you"))
    expect(page.locator(".chat-head")).to_contain_text("Billing ·")
    assert api.call("GET", f"/api/conversations/{conv_id}")["agent_id"] == billing["id"]
    history = api.call("GET", f"/api/conversations/{conv_id}/messages")["messages"]
    assert [h["to_agent_id"] for h in history[-1]["metadata"]["handoffs"]] == [billing["id"]]

    # from the history after a reload: both still shown, in Portuguese too
    page.reload()
    expect(page.locator(".msg-agent")).to_have_count(2)
    expect(page.locator(".msg-agent").first.get_by_test_id("delegations")).to_have_count(1)
    expect(page.locator(".msg-agent").nth(1).get_by_test_id("handoff")).to_contain_text(
        "Handed over to Billing"
    )
    page.select_option("#lang-select", "pt")
    expect(page.locator(".msg-agent").nth(1).get_by_test_id("handoff")).to_contain_text(
        "Transferida para Billing"
    )
    assert problems(page) == []
