"""Benchmark: awaited first up and awaited upgrade on 3, 30 and 100 fake nodes, component vs yaml.v2.ConfigGroup.

Runs one control plane with workload controllers, kube-scheduler and kwok (tests/e2e/controlplane.py),
so every up waits for calico-node on every node and for the Deployments, as users get by default.
Both deploy the same transformed vcn-native manifest (3.31.5, then 3.32.0) through a provider
with the same settings. Run: python benchmarks/awaited.py [--nodes 3 30 100] [--repeat N].
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calico_component import Calico, CalicoArgs, FetchOptions
from calico_component.component.providers import IN_PLACE_SETTINGS
from calico_component.local.controlplane import ControlPlane
from calico_component.local.nodes import add_nodes, delete_nodes
from calico_component.manifest.render import render
from tests.conftest import mirror_path
from tests.e2e import engine, tools
from tests.e2e.cluster import delete_crds
from tests.e2e.conftest import api_client

NETWORK, NODE_OS, FIRST, UPGRADE = "vcn-native", "oracle-linux-8", "3.31.5", "3.32.0"
Program = Callable[[str, str], Callable[[], None]]


def component(kubeconfig: str, version: str) -> Callable[[], None]:
    def run() -> None:
        Calico("calico", CalicoArgs(calico_version=version, network_type=NETWORK, node_os=NODE_OS,
                                    kubeconfig=kubeconfig, manifest_mirror=str(mirror_path())))
    return run


def configgroup(kubeconfig: str, version: str) -> Callable[[], None]:
    def run() -> None:
        import pulumi
        import pulumi_kubernetes as k8s

        rendered = render(version, NETWORK, NODE_OS, fetch_options=FetchOptions(mirror=str(mirror_path())))
        objs: list[Any] = list(rendered.objects)
        settings: dict[str, Any] = dict(IN_PLACE_SETTINGS)  # the same provider settings the component uses
        provider = k8s.Provider("k8s", kubeconfig=kubeconfig, **settings)
        k8s.yaml.v2.ConfigGroup("calico", objs=objs, opts=pulumi.ResourceOptions(provider=provider))
    return run


def measure(program: Program, label: str, env: dict[str, str], paths: dict[str, Path], cp: ControlPlane,
            work: Path, nodes: int, repeat: int) -> tuple[float, float]:
    """Median seconds of an awaited first up and an awaited upgrade, each run on ``nodes`` fresh fake nodes."""
    k8s = api_client(cp)
    first: list[float] = []
    upgrade: list[float] = []

    def quiet(_: str) -> None:
        pass

    for i in range(repeat):
        add_nodes(k8s, nodes)
        project = f"bench-{label}-{nodes}-{i}"
        stack = engine.stack(env, paths, work, project, program(cp.kubeconfig, FIRST))
        started = time.perf_counter()
        stack.up(on_output=quiet)
        first.append(time.perf_counter() - started)
        stack = engine.stack(env, paths, work, project, program(cp.kubeconfig, UPGRADE))
        started = time.perf_counter()
        stack.up(on_output=quiet)
        upgrade.append(time.perf_counter() - started)
        stack.destroy(on_output=quiet)
        stack.workspace.remove_stack(stack.name, force=True)
        delete_nodes(k8s)
        delete_crds(k8s)  # the component retains CRDs on destroy; start every run from scratch
    return statistics.median(first), statistics.median(upgrade)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 30, 100])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    paths = tools.ensure()
    rows: list[tuple[int, tuple[float, float], tuple[float, float]]] = []
    with tempfile.TemporaryDirectory(prefix="calico-oke-bench-") as tmp, ControlPlane(
        paths["etcd"], paths["kube-apiserver"], paths["kube-controller-manager"],
        kube_scheduler=paths["kube-scheduler"], kwok=paths["kwok"],
    ) as cp:
        env = engine.prepare(Path(tmp), paths)
        os.environ.update(env)
        work = Path(tmp) / "work"
        work.mkdir()
        for n in args.nodes:
            c = measure(component, "component", env, paths, cp, work, n, args.repeat)
            g = measure(configgroup, "configgroup", env, paths, cp, work, n, args.repeat)
            rows.append((n, c, g))
    print(f"Calico {FIRST} -> {UPGRADE} {NETWORK}, awaited, median of {args.repeat} run(s) (seconds)")
    print(f"{'nodes':>6}{'component up':>14}{'configgroup up':>16}{'ratio':>7}"
          f"{'component upgrade':>19}{'configgroup upgrade':>21}{'ratio':>7}")
    for n, (cf, cu), (gf, gu) in rows:
        print(f"{n:>6}{cf:>14.1f}{gf:>16.1f}{cf / gf:>7.2f}{cu:>19.1f}{gu:>21.1f}{cu / gu:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
