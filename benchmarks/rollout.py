"""Benchmark: an awaited calico-node upgrade at cluster sizes, with nodes that take time to ready calico-node.

Fake kwok nodes make each calico-node pod Running and Ready ``--ready-seconds`` (plus up to 50 % jitter) after it
was bound, standing in for a real node's image pull, start and readiness probe (tens of seconds; scaled down here so
that the whole run stays under about 20 minutes: say so when you quote the figures). For each node count and each
calico-node ``maxUnavailable``, the same upgrade (vcn-native 3.31.5 -> 3.32.0, Calico installed and ready first) is
measured two ways on the same cluster:

- the repository's stack program through the pulumi CLI (`pulumi up`: the component updates the objects, then waits
  for calico-node's rollout itself, by progress);
- Oracle's page with kubectl: `kubectl apply --server-side` of the same rendered manifest, then `kubectl rollout
  status` of calico-node and of every Deployment.

It prints one row per case with the ratio (goal: the component within 1.1x of kubectl) and the marginal ratio (the
component's upgrade less a no-op `up`, which is the engine's fixed cost whatever the cluster size), and the peak memory (resident
set) of the engine, the Kubernetes provider, the dynamic provider host that runs the wait, and the Python program,
sampled every 0.2 s during the component's upgrade (each peak is the largest sum over that kind's processes).
Run: python benchmarks/rollout.py [--nodes 100,300,1000] [--max-unavailable 1,10%] [--ready-seconds 0.1]
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calico_component.local import tools
from calico_component.local.controlplane import ControlPlane
from calico_component.local.nodes import add_nodes, delete_nodes
from calico_component.local.program import copy_stack_program
from calico_component.local.workspace import RUN_TOKEN, PulumiCli, engine_env
from tests.conftest import mirror_path
from tests.e2e.cluster import delete_crds
from tests.e2e.conftest import api_client

VERSION, TARGET, NETWORK, NODE_OS = "3.31.5", "3.32.0", "vcn-native", "oracle-linux-8"
GOAL = 1.1
#: A real node's time from a calico-node pod bound to it to Ready (image pull of a new release, start, probe).
REAL_READY_SECONDS = 30.0


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# --- memory --------------------------------------------------------------------------------------------------------

def _kind(cmdline: list[str]) -> str | None:
    """Which part of Pulumi a process started by PulumiCli is."""
    joined = " ".join(cmdline)
    if "pulumi.dynamic" in joined:
        return "dynamic provider host (the wait)"
    if "pulumi-resource-kubernetes" in joined:
        return "kubernetes provider"
    if "pulumi-language-python" in joined:
        return "python language host"
    if cmdline and Path(cmdline[0]).name == "pulumi":
        return "engine (pulumi)"
    if cmdline and "python" in Path(cmdline[0]).name:
        return "python program"
    return None


def _rss_bytes(status: str) -> int:
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _sample() -> collections.Counter[str]:
    """Resident bytes by kind, summed over every process PulumiCli started (found by its run token)."""
    found: collections.Counter[str] = collections.Counter()
    needle = f"{RUN_TOKEN}=".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes():
                continue
            kind = _kind((entry / "cmdline").read_bytes().decode(errors="replace").split("\0"))
            if kind is not None:
                found[kind] += _rss_bytes((entry / "status").read_text())
        except OSError:  # gone meanwhile
            continue
    return found


@contextmanager
def peak_memory() -> Iterator[dict[str, int]]:
    """Sample every 0.2 s while the block runs; the dict holds each kind's peak when it ends."""
    peaks: dict[str, int] = {}
    stop = threading.Event()

    def follow() -> None:
        while not stop.is_set():
            for kind, size in _sample().items():
                peaks[kind] = max(peaks.get(kind, 0), size)
            stop.wait(0.2)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join()


# --- the two ways ---------------------------------------------------------------------------------------------------

def component_upgrade(cli: PulumiCli, stack: str, cp: ControlPlane, unavailable: str,
                      deadline: float) -> tuple[float, float, dict[str, int]]:
    """Install (not measured), then the measured awaited upgrade with its peak memory, and a no-op `up` (the engine's
    fixed cost: program, refresh of every object, diff); the stack is destroyed."""
    cli("stack", "init", stack)
    for key, value in {"calicoVersion": VERSION, "networkType": NETWORK, "nodeOs": NODE_OS,
                       "manifestMirror": str(mirror_path()), "calicoNodeMaxUnavailable": unavailable,
                       "awaitTimeoutSeconds": f"{deadline:g}"}.items():
        cli("config", "set", key, value)
    cli("config", "set", "--secret", "kubeconfig", stdin=cp.kubeconfig)
    cli("up", "--yes", "--skip-preview")
    cli("config", "set", "calicoVersion", TARGET)
    with peak_memory() as peaks:
        seconds = timed(lambda: cli("up", "--yes", "--skip-preview"))
    noop = timed(lambda: cli("up", "--yes", "--skip-preview"))
    cli("destroy", "--yes", "--skip-preview")
    cli("stack", "rm", "--yes", stack)
    delete_crds(api_client(cp))
    return seconds, noop, dict(peaks)


