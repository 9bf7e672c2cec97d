"""Shared fixtures: where the upstream manifests come from, and a real HTTPS server on 127.0.0.1."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from calico_component.manifest.fetch import FetchOptions, fetch_manifest  # noqa: E402
from calico_component.manifest.releases import MANIFEST_FILES, RELEASES, ManifestRef, manifest_url  # noqa: E402
from tests.fake_oke import FakeOke, write_oci_config  # noqa: E402
from tests.https_server import ManifestServer  # noqa: E402


def _local_mirror() -> Path | None:
    env = os.environ.get("CALICO_OKE_TEST_MIRROR")
    if env:
        p = Path(env)
        if not p.is_dir():
            raise RuntimeError(f"CALICO_OKE_TEST_MIRROR={env} is not a directory laid out as v<VERSION>/<file>")
        return p
    shared = REPO.parent / "shared" / "calico-manifests"
    return shared if shared.is_dir() else None


@functools.lru_cache(maxsize=1)
def mirror_path() -> Path:
    """A directory laid out as v<VERSION>/<file> with every pinned upstream file.

    Taken from $CALICO_OKE_TEST_MIRROR or ../shared/calico-manifests; without either it
    is downloaded once from upstream (each file verified against its pinned digest) into
    the user cache, and laid out in a temporary directory.
    """
    local = _local_mirror()
    if local is not None:
        return local
    import atexit
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="calico-oke-test-mirror-"))
    atexit.register(shutil.rmtree, root, True)
    for release in RELEASES.values():
        for file in MANIFEST_FILES:
            ref = ManifestRef(release.version, file, manifest_url(release.version, file), release.sha256(file), True)
            data = fetch_manifest(ref, FetchOptions(retries=3, timeout=60)).data
            target = root / f"v{release.version}" / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return root


@functools.cache
def upstream_bytes(version: str, file: str) -> bytes:
    return (mirror_path() / f"v{version}" / file).read_bytes()


def upstream_objects(version: str, file: str) -> list[dict[str, Any]]:
    """The upstream file parsed independently of the code under test (a fresh copy each call)."""
    return [d for d in yaml.load_all(upstream_bytes(version, file), Loader=yaml.CSafeLoader) if d]


def upstream_image(version: str, name: str = "calico-node") -> str:
    """The image upstream's file for ``version`` gives a workload's first container (``quay.io/calico/node:v3.32.0``),
    read from the upstream file itself, not from a render."""
    return str(next(o["spec"]["template"]["spec"]["containers"][0]["image"]
                    for o in upstream_objects(version, "calico-policy-only.yaml")
                    if o["kind"] in ("DaemonSet", "Deployment") and o["metadata"]["name"] == name))


def kubeconfig_text(token: str = "test-token-0123456789abcdef", server: str = "https://127.0.0.1:6443") -> str:
    """A well-formed kubeconfig with a bearer token, as users pass them (contents, not a path)."""
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: c\n  cluster:\n    server: {server}\n"
        f"users:\n- name: u\n  user:\n    token: {token}\n"
        "contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\n"
        "current-context: ctx\n"
    )


OwnershipCall = tuple[str, bool, int]  # (stack identity, adopt_existing, how many objects were to be checked)


@pytest.fixture()
def ownership_checks(monkeypatch: pytest.MonkeyPatch) -> list[OwnershipCall]:
    """Unit tests have no cluster: the component's checks of the cluster (ownership, policy a release no longer
    enforces) record what they were asked instead of reading one."""
    from calico_component.cluster import networks, ownership, retired

    calls: list[OwnershipCall] = []

    def record(kubeconfig: str, objects: Any, me: str, adopt_existing: bool) -> None:
        calls.append((me, adopt_existing, len(objects)))

    def record_retired(kubeconfig: str, calico_version: str) -> None:
        calls.append((f"retired-policy check for {calico_version}", False, 0))

    def record_networks(kubeconfig: str) -> None:
        calls.append(("network-provider check", False, 0))

    monkeypatch.setattr(ownership, "check_cluster", record)
    monkeypatch.setattr(networks, "check_cluster", record_networks)
    monkeypatch.setattr(retired, "check_cluster", record_retired)
    return calls


#: The OKE cluster the OCI stand-in serves.
OKE_CLUSTER = "ocid1.cluster.oc1.iad.aaaaaaaatest"


@pytest.fixture()
def oke(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOke]:
    """The OCI stand-in (tests/fake_oke.py) for every OCI call the component makes: the component's OCI settings
    default to its endpoint (CALICO_OKE_OCI_ENDPOINT) and an OCI config with a fresh signing key (OCI_CONFIG_FILE)."""
    from calico_component.component.target import OCI_ENDPOINT_ENV

    with FakeOke(cluster_id=OKE_CLUSTER, kubernetes_endpoint="127.0.0.1:6443") as server:  # kubeconfig_text()'s server
        monkeypatch.setenv(OCI_ENDPOINT_ENV, server.endpoint)
        monkeypatch.setenv("OCI_CONFIG_FILE", str(write_oci_config(tmp_path_factory.mktemp("oci"))))
        monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))  # no ~/.oci/config of this machine's
        yield server


@pytest.fixture(scope="session")
def mirror() -> Path:
    return mirror_path()


@pytest.fixture()
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture()
def https_server(mirror: Path) -> Iterator[ManifestServer]:
    with ManifestServer(mirror) as server:
        yield server
