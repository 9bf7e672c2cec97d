"""calico-oke as a Pulumi package on the real engine: get-schema, and YAML, TypeScript and Go programs installing Calico."""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from calico_component import CalicoArgs
from calico_component.component.target import OCI_ENDPOINT_ENV
from calico_component.local.nodes import flannel_present, run_fake_flannel
from calico_component.local.workspace import PulumiCli, engine_env, user_environ
from calico_component.steps.types import STEP_TYPES
from tests.conftest import REPO, upstream_objects
from tests.e2e.cluster import assert_installed, calico_node, exists
from tests.e2e.conftest import mirror
from tests.e2e.engine import PREVIEW_REPLACEMENT, plaintext_leaks
from tests.e2e.readme import YAML_FIRST_CONTACT, readme_commands
from tests.fake_oke import FakeOke, write_oci_config

TOKEN = "calico-oke:index:Calico"
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")


@dataclass(frozen=True)
class Package:
    """A copy of the checkout's plugin (with its virtualenv made by the CLI), the OCI stand-in, and the environment of
    a user's machine to use it in."""

    plugin: Path
    env: dict[str, str]
    pulumi: Path
    oke: FakeOke


def _provider_plugin_version(module: str) -> str:
    """The plugin version a Pulumi Python SDK asks for (what `package add` would download)."""
    return str(json.loads(importlib.resources.files(module).joinpath("pulumi-plugin.json").read_text())["version"])


def plain_python(root: Path) -> Path:
    """A directory whose ``python3`` is a bare interpreter: nothing installed, not even pip (a user's system Python,
    as far as Pulumi can tell); proved by the test that uses it."""
    venv = root / "plain-python"
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True, timeout=120)
    return venv / "bin"


@pytest.fixture(scope="module")
def package(tool_paths: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Package]:
    """The plugin folder of a fresh clone of the checkout (no plugin/venv, no .venv: what a user clones), used from an
    environment like a user's: ``python3`` a plain interpreter, no PULUMI_PYTHON_CMD, PYTHONPATH or VIRTUAL_ENV, and
    nothing of the development virtualenv on PATH (``user_environ``). Every OCI call goes to the OCI stand-in."""
    root = tmp_path_factory.mktemp("package")
    checkout = root / "calico-oke"
    subprocess.run(["git", "clone", "-q", str(REPO), str(checkout)], check=True, capture_output=True, timeout=120)
    with FakeOke() as oke:
        env = {**engine_env(root, tool_paths), "CALICO_OKE_MANIFEST_MIRROR": mirror(), OCI_ENDPOINT_ENV: oke.endpoint,
               "OCI_CONFIG_FILE": str(write_oci_config(root))}
        env["PATH"] = f"{plain_python(root)}{os.pathsep}{env['PATH']}"
        env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "false"  # package add installs what it needs (registered)
        cli = PulumiCli(tool_paths["pulumi"], root, env)
        # In this test's own Pulumi home only: the kubernetes plugin the package's Python environment declares, as the
        # local file (no registry here serves it; a user's `package add` downloads it by itself).
        cli("plugin", "install", "resource", "kubernetes", _provider_plugin_version("pulumi_kubernetes"),
            "--file", str(tool_paths["pulumi-resource-kubernetes"]))
        yield Package(checkout / "plugin", env, tool_paths["pulumi"], oke)


@pytest.fixture(scope="module")
def served_schema(package: Package) -> dict[str, Any]:
    """What `pulumi package get-schema <plugin folder>` prints (it also creates the plugin's virtualenv), run from a
    folder of the user's (not the clone, whose own Pulumi.yaml is the stack program's)."""
    cli = PulumiCli(package.pulumi, package.plugin.parent.parent, package.env, timeout=900)
    return dict(json.loads(cli("package", "get-schema", str(package.plugin)).stdout))


pytestmark = pytest.mark.usefixtures("three_nodes")


def program(package: Package, example: str, dest: Path) -> PulumiCli:
    """A copy of ``examples/<example>`` whose `packages:` entry (YAML) points at the test's plugin folder, with a state
    backend of its own (the Pulumi home, with its registered plugins, is the package's)."""
    shutil.copytree(REPO / "examples" / example, dest, ignore=shutil.ignore_patterns("node_modules", "sdks", "bin"))
    pulumi_yaml = dest / "Pulumi.yaml"
    pulumi_yaml.write_text(pulumi_yaml.read_text().replace("../../plugin", str(package.plugin)))
    (dest.parent / "state").mkdir()
    env = {**package.env, "PULUMI_BACKEND_URL": f"file://{dest.parent / 'state'}"}
    return PulumiCli(package.pulumi, dest, env, timeout=900)


def components(cli: PulumiCli) -> list[str]:
    state = json.loads(cli("stack", "export").stdout)
    return [r["urn"] for r in state["deployment"]["resources"] if r["type"] == TOKEN]


