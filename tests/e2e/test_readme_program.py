"""The README's "A program for a real OKE cluster" run as written, `pulumi new python` to `pulumi up`, in a fresh venv."""

# What this machine cannot reach is stood in for, and only that (each substitution is asserted to apply):
#
# - `pulumi new python` gets `--offline`: Pulumi's `python` template comes from the test's Pulumi home, laid out as an
#   online `pulumi new` leaves it (a clone of pulumi/templates; here only its python/ folder, copied below);
# - the calico-oke line the README adds to requirements.txt names a wheel built from this checkout, not the git URL;
# - `pulumi install` gets `--no-plugins`: the kubernetes provider plugin it would download from get.pulumi.com is the
#   locally built one on PATH, as for every end-to-end test;
# - OKE is tests/fake_oke.py (CALICO_OKE_OCI_ENDPOINT, OCI_CONFIG_FILE in the environment), describing the README's
#   cluster OCID as a vcn-native cluster of 3 Oracle Linux 8 nodes and serving the node_cluster control plane's
#   kubeconfig for it;
# - manifests come from the test mirror (CALICO_OKE_MANIFEST_MIRROR), upstream being unreachable.

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from calico_component.component.target import OCI_ENDPOINT_ENV
from calico_component.local.controlplane import ControlPlane
from calico_component.local.workspace import PulumiCli, engine_env, user_environ
from tests.conftest import REPO
from tests.e2e.cluster import assert_installed, calico_node, exists
from tests.e2e.conftest import mirror
from tests.e2e.readme import OKE_FIRST_HOUR, OKE_FIRST_HOUR_END, commands, marked_blocks
from tests.fake_oke import FakeOke, Pool, write_oci_config
from tests.test_troubleshooting import DOWNLOAD_FAILED, NOT_FOUND

pytestmark = pytest.mark.usefixtures("three_nodes")

#: Pulumi's `python` template (github.com/pulumi/templates, python/ at 65db26bf, August 2026), file by file.
PYTHON_TEMPLATE = {
    "Pulumi.yaml": "name: ${PROJECT}\ndescription: ${DESCRIPTION}\nruntime: python\ntemplate:\n"
                   "  description: A minimal Python Pulumi program\n",
    "requirements.txt": "pulumi>=3.0.0,<4.0.0\n",
    "__main__.py": '"""A Python Pulumi program"""\n\nimport pulumi\n',
    ".gitignore": "*.pyc\nvenv/\n",
}
TEMPLATES_REPOSITORY = "https://github.com/pulumi/templates.git"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
#: The requirement the README adds, as a user copies it.
GIT_REQUIREMENT = f"git+https://github.com/<org>/calico-oke.git@v{VERSION}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout (built from a copy: setuptools leaves build/ beside the sources)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "calico_component", source / "calico_component",
                    ignore=shutil.ignore_patterns("__pycache__"))
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv builds the wheel: pip install uv (requirements-dev.txt)"
    subprocess.run([uv, "build", "-q", "--wheel", "-o", str(root), str(source)], check=True, timeout=300,
                   capture_output=True)
    return root / f"calico_oke-{VERSION}-py3-none-any.whl"


def _templates(pulumi_home: Path) -> None:
    """Pulumi's templates where `pulumi new` keeps them: a clone of pulumi/templates (anything else it deletes)."""
    root = pulumi_home / "templates"
    (root / "python").mkdir(parents=True)
    for name, text in PYTHON_TEMPLATE.items():
        (root / "python" / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(root)], check=True, timeout=60)
    subprocess.run(["git", "-C", str(root), "remote", "add", "origin", TEMPLATES_REPOSITORY], check=True, timeout=60)


def _substituted(line: str, wheel: Path) -> str:
    """A README line with the stand-ins listed above, each checked to apply."""
    argv = shlex.split(line, comments=True)
    if argv[:3] == ["pulumi", "new", "python"]:
        return line.replace("pulumi new python", "pulumi new python --offline", 1)
    if argv[:2] == ["pulumi", "install"]:
        return line.replace("pulumi install", "pulumi install --no-plugins", 1)
    if "calico-oke @" in line:
        assert line.count(GIT_REQUIREMENT) == 1, f"the README's requirement is not {GIT_REQUIREMENT}: {line}"
        return line.replace(GIT_REQUIREMENT, f"file://{wheel}")
    return line


def _server(cp: ControlPlane) -> str:
    return str(yaml.safe_load(cp.kubeconfig)["clusters"][0]["cluster"]["server"]).split("://", 1)[1]


def _cluster_id(blocks: list[tuple[str, str]]) -> str:
    """The cluster OCID the README configures."""
    found = [shlex.split(line, comments=True)[4] for lang, text in blocks if lang == "bash" for line in commands(text)
             if shlex.split(line, comments=True)[:4] == ["pulumi", "config", "set", "clusterId"]]
    assert len(found) == 1, "the README sets clusterId once"
    return found[0]


