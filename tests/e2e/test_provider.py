"""calico-oke's own provider through the `pulumi` CLI: typed inputs (the existing-nodes refusal fires, and no DELETE
reaches OKE), a preview whose kubeconfig is unknown, Ctrl-C that stops a step at once and nothing that outlives a
killed `up`, and errors shown under the resource without a Python traceback."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from calico_component.component.target import OCI_ENDPOINT_ENV
from calico_component.local.controlplane import ControlPlane
from calico_component.local.nodes import calico_node_pods, flannel_present, run_fake_flannel, wait_for
from calico_component.local.program import copy_stack_program
from calico_component.local.workspace import RUN_TOKEN, PulumiCli, engine_env, kill_leftovers, user_environ
from tests.e2e.cluster import assert_installed
from tests.e2e.conftest import mirror
from tests.fake_oke import FakeOke, Pool, write_oci_config

pytestmark = pytest.mark.usefixtures("three_nodes")

#: A Python traceback frame of calico-oke's own code. (A Python program that fails while registrations are still in
#: flight also shows the Pulumi SDK's own shutdown traceback, ending in KeyboardInterrupt: Pulumi's, not calico-oke's.)
OUR_TRACEBACK = re.compile(r"File \"[^\"]*calico_component[^\"]*\.py\", line \d+|Traceback[^\n]*\n[^\n]*calico_component")
#: How calico-oke's provider runs: the console script pip installs (Python programs).
PROVIDER = "pulumi-resource-calico-oke"


@pytest.fixture()
def oke(node_k8s: Any) -> Iterator[FakeOke]:
    """The OCI stand-in; afterwards no kube-flannel-ds is left for the next test."""
    with FakeOke() as server:
        yield server
    with contextlib.suppress(client.ApiException):
        client.AppsV1Api(node_k8s).delete_namespaced_daemon_set("kube-flannel-ds", "kube-system")


@pytest.fixture()
def made() -> Iterator[list[PulumiCli]]:
    """The stacks a test made: each destroyed afterwards, whatever the test left behind."""
    clis: list[PulumiCli] = []
    yield clis
    for cli in reversed(clis):
        cli("cancel", "--yes", check=False)  # a lock a killed `up` left
        cli("destroy", "--yes", "--skip-preview", check=False)


def _cli(tool_paths: dict[str, Path], tmp_path: Path, oke: FakeOke, made: list[PulumiCli]) -> PulumiCli:
    """The stack program in a scratch copy, every OCI call of the component (lookups, add-on step) going to ``oke``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = {**engine_env(tmp_path / "pulumi", tool_paths), OCI_ENDPOINT_ENV: oke.endpoint,
           "OCI_CONFIG_FILE": str(write_oci_config(tmp_path))}
    made.append(PulumiCli(tool_paths["pulumi"], copy_stack_program(tmp_path / "program"), env, timeout=600))
    return made[-1]


def _configure(cli: PulumiCli, cp: ControlPlane, **config: str) -> None:
    cli("stack", "init", "dev")
    for key, value in {"manifestMirror": mirror(), **config}.items():
        cli("config", "set", key, value)
    cli("config", "set", "--secret", "kubeconfig", stdin=cp.kubeconfig)


def _server(cp: ControlPlane) -> str:
    """The control plane's API server as OKE would report its endpoint (host:port)."""
    import yaml

    return str(yaml.safe_load(cp.kubeconfig)["clusters"][0]["cluster"]["server"]).split("://", 1)[1]


def _failed(proc: subprocess.CompletedProcess[str]) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert not OUR_TRACEBACK.search(output), output[-4000:]
    return output