def uids(k8s: Any) -> dict[str, str]:
    apps, core = client.AppsV1Api(k8s), client.CoreV1Api(k8s)
    ds: Any = apps.read_namespaced_daemon_set("calico-node", "kube-system")
    cm: Any = core.read_namespaced_config_map("calico-config", "kube-system")
    return {"calico-node": ds.metadata.uid, "calico-config": cm.metadata.uid}


def _flannel_cluster(package: Package, node_cluster: Any, node_k8s: Any) -> None:
    """kube-flannel-ds on the 3 nodes, and OKE describing the cluster (its endpoint, a Flannel add-on enabled)."""
    import yaml

    run_fake_flannel(node_k8s, 3, timeout=30)
    server = str(yaml.safe_load(node_cluster.kubeconfig)["clusters"][0]["cluster"]["server"])
    package.oke.kubernetes_endpoint = server.split("://", 1)[1]
    package.oke.addons["Flannel"] = "ACTIVE"


def _flannel_removed(package: Package, node_k8s: Any, before: int) -> None:
    """The add-on was disabled through OCI (one more DELETE) and kube-flannel-ds is gone."""
    deletes = package.oke.requests[f"DELETE /20180222/clusters/{package.oke.cluster_id}/addons/Flannel"]
    assert deletes == before + 1 and not flannel_present(node_k8s)


def _deletes(package: Package) -> int:
    return package.oke.requests[f"DELETE /20180222/clusters/{package.oke.cluster_id}/addons/Flannel"]


def test_yaml_program_from_a_fresh_clone_on_a_users_machine(
        package: Package, node_k8s: Any, node_cluster: Any, tmp_path: Path) -> None:
    """examples/yaml-vcn-native from a clone without plugin/venv, with a plain `python3` (which cannot import pulumi:
    the dynamic-provider host of calico-oke 0.1.0 failed there): the README's one first command, then 3.31.5 installed
    and awaited (one Calico component), upgraded to 3.32.0 with no replacement and the same UIDs, destroyed; the
    kubeconfig's token is in no backend file. Then, as a flannel-overlay program with clusterId, flannel is removed
    through the OKE stand-in and the cluster. (First in this file: the other tests find the virtualenv made here.)"""
    assert not (package.plugin / "venv").exists(), "the clone already has plugin/venv: this test would prove nothing"
    bare = subprocess.run(["python3", "-c", "import pulumi"], capture_output=True, text=True,
                          env=user_environ(package.env))
    assert bare.returncode != 0 and "No module named 'pulumi'" in bare.stderr, "python3 is not a plain interpreter"
    cli = program(package, "yaml-vcn-native", tmp_path / "yaml")
    for line in readme_commands(YAML_FIRST_CONTACT):
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=cli.cwd, capture_output=True, text=True,
                              timeout=900, env=user_environ({**cli.env, "CALICO_OKE_PLUGIN": str(package.plugin)}))
        assert proc.returncode == 0, f"`{line}` exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}"
    assert (package.plugin / "venv" / "bin" / "python").exists()
    cli("stack", "init", "yaml")
    cli("config", "set", "calicoVersion", "3.31.5")  # the example's default is the newest release, 3.32.0
    cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
    cli("preview")
    up = cli("up", "--yes").stdout
    assert_installed(node_k8s, "3.31.5")
    assert "calico-node: 3 of 3 pods updated and ready" in up, up[-3000:]  # the provider's rollout wait, reported
    assert len(components(cli)) == 1, "one install registers one Calico component"
    before = uids(node_k8s)

    cli("config", "set", "calicoVersion", "3.32.0")
    diff = cli("preview", "--diff").stdout
    assert not PREVIEW_REPLACEMENT.search(diff) and "to update" in diff, diff[-3000:]
    cli("up", "--yes")
    assert_installed(node_k8s, "3.32.0")
    assert uids(node_k8s) == before
    assert json.loads(cli("stack", "output", "--json").stdout)["calicoVersion"] == "3.32.0"

    cli("destroy", "--yes")
    assert not exists(lambda: calico_node(node_k8s))
    assert plaintext_leaks(cli.env, node_cluster.token) == []
    assert node_cluster.token not in cli.output()

    _flannel_cluster(package, node_cluster, node_k8s)
    deletes = _deletes(package)
    pulumi_yaml = cli.cwd / "Pulumi.yaml"
    pulumi_yaml.write_text(pulumi_yaml.read_text().replace(
        "networkType: vcn-native", f"networkType: flannel-overlay\n      clusterId: {package.oke.cluster_id}"))
    assert "calico-flannel-daemonset" in cli("preview", "--diff").stdout
    cli("up", "--yes")
    _flannel_removed(package, node_k8s, deletes)
    assert_installed(node_k8s, "3.32.0")
    cli("destroy", "--yes")

