"""The web console in Debian's Chromium against the real server (embedded default)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import AXE, PASSWORD, Api
from playwright.sync_api import Page, expect

# an answer whose turn is over (committed): the live one streams for seconds first
ANSWERED = ".msg-agent:not(.msg-live)"


def ui_login(page: Page, email: str) -> None:
    page.goto("/")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("header.top")).to_be_visible()


def problems(page: Page) -> list[str]:
    return list(page.problems)  # type: ignore[attr-defined]


def test_sign_up_create_agent_and_chat(page: Page, admin: Api, screenshots: Path) -> None:
    page.goto("/")
    page.screenshot(path=screenshots / "login.png")
    page.get_by_role("button", name="Sign up").click()
    page.fill("#name", "Carla")
    page.fill("#email", "carla@example.com")
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("header.top")).to_be_visible()

    page.goto("/#/profile")
    expect(page.get_by_test_id("profile-email")).to_have_text("carla@example.com")

    # a bad value shows the API's own message beside its field
    page.goto("/#/agents/new")
    page.fill("#agent-name", "Helper")
    page.fill("#agent-model", "nonsense:model")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#agent-model-error")).to_contain_text("provider 'nonsense'")
    page.screenshot(path=screenshots / "agent-form-error.png")
    page.fill("#agent-model", "")
    page.get_by_label("calculator").check()
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("link", name="Helper")).to_be_visible()
    page.screenshot(path=screenshots / "agents.png")

    page.locator("#main-nav").get_by_role("link", name="Chat").click()
    expect(page.locator("#agent-picker")).to_have_value(re.compile(".+"))
    box = page.locator("#composer-input")
    box.fill("first line")
    box.press("Shift+Enter")  # a new line, not a send
    box.type("second line")
    expect(box).to_have_value("first line\nsecond line")
    expect(page.locator(".msg")).to_have_count(0)
    box.press("Enter")
    expect(page.locator(ANSWERED)).to_have_count(1, timeout=30_000)
    expect(page.locator(".msg-user")).to_contain_text("second line")
    expect(page.locator(".msg-agent")).to_contain_text("offline model")
    expect(page).to_have_url(re.compile(r"#/chat/[0-9a-f-]{36}$"))
    box.fill("and a follow-up")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(ANSWERED)).to_have_count(2, timeout=30_000)
    expect(page.locator(".conv-list li")).to_have_count(1)
    page.screenshot(path=screenshots / "chat.png")
    assert problems(page) == []


def test_older_pages_load_by_scrolling_up(page: Page, api: Api) -> None:
    agent = api.agent()
    first = api.chat("message number 1", agent_id=agent["id"])
    conversation = first["conversation_id"]
    for i in range(2, 61):  # 120 messages: the newest page (20) and older pages of 50
        api.chat(f"message number {i}", conversation_id=conversation)
    ui_login(page, api.email)
    page.goto(f"/#/chat/{conversation}")
    messages = page.locator(".msg")
    expect(messages).to_have_count(20)  # the newest page only
    expect(messages.last).to_contain_text("message number 60")
    expect(page.get_by_text("message number 1", exact=False).first).not_to_be_visible()
    # scroll to the top until the start of the conversation is reached
    for _ in range(10):
        page.locator(".messages").evaluate("el => { el.scrollTop = 0; }")
        page.wait_for_timeout(300)
        if page.get_by_test_id("history-edge").inner_text() == "Start of the conversation":
            break
    expect(messages).to_have_count(120)
    expect(messages.first.locator(".md")).to_have_text("message number 1")
    seqs = [int(s) for s in messages.evaluate_all("els => els.map(e => e.dataset.seq)")]
    assert seqs == list(range(1, 121))  # nothing doubled, nothing missing, in order


def test_rename_archive_and_delete(page: Page, api: Api) -> None:
    agent = api.agent()
    keep = api.chat("keep me", agent_id=agent["id"])["conversation_id"]
    gone = api.chat("delete me", agent_id=agent["id"])["conversation_id"]
    ui_login(page, api.email)
    item = page.locator(f"li[data-conversation='{keep}']")
    item.get_by_role("button", name="Rename").click()
    item.get_by_role("textbox").fill("Quarterly plan")
    item.get_by_role("button", name="Save").click()
    expect(item).to_contain_text("Quarterly plan")
    assert api.call("GET", f"/api/conversations/{keep}")["title"] == "Quarterly plan"

    page.locator(f"li[data-conversation='{gone}']").get_by_role("button", name="Delete").click()
    expect(page.locator(f"li[data-conversation='{gone}']")).to_have_count(0)
    r = api.client.get(f"/api/conversations/{gone}", headers=api.headers)
    assert r.status_code == 404

    item.get_by_role("button", name="Archive").click()
    expect(item).to_have_count(0)
    assert api.call("GET", f"/api/conversations/{keep}")["status"] == "archived"
    page.select_option("#conv-status", "archived")
    expect(page.locator(f"li[data-conversation='{keep}']")).to_contain_text("Quarterly plan")


def test_admin_dashboard_plots_the_api_numbers(
    page: Page, admin: Api, api: Api, screenshots: Path
) -> None:
    agent = admin.agent("Analyst")
    for text in ("one", "two", "three"):
        cid = admin.chat(f"dashboard {text}", agent_id=agent["id"])["conversation_id"]
        admin.chat("again", conversation_id=cid)
    theirs = api.agent("Theirs")
    api.chat("someone else's turn", agent_id=theirs["id"])  # an admin sees everyone's usage
    _until_usage_settles(admin)  # turns of earlier tests that outlived their page end first
    ui_login(page, admin.email)
    page.goto("/#/dashboard")
    first, last = page.locator("#dash-from").input_value(), _last_day(page)

    def usage(group_by: str) -> list[dict[str, Any]]:
        query = {"from": first, "to": last, "group_by": group_by}
        return list(admin.call("GET", "/api/analytics/usage", params=query)["rows"])

    total = usage("")[0]
    assert total["turns"] >= 7
    kpi = page.get_by_test_id("totals")
    expect(kpi.locator("[data-kpi=turns]")).to_have_text(f"{total['turns']:,}")
    expect(kpi.locator("[data-kpi=tokens]")).to_have_text(
        f"{total['input_tokens'] + total['output_tokens']:,}"
    )
    expect(kpi.locator("[data-kpi=failed]")).to_have_text(f"{total['failed']:,}")
    per_agent = page.get_by_test_id("per-agent")
    expect(per_agent.get_by_role("row", name="Analyst")).to_contain_text("6")
    # real plots: a canvas per chart, two axes, and a tooltip naming the value with its unit
    chart = page.get_by_test_id("chart-turns")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart.locator(".u-axis")).to_have_count(2)
    over = chart.locator(".u-over")
    box = over.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    tip = chart.locator(".chart-tip")
    expect(tip).to_be_visible()
    today = next(r for r in usage("day") if r["day"] == last)
    expect(tip).to_contain_text(f"Turns: {today['turns']:,} turns")
    page.screenshot(path=screenshots / "dashboard.png", full_page=True)

    page.goto("/#/admin")
    expect(page.get_by_test_id("health-status")).to_have_text(
        admin.client.get("/health/ready").json()["status"]
    )
    expect(page.get_by_role("cell", name=admin.email)).to_be_visible()
    page.screenshot(path=screenshots / "admin.png", full_page=True)
    assert problems(page) == []


def _last_day(page: Page) -> str:
    return str(page.locator("#dash-to").input_value())


def test_second_user_cannot_see_the_first_ones_conversations(
    page: Page, api: Api, console_url: str
) -> None:
    agent = api.agent()
    mine = api.chat("a private matter", agent_id=agent["id"])["conversation_id"]
    api.call("PATCH", f"/api/conversations/{mine}", json={"title": "First user's secret"})
    other = Api(console_url).register("Davi")
    try:
        ui_login(page, other.email)
        expect(page.get_by_text("No conversations yet.")).to_be_visible()
        page.goto(f"/#/chat/{mine}")
        expect(page.get_by_role("alert")).to_contain_text("not found")
        expect(page.locator("body")).not_to_contain_text("First user's secret")
        expect(page.locator("body")).not_to_contain_text("a private matter")
    finally:
        other.close()


def test_html_and_javascript_links_render_harmless(page: Page, api: Api) -> None:
    agent = api.agent()
    ui_login(page, api.email)
    page.locator("#composer-input").fill(
        "look <img src=x onerror=alert(1)> and [click me](javascript:alert(2)) "
        "<script>alert(3)</script> **bold**"
    )
    page.locator("#composer-input").press("Enter")
    expect(page.locator(ANSWERED)).to_have_count(1, timeout=30_000)
    for body in page.locator(".msg .md").all():
        assert body.locator("img, script, iframe, [onerror]").count() == 0
    user = page.locator(".msg-user .md")
    expect(user).to_contain_text("<img src=x onerror=alert(1)>")  # shown as text
    expect(user.locator("strong")).to_have_text("bold")  # markdown still rendered
    link = user.get_by_text("click me")
    assert link.get_attribute("href") is None
    link.click()
    page.wait_for_timeout(300)
    assert agent["id"]
    assert problems(page) == []  # no alert ran, no CSP violation


def test_accessibility_no_serious_violations(
    page: Page, api: Api, admin: Api, screenshots: Path
) -> None:
    agent = api.agent("Axe")
    cid = api.chat("# Heading\n\n```python\nprint('hi')\n```", agent_id=agent["id"])[
        "conversation_id"
    ]
    source = AXE.read_text()
    found: dict[str, list[str]] = {}

    def audit(name: str) -> None:
        page.wait_for_load_state("networkidle")
        page.evaluate(source)
        result = page.evaluate("async () => JSON.stringify(await axe.run(document))")
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']}: "
            + "; ".join(f"{n['target']} {n.get('failureSummary', '')}" for n in v["nodes"][:3])
            for v in json.loads(result)["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        if bad:
            found[name] = bad

    page.goto("/")
    expect(page.locator("#email")).to_be_visible()
    audit("login")
    ui_login(page, api.email)
    for theme in ("light", "dark"):
        page.evaluate(f"localStorage.setItem('ev.theme', '{theme}')")
        page.goto(f"/#/chat/{cid}")
        page.reload()
        expect(page.locator(".msg-agent")).to_have_count(1)
        audit(f"chat-{theme}")
        if theme == "dark":
            page.screenshot(path=screenshots / "chat-dark.png")
        for route, ready in (
            ("agents", "table.list"),
            ("agents/new", "#agent-name"),
            ("knowledge", "#kb-name"),
            ("dashboard", ".chart canvas"),
            ("profile", "#key-name"),
        ):
            page.goto(f"/#/{route}")
            page.wait_for_selector(ready)
            audit(f"{route}-{theme}")
    page.get_by_test_id("logout").click()
    ui_login(page, admin.email)
    for theme in ("light", "dark"):
        page.evaluate(f"localStorage.setItem('ev.theme', '{theme}')")
        page.goto("/#/admin")
        page.reload()
        page.wait_for_selector("[data-testid=budgets]")
        page.wait_for_selector("[data-testid=health-status]")
        audit(f"admin-{theme}")
    assert found == {}


def test_phone_width_and_portuguese(
    browser_context_factory: Callable[..., Page], api: Api, screenshots: Path
) -> None:
    page = browser_context_factory(viewport={"width": 390, "height": 844}, locale="pt-BR")
    page.goto("/")
    expect(page.get_by_role("button", name="Entrar")).to_be_visible()  # the browser's language
    page.fill("#email", api.email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    expect(page.get_by_role("heading", name="Conversas")).to_be_visible()
    nav = page.locator("#main-nav")
    expect(nav).to_be_hidden()  # folded behind the menu button at phone width
    page.get_by_role("button", name="Menu").click()
    expect(nav.get_by_role("link", name="Agentes")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone
    page.screenshot(path=screenshots / "phone-pt.png")
    page.select_option("#lang-select", "en")  # the switch
    expect(page.get_by_role("heading", name="Conversations")).to_be_visible()


def test_security_headers_on_the_console(console_url: str, api: Api) -> None:
    r = api.client.get("/")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    scripts = re.findall(r"<script[^>]*>", r.text)
    assert scripts and all("src=" in s for s in scripts)  # no inline script
    asset = re.search(r'src="(/assets/[^"]+\.js)"', r.text)
    assert asset
    r = api.client.get(asset.group(1))
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
    api_csp = api.client.get("/api/users/me", headers=api.headers).headers[
        "content-security-policy"
    ]
    assert api_csp == "default-src 'none'; frame-ancestors 'none'"


def test_feedback_on_an_answer(page: Page, api: Api) -> None:
    agent = api.agent("Rated")
    conversation = api.chat("rate me", agent_id=agent["id"])["conversation_id"]
    ui_login(page, api.email)
    page.goto(f"/#/chat/{conversation}")
    good = page.locator(".msg-agent").get_by_role("button", name="Good answer")
    good.click()
    expect(good).to_have_attribute("aria-pressed", "true")
    today = page.evaluate("new Date().toISOString().slice(0, 10)")
    assert _feedback_counted(api, today) == (1, 0)
    page.locator(".msg-agent").get_by_role("button", name="Bad answer").click()  # replaces it
    expect(good).to_have_attribute("aria-pressed", "false")
    assert _feedback_counted(api, today, until=(0, 1)) == (0, 1)


def _feedback_counted(
    api: Api, day: str, until: tuple[int, int] = (1, 0), timeout: float = 30.0
) -> tuple[int, int] | None:
    """(up, down) of the user's usage row of ``day`` once it equals ``until`` (or what it is at
    the deadline). The turn's run reaches MongoDB's ``chat_analytics`` after the answer (once
    seen with no row at all under load), and feedback on a message MongoDB does not hold yet
    is left to the relay."""
    deadline = time.monotonic() + timeout
    while True:
        rows = api.call("GET", "/api/analytics/usage", params={"from": day, "to": day})["rows"]
        got = (rows[0]["feedback_up"], rows[0]["feedback_down"]) if rows else None
        if got == until or time.monotonic() >= deadline:
            return got
        time.sleep(0.2)


def test_admin_sets_a_budget_and_the_user_meets_402(
    page: Page, admin: Api, api: Api, browser_context_factory: Callable[..., Page]
) -> None:
    agent = api.agent("Budgeted")
    conversation = api.chat("spend a little", agent_id=agent["id"])["conversation_id"]
    ui_login(page, admin.email)
    page.goto("/#/admin")
    page.select_option("#budget-scope", "user")
    page.select_option("#budget-target", label=api.email)
    page.fill("#budget-tokens", "1")
    page.get_by_role("button", name="New budget").click()
    row = page.get_by_test_id("budgets").get_by_role("row", name=api.email)
    expect(row).to_be_visible()
    budgets = admin.call("GET", "/api/admin/budgets")["items"]
    mine = [b for b in budgets if b["scope_id"] == api.call("GET", "/api/users/me")["id"]]
    assert len(mine) == 1 and mine[0]["max_tokens"] == 1

    user_page = browser_context_factory(viewport={"width": 1280, "height": 800}, locale="en-US")
    ui_login(user_page, api.email)
    user_page.goto("/#/profile")
    expect(user_page.get_by_test_id("profile-budget")).to_contain_text("/ 1 tokens")
    user_page.goto(f"/#/chat/{conversation}")
    expect(user_page.locator(".msg")).to_have_count(2)
    user_page.locator("#composer-input").fill("one more")
    user_page.locator("#composer-input").press("Enter")
    alert = user_page.locator(".chat > .error")
    expect(alert).to_contain_text("budget")  # the API's own 402 message
    expect(alert.get_by_role("button", name="Retry")).to_be_visible()
    expect(user_page.locator("#composer-input")).to_have_value("one more")  # nothing lost


def test_second_user_picks_and_chats_with_a_shared_agent(
    page: Page, api: Api, console_url: str
) -> None:
    shared = api.agent("Shared Helper", visibility="shared")
    hidden = api.agent("Owner's Private Agent")
    other = Api(console_url).register("Eva")
    try:
        # the default list is the caller's own agents only: the console must ask for scope=all
        assert other.call("GET", "/api/agents") == []
        ui_login(page, other.email)
        page.locator("#main-nav").get_by_role("link", name="Chat").click()
        picker = page.locator("#agent-picker")
        expect(picker.locator(f'option[value="{shared["id"]}"]')).to_have_text(
            "Shared Helper · shared"
        )
        expect(picker.locator(f'option[value="{hidden["id"]}"]')).to_have_count(0)
        picker.select_option(shared["id"])
        page.locator("#composer-input").fill("hello from another user")
        page.get_by_role("button", name="Send").click()
        expect(page.locator(ANSWERED)).to_have_count(1, timeout=30_000)
        expect(page.locator(".msg-agent")).to_contain_text("offline model")
        expect(page).to_have_url(re.compile(r"#/chat/[0-9a-f-]{36}$"))
        conv_id = page.url.rsplit("/", 1)[-1]
        conv = other.call("GET", f"/api/conversations/{conv_id}")
        assert conv["agent_id"] == shared["id"]
        assert conv["user_id"] != shared["user_id"]
        # the conversation list names the shared agent (looked up through scope=all too)
        expect(page.locator(".conv-list li").first).to_contain_text("Shared Helper")
        assert problems(page) == []
    finally:
        other.close()


def test_agents_screen_pages_with_the_api_cursor_and_filters_by_scope(
    page: Page, api: Api, console_url: str
) -> None:
    api.agent("Colleague's Shared", visibility="shared")
    api.agent("Colleague's Private")
    other = Api(console_url).register("Rui")
    try:
        # one more than a console page (20), so "More" must fetch the API's next page
        for i in range(21):
            other.agent(f"Mine {i:02d}")
        ui_login(page, other.email)
        page.goto("/#/agents")
        rows = page.locator("table.list tbody tr")
        more = page.get_by_test_id("agents-more")
        expect(page.locator("#agent-scope")).to_have_value("mine")
        expect(rows).to_have_count(20)
        expect(page.get_by_role("link", name="Mine 20")).to_be_visible()  # newest first
        expect(page.get_by_role("link", name="Mine 00")).to_have_count(0)
        with page.expect_request(re.compile(r"/api/agents\?.*cursor=")) as asked:
            more.click()
        assert "scope=mine" in asked.value.url
        expect(rows).to_have_count(21)
        expect(page.get_by_role("link", name="Mine 00")).to_be_visible()
        expect(more).to_have_count(0)  # the last page carries no X-Next-Cursor
        expect(page.get_by_test_id("agents-loaded")).to_have_text("21 loaded")
        expect(page.get_by_role("link", name="Colleague's Shared")).to_have_count(0)

        page.locator("#agent-scope").select_option("shared")
        link = page.get_by_role("link", name="Colleague's Shared")
        expect(link).to_be_visible()
        expect(page.get_by_role("link", name="Mine 20")).to_have_count(0)
        expect(page.get_by_role("link", name="Colleague's Private")).to_have_count(0)
        expect(page.locator("tr", has=link)).to_contain_text("another user")

        page.locator("#agent-scope").select_option("all")
        # newest first: Rui's 21 (made later) fill the first page; the colleague's is on the next
        expect(rows).to_have_count(20)
        expect(page.get_by_role("link", name="Mine 20")).to_be_visible()
        expect(page.get_by_role("link", name="Colleague's Shared")).to_have_count(0)
        more.click()
        expect(page.get_by_role("link", name="Mine 00")).to_be_visible()
        expect(page.get_by_role("link", name="Colleague's Shared")).to_be_visible()
        expect(page.get_by_role("link", name="Colleague's Private")).to_have_count(0)
        assert problems(page) == []
    finally:
        other.close()


def test_search_finds_messages_through_the_api_and_opens_one_at_its_place(
    page: Page, api: Api, admin: Api
) -> None:
    agent = api.agent()
    conversation = api.chat("Bom dia, tudo certo?", agent_id=agent["id"])["conversation_id"]
    api.chat("Quantos dias de férias tenho em dezembro?", conversation_id=conversation)
    for i in range(30):  # the hit is far from the newest page
        api.chat(f"outro assunto {i}", conversation_id=conversation)
    other = api.chat("Relatório trimestral", agent_id=agent["id"])["conversation_id"]
    admin_agent = admin.agent()
    admin.chat("As férias do admin", agent_id=admin_agent["id"])  # someone else's: never shown
    expected = api.call("GET", "/api/search", params={"q": "ferias"})["items"]
    hit = next(h for h in expected if h["message_type"] == "user")
    assert hit["conversation_id"] == conversation

    ui_login(page, api.email)
    page.fill("#conv-search", "ferias")  # no accent: the engine folds them
    results = page.locator(".search-results li")
    expect(results).to_have_count(len(expected))
    snippets = results.locator(".snippet").all_inner_texts()
    assert snippets == [h["snippet"] for h in expected]  # the API's order and text
    expect(results.first.locator("mark").first).to_have_text(re.compile("^férias$", re.I))
    assert "admin" not in " ".join(snippets)
    expect(page.locator(f"li[data-conversation='{other}']")).to_have_count(0)  # list replaced

    page.locator(f".search-results a[href='#/chat/{conversation}/{hit['seq']}']").click()
    focused = page.locator(f".msg[data-seq='{hit['seq']}']")
    expect(focused).to_be_visible()
    expect(focused).to_have_class(re.compile(r"\bfocused\b"))
    expect(focused).to_contain_text("Quantos dias de férias")
    expect(page.get_by_test_id("search-hit-notice")).to_be_visible()
    expect(page.locator("#composer-input")).to_have_count(0)  # reading the past, not replying

    page.get_by_role("link", name="Go to the newest messages").click()
    expect(page.locator(".msg").last).to_contain_text("outro assunto 29")
    expect(page.locator("#composer-input")).to_be_visible()
    page.fill("#conv-search", "")
    expect(page.locator(f"li[data-conversation='{other}']")).to_be_visible()
    assert problems(page) == []


def _until_usage_settles(admin: Api, timeout: float = 30.0) -> None:
    """A turn belongs to no connection: one an earlier test walked away from (stop, reload)
    may still commit. Wait until two reads a second apart agree, so the page and the API read
    the same totals."""
    today = datetime.now(UTC).date()
    query = {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()}
    deadline = time.monotonic() + timeout
    before = admin.call("GET", "/api/analytics/usage", params=query)["rows"]
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = admin.call("GET", "/api/analytics/usage", params=query)["rows"]
        if now == before:
            return
        before = now
    raise AssertionError("usage kept changing for 30 s")
