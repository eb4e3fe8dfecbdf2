"""Great Expectations' Data Docs as an analyst opens them: offline, looking as GX made them (styles, scripts and
fonts from the npm releases pinned in schemas/reference/data-docs-assets.toml), every validation listed on the
index with its status mark, the data asset and run named. Pages are rendered by headless Chromium; the installer is
checked against a registry served on localhost with a tarball made here."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import re
import tarfile
import threading
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from pipelines.assurance.docs_assets import AssetsMissing, install, installed_assets, offline_page
from pipelines.assurance.expectations import build_data_docs
from schemas.calendar import Term
from schemas.config import load_docs_assets
from schemas.contract import load_contract
from schemas.rules import Period
from schemas.specs.docs_assets import DocsAssets, DocsAssetsError, Package
from tests.chromium import SCREENSHOTS, needs_chromium, page_requests, png_pixels, run_chromium

DATASETS = ["pupils", "early_years", "destinations", "ncmp", "schools", "postcodes", "providers"]
LOADS = re.compile(r'<(?:script|img)[^>]*\bsrc="([^"]+)"|<link[^>]*\bhref="([^"]+)"|url\([\'"]?([^\'")]+)')
OUTSIDE = re.compile(r"^([a-z][a-z0-9+.-]*:|//)", re.I)
# Bootstrap's success green (#28a745), the colour of GX's check marks; a mark drawn by Font Awesome's font is about
# 170 such pixels at 1280x900, the empty box a browser draws for a glyph no font has about 20.
SUCCESS_GREEN = (40, 167, 69)
MIN_GREEN_PER_MARK = 80


class IndexRows(HTMLParser):
    """The index's validation rows as bootstrap-table renders them: the page each opens, its status mark's classes
    and its cells' texts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: list[dict] = []
        self.depth = 0  # inside a cell's tooltip (the batch spec), whose text is not the cell's

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and attrs.get("data-href", "").startswith("validations/"):  # not the suites' tab
            self.rows.append({"href": attrs["data-href"], "marks": [], "cells": []})
        elif self.rows and tag == "td":
            self.rows[-1]["cells"].append("")
        elif self.rows and tag == "i":
            self.rows[-1]["marks"].append(attrs.get("class", ""))
        elif self.rows and tag == "a" and "expectation-suite-link" in attrs.get("class", ""):
            self.rows[-1]["suite"] = attrs["href"]
        elif self.rows and tag == "span" and attrs.get("class") == "top":
            self.depth += 1

    def handle_endtag(self, tag):
        if tag == "span" and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.rows and self.rows[-1]["cells"] and not self.depth:
            self.rows[-1]["cells"][-1] += data


def visible_text(dom: str) -> str:
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


def opened(page: Path, work: Path) -> tuple[str, list[str], list[str]]:
    """The page's DOM after its scripts ran, what it asked the network for, and what it said on its console: a
    script that failed to load or run (blocked as cross-origin from disk, say) says so there."""
    net_log = work / "net_log.json"
    result = run_chromium(f"--log-net-log={net_log}", "--enable-logging=stderr", "--dump-dom", page.resolve().as_uri(),
                          user_data_dir=work / "profile")
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, page_requests(json.loads(net_log.read_text())), console


def rendered_index(site: Path, work: Path) -> list[dict]:
    """The index's rows after its scripts ran; the page loaded everything from disk and ran without a complaint."""
    dom, requests, console = opened(site / "index.html", work)
    assert requests == [] and console == []
    parser = IndexRows()
    parser.feed(dom)
    return parser.rows


def test_every_page_loads_only_files_of_its_own_site(validated_run):
    site = (validated_run / "data_docs").resolve()
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 1 + 2 * len(DATASETS)  # the index, and a suite page and a validation page per dataset
    for sheet in [*pages, *site.rglob("*.css")]:
        for match in LOADS.finditer(sheet.read_text(encoding="utf-8")):
            address = next(group for group in match.groups() if group)
            if address.startswith("data:"):
                continue
            assert not OUTSIDE.match(address), f"{sheet.relative_to(site)} loads {address}"
            target = (sheet.parent / address.split("?")[0].split("#")[0]).resolve()
            assert target.is_file() and site in target.parents, f"{sheet.relative_to(site)}: {address} is not in the site"
    fonts = {p.name for p in site.rglob("webfonts/*")}
    assert {"fa-solid-900.woff2", "fa-regular-400.woff2"} <= fonts  # the check and cross marks are Font Awesome glyphs