def test_get_schema_lists_every_input_in_camelcase(served_schema: dict[str, Any]) -> None:
    """`pulumi package get-schema <plugin folder>` serves calico-oke:index:Calico with every CalicoArgs field, under the
    version of the checkout's pyproject.toml (what its CHANGELOG and tags name)."""
    assert served_schema["name"] == "calico-oke"
    assert sorted(served_schema["resources"]) == sorted([TOKEN, *(s.token for s in STEP_TYPES)])
    assert served_schema["version"] == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    resource = served_schema["resources"][TOKEN]
    camel = {re.sub(r"_([a-z0-9])", lambda m: m[1].upper(), f.name) for f in dataclasses.fields(CalicoArgs)}
    assert set(resource["inputProperties"]) == camel
    assert resource["inputProperties"]["kubeconfig"]["secret"] is True
    assert resource["requiredInputs"] == ["calicoVersion"] and resource["isComponent"] is True
    wait = served_schema["resources"]["calico-oke:index:RolloutAwaited"]
    assert wait["inputProperties"]["kubeconfig"]["secret"] is True and wait["inputProperties"]["deadlineSeconds"][
        "type"] == "number"


@pytest.mark.parametrize(("edit", "expected"), [
    (("networkType: vcn-native", "networkType: calico-overlay"),
     "network type 'calico-overlay' is not supported; expected one of flannel-overlay, vcn-native"),
    (("      calicoVersion: ${calicoVersion}\n", ""), "Missing required property 'calicoVersion'"),
], ids=["bad-network-type", "missing-calico-version"])
def test_yaml_bad_input_fails_preview_with_the_users_error(package: Package, served_schema: dict[str, Any],
                                                           node_cluster: Any, tmp_path: Path,
                                                           edit: tuple[str, str], expected: str) -> None:
    """A bad networkType or a missing calicoVersion fails preview with one message naming it, and no traceback."""
    cli = program(package, "yaml-vcn-native", tmp_path / "bad")
    pulumi_yaml = cli.cwd / "Pulumi.yaml"
    assert edit[0] in pulumi_yaml.read_text()
    pulumi_yaml.write_text(pulumi_yaml.read_text().replace(*edit))
    cli("stack", "init", "bad")
    cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
    proc = cli("preview", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert expected in output, output[-3000:]
    assert not TRACEBACK.search(output), output[-3000:]


def _flannel_program(package: Package, cli: PulumiCli, node_cluster: Any, node_k8s: Any, stack: str) -> None:
    """The example as a flannel-overlay program with clusterId: up removes flannel (OKE add-on and DaemonSet),
    installs Calico and waits for calico-node (the provider's wait reports it); destroy."""
    _flannel_cluster(package, node_cluster, node_k8s)
    deletes = _deletes(package)
    cli("stack", "init", stack)
    cli("config", "set", "networkType", "flannel-overlay")
    cli("config", "set", "clusterId", package.oke.cluster_id)
    cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
    preview = cli("preview", "--diff").stdout
    assert TOKEN in preview and "calico-flannel-addon" in preview and "calico-calico-node-rollout" in preview
    up = cli("up", "--yes").stdout
    _flannel_removed(package, node_k8s, deletes)
    assert_installed(node_k8s, "3.32.0")
    assert "calico-node: 3 of 3 pods updated and ready" in up, up[-3000:]
    assert json.loads(cli("stack", "output", "--json").stdout)["objectCount"] == len(upstream_objects(
        "3.32.0", "calico.yaml"))
    cli("destroy", "--yes")


def test_typescript_program_with_a_generated_sdk(package: Package, served_schema: dict[str, Any], node_k8s: Any,
                                                 node_cluster: Any, tmp_path: Path) -> None:
    """examples/typescript-vcn-native on a user's machine: `pulumi package add` generates @pulumi/calico-oke; as a
    flannel-overlay program it removes flannel through OKE and the cluster, installs Calico awaited, destroys."""
    cli = program(package, "typescript-vcn-native", tmp_path / "ts")
    subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=cli.cwd, check=True, capture_output=True,
                   timeout=600)
    cli("package", "add", str(package.plugin))
    assert (cli.cwd / "sdks" / "calico-oke" / "calico.ts").is_file()
    assert json.loads((cli.cwd / "package.json").read_text())["dependencies"]["@pulumi/calico-oke"]
    _flannel_program(package, cli, node_cluster, node_k8s, "ts")


def test_go_program_with_a_generated_sdk(package: Package, served_schema: dict[str, Any], node_k8s: Any,
                                         node_cluster: Any, tmp_path: Path) -> None:
    """examples/go-vcn-native on a user's machine: `pulumi package add` generates the Go SDK; the Go host builds the
    program; as a flannel-overlay program it removes flannel, installs Calico awaited, destroys."""
    cli = program(package, "go-vcn-native", tmp_path / "go")
    cli("package", "add", str(package.plugin))
    subprocess.run(["go", "mod", "tidy"], cwd=cli.cwd, check=True, capture_output=True, timeout=600,
                   env=user_environ(cli.env))
    _flannel_program(package, cli, node_cluster, node_k8s, "go")