def test_the_existing_nodes_refusal_fires_through_the_engine_and_no_delete_reaches_oke(
        tool_paths: dict[str, Path], node_cluster: ControlPlane, node_k8s: Any, oke: FakeOke, tmp_path: Path,
        made: list[PulumiCli]) -> None:
    """A flannel-overlay cluster whose node pool has 3 nodes (a pool without node_config_details: ListNodePools gives no
    count, GetNodePool lists them; the count crosses the engine as 3.0): with allowExistingNodes preview plans the
    add-on step; without it preview and `up` fail under the add-on step, saying why, and OKE receives no DELETE;
    allowed, `up` disables the add-on (one DELETE) and removes kube-flannel-ds."""
    run_fake_flannel(node_k8s, 3, timeout=30)
    oke.pools, oke.kubernetes_endpoint = [Pool("workers", 3, size_in_details=False)], _server(node_cluster)
    cli = _cli(tool_paths, tmp_path, oke, made)
    _configure(cli, node_cluster, calicoVersion="3.32.0", networkType="flannel-overlay", nodeOs="oracle-linux-8",
               clusterId=oke.cluster_id, allowExistingNodes="true", awaitTimeoutSeconds="60")
    assert "calico-flannel-addon" in cli("preview", "--diff").stdout
    cli("config", "set", "allowExistingNodes", "false")
    for verb in ("preview", "up"):
        output = _failed(cli(verb, "--yes", check=False) if verb == "up" else cli(verb, check=False))
        assert "calico-oke:index:OkeAddonDisabled (calico-flannel-addon)" in output, output[-3000:]
        assert f"cluster {oke.cluster_id} already has 3 worker node(s)" in output, output[-3000:]
    assert not [r for r in oke.requests if r.startswith("DELETE")] and flannel_present(node_k8s)
    cli("config", "set", "allowExistingNodes", "true")
    cli("up", "--yes")
    assert oke.requests[f"DELETE /20180222/clusters/{oke.cluster_id}/addons/Flannel"] == 1
    assert not flannel_present(node_k8s)
    assert_installed(node_k8s, "3.32.0")
    cli("destroy", "--yes")


UNKNOWN_KUBECONFIG_PROGRAM = '''\
"""A kubeconfig known only once an earlier resource of the same program exists (as for a cluster created here)."""
import pulumi
import pulumi_kubernetes as k8s

from calico_component import Calico, CalicoArgs

config = pulumi.Config()
admin = k8s.Provider("admin", kubeconfig=config.require_secret("adminKubeconfig"))
holder = k8s.core.v1.Secret("holder", metadata={"namespace": "default"}, string_data={
    "kubeconfig": config.require_secret("adminKubeconfig")}, opts=pulumi.ResourceOptions(provider=admin))
Calico("calico", CalicoArgs(
    calico_version="3.32.0", network_type="flannel-overlay", node_os="oracle-linux-8", disable_flannel_addon=False,
    allow_existing_nodes=True, pod_cidr="10.244.0.0/16", manifest_mirror=config.require("mirror"),
    # Known once the Secret exists (its uid): unknown at preview, as a new cluster's kubeconfig is.
    kubeconfig=pulumi.Output.all(holder.metadata.uid, config.require_secret("adminKubeconfig")).apply(lambda v: v[1]),
))
'''


def test_a_preview_with_an_unknown_kubeconfig_succeeds_and_up_does_the_steps(
        tool_paths: dict[str, Path], node_cluster: ControlPlane, node_k8s: Any, oke: FakeOke, tmp_path: Path,
        made: list[PulumiCli]) -> None:
    """The new-cluster shape: the kubeconfig comes from a resource the same `up` creates. Preview succeeds (the
    flannel step's check waits for a known kubeconfig) and plans the steps; `up` removes kube-flannel-ds and installs
    Calico, awaited, on that cluster."""
    run_fake_flannel(node_k8s, 3, timeout=30)
    program = copy_stack_program(tmp_path / "program")
    (program / "__main__.py").write_text(UNKNOWN_KUBECONFIG_PROGRAM)
    cli = PulumiCli(tool_paths["pulumi"], program, engine_env(tmp_path / "pulumi", tool_paths), timeout=600)
    made.append(cli)
    cli("stack", "init", "dev")
    cli("config", "set", "mirror", mirror())
    cli("config", "set", "--secret", "adminKubeconfig", stdin=node_cluster.kubeconfig)
    preview = cli("preview", "--diff").stdout
    assert "calico-flannel-daemonset" in preview and "calico-calico-node-rollout" in preview, preview[-3000:]
    assert flannel_present(node_k8s), "a preview changes nothing"
    cli("up", "--yes")
    assert not flannel_present(node_k8s)
    assert_installed(node_k8s, "3.32.0")
    cli("destroy", "--yes")