@needs_chromium
def test_the_index_lists_every_validation_with_its_status_asset_and_run(validated_run, tmp_path):
    site = validated_run / "data_docs"
    summary = json.loads((validated_run / "validation.json").read_text())
    rows = rendered_index(site, tmp_path)
    succeeded = {d["dataset"]: d["expectations"]["success"] for d in summary["datasets"]}
    assert sorted(succeeded) == sorted(DATASETS)
    by_asset = {row["cells"][3].strip(): row for row in rows}  # status, run time, run name, asset, batch, suite
    assert sorted(by_asset) == sorted(DATASETS) and len(rows) == len(DATASETS)
    for dataset, row in by_asset.items():
        mark = "ge-success-icon" if succeeded[dataset] else "ge-failed-icon"
        assert any(mark in classes.split() for classes in row["marks"]), (dataset, row["marks"])
        assert row["cells"][2].strip() == summary["run_id"]
        assert (site / row["href"]).is_file() and (site / row["suite"]).is_file()


@needs_chromium
def test_a_validation_page_names_its_data_asset_and_run(validated_run, tmp_path):
    site = validated_run / "data_docs"
    run_id = json.loads((validated_run / "validation.json").read_text())["run_id"]
    dom, requests, console = opened(next(site.glob("validations/pupils/*/*/*.html")), tmp_path)
    assert requests == [] and console == []
    text = visible_text(dom)
    assert "Expectation Suite: pupils Data asset: pupils Status: Succeeded" in text
    assert f"Run Name {run_id}" in text
    assert "Data asset: None" not in text and "__none__" not in text


@needs_chromium
def test_the_status_marks_show_on_screen(validated_run, tmp_path):
    """A check mark is a Font Awesome glyph: without its font (or with the CSS stripped) the Status column is blank."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "data-docs-index.png"
    shot.unlink(missing_ok=True)  # an earlier run's picture proves nothing
    run_chromium(f"--screenshot={shot}", "--window-size=1280,900", "--hide-scrollbars",
                 (validated_run / "data_docs" / "index.html").resolve().as_uri(), user_data_dir=tmp_path / "profile")
    width, height, rows = png_pixels(shot.read_bytes())
    step = len(rows[0]) // width
    green = sum(all(abs(row[x * step + c] - SUCCESS_GREEN[c]) < 20 for c in range(3)) for row in rows for x in range(width))
    passed = sum(d["expectations"]["success"] for d in json.loads((validated_run / "validation.json").read_text())["datasets"])
    assert passed and green >= MIN_GREEN_PER_MARK * passed, f"{green} pixels of the check marks' green"


@pytest.fixture(scope="module")
def failed_site(tmp_path_factory) -> tuple[Path, dict]:
    """Data Docs of one suite that fails on a made-up code: the site and the outcome."""
    docs = tmp_path_factory.mktemp("failed") / "docs"
    contract = load_contract("ncmp")
    staged = pl.DataFrame({c: ["R"] * 5 for c in contract.column_names}).with_columns(
        pl.Series("ethnicity", ["SECRETCODE1"] * 5), pl.Series("height_cm", [1.0] * 5), pl.Series("weight_kg", [20.0] * 5))
    return docs, build_data_docs([(contract, staged, 1000)], docs, "run-1", Period(Term(2025, "spring")), installed_assets())


def test_data_docs_never_show_failing_sample_values(failed_site):
    docs, outcome = failed_site
    assert outcome["ncmp"]["success"] is False
    html = "\n".join(p.read_text(encoding="utf-8") for p in docs.rglob("*.html"))
    assert "SECRETCODE1" not in html and "SECRETCODE1" not in json.dumps(outcome)


@needs_chromium
def test_a_failed_suite_shows_its_cross(failed_site, tmp_path):
    rows = rendered_index(failed_site[0], tmp_path)
    assert len(rows) == 1
    assert any("ge-failed-icon" in classes.split() for classes in rows[0]["marks"])
    assert rows[0]["cells"][2].strip() == "run-1" and rows[0]["cells"][3].strip() == "ncmp"


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def tarball(files: dict[str, bytes]) -> bytes:
    """A release as npm packs it: every file under package/."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def registry(tmp_path):
    """A folder served over http on localhost, laid out as the npm registry lays out its tarballs."""
    root = tmp_path / "registry"
    root.mkdir()
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(root))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_install_keeps_the_pinned_release_and_refuses_any_other(tmp_path, registry):
    root, address = registry
    release = tarball({"dist/lib.min.js": b"pinned", "README.md": b"not kept"})
    (root / "@demo" / "lib" / "-").mkdir(parents=True)
    (root / "@demo" / "lib" / "-" / "lib-1.0.0.tgz").write_bytes(release)
    package = Package("@demo/lib", "1.0.0", integrity(release), ("dist/lib.min.js",))
    pins = DocsAssets((package,), {"https://cdn.example/lib.js": "@demo/lib@1.0.0/dist/lib.min.js"}, {})
    folder = tmp_path / "installed"
    assert install(pins, folder, address) == ["@demo/lib@1.0.0"]
    assert (folder / "@demo" / "lib@1.0.0" / "dist" / "lib.min.js").read_bytes() == b"pinned"
    assert not (folder / "@demo" / "lib@1.0.0" / "README.md").exists()
    assert install(pins, folder, address) == []  # complete: nothing downloaded again

    (root / "@demo" / "lib" / "-" / "lib-1.0.1.tgz").write_bytes(tarball({"dist/lib.min.js": b"changed"}))
    changed = DocsAssets((replace(package, version="1.0.1"),), {}, {})
    with pytest.raises(AssetsMissing, match=r"lib-1\.0\.1\.tgz: its SHA-512 is not the one pinned .*"
                                            r"packages\.@demo/lib@1\.0\.1\.integrity"):
        install(changed, folder, address)
    assert not (folder / "@demo" / "lib@1.0.1").exists()
    with pytest.raises(AssetsMissing, match=r"@demo/lib@1\.0\.0: has no file dist/gone\.js"):
        install(DocsAssets((replace(package, files=("dist/gone.js",)),), {}, {}), tmp_path / "other", address)


