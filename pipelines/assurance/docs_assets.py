"""Data Docs that open offline with GX's own look: the styles, scripts and fonts its pages load from CDNs are
installed from the npm registry's releases pinned in schemas/reference/data-docs-assets.toml (each tarball checked
against its SHA-512 before a file of it is kept), copied into each site, and the pages pointed at those copies.

Installing is a step of `make install` (`python -m pipelines.assurance.docs_assets`), never of a run: a run on a
council's closed network reads only what is on disk, and says so in one line when the assets are not there.
NPM_CONFIG_REGISTRY points the install at a mirror of the registry (a proxy is taken from HTTPS_PROXY).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import os
import re
import sys
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

from outputs.files import copy_atomic, write_bytes_atomic, write_text_atomic
from schemas import catalog
from schemas.config import load_docs_assets
from schemas.specs.docs_assets import DocsAssets, Package

DEFAULT_REGISTRY = "https://registry.npmjs.org"
TAG = re.compile(r"<([a-zA-Z][\w-]*)\b([^>]*)>")
# An attribute through which a tag loads something as the page opens (a link to an outside page, <a href>, fetches
# nothing until clicked); an address outside the site is absolute or protocol-relative
LOADING_ATTRIBUTE = re.compile(r"""(?<![\w-])(?:src|href|srcset|data|poster|background)\s*=\s*["']?\s*"""
                               r"""((?:https?:)?//[^"'\s>]+)""", re.I)
CSS_LOAD = re.compile(r"""(?:url\(\s*["']?|@import\s+(?:url\(\s*)?["']?)\s*((?:https?:)?//[^"')\s;]+)""", re.I)
# Subresource-integrity and CORS attributes: a file page has an opaque origin, so Chromium blocks a script marked
# crossorigin from its own disk; the pinned SHA-512 has already vouched for the copy
CHECKED_FETCH = re.compile(r"""\s(?:integrity|crossorigin)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+))?""", re.I)
# A page's own reference to the site's static folder; GX counts one level too few on a validation page, whose
# favicon then points outside the site
STATIC = re.compile(r"""((?<![\w-])(?:src|href)\s*=\s*["'])(?:\./|(?:\.\./)+)static/""", re.I)
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


def shown_address(address: str) -> str:
    """An address as an error may show it: without a user name or token a mirror's address may carry."""
    parts = urllib.parse.urlsplit(address)
    return parts._replace(netloc=parts.hostname or "").geturl() if "@" in parts.netloc else address


def verified_tarball(package: Package, source: str) -> bytes:
    """The release's tarball, refused unless its SHA-512 is the pinned one."""
    address = package.tarball(source)
    try:
        with urllib.request.urlopen(address, timeout=120) as response:
            data = response.read()
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise AssetsMissing(f"{shown_address(address)}: cannot download ({type(error).__name__}); set "
                            "NPM_CONFIG_REGISTRY to a mirror of the npm registry this machine reaches") from None
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != package.integrity:
        raise AssetsMissing(f"{shown_address(address)}: its SHA-512 is not the one pinned in {catalog.DATA_DOCS_ASSETS} "
                            f"(packages.{package.key}.integrity)")
    return data


def install(assets: DocsAssets, folder: Path = catalog.INSTALLED_DOCS_ASSETS, source: str | None = None) -> list[str]:
    """Each package not yet complete in folder downloaded, checked and its kept files written; the keys installed."""
    done = []
    for package in missing_packages(assets, folder):
        with tarfile.open(fileobj=io.BytesIO(verified_tarball(package, source or registry())), mode="r:gz") as tar:
            for file in package.files:
                try:
                    member = tar.extractfile(f"package/{file}")
                except KeyError:
                    member = None
                if member is None:
                    raise AssetsMissing(f"{package.key}: has no file {file} (packages.{package.key}.files in "
                                        f"{catalog.DATA_DOCS_ASSETS})")
                write_bytes_atomic(installed_file(package, file, folder), member.read())
        done.append(package.key)
    return done


def relative(target: Path, page: Path) -> str:
    return Path(os.path.relpath(target, page.parent)).as_posix()


def offline_page(text: str, page: Path, site: Path, assets: DocsAssets) -> str:
    """A page (or stylesheet) pointed at the site's copies of its assets and GX's own logo; anything still loaded
    from outside is an error naming the file and the address."""
    vendor = catalog.docs_vendor(site)
    local = {address: relative(vendor / target, page) for address, target in assets.urls.items()}

    def pointed(tag: re.Match) -> str:
        attributes = tag[2]
        for address, copy in local.items():
            quoted = re.compile(r"""(["'])""" + re.escape(address) + r"\1")
            if quoted.search(attributes):
                attributes = CHECKED_FETCH.sub("", quoted.sub(lambda q: f"{q[1]}{copy}{q[1]}", attributes))
        return f"<{tag[1]}{attributes}>"

    text = TAG.sub(pointed, text)
    for address, target in assets.site_images.items():
        text = re.sub(re.escape(address) + r"(\?[^\"')\s]*)?", relative(site / target, page), text)
    text = STATIC.sub(lambda match: f"{match[1]}{relative(catalog.docs_static(site), page)}/", text)
    text = FOOTER.sub("", text)
    outside = outside_load(text)
    if outside:
        raise AssetsMissing(f"{page}: loads {outside}, which {catalog.DATA_DOCS_ASSETS} does not pin")
    return text


def outside_load(text: str) -> str | None:
    """The first address outside the site that the page or stylesheet loads as it opens, if any."""
    for tag in TAG.finditer(text):
        found = LOADING_ATTRIBUTE.search(tag[2]) if tag[1].lower() != "a" else None
        if found:
            return found[1]
    found = CSS_LOAD.search(text)
    return found[1] if found else None


def installed_assets(folder: Path = catalog.INSTALLED_DOCS_ASSETS) -> DocsAssets:
    """The pins, once every pinned file is on disk: asked before a validation reads its exports, so a missing
    install is answered at once."""
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
    try:
        assets = load_docs_assets()
        done = install(assets)
    except (AssetsMissing, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Data Docs assets: {len(done)} package(s) installed, {len(assets.packages) - len(done)} already there, "
          f"in {catalog.INSTALLED_DOCS_ASSETS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
