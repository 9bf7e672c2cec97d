"""The oldest pulumi-kubernetes pyproject.toml allows is one the component works with: installed into a fresh
virtualenv beside this checkout, the component builds its providers with every setting it relies on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO, mirror_path

PROGRAM = """
import json
import threading

import pulumi
import pulumi_kubernetes

from calico_component import Calico, CalicoArgs

LOCK = threading.Lock()  # the mocks are called from several threads: one whole line each

class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args):
        if args.typ == "pulumi:providers:kubernetes":
            settings = {k: v for k, v in args.inputs.items() if k != "kubeconfig"}
            settings["kubeconfig"] = bool(args.inputs.get("kubeconfig"))
            with LOCK:
                print(f"provider {args.name} {json.dumps(settings, sort_keys=True)}", flush=True)
        return args.name + "-id", args.inputs

    def call(self, args):
        return {}, []

pulumi.runtime.set_mocks(Mocks(), preview=True)
KUBECONFIG = ("apiVersion: v1\\nkind: Config\\nclusters:\\n- name: c\\n  cluster:\\n    server: https://127.0.0.1:6443\\n"
              "users:\\n- name: u\\n  user:\\n    token: t-0123456789\\ncontexts:\\n- name: x\\n  context:\\n"
              "    cluster: c\\n    user: u\\ncurrent-context: x\\n")

@pulumi.runtime.test
def program():
    calico = Calico("calico", CalicoArgs(calico_version="3.32.0", network_type="vcn-native", node_os="oracle-linux-8",
                                         kubeconfig=KUBECONFIG, adopt_existing=True, manifest_mirror=MIRROR,
                                         skip_cluster_checks=True))
    return pulumi.Output.all(*[c.urn for c in calico._children.values()])

program()
print("pulumi-kubernetes", pulumi_kubernetes._utilities.get_version())
"""


def _floor() -> str:
    """The lowest pulumi-kubernetes version pyproject.toml allows."""
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in dependencies if d.startswith("pulumi-kubernetes"))
    found = re.search(r">=\s*([0-9.]+)", spec)
    assert found, spec
    return found.group(1)


def test_the_oldest_pulumi_kubernetes_allowed_builds_the_providers(tmp_path: Path) -> None:
    """pulumi-kubernetes at the floor of pyproject.toml (4.29: upsert_existing_objects) in a fresh virtualenv with
    calico-oke: the component registers both its providers with server-side apply, mutable ConfigMaps and Secrets,
    upsertExistingObjects and the cluster identifier."""
    floor = _floor()
    venv, uv = tmp_path / "venv", Path(sys.prefix) / "bin" / "uv"
    python = venv / "bin" / "python"
    subprocess.run([str(uv), "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=300)
    pins = [line for line in (REPO / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#") and not line.startswith("pulumi-kubernetes")]
    subprocess.run([str(uv), "pip", "install", "-q", "--python", str(python), *pins, f"pulumi-kubernetes=={floor}"],
                   check=True, timeout=600)
    subprocess.run([str(uv), "pip", "install", "-q", "--python", str(python), "--no-deps", str(REPO)], check=True,
                   timeout=600)
    proc = subprocess.run([str(python), "-c", f"MIRROR = {str(mirror_path())!r}\n" + PROGRAM], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"pulumi-kubernetes {floor}" in proc.stdout
    providers = [line.split(" ", 2) for line in proc.stdout.splitlines() if line.startswith("provider ")]
    assert sorted(name for _, name, _ in providers) == ["calico-k8s", "calico-k8s-crds"], proc.stdout
    for _, name, text in providers:
        settings = json.loads(text)
        for key in ("enableServerSideApply", "enableConfigMapMutable", "enableSecretMutable", "upsertExistingObjects",
                    "kubeconfig"):
            assert settings.get(key) in (True, "true"), (name, key, settings)
        assert str(settings.get("clusterIdentifier")).startswith("https://127.0.0.1:6443"), (name, settings)
