"""Benchmark through the pulumi CLI: the stack program vs a ConfigGroup program vs Oracle's kubectl method.

One control plane with 3 fake nodes (kwok), everything awaited: the repository's stack program
(Pulumi.yaml + __main__.py, the Python language host) and a Python program deploying the same
rendered objects as one ``yaml.v2.ConfigGroup`` with the same provider settings, both run with
``pulumi preview``, ``pulumi up`` and a no-op ``pulumi up``; and the floor a user would otherwise
take, Oracle's page: ``kubectl apply --server-side`` of the same rendered manifest, then
``kubectl rollout status`` of calico-node and every Deployment. State size is the stack's
checkpoint file in the file backend, broken down by field to show where the two programs differ.
Run: python benchmarks/cli.py [--repeat N] [--nodes N].
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calico_component.local import tools
from calico_component.local.controlplane import ControlPlane
from calico_component.local.nodes import add_nodes
from calico_component.local.program import copy_stack_program, current_virtualenv
from calico_component.local.workspace import PulumiCli, backend_dir, engine_env
from tests.conftest import mirror_path
from tests.e2e.cluster import delete_crds
from tests.e2e.conftest import api_client

VERSION, NETWORK, NODE_OS = "3.28.0", "vcn-native", "oracle-linux-8"
CONFIGGROUP_PROGRAM = '''\
"""The same rendered objects as one yaml.v2.ConfigGroup, through a provider with the component's settings."""
import pulumi
import pulumi_kubernetes as k8s

from calico_component import FetchOptions, render
from calico_component.providers import IN_PLACE_SETTINGS

config = pulumi.Config()
rendered = render(config.require("calicoVersion"), config.require("networkType"), config.require("nodeOs"),
                  fetch_options=FetchOptions(mirror=config.require("manifestMirror")))