def test_a_run_without_the_assets_says_how_to_install_them(tmp_path):
    with pytest.raises(AssetsMissing, match=r"are not installed in .*: run `make install`"):
        installed_assets(tmp_path / "nothing-here")


def test_a_page_loading_an_address_nobody_pinned_is_refused(tmp_path):
    page = tmp_path / "site" / "index.html"
    text = '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script><script src="https://cdn.example/new.js">'
    with pytest.raises(AssetsMissing, match=r"index\.html: loads https://cdn\.example/new\.js, which .*"
                                            r"data-docs-assets\.toml does not pin"):
        offline_page(text, page, tmp_path / "site", load_docs_assets())
    pinned = ('<script src="https://code.jquery.com/jquery-3.7.1.min.js" integrity="sha384-x" '
              'crossorigin="anonymous"></script>')
    shown = offline_page(pinned, page, tmp_path / "site", load_docs_assets())
    assert shown == '<script src="static/vendor/jquery@3.7.1/dist/jquery.min.js"></script>'  # no CORS check on disk
    for outside in ("<img src='https://cdn.example/a.png'>", '<link href=//cdn.example/a.css rel="stylesheet">',
                    '<img srcset="https://cdn.example/a.png 2x">', "<style>@import 'https://cdn.example/a.css';</style>",
                    '<div style="background: url(https://cdn.example/a.png)">'):
        with pytest.raises(AssetsMissing, match=r"loads (https:)?//cdn\.example/a\.(png|css)"):
            offline_page(outside, page, tmp_path / "site", load_docs_assets())
    link = '<a href="https://greatexpectations.io">GX</a>'  # a link loads nothing until clicked: left as it is
    assert offline_page(link, page, tmp_path / "site", load_docs_assets()) == link


def test_a_pin_to_a_file_no_package_keeps_names_the_file_and_key(tmp_path):
    pins = tmp_path / "assets.toml"
    pins.write_text('[packages."jquery@3.7.1"]\nintegrity = "sha512-' + "A" * 86 + '=="\nfiles = ["dist/jquery.min.js"]\n'
                    '[urls]\n"https://code.jquery.com/jquery.js" = "jquery@3.7.1/dist/jquery.js"\n[site_images]\n')
    with pytest.raises(DocsAssetsError, match=r"assets\.toml: urls\.https://code\.jquery\.com/jquery\.js: "
                                              r"'jquery@3\.7\.1/dist/jquery\.js' is not a kept file"):
        load_docs_assets(pins)
