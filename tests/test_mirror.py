"""`mirror` fills a manifest mirror, lists the images to copy, refuses tampered files; `registry_warning` on `/calico`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from calico_component.manifest.fetch import FetchOptions
from calico_component.manifest.images import registry_warning
from calico_component.manifest.render import render
from tests.conftest import REPO, upstream_bytes, upstream_image

VERSION = "3.32.0"
REGISTRY = "iad.ocir.io/mytenancy"


def run(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CALICO_OKE_CACHE_DIR": str(cache)}
    env.pop("CALICO_OKE_MANIFEST_MIRROR", None)
    return subprocess.run([sys.executable, "-m", "calico_component", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)


def rendered_images(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every container and init container image of the rendered objects' pod templates, sorted and unique (walked
    here, not by the code under test)."""
    images: set[str] = set()
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for key in ("containers", "initContainers"):
            images.update(c["image"] for c in pod.get(key, []))
    return sorted(images)


def expected_images(mirror: Path, network_type: str, registry: str | None = None, *, typha: bool = False) -> list[str]:
    """The images of the manifest render() produces for these inputs (both files with Typha: auto switches)."""
    options = FetchOptions(mirror=str(mirror), offline=True, use_cache=False)
    images = set(rendered_images(render(VERSION, network_type, "oracle-linux-8", image_registry=registry,
                                        fetch_options=options).objects))
    if typha:
        images.update(rendered_images(render(VERSION, network_type, "oracle-linux-8", image_registry=registry, typha=True,
                                             fetch_options=options).objects))
    return sorted(images)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by its relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("network_type", "extra", "files"), [
    ("vcn-native", [], ["calico-policy-only.yaml"]),
    ("flannel-overlay", [], ["calico.yaml"]),
    ("flannel-overlay", ["--typha"], ["calico.yaml", "calico-typha.yaml"]),
])
def test_mirror_writes_the_upstream_files_and_prints_the_rendered_images(
        network_type: str, extra: list[str], files: list[str], mirror: Path, tmp_path: Path) -> None:
    """Files land byte for byte as v<VERSION>/<file>, nothing else; stdout is the rendered manifest's images, sorted and unique."""
    out = tmp_path / "mirror"
    proc = run("mirror", "--calico-version", VERSION, "--network-type", network_type, "--output", str(out),
               "--mirror", str(mirror), "--offline", *extra, cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    assert tree(out) == {f"v{VERSION}/{f}": upstream_bytes(VERSION, f) for f in files}
    assert proc.stdout.splitlines() == expected_images(mirror, network_type, typha=bool(extra))
    assert [line.split()[1] for line in proc.stderr.splitlines()] == [str(out / f"v{VERSION}" / f) for f in files]


def test_render_reads_what_mirror_wrote(mirror: Path, tmp_path: Path) -> None:
    """render --mirror reads the written tree offline with an empty cache: the layout is the one a mirror has."""
    out = tmp_path / "mirror"
    assert run("mirror", "--calico-version", VERSION, "--network-type", "vcn-native", "--output", str(out),
               "--mirror", str(mirror), cache=tmp_path / "cache").returncode == 0
    proc = run("render", "--calico-version", VERSION, "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
               "--mirror", str(out), "--offline", cache=tmp_path / "empty-cache")
    assert proc.returncode == 0, proc.stderr
    assert f"image: {upstream_image(VERSION)}" in proc.stdout


def test_with_an_image_registry_each_line_is_source_and_target(mirror: Path, tmp_path: Path) -> None:
    """--image-registry prints `SOURCE TARGET`: the upstream image and the one the manifest rendered with that registry pulls."""
    proc = run("mirror", "--calico-version", VERSION, "--network-type", "flannel-overlay", "--typha",
               "--output", str(tmp_path / "mirror"), "--mirror", str(mirror), "--image-registry", REGISTRY,
               cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    pairs = [tuple(line.split(" ")) for line in proc.stdout.splitlines()]
    assert all(len(p) == 2 for p in pairs)
    assert [source for source, _ in pairs] == expected_images(mirror, "flannel-overlay", typha=True)
    assert sorted(target for _, target in pairs) == expected_images(mirror, "flannel-overlay", REGISTRY, typha=True)
    for source, target in pairs:
        assert target == f"{REGISTRY}/{source.split('/', 1)[1]}"
    assert "warning" not in proc.stderr


def test_a_registry_ending_with_calico_is_warned_about(mirror: Path, tmp_path: Path) -> None:
    """mirror --image-registry .../calico still prints the pairs, with one `warning:` naming the doubled path."""
    proc = run("mirror", "--calico-version", VERSION, "--network-type", "vcn-native", "--output", str(tmp_path / "m"),
               "--mirror", str(mirror), "--image-registry", f"{REGISTRY}/calico", cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"{REGISTRY}/calico/calico/node:v{VERSION}" in warnings[0]
    assert all(target.startswith(f"{REGISTRY}/calico/calico/") for target in
               (line.split(" ")[1] for line in proc.stdout.splitlines()))


@pytest.mark.parametrize("tampered", ["calico.yaml", "calico-typha.yaml"])
def test_a_tampered_source_file_is_refused_and_nothing_is_written(tampered: str, mirror: Path, tmp_path: Path) -> None:
    """A source file without its pinned digest fails (exit 1, naming it) and no file is written, not even the intact one."""
    source = tmp_path / "source" / f"v{VERSION}"
    source.mkdir(parents=True)
    for file in ("calico.yaml", "calico-typha.yaml"):
        shutil.copy(mirror / f"v{VERSION}" / file, source / file)
    data = (source / tampered).read_bytes()
    (source / tampered).write_bytes(data.replace(b"calico/node", b"evil0/node", 1))
    out = tmp_path / "out"
    proc = run("mirror", "--calico-version", VERSION, "--network-type", "flannel-overlay", "--typha",
               "--output", str(out), "--mirror", str(source.parent), cache=tmp_path / "cache")
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: SHA-256 mismatch") and tampered in lines[0], proc.stderr
    assert not out.exists()


def test_registry_warning_names_the_doubled_path_and_the_value_to_use() -> None:
    """A registry ending with /calico is warned about: the doubled image path it makes, and the parent value to set instead."""
    image = "quay.io/calico/node:v3.32.0"
    for registry in ("iad.ocir.io/t/calico", "iad.ocir.io/t/calico/"):
        assert registry_warning(registry, image) == (
            f"image_registry {registry!r} ends with /calico: images become iad.ocir.io/t/calico/calico/node:v3.32.0; "
            "if you mirrored to iad.ocir.io/t/calico/node, set image_registry to iad.ocir.io/t")
    warning = registry_warning("registry.example:5000/calico", "docker.io/calico/typha:v3.25.1")
    assert warning is not None and "registry.example:5000/calico/calico/typha:v3.25.1" in warning
    assert warning.endswith("registry.example:5000/calico/typha, set image_registry to registry.example:5000")


@pytest.mark.parametrize("registry", ["iad.ocir.io/t", "iad.ocir.io/t/calico-mirror", "iad.ocir.io/mycalico",
                                      "iad.ocir.io/calico/images", "calico"])
def test_registry_warning_is_none_for_a_registry_not_ending_with_calico(registry: str) -> None:
    """Only a last path component `calico` is warned about: other names containing it, or a bare name, are not."""
    assert registry_warning(registry, "quay.io/calico/node:v3.32.0") is None
