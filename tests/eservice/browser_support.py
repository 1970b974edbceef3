"""Helpers for the browser tests: logging in, axe-core, screenshots, keyboard navigation."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
AXE = HERE / "node" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "docs" / "screenshots"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def check_a11y(page: Any) -> None:
    """axe-core on the current page: no WCAG 2.1 A/AA violations."""
    if not AXE.exists():
        raise AssertionError(f"axe-core is missing at {AXE}: run "
                             "`npm ci --prefix tests/eservice/node`")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async (tags) => { const r = await axe.run(document, {runOnly: {type: 'tag', "
        "values: tags}}); return r.violations.map(v => ({id: v.id, impact: v.impact, "
        "help: v.help, nodes: v.nodes.map(n => n.target.join(' ') + ': ' + "
        "n.failureSummary)})); }", WCAG_TAGS)
    assert result == [], (f"axe-core found WCAG 2.1 A/AA violations on {page.url}:\n"
                          + json.dumps(result, ensure_ascii=False, indent=2))


def shot(page: Any, name: str) -> None:
    """Save the page for docs/screenshots — only when asked (LISTNING_SCREENSHOTS=1), so a test
    run does not rewrite the committed pictures."""
    if not os.environ.get("LISTNING_SCREENSHOTS"):
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def login(page: Any, name: str, *, other: str | None = None) -> None:
    """Log in with the pilot's test e-ID as the test person called ``name`` (or, with
    ``other``, as another resident by number)."""
    page.goto("/logga-in")
    page.get_by_role("link", name=re.compile("Test-e-legitimation")).click()
    if other:
        page.get_by_label("Annan person i testfolkbokföringen").check()
        page.get_by_label("Personnummer för annan person").fill(other)
    else:
        page.get_by_label(re.compile(name)).check()
    page.get_by_role("button", name="Logga in").click()
    page.wait_for_url("**/min-listning")


def main_text(page: Any) -> str:
    return page.locator("main").inner_text()


def focused(page: Any) -> dict[str, str]:
    return page.evaluate(
        "() => { const e = document.activeElement; const s = getComputedStyle(e); return {"
        "tag: e.tagName, text: (e.innerText || e.value || e.getAttribute('aria-label') || '')"
        ".trim(), label: e.labels && e.labels[0] ? e.labels[0].innerText.trim() : '', "
        "outline: s.outlineStyle + ' ' + s.outlineWidth, shadow: s.boxShadow}; }")


def tab_to(page: Any, pattern: str, *, limit: int = 60, key: str = "Tab") -> dict[str, str]:
    """Press Tab until the focused element's text or label matches ``pattern``; check that the
    focus is visible there."""
    rx = re.compile(pattern)
    seen = []
    for _ in range(limit):
        page.keyboard.press(key)
        f = focused(page)
        seen.append(f["text"] or f["label"] or f["tag"])
        if rx.search(f["text"]) or rx.search(f["label"]):
            assert not f["outline"].startswith("none") or f["shadow"] != "none", (
                f"focus is not visible on {f}")
            return f
    raise AssertionError(f"never reached {pattern!r} with {key}; focus went through {seen}")