def kubectl_upgrade(kubectl: Path, cp: ControlPlane, manifests: dict[str, Path]) -> float:
    """Install (not measured), then the measured apply and rollout status of the upgrade; everything deleted after."""
    def run(*args: str) -> None:
        subprocess.run([str(kubectl), "--kubeconfig", str(cp.kubeconfig_path), *args], check=True,
                       capture_output=True, timeout=3600)

    def apply(version: str) -> None:
        run("apply", "--server-side", "--force-conflicts", "-f", str(manifests[version]))
        run("rollout", "status", "-n", "kube-system", "daemonset/calico-node", "--timeout=3600s")
        run("rollout", "status", "-n", "kube-system", "deployment", "--timeout=3600s")

    apply(VERSION)
    seconds = timed(lambda: apply(TARGET))
    run("delete", "--wait=true", "--ignore-not-found", "-f", str(manifests[VERSION]), "-f", str(manifests[TARGET]))
    delete_crds(api_client(cp))
    return seconds


def render_manifest(version: str, unavailable: str, dest: Path) -> Path:
    dest.write_text(subprocess.run(
        [sys.executable, "-m", "calico_component", "render", "--calico-version", version, "--network-type", NETWORK,
         "--node-os", NODE_OS, "--mirror", str(mirror_path()), "--calico-node-max-unavailable", unavailable],
        check=True, capture_output=True, text=True).stdout)
    return dest


# --- the run --------------------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="100,300,1000", help="comma-separated node counts")
    parser.add_argument("--max-unavailable", default="1,10%", help="comma-separated calico-node maxUnavailable values")
    parser.add_argument("--ready-seconds", type=float, default=0.1,
                        help=f"a calico-node pod's time to Ready on a fake node (a real node: ~{REAL_READY_SECONDS:g})")
    parser.add_argument("--await-timeout-seconds", type=float, default=30,
                        help="the stack's awaitTimeoutSeconds: a progress deadline, far shorter than the big rollouts")
    args = parser.parse_args()
    sizes = [int(n) for n in args.nodes.split(",")]
    unavailables = args.max_unavailable.split(",")
    paths = tools.ensure((*tools.DEMO_TOOLS, "kubectl"))
    rows: list[tuple[int, str, float, float, float]] = []
    memory: dict[int, dict[str, int]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="calico-oke-bench-rollout-") as tmp, ControlPlane(
        paths["etcd"], paths["kube-apiserver"], paths["kube-controller-manager"],
        kube_scheduler=paths["kube-scheduler"], kwok=paths["kwok"], calico_node_ready_seconds=args.ready_seconds,
    ) as cp:
        root = Path(tmp)
        cli = PulumiCli(paths["pulumi"], copy_stack_program(root / "stack-program"), engine_env(root, paths),
                        timeout=3600)
        print(HEADER, flush=True)
        for nodes in sizes:
            k8s = api_client(cp)
            add_nodes(k8s, nodes)
            for unavailable in unavailables:
                manifests = {v: render_manifest(v, unavailable, root / f"calico-{v}.yaml") for v in (VERSION, TARGET)}
                seconds, noop, peaks = component_upgrade(cli, f"n{nodes}-u{unavailable.rstrip('%')}", cp, unavailable,
                                                   args.await_timeout_seconds)
                memory[nodes] = {k: max(v, memory.get(nodes, {}).get(k, 0)) for k, v in peaks.items()}
                rows.append((nodes, unavailable, seconds, noop, kubectl_upgrade(paths["kubectl"], cp, manifests)))
                print_row(*rows[-1], flush=True)
            delete_nodes(k8s)
    report(rows, memory, args.ready_seconds, args.await_timeout_seconds, time.perf_counter() - started)
    return 0


HEADER = (f"{'nodes':>6}{'maxUnavailable':>16}{'component':>11}{'no-op up':>10}{'kubectl':>9}{'ratio':>7}"
          f"{'marginal':>10}")


def print_row(nodes: int, unavailable: str, component: float, noop: float, kubectl: float, *,
              flush: bool = False) -> None:
    """ratio: the component's upgrade over kubectl's; marginal: the same without the no-op up's fixed cost."""
    print(f"{nodes:>6}{unavailable:>16}{component:>11.1f}{noop:>10.1f}{kubectl:>9.1f}{component / kubectl:>7.2f}"
          f"{(component - noop) / kubectl:>10.2f}", flush=flush)


def report(rows: list[tuple[int, str, float, float, float]], memory: dict[int, dict[str, Any]], ready: float,
           deadline: float, total: float) -> None:
    print(f"\nAwaited upgrade Calico {VERSION} -> {TARGET} {NETWORK}; calico-node Ready {ready:g}-{ready * 1.5:g} s "
          f"after its pod was bound (a real node: ~{REAL_READY_SECONDS:g} s, i.e. scaled down "
          f"{REAL_READY_SECONDS / ready:.0f}x); seconds, one run each; whole benchmark {total / 60:.1f} min")
    print(HEADER)
    for row in rows:
        print_row(*row)
    longest = max(c for _, _, c, _, _ in rows)
    print(f"the component's awaitTimeoutSeconds: {deadline:g} s (a progress deadline); its longest awaited upgrade "
          f"took {longest:.0f} s, {longest / deadline:.1f}x that, and succeeded")
    worst = max(c / k for _, _, c, _, k in rows)
    marginal = max((c - n) / k for _, _, c, n, k in rows)
    print(f"goal: the component within {GOAL}x of kubectl; worst ratio {worst:.2f} "
          f"({'met' if worst <= GOAL else 'NOT met'}), worst marginal ratio (no-op up's fixed cost aside) "
          f"{marginal:.2f} ({'met' if marginal <= GOAL else 'NOT met'})")
    for nodes, peaks in sorted(memory.items()):
        print(f"peak memory during the component's upgrade at {nodes} nodes: " +
              ", ".join(f"{kind} {size / 2**20:.0f} MiB" for kind, size in sorted(peaks.items())))


if __name__ == "__main__":
    sys.exit(main())
