"""Everyday quality on every main screen: it fits a phone, and in Portuguese no English is left
(role names, key columns, budget scopes, the charts' legend); the conversation list's filter by
the day a conversation started (the API's created_after/created_before)."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from harness import PASSWORD, Api
from playwright.sync_api import Page, expect
from test_console import problems

PHONE = 390
SCREENS = (
    ("chat", "#composer-input"),
    ("agents", "table.list tbody tr"),
    ("agents/new", "#agent-memory-enabled"),
    ("knowledge", "#kb-name"),
    ("dashboard", ".chart canvas"),
    ("admin", "[data-testid=health-status]"),
    ("profile", "#key-name"),
)


def _login(page: Page, email: str, button: str) -> None:
    page.goto("/")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name=button).click()
    expect(page.locator("header.top")).to_be_visible()


def test_every_main_screen_fits_a_phone(
    browser_context_factory: Callable[..., Page], admin: Api
) -> None:
    admin.agent("A rather long agent name for a narrow screen", description="x " * 40)
    page = browser_context_factory(viewport={"width": PHONE, "height": 844}, locale="pt-BR")
    _login(page, admin.email, "Entrar")
    wider: dict[str, int] = {}
    for route, ready in SCREENS:
        page.goto(f"/#/{route}")
        page.wait_for_selector(ready)
        page.wait_for_load_state("networkidle")
        # a wide table scrolls inside itself; nothing (not even a screen-reader-only header
        # cell placed past the table's edge) widens the page
        width = int(page.evaluate("document.documentElement.scrollWidth"))
        if width > PHONE:
            wider[route] = width
    assert wider == {}


def test_portuguese_leaves_no_english_behind(
    browser_context_factory: Callable[..., Page], admin: Api
) -> None:
    page = browser_context_factory(viewport={"width": 1280, "height": 800}, locale="pt-BR")
    _login(page, admin.email, "Entrar")
    page.goto("/#/profile")
    expect(page.get_by_test_id("profile-role")).to_have_text("Administrador")
    expect(page.get_by_role("columnheader", name="Prefixo")).to_be_visible()

    page.goto("/#/admin")
    page.wait_for_selector("[data-testid=budgets]")
    scopes = page.locator("#budget-scope option").all_inner_texts()
    assert scopes == ["Uma pessoa", "Um agente"]
    # the budget's target shows the one a new budget is for, never a blank choice
    target = page.locator("#budget-target")
    expect(target.locator(f"option:text-is('{admin.email}')")).to_have_count(1)
    expect(target).to_have_value(str(target.locator("option").first.get_attribute("value")))
    # /health/ready's nested details as name: value pairs, not raw JSON
    sync = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="sync"))
    expect(sync).to_contain_text("lag_seconds: ")
    expect(sync).to_contain_text("drift.missing_messages: ")
    expect(sync).not_to_contain_text("{")
    me = page.locator(f"tr:has(td:text-is('{admin.email}')) select")
    expect(me.locator("option")).to_have_text(["Usuário", "Administrador"])
    expect(me).to_have_value("admin")  # the API's value, shown by its Portuguese name

    page.goto("/#/dashboard")
    legend = page.get_by_test_id("chart-turns").locator(".u-legend .u-label")
    expect(legend.first).to_have_text("Dia")  # uPlot's default would be "Time"

    page.select_option("#lang-select", "en")
    expect(legend.first).to_have_text("Day")
    page.goto("/#/profile")
    expect(page.get_by_test_id("profile-role")).to_have_text("Administrator")


def test_conversations_filtered_by_the_day_they_started(page: Page, api: Api) -> None:
    agent = api.agent()
    ids = {api.chat(f"started today {i}", agent_id=agent["id"])["conversation_id"] for i in "ab"}
    page.goto("/")
    page.fill("#email", api.email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    items = page.locator(".conv-list li")
    expect(items).to_have_count(2)
    days = page.evaluate(
        # the page's local days, as a date input holds them (Swedish dates are YYYY-MM-DD)
        """() => [-1, 0, 1].map((n) => {
            const d = new Date(); d.setDate(d.getDate() + n); return d.toLocaleDateString("sv-SE");
        })"""
    )
    yesterday, today, tomorrow = days
    page.get_by_text("Started between").click()
    # from tomorrow: none; the request carries the API's created_after with a timezone
    with page.expect_request(re.compile(r"/api/conversations\?.*created_after=[^&]+Z")) as asked:
        page.fill("#conv-created-from", tomorrow)
    after = parse_qs(urlsplit(asked.value.url).query)["created_after"][0]
    listed = api.call("GET", "/api/conversations", params={"created_after": after})["items"]
    assert listed == []
    expect(items).to_have_count(0)
    page.fill("#conv-created-from", today)
    expect(items).to_have_count(2)
    page.fill("#conv-created-from", "")
    page.fill("#conv-created-to", yesterday)  # started until yesterday: none
    expect(items).to_have_count(0)
    page.fill("#conv-created-to", today)  # until today, the whole day included
    expect(items).to_have_count(2)
    shown = {items.nth(i).get_attribute("data-conversation") for i in range(2)}
    assert shown == ids
    assert problems(page) == []


def test_sign_up_is_offered_only_when_the_server_accepts_it(page: Page, api: Api) -> None:
    assert api.client.get("/api/auth/signup").json() == {"allowed": True}
    page.goto("/")
    expect(page.locator("#email")).to_be_visible()
    expect(page.get_by_role("button", name="Sign up")).to_be_visible()
    expect(page.get_by_test_id("signup-closed")).to_have_count(0)
    # a server started with EV_ALLOW_SIGNUP=false answers {"allowed": false}
    # (tests/api/test_auth_and_agents.py::test_signup_can_be_closed): that answer, here
    page.route(
        "**/api/auth/signup",
        lambda route: route.fulfill(json={"allowed": False}),
    )
    page.reload()
    expect(page.get_by_test_id("signup-closed")).to_contain_text("ask an administrator")
    expect(page.get_by_role("button", name="Sign up")).to_have_count(0)
    page.fill("#email", api.email)  # logging in still works
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("header.top")).to_be_visible()
    assert problems(page) == []
