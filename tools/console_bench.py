"""The console in a browser: ``python -m tools.console_bench [--reps N] [--quick]``
(``make bench-console``).

A real server (uvicorn, SQLite file + its own SecantusDB) and Debian's Chromium through
Playwright. It measures, as the browser reports it (``performance.now()`` in the page):

1. the app's first contentful paint and the log-in form ready (cold load, empty cache);
2. an interactive chat: a signed-in load of ``/#/chat`` until the composer is enabled and the
   agent list is in;
3. opening a conversation of 10 and of 10,000 messages (seeded straight into both stores, as
   ``make bench`` does) until its newest message is on screen: inside the running app (a click
   on the conversation) and as a full page load of its address. The 10,000 ÷ 10 ratio is the
   figure that must stay near 1 (the console reads only the newest page);
4. the JavaScript shipped, gzipped.

Medians over ``--reps`` runs after a warm-up, the two lengths' order alternating from run to
run; the page-load ratio also as the median of each run's paired ratio (both lengths loaded
back to back, so the machine's load of the moment cancels out).
Results: a table and ``bench-results/console-*.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from playwright.async_api import Page, async_playwright
from pymongo import AsyncMongoClient

from employeevirtual.console import STATIC_DIR
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.sql.engine import create_engine
from tools.bench.seed import SeedSpec, seed_conversations
from tools.browser import CHROMIUM, ConsoleServer, launch_args

PASSWORD = "measured-passphrase-not-a-secret-42"
LENGTHS = (10, 10_000)

# resolves when the conversation's newest message (seq = n) is on screen
OPENED = """async ([n]) => {
  for (;;) {
    const last = document.querySelector('.messages .msg:last-of-type');
    if (last && Number(last.dataset.seq) === n) return performance.now();
    await new Promise((r) => requestAnimationFrame(r));
  }
}"""


def js_gzip_bytes() -> tuple[int, int]:
    files = list((STATIC_DIR / "assets").glob("*.js"))
    raw = sum(f.stat().st_size for f in files)
    packed = sum(len(gzip.compress(f.read_bytes(), 9)) for f in files)
    return raw, packed


async def _seed(settings: Settings, user_id: UUID, agent_id: UUID) -> dict[int, UUID]:
    engine = create_engine(settings.sql_url)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value() if settings.mongodb_url else "", tz_aware=True
    )
    documents = DocumentStore(mongo[settings.mongodb_database], window=settings.conversation_window)
    try:
        out = {}
        for n in LENGTHS:
            (out[n],) = await seed_conversations(
                engine, documents, SeedSpec(user_id, agent_id, "Bench", messages=n)
            )
        return out
    finally:
        await engine.dispose()
        await mongo.close()


async def _signed_in(page: Page, token: dict[str, Any]) -> None:
    await page.add_init_script(
        f"sessionStorage.setItem('ev.session', {json.dumps(json.dumps(token))})"
    )


async def measure(
    base: str, token: dict[str, Any], seeded: dict[int, UUID], reps: int
) -> dict[str, Any]:
    results: dict[str, list[float]] = {}
    ratios: list[float] = []

    def add(name: str, value: float) -> None:
        results.setdefault(name, []).append(round(value, 1))

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=launch_args())
        try:
            for rep in range(reps + 1):  # the first is a warm-up, not counted
                if rep == 1:
                    results.clear()
                # the order alternates, so neither length always goes first (a cache or a
                # neighbour's burst would then favour one side)
                order = LENGTHS if rep % 2 == 0 else LENGTHS[::-1]
                # 1. cold load: a fresh context has an empty cache
                context = await browser.new_context(base_url=base)
                page = await context.new_page()
                await page.goto("/")
                await page.wait_for_selector("#email")
                ready = await page.evaluate("performance.now()")
                fcp = await page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
                )
                if fcp is not None:
                    add("first_contentful_paint_ms", fcp)
                add("login_form_ready_ms", ready)
                await context.close()

                # 2. an interactive chat, signed in
                context = await browser.new_context(base_url=base)
                page = await context.new_page()
                await _signed_in(page, token)
                await page.goto("/#/chat")
                await page.wait_for_selector("#composer-input:not([disabled])")
                await page.wait_for_selector("#agent-picker option", state="attached")
                add("interactive_chat_ms", await page.evaluate("performance.now()"))

                # 3. open each conversation inside the running app, then as a page load
                for n in order:
                    await page.goto("/#/chat")
                    await page.wait_for_selector("#agent-picker option", state="attached")
                    t0 = await page.evaluate(
                        f"() => {{ const t = performance.now(); "
                        f"location.hash = '#/chat/{seeded[n]}'; return t; }}"
                    )
                    t1 = await page.evaluate(OPENED, [n])
                    add(f"open_{n}_in_app_ms", t1 - t0)
                pair: dict[int, float] = {}
                for n in order:
                    await page.goto("about:blank")
                    await page.goto(f"/#/chat/{seeded[n]}")
                    pair[n] = await page.evaluate(OPENED, [n])
                    add(f"open_{n}_page_load_ms", pair[n])
                    timing = await page.evaluate(
                        "performance.getEntriesByType('resource')"
                        ".filter(e => e.name.includes('/messages'))"
                        ".map(e => [e.startTime, e.responseEnd])"
                    )
                    if timing:
                        add(f"open_{n}_history_response_end_ms", timing[0][1])
                        add(f"open_{n}_after_history_ms", pair[n] - timing[0][1])
                    add(f"open_{n}_messages_rendered", await page.locator(".msg").count())
                # both lengths loaded back to back: the machine's load of the moment cancels
                ratios.append(pair[LENGTHS[1]] / pair[LENGTHS[0]])
                await context.close()
        finally:
            await browser.close()
    figures = {
        name: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}
        for name, v in results.items()
    }
    counted = ratios[1:]  # without the warm-up
    figures["paired_ratio_page_load"] = {
        "median": round(statistics.median(counted), 3),
        "min": round(min(counted), 3),
        "max": round(max(counted), 3),
        "runs": [round(r, 3) for r in counted],
    }
    return figures


async def run(reps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        work = Path(tmp)
        secantus = SecantusServer(
            storage_path=str(work / "mongodb"), log_path=str(work / "secantus.log")
        )
        await secantus.start()
        database = f"console_bench_{uuid.uuid4().hex[:8]}"
        server = ConsoleServer(
            work,
            EV_MONGODB_URL=secantus.url,
            EV_MONGODB_DATABASE=database,
            EV_RATE_LIMIT_GLOBAL="1000000",
        )
        try:
            await asyncio.to_thread(server.start)
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                email = "bench@example.com"
                r = await client.post(
                    "/api/auth/register",
                    json={"email": email, "password": PASSWORD, "name": "Bench"},
                )
                r.raise_for_status()
                user_id = UUID(r.json()["id"])
                r = await client.post(
                    "/api/auth/login", data={"username": email, "password": PASSWORD}
                )
                r.raise_for_status()
                token = {"token": r.json()["access_token"], "expires_at": r.json()["expires_at"]}
                headers = {"Authorization": f"Bearer {token['token']}"}
                r = await client.post("/api/agents", json={"name": "Bench"}, headers=headers)
                r.raise_for_status()
                agent_id = UUID(r.json()["id"])
            settings = Settings(
                _env_file=None,
                data_dir=work / "data",
                mongodb_url=secantus.url,
                mongodb_database=database,
            )
            t0 = time.perf_counter()
            seeded = await _seed(settings, user_id, agent_id)
            seed_s = time.perf_counter() - t0
            figures = await measure(server.url, token, seeded, reps)
        finally:
            await asyncio.to_thread(server.stop)
            await secantus.stop()
    raw, packed = js_gzip_bytes()
    ratio_app = figures["open_10000_in_app_ms"]["median"] / figures["open_10_in_app_ms"]["median"]
    ratio_load = (
        figures["open_10000_page_load_ms"]["median"] / figures["open_10_page_load_ms"]["median"]
    )
    return {
        "started_at": datetime.now(UTC).isoformat(),
        "reps": reps,
        "seed_seconds": round(seed_s, 1),
        "js_bytes": raw,
        "js_gzip_bytes": packed,
        "figures": figures,
        "ratio_10000_vs_10_in_app": round(ratio_app, 2),
        "ratio_10000_vs_10_page_load": round(ratio_load, 2),
        "paired_ratio_page_load_median": figures["paired_ratio_page_load"]["median"],
    }


def report(results: dict[str, Any]) -> str:
    lines = [f"{'figure':36} {'median':>9} {'min':>9} {'max':>9}"]
    for name, f in results["figures"].items():
        lines.append(f"{name:36} {f['median']:9.1f} {f['min']:9.1f} {f['max']:9.1f}")
    lines.append(
        f"JavaScript shipped: {results['js_bytes'] / 1024:.1f} KB, "
        f"{results['js_gzip_bytes'] / 1024:.1f} KB gzipped"
    )
    lines.append(
        "open 10,000 ÷ 10 messages: "
        f"{results['ratio_10000_vs_10_in_app']:.2f}x in the app, "
        f"{results['ratio_10000_vs_10_page_load']:.2f}x as a page load "
        f"(median of the runs' paired ratios: {results['paired_ratio_page_load_median']:.2f}x)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.console_bench")
    parser.add_argument("--reps", type=int, default=15, help="alternating runs per figure")
    parser.add_argument("--quick", action="store_true", help="3 runs")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    results = asyncio.run(run(3 if args.quick else args.reps))
    print(report(results))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"console-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
