"""How long the policy check adds to `pulumi up` (verifyPolicy) and how long `verify` takes, on a real dataplane node.

One control plane, ``--kwok`` cordoned kwok nodes (never sampled) and one dataplane node
(``calico_component.local.dataplane``); Calico ``--version`` vcn-native installed by the stack program
through the `pulumi` CLI, awaited, with verifyPolicy on. Measured:

- the install's `up`, and the check's own share of it (the duration the engine prints for
  ``calico-policy-check``);
- ``--repeat`` times: a no-op `up` (the check does not run), and `up --replace` of the check (only the
  check runs): the difference is what the check adds to an `up` that changes calico-node;
- ``--repeat`` times: `python -m calico_component verify` on the node.

Run: python benchmarks/policy_check.py [--repeat 3] [--kwok 2] [--version 3.32.0]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calico_component.local import tools
from tests.e2e.enforcement import NETWORK_CONFIG, Enforcement, enforcement_cluster, policy_check_urn, verify

#: The engine's line for the check once it finished, e.g. ``calico-policy-check created (41s)``.
_CHECK_DONE = re.compile(r"calico-policy-check (?:created|updated|created replacement) \((\d+(?:\.\d+)?)s\)")


def _check_seconds(output: str) -> float | None:
    found = _CHECK_DONE.findall(output)
    return float(found[-1]) if found else None


def _timed(fn: object, *args: str) -> tuple[float, str]:
    started = time.monotonic()
    proc = fn(*args)  # type: ignore[operator]
    return time.monotonic() - started, str(proc.stdout)


def _line(label: str, values: list[float]) -> str:
    return (f"{label:<44} median {statistics.median(values):6.1f} s   min {min(values):6.1f}   max {max(values):6.1f}"
            f"   (n={len(values)})")


def _duration(output: str) -> str:
    """The engine's own ``Duration:`` line of an `up`."""
    found = re.findall(r"^Duration: (\S+)", output, re.MULTILINE)
    return found[-1] if found else "n/a"


def measure(e: Enforcement, repeat: int) -> None:
    install = next(out for args, out in e.stack.transcript if args[0] == "up")
    share = _check_seconds(install)
    print(f"install `up` (awaited, check included): {_duration(install)}; the check's share: "
          f"{'n/a' if share is None else f'{share:.0f} s'}")
    urn = policy_check_urn(e)
    no_op, rerun, shares, cli = [], [], [], []
    for _ in range(repeat):
        no_op.append(_timed(e.stack, "up", "--yes", "--skip-preview")[0])
        seconds, out = _timed(e.stack, "up", "--yes", "--skip-preview", "--replace", urn)
        rerun.append(seconds)
        if (share := _check_seconds(out)) is not None:
            shares.append(share)
        started = time.monotonic()
        result = verify(e, e.node.name)
        cli.append(time.monotonic() - started)
        if result.returncode != 0:
            raise RuntimeError(f"verify failed: {result.stderr}")
    print(_line("no-op `up` (no check)", no_op))
    print(_line("`up --replace` of the check", rerun))
    if shares:
        print(_line("  the check's own duration (engine)", shares))
    added = [r - n for r, n in zip(rerun, no_op, strict=True)]
    print(_line("what the check adds to an `up`", added))
    print(_line("`python -m calico_component verify` (1 node)", cli))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kwok", type=int, default=2)
    parser.add_argument("--version", default="3.32.0")
    opts = parser.parse_args()
    paths = tools.ensure((*tools.DEMO_TOOLS, "kubectl", *tools.CALICO_TOOLS))
    config = {"calicoVersion": opts.version, "verifyPolicy": "true", **NETWORK_CONFIG["vcn-native"]}
    with tempfile.TemporaryDirectory(prefix="bench-policy-check-") as root, \
            enforcement_cluster(paths, Path(root), config, kwok_nodes=opts.kwok) as e:
        print(f"Calico {opts.version} vcn-native, 1 dataplane node + {opts.kwok} cordoned kwok nodes, 2-core machine")
        measure(e, opts.repeat)


if __name__ == "__main__":
    main()
