"""One version everywhere a user sees one: pyproject, the installed package, the plugin's schema, the CHANGELOG, the
README's install lines, and the wheel users install."""

from __future__ import annotations

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
    for name in ("pyproject.toml", "README.md"):
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
