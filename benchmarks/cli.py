"""Benchmark through the pulumi CLI: the stack program against the floor a user would otherwise take (kubectl).

For each size (fake kwok nodes, default 3 and 100), everything awaited: the repository's stack program
(Pulumi.yaml + __main__.py, the Python language host) with ``pulumi up`` (first install of 3.31.5), a
no-op ``pulumi up`` (the engine's own fixed cost) and the upgrade to 3.32.0; and Oracle's page with
kubectl: ``kubectl apply --server-side`` of the same rendered manifest, then ``kubectl rollout status``
of calico-node and every Deployment, for the same three steps. The figure the component is judged by
is the marginal cost over kubectl: (up - no-op up) / kubectl, for the first install and the upgrade:

    marginal/kubectl nodes=<N> first-up=<ratio> upgrade=<ratio>

Where a ratio is above 1.5 the slowest resources of that `up` are listed from the engine's event log
(the time from each step's start to its outputs). ``--configgroup`` also measures a Python program
deploying the same objects as one ``yaml.v2.ConfigGroup`` (preview, up, no-op up and state size by
field) and prints the stack program's no-op preview and `up` beside it (the engine's floor for those
objects: goal 1.3x). ``--release REF`` also measures the stack program of an older commit of this
repository (its own virtualenv), in the same run: before and after, on one machine.
Run: python benchmarks/cli.py [--repeat N] [--nodes 3,100] [--configgroup] [--release 6237a7b].
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calico_component.local import tools
from calico_component.local.controlplane import ControlPlane
from calico_component.local.nodes import add_nodes, delete_nodes
from calico_component.local.program import PROGRAM_FILES, copy_stack_program, current_virtualenv, repo_root
from calico_component.local.workspace import PulumiCli, backend_dir, engine_env
from tests.conftest import mirror_path
from tests.e2e.cluster import delete_crds
from tests.e2e.conftest import api_client
from tests.e2e.release import install_release

VERSION, TARGET, NETWORK, NODE_OS = "3.31.5", "3.32.0", "vcn-native", "oracle-linux-8"
GOAL = 1.5
#: The stack program's no-op preview and up, at most this much of the same objects' ConfigGroup program's.
FLOOR_GOAL = 1.3
CONFIGGROUP_PROGRAM = '''\
"""The same rendered objects as one yaml.v2.ConfigGroup, through a provider with the component's settings."""
import pulumi
import pulumi_kubernetes as k8s

from calico_component import FetchOptions
from calico_component.manifest.render import render
from calico_component.component.providers import IN_PLACE_SETTINGS

config = pulumi.Config()
rendered = render(config.require("calicoVersion"), config.require("networkType"), config.require("nodeOs"),
                  fetch_options=FetchOptions(mirror=config.require("manifestMirror")))
