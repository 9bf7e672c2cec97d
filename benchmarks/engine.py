"""Benchmark: preview / first up / no-op up wall time and state size: Calico component vs yaml.v2.ConfigGroup.

Runs on one throwaway control plane (tests/e2e/controlplane.py) with the pinned tools
(tests/e2e/tools.py builds or finds them). Both deploy the same transformed v3.31.5
vcn-native manifest with skip-await, through providers with the same settings. The state is
also broken down by field, to show where the component's is larger.
Run: python benchmarks/engine.py [--repeat N].
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calico_component import Calico, CalicoArgs, FetchOptions
from calico_component.component.objects import SKIP_AWAIT_ANNOTATION, with_annotations
from calico_component.component.providers import IN_PLACE_SETTINGS
from calico_component.local.controlplane import ControlPlane
from calico_component.manifest.render import render
from tests.conftest import mirror_path
from tests.e2e import engine, tools

VERSION, NETWORK, NODE_OS = "3.31.5", "vcn-native", "oracle-linux-8"


def component_program(kubeconfig: str) -> Callable[[], None]:
    def run() -> None:
        Calico("calico", CalicoArgs(calico_version=VERSION, network_type=NETWORK, node_os=NODE_OS,
                                    kubeconfig=kubeconfig, manifest_mirror=str(mirror_path()), skip_await=True))
    return run


def configgroup_program(kubeconfig: str) -> Callable[[], None]:
    def run() -> None:
        import pulumi
        import pulumi_kubernetes as k8s

        rendered = render(VERSION, NETWORK, NODE_OS, fetch_options=FetchOptions(mirror=str(mirror_path())))
        objs: list[Any] = [with_annotations(o, {SKIP_AWAIT_ANNOTATION: "true"}) for o in rendered.objects]
        settings: dict[str, Any] = dict(IN_PLACE_SETTINGS)  # the same provider settings the component uses
        provider = k8s.Provider("k8s", kubeconfig=kubeconfig, **settings)
        k8s.yaml.v2.ConfigGroup("calico", objs=objs, opts=pulumi.ResourceOptions(provider=provider))
    return run


def delete_crds(kubeconfig: str) -> None:
    from kubernetes import client, config

    api = client.ApiextensionsV1Api(config.new_client_from_config_dict(yaml.safe_load(kubeconfig)))  # type: ignore[no-untyped-call]
    for crd in api.list_custom_resource_definition().items:
        if crd.metadata and crd.metadata.name:
            api.delete_custom_resource_definition(crd.metadata.name)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def state_breakdown(deployment: Mapping[str, Any] | None) -> collections.Counter[str]:
    """JSON bytes of the state by field of the Kubernetes objects, and by type for everything else."""
    sizes: collections.Counter[str] = collections.Counter()
    for resource in (deployment or {}).get("resources", []):
        kind = resource["type"]
        if kind.startswith("kubernetes:") and not kind.startswith("kubernetes:yaml"):
            for key, value in resource.items():
                sizes[f"objects.{key}"] += len(json.dumps(value))
        else:
            sizes[kind] += len(json.dumps(resource))
    return sizes


def measure(label: str, env: dict[str, str], paths: dict[str, Path], cp: ControlPlane, work: Path,
            program: Callable[[], None], repeat: int) -> tuple[dict[str, float], collections.Counter[str]]:
    samples: dict[str, list[float]] = {"preview": [], "up": [], "noop_up": []}
    state_bytes = 0
    breakdown: collections.Counter[str] = collections.Counter()
    def quiet(_: str) -> None:
        pass

    for i in range(repeat):
        stack = engine.stack(env, paths, work, f"bench-{label}-{i}", program)
        samples["preview"].append(timed(partial(stack.preview, on_output=quiet)))
        samples["up"].append(timed(partial(stack.up, on_output=quiet)))
        samples["noop_up"].append(timed(partial(stack.up, on_output=quiet)))
        deployment = stack.export_stack().deployment
        state_bytes = len(json.dumps(deployment).encode())
        breakdown = state_breakdown(deployment)
        stack.destroy(on_output=quiet)
        stack.workspace.remove_stack(stack.name, force=True)
        delete_crds(cp.kubeconfig)  # the component retains CRDs on destroy; start every run from scratch
    result = {k: statistics.median(v) for k, v in samples.items()}
    result["state_bytes"] = state_bytes
    return result, breakdown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    paths = tools.ensure()
    with tempfile.TemporaryDirectory(prefix="calico-oke-bench-") as tmp, \
            ControlPlane(paths["etcd"], paths["kube-apiserver"], paths["kube-controller-manager"]) as cp:
        env = engine.prepare(Path(tmp), paths)
        os.environ.update(env)
        work = Path(tmp) / "work"
        work.mkdir()
        measured = {
            "component": measure("component", env, paths, cp, work, component_program(cp.kubeconfig), args.repeat),
            "configgroup": measure("configgroup", env, paths, cp, work, configgroup_program(cp.kubeconfig),
                                   args.repeat),
        }
    results = {name: r for name, (r, _) in measured.items()}
    print(f"Calico {VERSION} {NETWORK}, 34 objects, median of {args.repeat} runs (seconds)")
    print(f"{'':14}{'preview':>9}{'first up':>10}{'no-op up':>10}{'state bytes':>13}")
    for name, r in results.items():
        print(f"{name:14}{r['preview']:9.1f}{r['up']:10.1f}{r['noop_up']:10.1f}{int(r['state_bytes']):13d}")
    c, g = results["component"], results["configgroup"]
    print(f"{'ratio c/g':14}{c['preview'] / g['preview']:9.2f}{c['up'] / g['up']:10.2f}"
          f"{c['noop_up'] / g['noop_up']:10.2f}{c['state_bytes'] / g['state_bytes']:13.2f}")
    sc, sg = measured["component"][1], measured["configgroup"][1]
    print("\nstate bytes by field (Kubernetes objects) or by resource type, largest difference first")
    print(f"{'':40}{'component':>11}{'configgroup':>13}{'difference':>12}")
    for key in sorted(sc.keys() | sg.keys(), key=lambda k: -abs(sc[k] - sg[k]))[:10]:
        print(f"{key:40}{sc[key]:>11}{sg[key]:>13}{sc[key] - sg[key]:>+12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
