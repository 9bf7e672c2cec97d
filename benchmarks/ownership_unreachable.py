"""Benchmark: how long the ownership check takes to report an API server on 127.0.0.1 unreachable, for a closed port
and for a server that accepts connections and never answers, over the objects of a real render (3.32.0 vcn-native).

Prints seconds per run and the connections the silent server received. Run: python benchmarks/ownership_unreachable.py
[--repeat N].
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calico_component import FetchOptions
from calico_component.cluster.ownership import check_cluster
from calico_component.errors import ClusterUnreachableError
from calico_component.manifest.parsing import K8sObject
from calico_component.manifest.render import render
from tests.conftest import mirror_path
from tests.fake_kube import closed_port, kubeconfig_for, silent_server


def _timed(server: str, objects: Sequence[K8sObject]) -> float:
    """Seconds until check_cluster reports ``server`` unreachable (anything else is a failure of the benchmark)."""
    started = time.monotonic()
    try:
        check_cluster(kubeconfig_for(server), objects, "organization/bench/dev", adopt_existing=True)
    except ClusterUnreachableError:
        return time.monotonic() - started
    raise SystemExit(f"the check did not report {server} unreachable")


def _report(label: str, seconds: list[float], extra: str = "") -> None:
    print(f"{label:14} median {statistics.median(seconds):6.2f}s  max {max(seconds):6.2f}s  "
          f"runs {len(seconds)}{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    objects = list(render("3.32.0", "vcn-native", "oracle-linux-8",
                          fetch_options=FetchOptions(mirror=str(mirror_path()), offline=True)).objects)
    print(f"objects checked: {len([o for o in objects if o['kind'] != 'CustomResourceDefinition'])} "
          f"(of {len(objects)}; CRDs are not read)")
    _report("closed port", [_timed(closed_port(), objects) for _ in range(repeat)])
    silent: list[float] = []
    connections: list[int] = []
    for _ in range(repeat):
        with silent_server() as (url, count):
            silent.append(_timed(url, objects))
            connections.append(count[0])
    _report("silent server", silent, f"  connections per run {max(connections)}")


if __name__ == "__main__":
    main()