def _provider_pids(token: str) -> list[int]:
    """Processes of calico-oke's provider started by the command marked ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if PROVIDER.encode() in cmdline and (token.encode() + b"\0") in environ + b"\0":
            found.append(int(entry.name))
    return found


def _start_up(cli: PulumiCli, token: str) -> subprocess.Popen[str]:
    name, _, value = token.partition("=")
    return subprocess.Popen([str(cli.binary), "up", "--yes", "--skip-preview"], cwd=cli.cwd,
                            env=user_environ({**cli.env, name: value}), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _stopped_within(proc: subprocess.Popen[str], stop: Callable[[], None], limit: float) -> tuple[float, str]:
    """Run ``stop``; the seconds until ``proc`` exited, and its output (killed after ``limit`` + 60 s)."""
    started = time.monotonic()
    stop()
    try:
        out, _ = proc.communicate(timeout=limit + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    return time.monotonic() - started, out


def _rolling_unpullable(k8s: Any) -> bool:
    return any(p.spec.containers[0].image.startswith("never-ready.invalid/") for p in calico_node_pods(k8s))


def _interrupt_the_wait(cli: PulumiCli, k8s: Any, how: str) -> None:
    """Start `up`, and once calico-oke's provider is waiting on the rollout: a Ctrl-C (``how`` ``ctrl-c``), after
    which `up` must end within 10 s with no provider left; or SIGKILL of the CLI alone (``kill``), after which the
    provider must exit by itself within 15 s."""
    token = f"{RUN_TOKEN}=provider-{how}-{os.getpid()}-{time.monotonic_ns()}"
    proc = _start_up(cli, token)
    try:
        wait_for(lambda: _rolling_unpullable(k8s) and bool(_provider_pids(token)), 120,
                 "the rollout `up` waits on, and calico-oke's provider serving the wait")
        time.sleep(3)  # well into the wait
        if how == "ctrl-c":
            took, out = _stopped_within(proc, lambda: os.killpg(proc.pid, signal.SIGINT), 10)
            print(f"Ctrl-C during the rollout wait: `up` ended {took:.1f}s after SIGINT")
            assert proc.returncode != 0 and took < 10, f"{took:.1f}s:\n{out[-3000:]}"
            assert "calico-oke:index:RolloutAwaited (calico-calico-node-rollout)" in out and "interrupted" in out
            assert not OUR_TRACEBACK.search(out), out[-3000:]
            assert _provider_pids(token) == []
        else:
            proc.kill()  # the CLI alone: its plugins run in process groups of their own
            proc.communicate()
            killed = time.monotonic()
            wait_for(lambda: not _provider_pids(token), 15, "calico-oke's provider to exit after its engine died")
            print(f"`pulumi` killed: calico-oke's provider gone {time.monotonic() - killed:.1f}s later")
            cli("cancel", "--yes")  # the killed `up` left the stack locked, as any killed `pulumi` does
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        kill_leftovers(token)


def test_ctrl_c_stops_the_rollout_wait_at_once_and_no_provider_outlives_a_killed_up(
        tool_paths: dict[str, Path], node_cluster: ControlPlane, node_k8s: Any, oke: FakeOke, tmp_path: Path,
        made: list[PulumiCli]) -> None:
    """While `up` waits (deadline 10 minutes) on a rollout that cannot finish: one Ctrl-C (SIGINT to the process
    group, as a terminal sends it) ends `up` within 10 s and leaves no provider process; a `pulumi` killed outright
    (SIGKILL) leaves none 15 s later either. Then the input put right, `up` converges with nothing left to change."""
    cli = _cli(tool_paths, tmp_path, oke, made)
    _configure(cli, node_cluster, calicoVersion="3.31.5", networkType="vcn-native", nodeOs="oracle-linux-8",
               awaitTimeoutSeconds="600")
    cli("up", "--yes", "--skip-preview")
    cli("config", "set", "imageRegistry", "never-ready.invalid")
    for how in ("ctrl-c", "kill"):
        _interrupt_the_wait(cli, node_k8s, how)
    cli("config", "rm", "imageRegistry")
    cli("up", "--yes")
    assert_installed(node_k8s, "3.31.5")
    cli("preview", "--expect-no-changes")
    cli("destroy", "--yes")


def _check_namespaces(k8s: Any) -> list[str]:
    from calico_component.policy.plan import CHECK_LABEL

    items: Any = client.CoreV1Api(k8s).list_namespace(label_selector=CHECK_LABEL).items
    return [str(n.metadata.name) for n in items]


def test_ctrl_c_stops_the_policy_check_and_deletes_its_namespace(
        tool_paths: dict[str, Path], node_cluster: ControlPlane, node_k8s: Any, oke: FakeOke, tmp_path: Path,
        made: list[PulumiCli]) -> None:
    """While `up` runs the policy check (its probe pods on fake nodes never finish), one Ctrl-C ends `up` within
    15 s, saying the check stopped, and the check's namespace is gone by then; the next `up` (check off) converges."""
    cli = _cli(tool_paths, tmp_path, oke, made)
    _configure(cli, node_cluster, calicoVersion="3.32.0", networkType="vcn-native", nodeOs="oracle-linux-8",
               verifyPolicy="true", verifyPolicyNodes="1")
    token = f"{RUN_TOKEN}=policy-check-{os.getpid()}-{time.monotonic_ns()}"
    proc = _start_up(cli, token)
    try:
        wait_for(lambda: bool(_check_namespaces(node_k8s)) or proc.poll() is not None, 240,
                 "the policy check's namespace")
        assert proc.poll() is None, f"`up` ended before its policy check started:\n{proc.communicate()[0][-4000:]}"
        time.sleep(3)
        took, out = _stopped_within(proc, lambda: os.killpg(proc.pid, signal.SIGINT), 15)
        print(f"Ctrl-C during the policy check: `up` ended {took:.1f}s after SIGINT, its namespace deleted")
        assert proc.returncode != 0 and took < 15, f"{took:.1f}s:\n{out[-3000:]}"
        assert "calico-oke:index:PolicyCheck (calico-policy-check)" in out, out[-3000:]
        assert "the policy check stopped because `pulumi up` was interrupted" in out, out[-3000:]
        assert not OUR_TRACEBACK.search(out), out[-3000:]
        assert _check_namespaces(node_k8s) == []
        assert _provider_pids(token) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        kill_leftovers(token)
    cli("config", "set", "verifyPolicy", "false")
    cli("up", "--yes")
    assert_installed(node_k8s, "3.32.0")
    cli("preview", "--expect-no-changes")
    cli("destroy", "--yes")


