"""Knowledge in the console: a base, an upload with progress, ingestion followed to ready, a
search, an agent answering from it with its sources folded under the answer, deletion."""

from __future__ import annotations

from pathlib import Path

from harness import Api
from playwright.sync_api import Page, expect
from test_console import problems, ui_login

DOC = """# Refund policy

Customers may return any product within 30 days of delivery for a full refund.

## Exceptions

Perishable goods shipped to the Azores can only be refunded within 7 days.
"""


def test_knowledge_base_upload_search_and_sources(
    page: Page, api: Api, tmp_path: Path, screenshots: Path
) -> None:
    ui_login(page, api.email)
    page.locator("#main-nav").get_by_role("link", name="Knowledge").click()
    page.fill("#kb-name", "Policies")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Policies")).to_be_visible()

    path = tmp_path / "refunds.md"
    path.write_text(DOC)
    page.set_input_files("#kb-file", str(path))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".uploads")).to_contain_text("100%")
    row = page.get_by_test_id("documents").locator("tr", has_text="refunds")
    expect(row).to_have_attribute("data-status", "ready", timeout=60_000)
    page.screenshot(path=screenshots / "knowledge.png")

    page.fill("#kb-search", "Azores perishable refund")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("search-results")).to_contain_text("7 days")

    # an agent that reads the base answers with its sources folded under the answer
    base_id = page.url.rsplit("/", 1)[1]
    api.agent("Support", knowledge_base_ids=[base_id])
    page.locator("#main-nav").get_by_role("link", name="Chat").click()
    page.select_option("#agent-picker", label="Support")
    page.locator("#composer-input").fill(
        "How long do I have to return perishable goods in the Azores?"
    )
    page.locator("#composer-input").press("Enter")
    answer = page.locator(".msg-agent:not(.msg-live)")
    expect(answer).to_have_count(1, timeout=30_000)
    sources = answer.locator("details.fold", has_text="Sources")
    expect(sources).to_be_visible()
    sources.locator("summary").click()
    expect(sources).to_contain_text("refunds")

    page.goto(f"/#/knowledge/{base_id}")
    row = page.get_by_test_id("documents").locator("tr", has_text="refunds")
    row.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    docs = api.call("GET", f"/api/knowledge-bases/{base_id}/documents")["items"]
    assert docs == []
    assert problems(page) == []
