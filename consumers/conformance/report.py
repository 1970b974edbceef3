"""The suite's outputs: the console summary, JUnit XML and a self-contained HTML report."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from lxml import etree

from consumers.conformance.suite import FAILED, PASSED, SKIPPED, CaseResult
from consumers.conformance.transport import Exchange

MAX_SHOWN = 20_000  # characters of one message in the HTML report

_MARK = {PASSED: "PASS", FAILED: "FAIL", SKIPPED: "SKIP"}


def console_line(r: CaseResult) -> str:
    note = f" — {r.message}" if r.message else ""
    return f"{_MARK[r.verdict]}  {r.name}{note}"


def summary_line(results: Iterable[CaseResult]) -> str:
    rs = list(results)
    return (f"{sum(r.verdict == PASSED for r in rs)} passed, "
            f"{sum(r.verdict == FAILED for r in rs)} failed")


_NOT_XML_CHARS = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(data: bytes) -> str:
    """A message for the reports: decoded, without characters XML cannot hold, capped."""
    text = _NOT_XML_CHARS.sub("\ufffd", data.decode("utf-8", errors="replace"))
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f"\n… ({len(text)} chars)"


def write_junit(path: str | Path, results: list[CaseResult], *, suite_name: str) -> None:
    total = sum(r.seconds for r in results)
    root = etree.Element("testsuites")
    ts = etree.SubElement(root, "testsuite", name=suite_name, tests=str(len(results)),
                          failures=str(sum(r.verdict == FAILED for r in results)),
                          errors="0", skipped=str(sum(r.verdict == SKIPPED for r in results)),
                          time=f"{total:.3f}",
                          timestamp=datetime.now().isoformat(timespec="seconds"))
    for r in results:
        tc = etree.SubElement(ts, "testcase", classname=f"conformance.{r.contract}", name=r.name,
                              time=f"{r.seconds:.3f}")
        if r.verdict == FAILED:
            failure = etree.SubElement(tc, "failure", message=_NOT_XML_CHARS.sub("?", r.message))
            failure.text = _exchanges_text(r.exchanges)
        elif r.verdict == SKIPPED:
            etree.SubElement(tc, "skipped", message=r.message)
        elif r.message:
            etree.SubElement(tc, "system-out").text = r.message
    Path(path).write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                                          pretty_print=True))


def _exchanges_text(exchanges: list[Exchange]) -> str:
    out = []
    for ex in exchanges[-3:]:
        status = ex.error or f"HTTP {ex.status} {ex.content_type}"
        out.append(f"--- {ex.contract} {ex.url} ({status}, {ex.seconds * 1000:.0f} ms)\n"
                   f"{_text(ex.request)}\n--- response\n{_text(ex.body)}")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em} table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
.passed{color:#176b1f}.failed{color:#a40000;font-weight:bold}.skipped{color:#777}
details{margin:.3em 0} pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap;
word-break:break-all;max-height:30em;overflow:auto;font-size:.85em}
"""


def write_html(path: str | Path, results: list[CaseResult], *, title: str,
               target: str) -> None:
    e = html.escape
    rows = []
    for i, r in enumerate(results, 1):
        exchanges = []
        for ex in r.exchanges:
            status = ex.error or f"HTTP {ex.status} {ex.content_type}"
            exchanges.append(
                f"<details><summary>{e(ex.contract)} — {e(status)} — "
                f"{ex.seconds * 1000:.0f} ms</summary>"
                f"<p>POST {e(ex.url)}</p><h4>Request</h4><pre>{e(_text(ex.request))}</pre>"
                f"<h4>Response</h4><pre>{e(_text(ex.body))}</pre></details>")
        rows.append(
            f"<tr><td>{i}</td><td>{e(r.contract)}</td><td>{e(r.name)}</td>"
            f'<td class="{e(r.verdict)}">{e(r.verdict)}</td><td>{e(r.message)}'
            f"{''.join(exchanges)}</td></tr>")
    doc = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{e(title)}</h1><p>Producer: {e(target)}<br>Run: "
        f"{e(datetime.now().isoformat(timespec='seconds'))}<br><strong>"
        f"{e(summary_line(results))}</strong>, {sum(r.verdict == SKIPPED for r in results)} "
        "skipped</p><p>Personal identity numbers in this report are synthetic test data.</p>"
        "<table><thead><tr><th>#</th><th>Contract</th><th>Case</th><th>Verdict</th>"
        "<th>Details, requests and responses</th></tr></thead><tbody>"
        + "".join(rows) + "</tbody></table></body></html>")
    Path(path).write_text(doc, encoding="utf-8")
