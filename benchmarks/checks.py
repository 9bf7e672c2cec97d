"""Benchmark: what settling the target cluster and checking it add to a preview, against a reachable API server and
against one that accepts connections and never answers (a broken route to a private endpoint).

On a throwaway control plane (no nodes), with a kubeconfig and an OKE cluster id answered by the OCI stand-in:
- in-process, each step the component takes before its providers get the kubeconfig: the cluster's identity, the
  agreement of cluster_id and kubeconfig (OKE's GetCluster), and the three checks (who manages Calico, another
  network provider, policy the release would stop enforcing), as the component runs them;
- through the CLI, `pulumi preview` of the stack program (Calico 3.32.0 vcn-native, nothing installed yet) against
  the reachable server, and through a proxy turned silent (no refresh: against a silent server the Kubernetes
  provider's refresh fails anyway).
Prints seconds per step (median of --repeat). Run: python benchmarks/checks.py [--repeat N].
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calico_component import FetchOptions
from calico_component.cluster import networks, ownership, retired
from calico_component.cluster.kube import identity
from calico_component.cluster.oci_api import OciSettings
from calico_component.cluster.oke import read_cluster
from calico_component.component.target import OCI_ENDPOINT_ENV, disagreement
from calico_component.errors import ClusterAccessError
from calico_component.local import tools
from calico_component.local.controlplane import ControlPlane
from calico_component.local.program import copy_stack_program
from calico_component.local.workspace import PulumiCli, engine_env
from calico_component.manifest.render import render
from tests.conftest import mirror_path
from tests.e2e.proxy import proxied
from tests.fake_oke import FakeOke, write_oci_config


def _seconds(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    try:
        fn()
    except ClusterAccessError:
        pass  # a silent server: the time it took to say so is the figure
    return time.perf_counter() - started


def _median(fn: Callable[[], object], repeat: int) -> float:
    return statistics.median(_seconds(fn) for _ in range(repeat))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    paths = tools.ensure(("pulumi", "pulumi-language-python", "pulumi-resource-kubernetes", "etcd", "kube-apiserver",
                          "kube-controller-manager"))
    objects = list(render("3.32.0", "vcn-native", "oracle-linux-8",
                          fetch_options=FetchOptions(mirror=str(mirror_path()), offline=True)).objects)
    with tempfile.TemporaryDirectory(prefix="calico-oke-bench-checks-") as tmp, ControlPlane(
            paths["etcd"], paths["kube-apiserver"], paths["kube-controller-manager"]) as cp, \
            proxied(cp.kubeconfig) as (proxy, kubeconfig), FakeOke() as oke:
        root = Path(tmp)
        oke.kubernetes_endpoint = f"127.0.0.1:{proxy.port}"
        oci_config = str(write_oci_config(root))
        settings = OciSettings(config_file=oci_config, endpoint=oke.endpoint)
        steps: dict[str, Callable[[], object]] = {
            "identity (kubeconfig)": lambda: identity(kubeconfig),
            "cluster_id and kubeconfig agree (GetCluster)": lambda: disagreement(
                oke.cluster_id, kubeconfig, read_cluster(settings, oke.cluster_id).endpoints),
            "who manages Calico (33 objects)": lambda: ownership.check_cluster(kubeconfig, objects, "o/p/s", False),
            "another network provider": lambda: networks.check_cluster(kubeconfig),
            "retired policy (3.32.0)": lambda: retired.check_cluster(kubeconfig, "3.32.0"),
        }
        env = {**engine_env(root / "pulumi", paths), OCI_ENDPOINT_ENV: oke.endpoint, "OCI_CONFIG_FILE": oci_config}
        cli = PulumiCli(paths["pulumi"], copy_stack_program(root / "program"), env)
        cli("stack", "init", "bench")
        for key, value in {"calicoVersion": "3.32.0", "networkType": "vcn-native", "nodeOs": "oracle-linux-8",
                           "manifestMirror": str(mirror_path()), "skipAwait": "true"}.items():
            cli("config", "set", key, value)
        cli("config", "set", "--secret", "kubeconfig", stdin=kubeconfig)
        print(f"{'step':48}{'reachable':>12}{'silent':>12}   (seconds, median of {repeat})")
        for label, step in steps.items():
            proxy.silent = False
            reachable = _median(step, repeat)
            proxy.silent = True
            silent = _median(step, repeat)
            print(f"{label:48}{reachable:12.2f}{silent:12.2f}")
        proxy.silent = False
        reachable = _median(lambda: cli("preview", "--refresh=false"), repeat)
        proxy.silent = True
        silent = _median(lambda: cli("preview", "--refresh=false", check=False), repeat)
        print(f"{'pulumi preview of the stack program':48}{reachable:12.2f}{silent:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