def test_errors_are_shown_under_their_resource_without_a_traceback(
        tool_paths: dict[str, Path], node_cluster: ControlPlane, node_k8s: Any, oke: FakeOke, tmp_path: Path,
        made: list[PulumiCli]) -> None:
    """A stalled rollout and an OCI refusal fail `up` with the step's own message under the step's resource, and the
    rollout's progress lines are shown there too; no Python traceback anywhere."""
    cli = _cli(tool_paths, tmp_path, oke, made)
    _configure(cli, node_cluster, calicoVersion="3.31.5", networkType="vcn-native", nodeOs="oracle-linux-8",
               awaitTimeoutSeconds="15", imageRegistry="never-ready.invalid")
    output = _failed(cli("up", "--yes", "--skip-preview", check=False))
    assert re.search(r"calico-oke:index:RolloutAwaited \(calico-calico-node-rollout\):\s+error: calico-node: 0 of 3 "
                     r"pods updated and ready, and none more became ready for 15s", output), output[-4000:]
    cli("config", "rm", "imageRegistry")
    cli("up", "--yes")
    assert re.search(r"calico-oke:index:RolloutAwaited \(calico-calico-node-rollout\)[\s\S]*calico-node: 3 of 3 pods "
                     r"updated and ready", cli.transcript[-1][1]), cli.transcript[-1][1][-3000:]
    cli("destroy", "--yes")
    # The add-on step with an add-on name OKE does not know: named, with the add-ons the cluster has; nothing disabled.
    run_fake_flannel(node_k8s, 3, timeout=30)
    oke.kubernetes_endpoint = _server(node_cluster)
    flannel = _cli(tool_paths, tmp_path / "flannel", oke, made)
    _configure(flannel, node_cluster, calicoVersion="3.32.0", networkType="flannel-overlay", nodeOs="oracle-linux-8",
               clusterId=oke.cluster_id, allowExistingNodes="true", podCidr="10.244.0.0/16", flannelAddonName="Flanel")
    output = _failed(flannel("up", "--yes", "--skip-preview", check=False))
    assert re.search(r"calico-oke:index:OkeAddonDisabled \(calico-flannel-addon\):\s+error: OKE has no add-on named "
                     r"'Flanel': cluster .* has Flannel, and OKE offers .*flannel_addon_name", output), output[-4000:]
    assert not [r for r in oke.requests if r.startswith("DELETE")] and flannel_present(node_k8s)
    # ... and one whose OCI user lacks permission: OKE's 403, explained, under the step.
    flannel("config", "rm", "flannelAddonName")
    oke.fail("GET", 403, times=10_000, path_part="/addons/")
    output = _failed(flannel("up", "--yes", "--skip-preview", check=False))
    assert re.search(r"calico-oke:index:OkeAddonDisabled \(calico-flannel-addon\):\s+error: reading OKE add-on Flannel "
                     r"of cluster .* failed: HTTP 403 .*IAM policy", output), output[-4000:]
    flannel("destroy", "--yes")
