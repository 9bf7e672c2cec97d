"""Benchmark: median render() time per Calico version, cold and warm cache, against a bare yaml.load_all floor.

Run: python benchmarks/render.py [--repeat N]. Manifests come from $CALICO_OKE_TEST_MIRROR or
../shared/calico-manifests (or upstream), served over HTTPS on 127.0.0.1 for the cold runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calico_component import FetchOptions
from calico_component.manifest.parsing import LIBYAML
from calico_component.manifest.releases import MANIFEST_FOR_NETWORK, SUPPORTED_VERSIONS
from calico_component.manifest.render import render
from tests.conftest import mirror_path
from tests.https_server import ManifestServer


def median_ms(fn: Callable[[], object], repeat: int, setup: Callable[[], None] | None = None) -> float:
    if setup:
        setup()
    fn()  # warm-up, untimed
    samples = []
    for _ in range(repeat):
        if setup:
            setup()
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--network-type", default="vcn-native", choices=list(MANIFEST_FOR_NETWORK))
    args = parser.parse_args()
    mirror = mirror_path()
    file = MANIFEST_FOR_NETWORK[args.network_type]
    print(f"libyaml C loader: {LIBYAML}; network type {args.network_type} ({file}); node OS oracle-linux-8; "
          f"median of {args.repeat}")
    print(f"{'version':8} {'KiB':>6} {'floor ms':>9} {'warm ms':>8} {'cold ms':>8} {'warm/floor':>10}")
    ratios = []
    with ManifestServer(mirror) as server, tempfile.TemporaryDirectory() as tmp:
        for version in SUPPORTED_VERSIONS:
            data = (mirror / f"v{version}" / file).read_bytes()
            cache = Path(tmp) / version
            opts = FetchOptions(mirror=server.base_url, cache_dir=cache, ssl_context=server.client_context)

            def run(o: FetchOptions = opts, v: str = version) -> object:
                return render(v, args.network_type, "oracle-linux-8", fetch_options=o)

            def clear(c: Path = cache) -> None:
                for p in c.glob("*.yaml"):
                    p.unlink()

            def parse(d: bytes = data) -> object:
                return list(yaml.load_all(d, Loader=yaml.CSafeLoader))

            floor = median_ms(parse, args.repeat)
            cold = median_ms(run, args.repeat, setup=clear)
            run()  # fill the cache
            warm = median_ms(run, args.repeat)
            ratios.append(warm / floor)
            print(f"{version:8} {len(data) / 1024:6.0f} {floor:9.1f} {warm:8.1f} {cold:8.1f} {warm / floor:10.2f}")
        big = (mirror / "v3.30.0" / file).read_bytes()
        pure = median_ms(lambda: list(yaml.load_all(big, Loader=yaml.SafeLoader)), max(3, args.repeat // 2))
        c_floor = median_ms(lambda: list(yaml.load_all(big, Loader=yaml.CSafeLoader)), args.repeat)
    print(f"warm/floor ratio: median {statistics.median(ratios):.2f}, max {max(ratios):.2f} (target <= 2.0)")
    print(f"v3.30.0 pure-Python SafeLoader {pure:.0f} ms vs CSafeLoader {c_floor:.0f} ms ({pure / c_floor:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
