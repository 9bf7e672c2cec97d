"""calico-oke as a Pulumi package on the real engine: get-schema, and YAML, TypeScript and Go programs installing Calico."""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import re
import shutil
import stat
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from calico_component import CalicoArgs
from calico_component.local.workspace import PulumiCli, engine_env
from tests.conftest import REPO
from tests.e2e.cluster import assert_installed, calico_node, exists
from tests.e2e.conftest import mirror
from tests.e2e.engine import PREVIEW_REPLACEMENT, plaintext_leaks
from tests.e2e.readme import YAML_FIRST_CONTACT, readme_commands

TOKEN = "calico-oke:index:Calico"
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")


@dataclass(frozen=True)
class Package:
    """A copy of the checkout's plugin (with its virtualenv made by the CLI) and the engine environment to use it."""

    plugin: Path
    env: dict[str, str]
    pulumi: Path


def _provider_plugin_version(module: str) -> str:
    """The plugin version a Pulumi Python SDK asks for (what `package add` would download)."""
    return str(json.loads(importlib.resources.files(module).joinpath("pulumi-plugin.json").read_text())["version"])


def _register_offline_plugins(cli: PulumiCli, tool_paths: dict[str, Path], root: Path) -> None:
    """In this test's own Pulumi home only: the plugins the package's Python environment declares, as local files.

    `pulumi package add` and `get-schema` want every provider plugin the plugin's virtualenv has an SDK for;
    no registry here serves them. A normal install downloads them by itself and needs none of this.
    """
    cli("plugin", "install", "resource", "kubernetes", _provider_plugin_version("pulumi_kubernetes"),
        "--file", str(tool_paths["pulumi-resource-kubernetes"]))
    stub = root / "pulumi-resource-oci"  # no OCI provider binary here; nothing in these tests calls OCI
    stub.write_text("#!/bin/sh\necho 'oci provider stub: not available offline' >&2\nexit 1\n")
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    cli("plugin", "install", "resource", "oci", _provider_plugin_version("pulumi_oci"), "--file", str(stub))


@pytest.fixture(scope="module")
def package(tool_paths: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Package:
    """The plugin folder of a fresh clone of the checkout (no plugin/venv, no .venv: what a user clones)."""
    root = tmp_path_factory.mktemp("package")
    checkout = root / "calico-oke"
    subprocess.run(["git", "clone", "-q", str(REPO), str(checkout)], check=True, capture_output=True, timeout=120)
    env = {**engine_env(root, tool_paths), "CALICO_OKE_MANIFEST_MIRROR": mirror()}
    env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "false"  # package add installs what it needs (registered)
    cli = PulumiCli(tool_paths["pulumi"], root, env)
    _register_offline_plugins(cli, tool_paths, root)
    return Package(checkout / "plugin", env, tool_paths["pulumi"])


@pytest.fixture(scope="module")
def served_schema(package: Package) -> dict[str, Any]:
    """What `pulumi package get-schema <plugin folder>` prints (it also creates the plugin's virtualenv)."""
    cli = PulumiCli(package.pulumi, package.plugin.parent, package.env, timeout=900)
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


def test_yaml_program_from_a_fresh_clone_installs_upgrades_in_place_and_destroys(
        package: Package, node_k8s: Any, node_cluster: Any, tmp_path: Path) -> None:
    """examples/yaml-vcn-native from a clone without plugin/venv: the README's one first command, then 3.31.5 installed
    (one Calico component), upgraded to 3.32.0 with no replacement and the same UIDs, destroyed; the kubeconfig's token
    is in no backend file. (First in this file: the other tests find the virtualenv made here.)"""
    assert not (package.plugin / "venv").exists(), "the clone already has plugin/venv: this test would prove nothing"
    cli = program(package, "yaml-vcn-native", tmp_path / "yaml")
    for line in readme_commands(YAML_FIRST_CONTACT):
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=cli.cwd, capture_output=True, text=True,
                              timeout=900, env={**os.environ, **cli.env, "CALICO_OKE_PLUGIN": str(package.plugin)})
        assert proc.returncode == 0, f"`{line}` exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}"
    assert (package.plugin / "venv" / "bin" / "python").exists()
    cli("stack", "init", "yaml")
    cli("config", "set", "calicoVersion", "3.31.5")  # the example's default is the newest release, 3.32.0
    cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
    cli("preview")
    cli("up", "--yes")
    assert_installed(node_k8s, "3.31.5")
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


def test_get_schema_lists_every_input_in_camelcase(served_schema: dict[str, Any]) -> None:
    """`pulumi package get-schema <plugin folder>` serves calico-oke:index:Calico with every CalicoArgs field, under the
    version of the checkout's pyproject.toml (what its CHANGELOG and tags name)."""
    assert served_schema["name"] == "calico-oke" and list(served_schema["resources"]) == [TOKEN]
    assert served_schema["version"] == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    resource = served_schema["resources"][TOKEN]
    camel = {re.sub(r"_([a-z0-9])", lambda m: m[1].upper(), f.name) for f in dataclasses.fields(CalicoArgs)}
    assert set(resource["inputProperties"]) == camel
    assert resource["inputProperties"]["kubeconfig"]["secret"] is True
    assert resource["requiredInputs"] == ["calicoVersion"] and resource["isComponent"] is True


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


def test_typescript_program_with_a_generated_sdk(package: Package, served_schema: dict[str, Any], node_k8s: Any,
                                                 node_cluster: Any, tmp_path: Path) -> None:
    """examples/typescript-vcn-native: `pulumi package add` generates @pulumi/calico-oke; preview and up install Calico."""
    cli = program(package, "typescript-vcn-native", tmp_path / "ts")
    subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=cli.cwd, check=True, capture_output=True,
                   timeout=600)
    cli("package", "add", str(package.plugin))
    assert (cli.cwd / "sdks" / "calico-oke" / "calico.ts").is_file()
    assert json.loads((cli.cwd / "package.json").read_text())["dependencies"]["@pulumi/calico-oke"]
    cli("stack", "init", "ts")
    cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
    preview = cli("preview", "--diff").stdout
    assert TOKEN in preview and "calico-daemonset-kube-system-calico-node" in preview
    cli("up", "--yes")
    assert_installed(node_k8s, "3.32.0")
    assert json.loads(cli("stack", "output", "--json").stdout)["objectCount"] == 41
    cli("destroy", "--yes")


def test_go_program_with_a_generated_sdk(package: Package, served_schema: dict[str, Any], node_k8s: Any,
                                         node_cluster: Any, tmp_path: Path) -> None:
    """examples/go-vcn-native: `pulumi package add` generates the Go SDK; the Go host builds the program; up installs."""
    cli = program(package, "go-vcn-native", tmp_path / "go")
    cli("package", "add", str(package.plugin))
    subprocess.run(["go", "mod", "tidy"], cwd=cli.cwd, check=True, capture_output=True, timeout=600,
                   env={**os.environ, **cli.env})
    cli("stack", "init", "go")
    cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
    cli("up", "--yes")
    assert_installed(node_k8s, "3.32.0")
    assert json.loads(cli("stack", "output", "--json").stdout)["objectCount"] == 41
    cli("destroy", "--yes")
