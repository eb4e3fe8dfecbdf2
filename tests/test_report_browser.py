"""The auditor report as an auditor sees it: rendered by headless Chromium (Debian's `chromium` package).

Two browser launches for the whole file: one --dump-dom (with a net log), one --screenshot. Everything is
checked against auditor_report.json, so new tables or returns need no change here. Standard library only.
"""

from __future__ import annotations

import json
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

from outputs.report import number
from tests.chromium import HEIGHT, SCREENSHOTS, WIDTH, needs_chromium, page_requests, run_chromium

pytestmark = needs_chromium

# Measured 1280x900 screenshots (Chromium 156, Debian 12): an empty page 5.3 KB, a page of one solid colour
# 5.3 KB, the report cut after its <h1> and run line 18 KB; the test run's report (headings, the validation
# table, a coloured chart, the status table) 71 KB, or 59 KB with DejaVu as the only fonts (what a
# --no-install-recommends install gets). 35 KB is twice the near-empty page and below the real one either way.
MIN_SCREENSHOT_BYTES = 35_000
# Attributes through which a page could load something or send a request.
URL_ATTRIBUTES = {"src", "href", "srcset", "poster", "data", "xlink:href", "background", "manifest", "ping",
                  "action", "formaction", "codebase", "archive"}


class Page(HTMLParser):
    """The rendered DOM, sectioned by <h2>: per section its text, paragraphs, tables (rows of cell texts) and
    charts (the <title>s of each <svg>); plus what could load or run anything."""

    HIDDEN = frozenset({"head", "style", "script", "title", "svg", "template", "noscript"})  # not page text

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, dict] = {}
        self.section = self._open("")  # before the first <h2>
        self.stack: list[str] = []
        self.text: list[str] = []  # the whole page's visible text
        self.scripts = 0
        self.event_handlers: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.heading_ids: list[str] = []
        self.styles: list[str] = []
        self.heading: list[str] | None = None
        self.cell: list[str] | None = None
        self.svg_title: list[str] | None = None

    def _open(self, name: str) -> dict:
        assert name not in self.sections, f"two sections headed {name!r}"
        self.sections[name] = {"text": [], "paragraphs": [], "tables": [], "charts": []}
        return self.sections[name]

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)
        self.scripts += tag == "script"
        for name, value in attrs:
            if name.startswith("on"):
                self.event_handlers.append(f"<{tag} {name}>")
            if name in URL_ATTRIBUTES:
                self.urls.append((tag, name, value or ""))
            if name == "style":
                self.styles.append(value or "")
        if tag == "h2":
            self.heading = []
            self.heading_ids.append(dict(attrs).get("id", ""))
        elif tag == "p":
            self.section["paragraphs"].append([])
        elif tag == "table":
            self.section["tables"].append([])
        elif tag == "tr":
            self.section["tables"][-1].append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "svg":
            self.section["charts"].append([])
        elif tag == "title" and "svg" in self.stack:
            self.svg_title = []

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in self.stack:  # the dumped DOM is well formed; tolerate void elements left open
            while self.stack.pop() != tag:
                pass
        if tag == "h2":
            self.section = self._open("".join(self.heading).strip())
            self.heading = None
        elif tag in ("td", "th"):
            self.section["tables"][-1][-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "title" and self.svg_title is not None:
            self.section["charts"][-1].append("".join(self.svg_title).strip())
            self.svg_title = None

    def handle_data(self, data):
        if "style" in self.stack:
            self.styles.append(data)
        if self.svg_title is not None:
            self.svg_title.append(data)
        if self.HIDDEN.intersection(self.stack):
            return
        self.text.append(data)
        self.section["text"].append(data)
        for part in (self.heading, self.cell):
            if part is not None:
                part.append(data)
        if "p" in self.stack:
            self.section["paragraphs"][-1].append(data)


def plain(parts: list[str]) -> str:
    return " ".join("".join(parts).split())


@pytest.fixture(scope="module")
def report(census_run) -> tuple[Path, dict]:
    out, _ = census_run
    folder = out / "05_report"
    return folder / "auditor_report.html", json.loads((folder / "auditor_report.json").read_text())


@pytest.fixture(scope="module")
def rendered(report, tmp_path_factory) -> tuple[Page, dict]:
    """Launch 1: the DOM after rendering, parsed, and Chromium's net log of the same launch."""
    html_path, _ = report
    work = tmp_path_factory.mktemp("chromium_dom")
    net_log = work / "net_log.json"
    result = run_chromium(f"--log-net-log={net_log}", "--dump-dom", html_path.resolve().as_uri(),
                          user_data_dir=work / "profile")
    assert "</html>" in result.stdout, f"no DOM dumped:\n{result.stderr[-3000:]}"
    page = Page()
    page.feed(result.stdout)
    page.close()
    return page, json.loads(net_log.read_text())


def bar_value(value: str) -> str:
    """A published cell as a chart labels it: a count with thousands separators, a symbol as it is."""
    try:
        amount = float(value)
    except ValueError:
        return value
    return number(int(amount) if amount.is_integer() else amount)


def test_rendered_report_matches_its_json(report, rendered):
    _, document = report
    page, _ = rendered
    text = plain(page.text)
    run = document["run"]
    assert "lareturns auditor report" in plain(page.sections[""]["text"])
    for value in (run["run_id"], run["period"], run["created_at"]):
        assert value in text

    shown = lambda value: number(value) if isinstance(value, int | float) else str(value)  # noqa: E731
    verdict = page.sections["Verdict"]
    assert plain(verdict["paragraphs"][0]) == f"All {len(document['checks'])} checks passed: the release was delivered."
    assert verdict["tables"][0][1:] == [[c["check"], c["result"], c["detail"]] for c in document["checks"]]
    assert {"every row staged or quarantined", "leak scan", "manifests", "ledger before this run"} <= {
        c["check"] for c in document["checks"]}

    validation = page.sections["Validation"]["tables"][0]
    assert validation[1:] == [[shown(d[k]) for k in ("dataset", "rows_read", "rows_staged", "rows_quarantined",
                                                     "rows_with_warnings")] for d in document["validation"]["datasets"]]
    assert any("," in row[1] for row in validation[1:])  # thousands separators (the pupils' file has thousands)

    names = [table["name"] for table in document["tables"]]
    assert names, "the report lists no table"
    assert all(name in text for name in names)
    deliveries = [f"Delivery to {d['name']}" for d in document["deliveries"]]
    release = ["The release as one protection problem", *(["Figures already published elsewhere"] if document["known_published"] else []),
               "Independent attack"]
    after = ["How to read this report", "Validation", *release, *names, "Extracts", *deliveries]
    assert list(page.sections) == ["", "Verdict", "Contents", *after]  # one <h2> each, in order
    ids = dict(zip(list(page.sections)[1:], page.heading_ids, strict=True))
    contents = [value for tag, attribute, value in page.urls if value.startswith("#")]
    assert contents == [f"#{ids[title]}" for title in ["Verdict", *after]]  # the contents list links every section

    reading = page.sections["How to read this report"]
    assert [row[1] for row in reading["tables"][0][1:]] == ["published", "primary", "secondary", "structural_zero", "rounded"]
    assert all(term in plain(reading["text"]) for term in ("protection level", "interval", "information loss"))
    assert all(relation in plain(page.sections[release[0]]["text"]) for relation in document["relations"])
    assert page.sections["Independent attack"]["tables"][0][1:] == [
        [f["check"], "pass" if f["passed"] else "FAIL", f["detail"]] for f in document["attack"]]
    headlines = sum(bool(table["headline"]) for table in document["tables"])
    assert headlines and sum(len(page.sections[name]["charts"]) for name in names) == len(names) + headlines
    assert all(not section["charts"] for title, section in page.sections.items()
               if title not in (*names, "How to read this report"))

    for table in document["tables"]:
        section, summary = page.sections[table["name"]], table["summary"]
        assert f"{number(table['units'])} units counted for {table['recipient']}" in plain(section["paragraphs"][0])
        verdict = plain(section["paragraphs"][1])
        if summary["audit"]["passed"]:
            assert verdict.startswith("PASSED: no suppressed cell can be narrowed below its protection level.")
        else:
            assert verdict.startswith("FAILED.")
        assert f"Policy {summary['policy_version']}," in verdict
        assert f"{number(summary['information_loss']['secondary_cells'])} secondary cells" in verdict

        by_status = summary["by_status"]
        status_table, suppressed_table = section["tables"]
        assert status_table == [["status", "cells"], *([s, number(n)] for s, n in by_status.items())]
        # The charts: the headline by area as published (a symbol where the cell is hidden), then one bar per
        # status that has cells, each titled with its count.
        headline = [[f"{area}: {bar_value(value)}" for area, value in table["headline"]["bars"]]] if table["headline"] else []
        assert section["charts"] == [*headline, [f"{s}: {n}" for s, n in by_status.items() if n]]

        assert suppressed_table[0] == ["cell", "status", "rule", "lower", "upper"]
        assert suppressed_table[1:] == [[shown(c[k]) for k in ("cell", "status", "rule", "lower", "upper")]
                                        for c in table["suppressed"]]
        assert all(isinstance(c["lower"], int) and isinstance(c["upper"], int) for c in table["suppressed"])
        assert all(re.match(r"Area: [A-Z][a-z]", c["cell"]) for c in table["suppressed"])  # a name, not a code
        suppressed = [row[1] for row in suppressed_table[1:]]
        assert len(suppressed) == summary["audit"]["suppressed_cells"]
        for status in ("primary", "secondary"):
            assert suppressed.count(status) == by_status.get(status, 0)

    queries = lambda e: ", ".join(f"{rule}: {n}" for rule, n in e.get("queries", {}).items()) or "none"  # noqa: E731
    assert page.sections["Extracts"]["tables"][0][1:] == [[e["name"], e["title"], e["recipient"], number(e["rows"]),
                                                           queries(e)] for e in document["extracts"]]
    for delivery, heading in zip(document["deliveries"], deliveries, strict=True):
        section = page.sections[heading]
        assert delivery["legal_basis"] in plain(section["text"])
        assert section["tables"][0][1:] == [[f["file"], shown(f.get("rows", "")), number(f["bytes"]), f["sha256"]]
                                            for f in delivery["files"]]


def test_every_link_of_the_report_opens_a_file_beside_it(report, rendered):
    """The delivered files, the manifests, the evidence file and the Data Docs: each link names a file that exists."""
    html_path, document = report
    page, _ = rendered
    files = [value for tag, attribute, value in page.urls if tag == "a" and not value.startswith("#")]
    delivered = {f"../04_deliveries/{d['recipient']}/{f['file']}" for d in document["deliveries"] for f in d["files"]}
    assert delivered <= set(files) and "auditor_evidence.html" in files
    for href in files:
        target = Path(href) if Path(href).is_absolute() else html_path.parent / href
        assert target.exists(), href


def test_rendered_report_is_self_contained(rendered):
    """No script, nothing fetched from anywhere: it opens offline and runs nothing."""
    page, net_log = rendered
    assert page.scripts == 0
    assert page.event_handlers == []
    for tag, attribute, value in page.urls:  # links to local files (the Data Docs) are fine; nothing remote
        scheme = value.strip().lower()
        assert not scheme.startswith(("http:", "https:", "//", "ftp:", "ws:", "wss:", "data:", "javascript:")), \
            f"<{tag} {attribute}={value!r}>"
        assert tag == "a" and attribute == "href", f"<{tag} {attribute}={value!r}> loads something"
    styles = " ".join(page.styles).lower()
    assert "url(" not in styles and "@import" not in styles
    assert page_requests(net_log) == []


def test_screenshot_is_a_rendered_page(report, tmp_path_factory):
    """Launch 2: a 1280x900 PNG that is not blank (see MIN_SCREENSHOT_BYTES)."""
    html_path, _ = report
    work = tmp_path_factory.mktemp("chromium_shot")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "auditor-report.png"
    run_chromium(f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars",
                 html_path.resolve().as_uri(), user_data_dir=work / "profile")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR" and struct.unpack(">II", data[16:24]) == (WIDTH, HEIGHT)
    assert len(data) > MIN_SCREENSHOT_BYTES, f"{len(data)} bytes: the page looks blank"
