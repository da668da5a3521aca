"""The dashboard in a real browser (Debian's chromium driven by Playwright; nothing downloads a browser).

A broken canary (v3: its position table cut to 64 rows, so long inputs fail) is promoted on the local
target while its page is open; the page turns to RolledBack by itself, marks the failing burn window
against its threshold, shows the incident with its runbook link and the `ctl` commands, logs no console
error and can be driven from the keyboard. Screenshots are written under the test's tmp dir.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Ctl
from tests.e2e.dashboard_server import dashboard

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 240_000  # a shared 2-core machine
# Twice the suite's step: chromium and its polling page share the 2 cores with the local fleet, and a
# starved canary gathers too few requests to be judged (the rollout then pauses inconclusive instead).
BROWSER_STEP = "12s"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (`make system-deps` installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def broken(home_ctl: Ctl, minilm: Path, tmp_path_factory: pytest.TempPathFactory) -> Ctl:
    from controlplane.models.variants import cut_positions

    short = cut_positions(minilm, tmp_path_factory.mktemp("broken") / "minilm-short", 64)
    proc = home_ctl("register", "minilm", "--model-dir", str(short))
    assert proc.returncode == 0, proc.stderr
    return home_ctl


def test_rolled_back_canary_in_the_browser(broken: Ctl, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ctl = broken
    errors: list[str] = []
    with dashboard(ctl) as url:
        started = ctl.json("promote", "minilm:v3", "--no-wait", "--skip-validation", "--step-duration", BROWSER_STEP)
        rollout_id = started["id"]
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        page.goto(f"{url}/")
        expect(page.locator(f'a[href="/rollouts/{rollout_id}"]')).to_be_visible()
        page.goto(f"{url}/rollouts/{rollout_id}")
        # No reload from the test: the page's own poll brings the rollback in.
        expect(page.locator("h1 .badge")).to_have_text("RolledBack", timeout=WAIT_MS)
        expect(page.locator("#weight")).to_have_text("0%")

        v3 = ctl.latest("minilm", "minilm:v3")
        assert v3["phase"] == "RolledBack"
        failing = v3["analysis"][-1]["evidence"]
        fired = [b for b in failing["burn"] if b["status"] == "fired"]
        assert fired, failing["burn"]
        rows = page.locator("table.burn tr.failing")
        expect(rows).to_have_count(len(fired))
        for row, window in zip(rows.all(), fired, strict=True):
            cells = row.locator("td")
            expect(cells.nth(0)).to_have_text(window["objective"])
            expect(cells.nth(5)).to_have_text(f"{window['burn_threshold']:.3g}x")
            expect(cells.nth(6)).to_contain_text("FAILING")
        expect(page.locator("svg.burn text.bad").first).to_have_text("FAILING")

        (incident,) = [i for i in ctl.json("incident", "list") if i["ref"] == "minilm:v3"]
        card = page.locator("article.incident")
        expect(card).to_contain_text(incident["failure_mode"])
        link = card.locator("a.runbook-link")
        expect(link).to_have_attribute("href", f"/incidents/{incident['id']}#runbook")
        shown = card.locator("ul.commands code").all_inner_texts()
        commands = ctl.json("runbook", str(incident["id"]))["commands"]
        assert f"ctl runbook {incident['id']}" in shown and set(commands) <= set(shown), (shown, commands)
        page.screenshot(path=str(tmp_path / "rollout-rolled-back.png"), full_page=True)

        # Keyboard: the first Tab reaches the skip link; Tab on to the runbook link and Enter follows it.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        for _ in range(300):
            if page.evaluate("document.activeElement.classList.contains('runbook-link')"):
                break
            page.keyboard.press("Tab")
        else:
            pytest.fail("Tab never reached the runbook link")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{url}/incidents/{incident['id']}#runbook")
        expect(page.locator("h2#runbook")).to_contain_text("Runbook")
        expect(page.locator("article.runbook")).to_contain_text("ctl rollback minilm")
        page.screenshot(path=str(tmp_path / "incident-runbook.png"))
        page.close()
    assert errors == []
