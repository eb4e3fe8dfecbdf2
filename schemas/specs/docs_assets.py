"""The outside assets of Great Expectations' Data Docs, pinned to npm packages (schemas/reference/
data-docs-assets.toml): which release of which package each CDN address stands for, and the tarball's SHA-512,
so that an install takes exactly that release and a page can be pointed at its local copy."""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.keys import check_keys

NPM_NAME = re.compile(r"(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*")  # npm's rule for a package's name
INTEGRITY = re.compile(r"sha512-[A-Za-z0-9+/]{86}==")


class DocsAssetsError(ValueError):
    """A pin that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Package:
    name: str  # as npm spells it, scope included (@fortawesome/fontawesome-free)
    version: str
    integrity: str
    files: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def tarball(self, registry: str) -> str:
        """The registry's address of the release's tarball (the name without its scope, as npm publishes it)."""
        return f"{registry.rstrip('/')}/{self.name}/-/{self.name.rpartition('/')[2]}-{self.version}.tgz"


@dataclass(frozen=True)
class DocsAssets:
    packages: tuple[Package, ...]
    urls: dict[str, str]  # a CDN address -> "<name>@<version>/<file>", a kept file of a package
    site_images: dict[str, str]  # a GX logo address -> a file of the site GX writes (static/...)


def package_of(key: str, raw: dict) -> Package:
    where = f"packages.{key}"
    check_keys(raw, where, ("integrity", "files"), ("integrity", "files"), DocsAssetsError)
    name, _, version = key.rpartition("@")
    if not NPM_NAME.fullmatch(name) or not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise DocsAssetsError(f"{where}: not <name>@<version> with a full version such as 1.2.3")
    if not isinstance(raw["integrity"], str) or not INTEGRITY.fullmatch(raw["integrity"]):
        raise DocsAssetsError(f"{where}.integrity: not the registry's \"sha512-<base64>\"")
    files = raw["files"]
    if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
        raise DocsAssetsError(f"{where}.files: a list of paths inside the package")
    if any(f.startswith("/") or ".." in f.split("/") for f in files):
        raise DocsAssetsError(f"{where}.files: paths stay inside the package (no leading / or ..)")
    return Package(name, version, raw["integrity"], tuple(files))


def parse_docs_assets(raw: dict) -> DocsAssets:
    check_keys(raw, "", ("packages", "urls", "site_images"), ("packages", "urls", "site_images"), DocsAssetsError)
    packages = tuple(package_of(key, spec) for key, spec in raw["packages"].items())
    kept = {f"{p.key}/{f}" for p in packages for f in p.files}
    for address, target in raw["urls"].items():
        if target not in kept:
            raise DocsAssetsError(f"urls.{address}: {target!r} is not a kept file of a package above")
    for address, target in raw["site_images"].items():
        if not isinstance(target, str) or not target.startswith("static/") or ".." in target.split("/"):
            raise DocsAssetsError(f"site_images.{address}: a file under the site's static/ folder")
    return DocsAssets(packages, dict(raw["urls"]), dict(raw["site_images"]))