@pytest.fixture()
def readme_oke(node_cluster: ControlPlane) -> Iterator[FakeOke]:
    """OKE describing the README's cluster: vcn-native, 1.36, 3 Oracle Linux 8 nodes, the control plane's kubeconfig."""
    blocks = marked_blocks(OKE_FIRST_HOUR, OKE_FIRST_HOUR_END)
    with FakeOke(cluster_id=_cluster_id(blocks), cni_type="OCI_VCN_IP_NATIVE", kubernetes_version="v1.36.1",
                 pools=[Pool("workers", 3, "Oracle-Linux-8.10-2026.08.30-0-OKE-1.36.1-900")],
                 served_kubeconfig=node_cluster.kubeconfig, kubernetes_endpoint=_server(node_cluster)) as server:
        yield server


def test_the_readme_steps_from_pulumi_new_to_up(tool_paths: dict[str, Path], node_k8s: Any, readme_oke: FakeOke,
                                                wheel: Path, tmp_path: Path) -> None:
    """The README's steps as written (its git URL swapped for this checkout's wheel, stand-ins above); no entry: the error."""
    env = {**engine_env(tmp_path / "pulumi", tool_paths), OCI_ENDPOINT_ENV: readme_oke.endpoint,
           "OCI_CONFIG_FILE": str(write_oci_config(tmp_path)), "CALICO_OKE_MANIFEST_MIRROR": mirror()}
    _templates(Path(env["PULUMI_HOME"]))
    project = tmp_path / "my-oke"
    project.mkdir()
    outputs: dict[str, str] = {}
    blocks = marked_blocks(OKE_FIRST_HOUR, OKE_FIRST_HOUR_END)
    assert [lang for lang, _ in blocks] == ["bash", "yaml", "python", "bash"], "the README section changed shape"
    cli = PulumiCli(tool_paths["pulumi"], project, env, timeout=600)
    declared = ""  # Pulumi.yaml as the README leaves it, once the steps ran
    try:
        for lang, text in blocks:
            if lang == "yaml":
                with (project / "Pulumi.yaml").open("a") as pulumi_yaml:
                    pulumi_yaml.write(text)
                continue
            if lang == "python":
                (project / "__main__.py").write_text(text)
                continue
            for line in commands(text):
                run = _substituted(line, wheel)
                proc = subprocess.run(["bash", "-euo", "pipefail", "-c", run], cwd=project, capture_output=True,
                                      text=True, timeout=600, env=user_environ(env))
                output = proc.stdout + proc.stderr
                assert proc.returncode == 0, f"`{run}` exited {proc.returncode}:\n{output[-4000:]}"
                outputs[" ".join(shlex.split(line, comments=True)[:2])] = output
                if line.startswith("pulumi new"):
                    runtime = yaml.safe_load((project / "Pulumi.yaml").read_text())["runtime"]
                    assert runtime["options"]["virtualenv"] == "venv", runtime
                if line.startswith("pulumi install"):
                    assert (project / "venv" / "bin" / "pulumi-resource-calico-oke").is_file()
                if line.startswith("pulumi preview"):
                    assert "calico-calico-node-rollout" in output and "to create" in output, output[-3000:]
                    assert not exists(lambda: calico_node(node_k8s)), "a preview changed the cluster"
        assert readme_oke.requests[f"POST /20180222/clusters/{readme_oke.cluster_id}/kubeconfig/content"] >= 1
        assert "calico-node: 3 of 3 pods updated and ready" in outputs["pulumi up"], outputs["pulumi up"][-3000:]
        assert_installed(node_k8s, "3.32.0")

        # Without the Pulumi.yaml entry the engine does not find calico-oke's provider (not on PATH either): the
        # troubleshooting page's messages, as a user's engine says it (it tries to download the plugin) and with
        # downloads off.
        declared = (project / "Pulumi.yaml").read_text()
        (project / "Pulumi.yaml").write_text(declared.replace(blocks[1][1], ""))
        downloading = PulumiCli(tool_paths["pulumi"], project,
                                {**env, "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "false"}, timeout=600)
        for engine, message, other in ((downloading, DOWNLOAD_FAILED, NOT_FOUND), (cli, NOT_FOUND, DOWNLOAD_FAILED)):
            proc = engine("preview", check=False)
            output = proc.stdout + proc.stderr
            assert proc.returncode != 0 and message in output and other not in output, output[-3000:]
    finally:
        if declared:
            (project / "Pulumi.yaml").write_text(declared)
        cli("destroy", "--yes", check=False)
    assert not exists(lambda: calico_node(node_k8s))
