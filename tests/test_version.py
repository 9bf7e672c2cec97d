"""One version everywhere a user sees one: pyproject, the installed package, the plugin's schema, the CHANGELOG, the
README's install lines, and the wheel users install, with its license and project links."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

from calico_component.provider import schema as package
from tests.conftest import REPO


def _pyproject_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def _changelog_versions() -> list[str]:
    """Release headings of CHANGELOG.md, newest first: `## [X.Y.Z] - <date or Unreleased>`."""
    return re.findall(r"^## \[(\d+\.\d+\.\d+)\] - ", (REPO / "CHANGELOG.md").read_text(), flags=re.M)


def test_package_plugin_schema_and_changelog_agree() -> None:
    """The installed distribution, the schema the plugin serves (package.schema) and the newest CHANGELOG entry all
    carry pyproject's version (a stale editable install fails here too)."""
    version = _pyproject_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert metadata.version("calico-oke") == version
    assert package.schema()["version"] == version
    assert _changelog_versions()[0] == version


def test_changelog_lists_each_version_once_newest_first() -> None:
    """Every release heading appears once, in descending order, so `[0]` above is the newest."""
    versions = _changelog_versions()
    keys = [tuple(int(p) for p in v.split(".")) for v in versions]
    assert versions and keys == sorted(set(keys), reverse=True)


def test_readme_install_lines_pin_this_versions_tag() -> None:
    """The README's pip and `pulumi package add` lines name the tag `v<version>` users pin, and the wheel's file name."""
    version = _pyproject_version()
    readme = (REPO / "README.md").read_text()
    assert f"calico-oke.git@v{version}" in readme
    assert f"calico-oke.git/plugin@v{version}" in readme
    assert set(re.findall(r"calico_oke-([\w.]+)-py3-none-any\.whl", readme)) == {version}
    tags = set(re.findall(r"calico-oke\.git(?:/plugin)?@(v[\w.]+)", readme))
    assert tags == {f"v{version}"}, f"README names other tags: {tags}"


def test_wheel_ships_every_module_typed_and_versioned(tmp_path: Path) -> None:
    """The wheel of the README's install line holds every module of the package, py.typed, and the version."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is needed to build the wheel: pip install uv (requirements-dev.txt)"
    # Built from a copy: setuptools leaves build/ beside the sources, and a stale build/lib would leak into wheels.
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        source.mkdir(exist_ok=True)
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "calico_component", source / "calico_component",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([uv, "build", "-q", "--wheel", "-o", str(tmp_path), str(source)], check=True, timeout=300,
                   capture_output=True)
    wheel = tmp_path / f"calico_oke-{_pyproject_version()}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {str(p.relative_to(REPO)) for p in (REPO / "calico_component").rglob("*.py")}
    assert sources and sources <= names, f"missing from the wheel: {sorted(sources - names)}"
    assert "calico_component/py.typed" in names
    meta = zipfile.ZipFile(wheel).read(f"calico_oke-{_pyproject_version()}.dist-info/METADATA").decode()
    assert f"\nVersion: {_pyproject_version()}\n" in meta
    # The license: the file itself in the wheel's metadata folder, named in METADATA with its SPDX expression.
    dist_info = f"calico_oke-{_pyproject_version()}.dist-info/"
    licenses = [n for n in names if n.startswith(dist_info) and n.rpartition("/")[2] == "LICENSE"]
    assert len(licenses) == 1, f"no single LICENSE in the wheel's metadata: {sorted(n for n in names if dist_info in n)}"
    assert zipfile.ZipFile(wheel).read(licenses[0]) == (REPO / "LICENSE").read_bytes()
    assert "\nLicense-Expression: Apache-2.0\n" in meta and "\nLicense-File: LICENSE\n" in meta
    # The project's links, as pip show and package indexes list them.
    urls = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]
    assert set(urls) == {"Homepage", "Documentation", "Source", "Issues", "Changelog"}
    for label, url in urls.items():
        assert f"\nProject-URL: {label}, {url}\n" in meta, label


#: SHA-256 of the Apache License 2.0 as the ASF publishes it (https://www.apache.org/licenses/LICENSE-2.0.txt).
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_license_is_the_apache_2_0_text_pyproject_declares() -> None:
    """LICENSE is the unmodified Apache License 2.0 text, the license pyproject declares and ships in the wheel."""
    text = (REPO / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == APACHE_2_0_SHA256
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]


def test_project_urls_point_at_the_repository_the_readme_names() -> None:
    """Every project URL is https on the repository the README's install lines name (github.com/<org>/calico-oke)."""
    readme = (REPO / "README.md").read_text()
    repository = re.search(r"github\.com/[^/\s]+/calico-oke", readme)
    assert repository, "the README names no github.com/<org>/calico-oke repository"
    for label, url in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"].items():
        assert url == f"https://{repository[0]}" or url.startswith(f"https://{repository[0]}/"), (label, url)
