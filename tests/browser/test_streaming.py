"""Live turns in the console: the answer streams in, survives a reload, can be stopped and
regenerated; tool calls fold under the answer; a failed turn shows the API's message."""

from __future__ import annotations

import itertools
from pathlib import Path

from harness import Api
from playwright.sync_api import Page, expect
from test_console import problems, ui_login

# records every distinct text of the answer being written, in order
WATCH = """() => {
  window.__snapshots = [];
  const seen = () => {
    const live = document.querySelector('.msg-live .md');
    const text = live ? live.textContent : null;
    const last = window.__snapshots[window.__snapshots.length - 1];
    if (text && text !== last) window.__snapshots.push(text);
  };
  new MutationObserver(seen).observe(
    document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_the_answer_streams_in_several_steps(page: Page, api: Api, screenshots: Path) -> None:
    api.agent("Streamer")
    ui_login(page, api.email)
    page.evaluate(WATCH)
    page.locator("#composer-input").fill("tell me something")
    page.locator("#composer-input").press("Enter")
    expect(page.locator(".msg-live")).to_be_visible()
    page.screenshot(path=screenshots / "chat-streaming.png")
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(page.locator(".msg-live")).to_have_count(0, timeout=30_000)
    final = page.locator(".msg-agent .md").last.inner_text()
    snapshots = [
        s.strip() for s in page.evaluate("window.__snapshots") if s.strip() not in ("", "…")
    ]
    # the answer grew word by word: many partial texts, each a prefix of the next
    assert len(snapshots) >= 5, snapshots
    for a, b in itertools.pairwise(snapshots):
        assert b.split()[: len(a.split())] == a.split(), (a, b)
    assert snapshots[-1].split() == final.split()[: len(snapshots[-1].split())]
    conversation = page.url.rsplit("/", 1)[1]
    history = api.call("GET", f"/api/conversations/{conversation}/messages")["messages"]
    assert [m["message_type"] for m in history] == ["user", "agent"]
    assert history[1]["content"].split() == final.split()
    assert problems(page) == []


def test_reload_mid_answer_completes_once(page: Page, api: Api) -> None:
    api.agent("Reloader")
    ui_login(page, api.email)
    page.locator("#composer-input").fill("a long answer please, with many words in it")
    page.locator("#composer-input").press("Enter")
    live = page.locator(".msg-live .md")
    expect(live).to_contain_text("offline")  # a few words have arrived
    conversation = page.url.rsplit("/", 1)[1]
    partial = live.inner_text()
    page.reload()
    # the page resumes the turn's events and the answer completes, once
    expect(page.locator(".msg-live .md")).to_contain_text("offline")  # resumed, still writing
    expect(page.locator(".msg-agent:not(.msg-live)")).to_have_count(1, timeout=30_000)
    expect(page.locator(".msg-live")).to_have_count(0)
    expect(page.locator(".msg-agent")).to_have_count(1)
    expect(page.locator(".msg-user")).to_have_count(1)
    history = api.call("GET", f"/api/conversations/{conversation}/messages")["messages"]
    assert [m["message_type"] for m in history] == ["user", "agent"]
    shown = page.locator(".msg-agent .md").inner_text()
    assert shown.split() == history[1]["content"].split()
    assert len(shown) > len(partial)
    page.reload()  # and a second load shows the same two messages, nothing doubled
    expect(page.locator(".msg")).to_have_count(2)


def test_stop_regenerate_and_edit(page: Page, api: Api) -> None:
    api.agent("Stoppable")
    ui_login(page, api.email)
    page.locator("#composer-input").fill("please write a long answer")
    page.locator("#composer-input").press("Enter")
    expect(page.locator(".msg-live .md")).to_contain_text("offline")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator(".msg-live")).to_have_count(0)
    answer = page.locator(".msg-agent").last
    expect(answer).to_contain_text("Stopped")
    conversation = page.url.rsplit("/", 1)[1]
    history = api.call("GET", f"/api/conversations/{conversation}/messages")["messages"]
    assert history[-1]["metadata"]["cancelled"] is True

    # Regenerate: POST /api/conversations/{id}/regenerate; the new answer replaces the old
    page.get_by_role("button", name="Regenerate").click()
    expect(page.locator(".msg-live")).to_be_visible()
    expect(page.locator(".msg-live")).to_have_count(0, timeout=30_000)
    expect(page.locator(".msg-agent")).to_have_count(1)
    expect(page.locator(".msg-agent")).not_to_contain_text("Stopped")
    history = api.call("GET", f"/api/conversations/{conversation}/messages")["messages"]
    assert [m["message_type"] for m in history] == ["user", "agent"]
    assert history[1]["metadata"]["regenerated"] is True

    # Edit: PATCH the last user message; it and its answer are replaced
    page.get_by_role("button", name="Edit last message").click()
    box = page.locator("#composer-input")
    expect(box).to_have_value("please write a long answer")
    expect(box).to_be_focused()
    box.fill("a shorter question")
    box.press("Enter")
    expect(page.locator(".msg-live")).to_be_visible()
    expect(page.locator(".msg-live")).to_have_count(0, timeout=30_000)
    expect(page.locator(".msg-user .md")).to_have_text(["a shorter question"])
    expect(page.locator(".msg-agent")).to_contain_text("a shorter question")
    history = api.call("GET", f"/api/conversations/{conversation}/messages")["messages"]
    assert history[0]["content"] == "a shorter question"
    assert len(history) == 2


def test_tool_calls_fold_under_the_answer(page: Page, api: Api, screenshots: Path) -> None:
    api.agent("Calc", tools=["calculator"])
    ui_login(page, api.email)
    page.locator("#composer-input").fill("what is (2+3)*4?")
    page.locator("#composer-input").press("Enter")
    expect(page.locator(".msg-agent:not(.msg-live)")).to_have_count(1, timeout=30_000)
    answer = page.locator(".msg-agent").last
    expect(answer).to_contain_text("20")
    fold = answer.locator("details.fold", has_text="Tool calls")
    expect(fold).to_be_visible()
    expect(fold.locator("ul")).to_be_hidden()  # folded
    fold.locator("summary").click()
    expect(fold).to_contain_text("calculator")
    page.screenshot(path=screenshots / "chat-tool-call.png")


def test_a_failed_turn_shows_the_api_message_and_offers_retry(page: Page, api: Api) -> None:
    # the console server's OpenAI-compatible base URL is a closed port: the provider fails
    api.agent("Broken", model="openai-chat:gpt-4o-mini")
    ui_login(page, api.email)
    page.locator("#composer-input").fill("hello?")
    page.locator("#composer-input").press("Enter")
    alert = page.locator(".chat > .error")
    expect(alert).to_be_visible(timeout=30_000)
    conversation = page.url.rsplit("/", 1)[1]
    history = api.call("GET", f"/api/conversations/{conversation}/messages")["messages"]
    assert [m["message_type"] for m in history] == ["user", "error"]
    expect(alert).to_contain_text(history[1]["content"][:40])
    expect(page.locator(".msg-error")).to_have_count(1)
    alert.get_by_role("button", name="Retry").click()
    expect(page.locator(".msg-error")).to_have_count(2, timeout=30_000)
