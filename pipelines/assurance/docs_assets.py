"""Data Docs that open offline with GX's own look: the styles, scripts and fonts its pages load from CDNs are
installed from the npm registry's releases pinned in schemas/reference/data-docs-assets.toml (each tarball checked
against its SHA-512 before a file of it is kept), copied into each site, and the pages pointed at those copies.

Installing is a step of `make install` (`python -m pipelines.assurance.docs_assets`), never of a run: a run on a
council's closed network reads only what is on disk, and says so in one line when the assets are not there.
NPM_CONFIG_REGISTRY points the install at a mirror of the registry.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import sys
import tarfile
import urllib.request
from pathlib import Path

from outputs.files import copy_atomic, write_bytes_atomic, write_text_atomic
from schemas import catalog
from schemas.config import load_docs_assets
from schemas.specs.docs_assets import DocsAssets, Package

DEFAULT_REGISTRY = "https://registry.npmjs.org"
# What makes a browser fetch from outside as the page opens (a link to an outside page fetches nothing until clicked)
OUTSIDE_LOADS = re.compile(r"""<script[^>]*\bsrc="(https?://[^"]+)"|<link[^>]*\bhref="(https?://[^"]+)"|"""
                           r"""<img[^>]*\bsrc="(https?://[^"]+)"|url\(['"]?(https?://[^'")]+)""", re.I)
# A page's own reference to the site's static folder; GX counts one level too few on a validation page, whose
# favicon then points outside the site
STATIC = re.compile(r'((?:src|href)=")(?:\./|(?:\.\./)+)static/')
# GX's newsletter sign-up: an advert with tracking parameters, not part of a council's validation record
FOOTER = re.compile(r"<footer>.*?</footer>", re.S)


class AssetsMissing(RuntimeError):
    """The pinned assets are not installed, or a GX page loads something they do not cover."""


def registry() -> str:
    return os.environ.get("NPM_CONFIG_REGISTRY") or os.environ.get("npm_config_registry") or DEFAULT_REGISTRY


def installed_file(package: Package, file: str, folder: Path = catalog.INSTALLED_DOCS_ASSETS) -> Path:
    return folder.joinpath(package.key, file)


def missing_packages(assets: DocsAssets, folder: Path = catalog.INSTALLED_DOCS_ASSETS) -> list[Package]:
    return [p for p in assets.packages if not all(installed_file(p, f, folder).is_file() for f in p.files)]


def verified_tarball(package: Package, source: str) -> bytes:
    """The release's tarball, refused unless its SHA-512 is the pinned one."""
    address = package.tarball(source)
    try:
        with urllib.request.urlopen(address, timeout=120) as response:
            data = response.read()
    except OSError as error:
        raise AssetsMissing(f"{address}: cannot download ({error})") from None
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != package.integrity:
        raise AssetsMissing(f"{address}: its SHA-512 is not the one pinned in {catalog.DATA_DOCS_ASSETS} "
                            f"(packages.{package.key}.integrity)")
    return data


def install(assets: DocsAssets, folder: Path = catalog.INSTALLED_DOCS_ASSETS, source: str | None = None) -> list[str]:
    """Each package not yet complete in folder downloaded, checked and its kept files written; the keys installed."""
    done = []
    for package in missing_packages(assets, folder):
        with tarfile.open(fileobj=io.BytesIO(verified_tarball(package, source or registry())), mode="r:gz") as tar:
            for file in package.files:
                member = tar.extractfile(f"package/{file}")
                if member is None:
                    raise AssetsMissing(f"{package.key}: has no file {file} (packages.{package.key}.files)")
                write_bytes_atomic(installed_file(package, file, folder), member.read())
        done.append(package.key)
    return done


def relative(target: Path, page: Path) -> str:
    return Path(os.path.relpath(target, page.parent)).as_posix()


def offline_page(text: str, page: Path, site: Path, assets: DocsAssets) -> str:
    """A page (or stylesheet) pointed at the site's copies of its assets and GX's own logo; anything still loaded
    from outside is an error naming the file and the address."""
    vendor = catalog.docs_vendor(site)
    for address, target in assets.urls.items():
        text = text.replace(f'"{address}"', f'"{relative(vendor / target, page)}"')
    for address, target in assets.site_images.items():
        text = re.sub(re.escape(address) + r"(\?[^\"')\s]*)?", relative(site / target, page), text)
    text = STATIC.sub(lambda match: f"{match[1]}{relative(catalog.docs_static(site), page)}/", text)
    text = FOOTER.sub("", text)
    outside = OUTSIDE_LOADS.search(text)
    if outside:
        raise AssetsMissing(f"{page}: loads {next(g for g in outside.groups() if g)}, which "
                            f"{catalog.DATA_DOCS_ASSETS} does not pin")
    return text


def installed_assets(folder: Path = catalog.INSTALLED_DOCS_ASSETS) -> DocsAssets:
    """The pins, once every pinned file is on disk: asked before the suites run, so a missing install costs no wait."""
    assets = load_docs_assets()
    missing = missing_packages(assets, folder)
    if missing:
        raise AssetsMissing(f"the Data Docs assets ({', '.join(p.key for p in missing)}) are not installed in {folder}: "
                            "run `make install` (it runs `python -m pipelines.assurance.docs_assets`)")
    return assets


def offline_site(site: Path, assets: DocsAssets, folder: Path = catalog.INSTALLED_DOCS_ASSETS) -> None:
    """Every page and stylesheet of a built site made to load only the site's own files, the pinned assets copied
    in beside them."""
    for package in assets.packages:
        for file in package.files:
            copy_atomic(installed_file(package, file, folder), catalog.docs_vendor(site) / package.key / file)
    for page in sorted([*site.rglob("*.html"), *site.rglob("*.css")]):  # GX's own stylesheet loads its logo too
        text = page.read_text(encoding="utf-8")
        shown = offline_page(text, page, site, assets)
        if shown != text:
            write_text_atomic(page, shown)


def main() -> int:
    assets = load_docs_assets()
    try:
        done = install(assets)
    except AssetsMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Data Docs assets: {len(done)} package(s) installed, {len(assets.packages) - len(done)} already there, "
          f"in {catalog.INSTALLED_DOCS_ASSETS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