provider = k8s.Provider("k8s", kubeconfig=config.require_secret("kubeconfig"), **IN_PLACE_SETTINGS)
k8s.yaml.v2.ConfigGroup("calico", objs=list(rendered.objects), opts=pulumi.ResourceOptions(provider=provider))
'''
Timings = dict[str, float]


def configgroup_program(dest: Path) -> Path:
    dest.mkdir(parents=True)
    (dest / "Pulumi.yaml").write_text("name: calico-configgroup\nruntime:\n  name: python\n  options:\n"
                                      "    toolchain: pip\n    virtualenv: .venv\n")
    (dest / "__main__.py").write_text(CONFIGGROUP_PROGRAM)
    (dest / ".venv").symlink_to(current_virtualenv(), target_is_directory=True)
    return dest


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


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


def measure_program(cli: PulumiCli, project: str, stack: str, cp: ControlPlane) -> tuple[Timings, collections.Counter[str]]:
    cli("stack", "init", stack)
    for key, value in {"calicoVersion": VERSION, "networkType": NETWORK, "nodeOs": NODE_OS,
                       "manifestMirror": str(mirror_path())}.items():
        cli("config", "set", key, value)
    cli("config", "set", "--secret", "kubeconfig", stdin=cp.kubeconfig)
    result = {
        "preview": timed(lambda: cli("preview")),
        "up": timed(lambda: cli("up", "--yes", "--skip-preview")),
        "noop_up": timed(lambda: cli("up", "--yes", "--skip-preview")),
    }
    path = state_file(cli, project, stack)
    result["state_bytes"] = path.stat().st_size
    sizes = breakdown(json.loads(path.read_text()))
    cli("destroy", "--yes", "--skip-preview")
    cli("stack", "rm", "--yes", stack)
    delete_crds(api_client(cp))
    return result, sizes


def measure_kubectl(kubectl: Path, cp: ControlPlane, manifest: Path) -> Timings:
    def run(*args: str) -> None:
        subprocess.run([str(kubectl), "--kubeconfig", str(cp.kubeconfig_path), *args], check=True,
                       capture_output=True, timeout=900)

    def install() -> None:
        run("apply", "--server-side", "-f", str(manifest))
        run("rollout", "status", "-n", "kube-system", "daemonset/calico-node", "--timeout=600s")
        run("rollout", "status", "-n", "kube-system", "deployment", "--timeout=600s")

    result = {"up": timed(install), "noop_up": timed(install)}
    run("delete", "--wait=true", "-f", str(manifest))
    delete_crds(api_client(cp))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    paths = tools.ensure((*tools.DEMO_TOOLS, "kubectl"))
    samples: dict[str, list[Timings]] = collections.defaultdict(list)
    sizes: dict[str, collections.Counter[str]] = {}
    with tempfile.TemporaryDirectory(prefix="calico-oke-bench-cli-") as tmp, ControlPlane(
        paths["etcd"], paths["kube-apiserver"], paths["kube-controller-manager"],
        kube_scheduler=paths["kube-scheduler"], kwok=paths["kwok"],
    ) as cp:
        root = Path(tmp)
        add_nodes(api_client(cp), args.nodes)
        env = engine_env(root, paths)
        programs = {
            "component": ("calico-oke", PulumiCli(paths["pulumi"], copy_stack_program(root / "stack-program"), env)),
            "configgroup": ("calico-configgroup", PulumiCli(paths["pulumi"], configgroup_program(root / "cg"), env)),
        }
        manifest = root / "calico.yaml"
        manifest.write_text(subprocess.run(
            [sys.executable, "-m", "calico_component", "render", "--calico-version", VERSION, "--network-type",
             NETWORK, "--node-os", NODE_OS, "--mirror", str(mirror_path())],
            check=True, capture_output=True, text=True).stdout)
        for i in range(args.repeat):
            for name, (project, cli) in programs.items():
                timings, sizes[name] = measure_program(cli, project, f"bench{i}", cp)
                samples[name].append(timings)
            samples["kubectl"].append(measure_kubectl(paths["kubectl"], cp, manifest))
    report(samples, sizes, args)
    return 0


def report(samples: dict[str, list[Timings]], sizes: dict[str, collections.Counter[str]],
           args: argparse.Namespace) -> None:
    med = {name: {k: statistics.median(s[k] for s in runs) for k in runs[0]} for name, runs in samples.items()}
    objects = len([d for d in yaml.safe_load_all((mirror_path() / f"v{VERSION}" / "calico-policy-only.yaml")
                                                 .read_text()) if d])
    print(f"Calico {VERSION} {NETWORK}, {objects} objects, {args.nodes} fake nodes, awaited, through the pulumi CLI; "
          f"median of {args.repeat} (seconds)")
    print(f"{'':14}{'preview':>9}{'first up':>10}{'no-op up':>10}{'state bytes':>13}")
    for name, r in med.items():
        preview = f"{r['preview']:9.1f}" if "preview" in r else f"{'-':>9}"
        state = f"{int(r['state_bytes']):13d}" if "state_bytes" in r else f"{'-':>13}"
        print(f"{name:14}{preview}{r['up']:10.1f}{r['noop_up']:10.1f}{state}")
    c, g, k = med["component"], med["configgroup"], med["kubectl"]
    print(f"{'component/cg':14}{c['preview'] / g['preview']:9.2f}{c['up'] / g['up']:10.2f}"
          f"{c['noop_up'] / g['noop_up']:10.2f}{c['state_bytes'] / g['state_bytes']:13.2f}")
    print(f"{'component/kctl':14}{'':9}{c['up'] / k['up']:10.2f}{c['noop_up'] / k['noop_up']:10.2f}")
    sc, sg = sizes["component"], sizes["configgroup"]
    print("\nstate bytes by field (Kubernetes objects) or by resource type, largest difference first")
    print(f"{'':44}{'component':>11}{'configgroup':>13}{'difference':>12}")
    for key in sorted(sc.keys() | sg.keys(), key=lambda k: -abs(sc[k] - sg[k]))[:10]:
        print(f"{key:44}{sc[key]:>11}{sg[key]:>13}{sc[key] - sg[key]:>+12}")


if __name__ == "__main__":
    sys.exit(main())