provider = k8s.Provider("k8s", kubeconfig=config.require_secret("kubeconfig"), **IN_PLACE_SETTINGS)
k8s.yaml.v2.ConfigGroup("calico", objs=list(rendered.objects), opts=pulumi.ResourceOptions(provider=provider))
'''
Timings = dict[str, float]


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def configgroup_program(dest: Path) -> Path:
    dest.mkdir(parents=True)
    (dest / "Pulumi.yaml").write_text("name: calico-configgroup\nruntime:\n  name: python\n  options:\n"
                                      "    toolchain: pip\n    virtualenv: .venv\n")
    (dest / "__main__.py").write_text(CONFIGGROUP_PROGRAM)
    (dest / ".venv").symlink_to(current_virtualenv(), target_is_directory=True)
    return dest


def state_file(cli: PulumiCli, project: str, stack: str) -> Path:
    return backend_dir(cli.env) / ".pulumi" / "stacks" / project / f"{stack}.json"


def breakdown(state: dict[str, Any]) -> collections.Counter[str]:
    """JSON bytes of the checkpoint by field of the Kubernetes objects, and by type for everything else."""
    sizes: collections.Counter[str] = collections.Counter()
    for resource in state["checkpoint"]["latest"].get("resources", []):
        kind = resource["type"]
        if kind.startswith("kubernetes:") and not kind.startswith(("kubernetes:yaml", "pulumi:providers")):
            for key, value in resource.items():
                sizes[f"objects.{key}"] += len(json.dumps(value))
        else:
            sizes[kind] += len(json.dumps(resource))
    return sizes


class EventClock:
    """Reads a `pulumi up --event-log` file while the engine writes it and stamps each event on arrival (the log's
    own timestamps are whole seconds): per-step and per-phase times at about 20 ms."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> EventClock:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.ended = time.perf_counter()
        self._stop.set()
        self._thread.join()

    def _follow(self) -> None:
        offset, pending = 0, ""
        while True:
            stopping = self._stop.is_set()
            if self.path.exists():
                with self.path.open() as fh:
                    fh.seek(offset)
                    pending += fh.read()
                    offset = fh.tell()
                *lines, pending = pending.split("\n")
                now = time.perf_counter() - self.started
                self.events += [(now, json.loads(line)) for line in lines if line.strip()]
            if stopping:
                return
            time.sleep(0.02)

    def steps(self) -> list[tuple[float, float, str, str]]:
        """(start, end, op, resource name) of every step, in seconds from the command's start."""
        begun: dict[str, tuple[float, str]] = {}
        found = []
        for at, event in self.events:
            if "resourcePreEvent" in event:
                meta = event["resourcePreEvent"]["metadata"]
                begun[meta["urn"]] = (at, meta["op"])
            elif "resOutputsEvent" in event and event["resOutputsEvent"]["metadata"]["urn"] in begun:
                urn = event["resOutputsEvent"]["metadata"]["urn"]
                start, op = begun.pop(urn)
                found.append((start, at, op, urn.rsplit("::", 1)[-1]))
        return found

    def phases(self) -> list[tuple[str, float]]:
        """Where the command's time went: before the first step, then each group of steps, then after the last."""
        steps = [s for s in self.steps() if s[2] != "same"]
        if not steps:
            return []

        def span(match: Callable[[str], bool]) -> tuple[float, float] | None:
            chosen = [s for s in steps if match(s[3])]
            return (min(s[0] for s in chosen), max(s[1] for s in chosen)) if chosen else None

        groups = {"providers": lambda n: n in ("calico-k8s", "calico-k8s-crds"),
                  "CRDs": lambda n: "customresourcedefinition" in n,
                  "other objects": lambda n: n.startswith("calico-") and not any(
                      k in n for k in ("customresourcedefinition", "daemonset", "deployment", "k8s")),
                  "workloads (awaited)": lambda n: "daemonset" in n or "deployment" in n}
        result = [("engine and program start", min(s[0] for s in steps))]
        for label, match in groups.items():
            found = span(match)
            if found:
                result.append((f"{label} ({found[0]:.1f}-{found[1]:.1f}s)", found[1] - found[0]))
        result.append(("after the last step", (self.ended - self.started) - max(s[1] for s in steps)))
        return result


def up(cli: PulumiCli, log: Path, clocks: dict[str, EventClock], label: str) -> float:
    with EventClock(log) as clock:
        seconds = timed(lambda: cli("up", "--yes", "--skip-preview", "--event-log", str(log)))
    clocks[label] = clock
    return seconds


def measure_component(cli: PulumiCli, stack: str, cp: ControlPlane, logs: Path,
                      clocks: dict[str, EventClock]) -> Timings:
    """First up, no-op up and the upgrade of the stack program, awaited; the stack is destroyed afterwards."""
    cli("stack", "init", stack)
    for key, value in {"calicoVersion": VERSION, "networkType": NETWORK, "nodeOs": NODE_OS,
                       "manifestMirror": str(mirror_path())}.items():
        cli("config", "set", key, value)
    cli("config", "set", "--secret", "kubeconfig", stdin=cp.kubeconfig)
    result = {"first": up(cli, logs / f"{stack}-first.json", clocks, "first"),
              "preview": timed(lambda: cli("preview")),
              "noop": up(cli, logs / f"{stack}-noop.json", clocks, "noop")}
    cli("config", "set", "calicoVersion", TARGET)
    result["upgrade"] = up(cli, logs / f"{stack}-upgrade.json", clocks, "upgrade")
    cli("destroy", "--yes", "--skip-preview")
    cli("stack", "rm", "--yes", stack)
    delete_crds(api_client(cp))
    return result


def measure_kubectl(kubectl: Path, cp: ControlPlane, manifests: dict[str, Path]) -> Timings:
    def run(*args: str) -> None:
        subprocess.run([str(kubectl), "--kubeconfig", str(cp.kubeconfig_path), *args], check=True,
                       capture_output=True, timeout=900)

    def install(version: str) -> None:
        run("apply", "--server-side", "--force-conflicts", "-f", str(manifests[version]))
        run("rollout", "status", "-n", "kube-system", "daemonset/calico-node", "--timeout=600s")
        run("rollout", "status", "-n", "kube-system", "deployment", "--timeout=600s")

    result = {"first": timed(lambda: install(VERSION)), "noop": timed(lambda: install(VERSION)),
              "upgrade": timed(lambda: install(TARGET))}
    run("delete", "--wait=true", "--ignore-not-found", "-f", str(manifests[VERSION]), "-f", str(manifests[TARGET]))
    delete_crds(api_client(cp))
    return result


def measure_configgroup(cli: PulumiCli, stack: str, cp: ControlPlane) -> tuple[Timings, collections.Counter[str]]:
    cli("stack", "init", stack)
    for key, value in {"calicoVersion": VERSION, "networkType": NETWORK, "nodeOs": NODE_OS,
                       "manifestMirror": str(mirror_path())}.items():
        cli("config", "set", key, value)
    cli("config", "set", "--secret", "kubeconfig", stdin=cp.kubeconfig)
    result = {"first": timed(lambda: cli("up", "--yes", "--skip-preview")), "preview": timed(lambda: cli("preview")),
              "noop": timed(lambda: cli("up", "--yes", "--skip-preview"))}
    path = state_file(cli, "calico-configgroup", stack)
    result["state_bytes"] = path.stat().st_size
    sizes = breakdown(json.loads(path.read_text()))
    cli("destroy", "--yes", "--skip-preview")
    cli("stack", "rm", "--yes", stack)
    delete_crds(api_client(cp))
    return result, sizes


def render_manifest(version: str, dest: Path) -> Path:
    dest.write_text(subprocess.run(
        [sys.executable, "-m", "calico_component", "render", "--calico-version", version, "--network-type", NETWORK,
         "--node-os", NODE_OS, "--mirror", str(mirror_path())], check=True, capture_output=True, text=True).stdout)
    return dest


def median(runs: list[Timings]) -> Timings:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nodes", default="3,100", help="comma-separated node counts (default 3,100)")
    parser.add_argument("--configgroup", action="store_true", help="also measure a yaml.v2.ConfigGroup program")
    parser.add_argument("--release", metavar="REF", help="also measure the stack program of this older commit")
    args = parser.parse_args()
    paths = tools.ensure((*tools.DEMO_TOOLS, "kubectl"))
    with tempfile.TemporaryDirectory(prefix="calico-oke-bench-cli-") as tmp, ControlPlane(
        paths["etcd"], paths["kube-apiserver"], paths["kube-controller-manager"],
        kube_scheduler=paths["kube-scheduler"], kwok=paths["kwok"],
    ) as cp:
        root = Path(tmp)
        logs = root / "event-logs"
        logs.mkdir()
        env = {**engine_env(root, paths), "PULUMI_DEBUG_COMMANDS": "true"}  # exposes `up --event-log`
        component = PulumiCli(paths["pulumi"], copy_stack_program(root / "stack-program"), env)
        programs = {"stack program": component}
        if args.release:
            source, venv = install_release(args.release, root / "release", repo_root())
            release = copy_stack_program(root / "release-program", venv)
            for name in PROGRAM_FILES:
                (release / name).write_text((source / name).read_text())
            programs[f"stack program at {args.release}"] = PulumiCli(paths["pulumi"], release, env)
        manifests = {v: render_manifest(v, root / f"calico-{v}.yaml") for v in (VERSION, TARGET)}
        for nodes in (int(n) for n in args.nodes.split(",")):
            k8s = api_client(cp)
            add_nodes(k8s, nodes)
            runs: dict[str, list[Timings]] = collections.defaultdict(list)
            clocks: dict[str, dict[str, EventClock]] = collections.defaultdict(dict)
            cg_runs: list[Timings] = []
            sizes: collections.Counter[str] = collections.Counter()
            for i in range(args.repeat):
                for label, cli in programs.items():
                    runs[label].append(measure_component(cli, f"n{nodes}-{i}", cp, logs, clocks[label]))
                runs["kubectl"].append(measure_kubectl(paths["kubectl"], cp, manifests))
                if args.configgroup:
                    cg = PulumiCli(paths["pulumi"], configgroup_program(root / f"cg-{nodes}-{i}"), env)
                    timings, sizes = measure_configgroup(cg, f"cg{nodes}-{i}", cp)
                    cg_runs.append(timings)
            medians = {name: median(r) for name, r in runs.items()}
            for label in programs:
                report(nodes, label, medians[label], medians["kubectl"], clocks[label], args.repeat)
            if cg_runs:
                report_configgroup(median(cg_runs), sizes, {label: medians[label] for label in programs})
            delete_nodes(k8s)
    return 0


def report(nodes: int, label: str, c: Timings, k: Timings, clocks: dict[str, EventClock], repeat: int) -> None:
    print(f"\n{label}: Calico {VERSION} -> {TARGET} {NETWORK}, {nodes} fake nodes, awaited, through the pulumi CLI; "
          f"median of {repeat} (seconds)")
    print(f"{'':16}{'first up':>10}{'preview':>10}{'no-op up':>10}{'upgrade':>10}")
    print(f"{'program':16}{c['first']:10.1f}{c['preview']:10.1f}{c['noop']:10.1f}{c['upgrade']:10.1f}")
    print(f"{'kubectl':16}{k['first']:10.1f}{'':>10}{k['noop']:10.1f}{k['upgrade']:10.1f}")
    first = (c["first"] - c["noop"]) / k["first"]
    upgrade = (c["upgrade"] - c["noop"]) / k["upgrade"]
    print(f"marginal/kubectl nodes={nodes} first-up={first:.2f} upgrade={upgrade:.2f}")
    for what, ratio, clock in (("first up", first, clocks["first"]), ("upgrade", upgrade, clocks["upgrade"])):
        if ratio > GOAL:
            print(f"  above {GOAL} for the {what}; where its time went (the last run, events stamped on arrival):")
            for phase, seconds in clock.phases():
                print(f"    {seconds:6.2f}s  {phase}")
            slowest = sorted(clock.steps(), key=lambda s: s[0] - s[1])[:4]
            print("    slowest steps: " + "; ".join(f"{name} {end - start:.2f}s" for start, end, _, name in slowest))
    noop = clocks["noop"].phases() or [("engine and program start", 0.0)]
    print(f"  no-op up: {noop[0][1]:.2f}s before its first step (refresh included)")


def report_configgroup(cg: Timings, sizes: collections.Counter[str], programs: dict[str, Timings]) -> None:
    print(f"\nyaml.v2.ConfigGroup program (the same objects, one provider): preview {cg['preview']:.1f}s, first up "
          f"{cg['first']:.1f}s, no-op up {cg['noop']:.1f}s, state {int(cg['state_bytes'])} bytes")
    for key, size in sizes.most_common(5):
        print(f"  {key:44}{size:>11}")
    for label, c in programs.items():
        print(f"{label} / ConfigGroup: no-op preview {c['preview'] / cg['preview']:.2f}, no-op up "
              f"{c['noop'] / cg['noop']:.2f} (goal {FLOOR_GOAL})")


if __name__ == "__main__":
    sys.exit(main())
