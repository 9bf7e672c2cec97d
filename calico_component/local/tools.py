"""Find or build the pinned binaries of a local cluster and the Pulumi CLI path (the demo and the e2e suite).

Order for each tool: an explicit env var (``CALICO_OKE_E2E_<TOOL>``, or ``KUBEBUILDER_ASSETS`` for
what envtest ships), then PATH (never for kubectl), then the cache, else built into the cache:
from pinned Go modules, or from ``../shared/third-party`` for what the module proxy refuses.
Run ``python -m calico_component.local.tools ensure`` (or ``python tests/e2e/tools.py ensure``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fcntl
import functools
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import gobuild, thirdparty
from .gobuild import (
    ETCD_VERSION,
    KUBE_TOOLS,
    KUBERNETES_VERSION,
    KWOK_VERSION,
    PROVIDER_MODULE,
    PROVIDER_MODULE_VERSION,
    PULUMI_VERSION,
    PULUMI_YAML_VERSION,
    ToolError,
)

__all__ = ["BASE_TOOLS", "CALICO_RELEASES", "CALICO_TOOLS", "DEMO_TOOLS", "SETS", "TOOL_NAMES",
           "Group", "ToolError", "cache_root", "calico_tools",
           "creates_with_client_side_create", "describe", "ensure", "find", "group_of", "groups", "main"]

Builder = Callable[[Path, Path, Path], None]
Progress = Callable[[str], None]

#: What controller-runtime's envtest ships, so KUBEBUILDER_ASSETS can provide them.
ENVTEST_TOOLS = ("kube-apiserver", "kube-controller-manager", "etcd", "kubectl")
LANGUAGE_HOSTS = ("pulumi-language-python", "pulumi-language-nodejs", "pulumi-language-go", "pulumi-language-yaml")


def calico_tools(version: str) -> tuple[str, ...]:
    """The tools of one Calico release: ``calico-felix-<v>``, ``calico-node-<v>`` and the CNI plugin ``calico-cni-<v>``."""
    return tuple(f"{binary}-{version}" for binary in thirdparty.CALICO_BINARIES)


#: Calico releases a node with the real dataplane can run (its calico-node pod's image tag picks one).
CALICO_RELEASES = thirdparty.CALICO_VERSIONS
#: What a node with the real dataplane runs, for every Calico release it can run.
CALICO_TOOLS = tuple(name for version in thirdparty.CALICO_VERSIONS for name in calico_tools(version))
#: What everything but a node with a real dataplane needs: the engine, its hosts and provider, a cluster with kwok nodes.
BASE_TOOLS = ("pulumi", *LANGUAGE_HOSTS, "pulumi-resource-kubernetes", *KUBE_TOOLS, "etcd", "kwok")
TOOL_NAMES = (*BASE_TOOLS, *CALICO_TOOLS)
#: ``ensure --only``: what each part of the suite needs.
SETS = {"all": TOOL_NAMES, "base": BASE_TOOLS, "dataplane": CALICO_TOOLS}
#: What ``python -m calico_component demo`` runs: a cluster with fake nodes and the Python stack program.
DEMO_TOOLS = ("pulumi", "pulumi-language-python", "pulumi-resource-kubernetes", "etcd", "kube-apiserver",
              "kube-controller-manager", "kube-scheduler", "kwok")
#: Never taken from PATH: the adoption tests exercise kubectl's own apply behaviour, and the kubectl on a
#: PATH is often a cloud SDK's version dispatcher or some other release.
NOT_FROM_PATH = frozenset({"kubectl"})


@dataclass(frozen=True)
class Group:
    """Binaries built together from one source into ``<cache>/<name>-<version>/bin``."""

    name: str
    tools: tuple[str, ...]
    version: str
    source: str
    build: Builder = field(compare=False)
    #: Groups built first when both are missing: this build reuses the packages they compiled.
    after: tuple[str, ...] = ()
    #: Minutes a cold build of this group alone took on 2 cores; estimated_minutes() adds the missing ones up.
    minutes: int = 1
    #: Raised when the build or patch steps change what is built, so caches holding the old binaries are not used.
    revision: int = 0

    @property
    def slug(self) -> str:
        """Its folder in the cache: ``<name>-<version>`` (a name that already ends with the version is not repeated),
        then ``-r<revision>`` once the recipe has been revised."""
        base = self.name if self.name.endswith(self.version) else f"{self.name}-{self.version}"
        return f"{base}-r{self.revision}" if self.revision else base

    @property
    def bin_dir(self) -> Path:
        return cache_root() / self.slug / "bin"


def _host_group(folder: str, build: Builder, minutes: int = 1, revision: int = 0) -> Group:
    return Group(folder, (folder,), thirdparty.HOSTS_SOURCE_VERSION,
                 f"../shared/third-party/{folder} ({thirdparty.HOSTS_SOURCE_VERSION}) built against {PULUMI_VERSION}",
                 build, after=("pulumi",), minutes=minutes, revision=revision)


def _provider_group() -> Group:
    """v4.32.0 from ../shared/third-party when it is there, else the newest module the proxy serves."""
    base = thirdparty.root()
    if base is not None and (base / "pulumi-kubernetes-provider").is_dir():
        # Built against the CLI's pkg/sdk but beside it, not after it: of its 916 CPU-seconds with an empty build
        # cache only 46 are the CLI's packages (870 measured after the CLI), less than what a serial tail costs.
        return Group("pulumi-resource-kubernetes", ("pulumi-resource-kubernetes",), thirdparty.PROVIDER_SOURCE_VERSION,
                     f"{base}/pulumi-kubernetes-provider (pulumi-kubernetes {thirdparty.PROVIDER_SOURCE_VERSION})",
                     thirdparty.build_provider, minutes=12)
    return Group("pulumi-resource-kubernetes", ("pulumi-resource-kubernetes",), PROVIDER_MODULE_VERSION,
                 f"{PROVIDER_MODULE} {PROVIDER_MODULE_VERSION} (v4.25.0 plus commits; no ../shared/third-party here)",
                 gobuild.build_provider_module, minutes=12)


def _calico_group(version: str) -> Group:
    """Felix, calico-node and the CNI plugin of one Calico release, from ``<third-party>/calico-<version>``."""
    base = thirdparty.root()
    where = f"{base}/calico-{version}" if base else f"$CALICO_OKE_THIRD_PARTY/calico-{version}"
    return Group(f"calico-{version}", calico_tools(version), version, f"{where} (projectcalico/calico {version})",
                 functools.partial(thirdparty.build_calico, version), minutes=9, revision=thirdparty.CALICO_RECIPE)


def groups() -> dict[str, Group]:
    """Every build group, by name."""
    found = [
        Group("pulumi", ("pulumi",), PULUMI_VERSION, f"github.com/pulumi/pulumi/pkg/v3 {PULUMI_VERSION}",
              gobuild.build_pulumi, minutes=8),
        _host_group("pulumi-language-python", thirdparty.build_python_host, revision=thirdparty.PYTHON_HOST_RECIPE),
        _host_group("pulumi-language-nodejs", thirdparty.build_nodejs_host),
        _host_group("pulumi-language-go", thirdparty.build_go_host),
        Group("pulumi-language-yaml", ("pulumi-language-yaml",), PULUMI_YAML_VERSION,
              f"github.com/pulumi/pulumi-yaml {PULUMI_YAML_VERSION}", gobuild.build_yaml_host, minutes=3),
        _provider_group(),
        # kube-controller-manager: the garbage collector (foreground deletes, i.e. pulumi destroy) and, with nodes,
        # the workload controllers; kube-scheduler binds pods to kwok's fake nodes; kubectl installs Calico by hand.
        Group("kubernetes", KUBE_TOOLS, KUBERNETES_VERSION, f"k8s.io/kubernetes {KUBERNETES_VERSION}",
              gobuild.build_kube, minutes=17),
        Group("etcd", ("etcd",), ETCD_VERSION, f"go.etcd.io/etcd/server/v3 {ETCD_VERSION}", gobuild.build_etcd,
              minutes=4),
        Group("kwok", ("kwok",), KWOK_VERSION, f"sigs.k8s.io/kwok {KWOK_VERSION}", gobuild.build_kwok, minutes=4),
        *(_calico_group(version) for version in thirdparty.CALICO_VERSIONS),
    ]
    return {g.name: g for g in found}


def group_of(name: str) -> Group:
    return next(g for g in groups().values() if name in g.tools)


def cache_root() -> Path:
    """Where built tools live: $CALICO_OKE_E2E_CACHE or ~/.cache/calico-oke-e2e."""
    env = os.environ.get("CALICO_OKE_E2E_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "calico-oke-e2e"


def _env_candidate(name: str) -> Path | None:
    """A binary the user already has: KUBEBUILDER_ASSETS for envtest ones, else an explicit env var."""
    if name in ENVTEST_TOOLS:
        assets = os.environ.get("KUBEBUILDER_ASSETS")
        if assets:
            p = Path(assets) / name
            if p.is_file() and os.access(p, os.X_OK):
                return p
    var = "CALICO_OKE_E2E_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
    explicit = os.environ.get(var)
    if explicit:
        p = Path(explicit)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise ToolError(f"{var}={explicit} is not an executable file; unset it or point it at the {name} binary")
        return p
    return None


def find(name: str, *, use_path: bool = True) -> Path | None:
    """Return an existing binary for ``name`` (env var, PATH, then build cache) or None."""
    found = _env_candidate(name)
    if found:
        return found
    if use_path and name not in NOT_FROM_PATH and os.environ.get("CALICO_OKE_E2E_IGNORE_PATH") != "1":
        on_path = shutil.which(name)
        if on_path:
            return Path(on_path)
    cached = group_of(name).bin_dir / name
    return cached if cached.is_file() else None


def describe(name: str, path: Path, *, with_path: bool = True) -> str:
    """Which binary runs, and where it came from (for test and demo output)."""
    group = group_of(name)
    if path.is_relative_to(group.bin_dir.parent):
        return f"{name} {group.version}: {group.source}" + (f" ({path})" if with_path else "")
    return f"{name}: {path} (from the environment or PATH)"


def creates_with_client_side_create(provider: Path) -> bool:
    """True for pulumi-kubernetes 4.29+, where a create of an existing object fails unless upsertExistingObjects.

    Probed from the binary itself (the option's config key appears in 4.29), so a provider given
    through CALICO_OKE_E2E_PULUMI_RESOURCE_KUBERNETES or PATH is classified without knowing its version.
    """
    with provider.open("rb") as fh:
        return b"upsertExistingObjects" in fh.read()


def build(group: Group) -> dict[str, Path]:
    """Build one group into the cache, unless another process just did; return its binaries' paths.

    A lock file per group makes a second process (a demo beside a test run) wait for the first
    build instead of repeating it.
    """
    cache_root().mkdir(parents=True, exist_ok=True)
    with (cache_root() / f"{group.slug}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = {name: group.bin_dir / name for name in group.tools}
        if all(path.is_file() for path in built.values()):
            return built
        _build_locked(group)
    return built


def _build_locked(group: Group) -> None:
    log = cache_root() / f"{group.slug}.build.log"
    log.write_text(f"building {', '.join(group.tools)} {group.version} from {group.source}\n")
    started = time.monotonic()
    gobuild.reset_cpu()
    with tempfile.TemporaryDirectory(prefix=f"build-{group.name}-", dir=cache_root()) as tmp:
        work = Path(tmp) / "src"
        work.mkdir()
        staged = Path(tmp) / "bin"
        staged.mkdir()
        group.build(work, staged, log)
        missing = [name for name in group.tools if not (staged / name).is_file()]
        if missing:
            raise ToolError(f"the {group.name} build did not produce {', '.join(missing)}; see {log}")
        group.bin_dir.parent.mkdir(parents=True, exist_ok=True)
        if group.bin_dir.exists():  # an interrupted earlier build's leftovers
            shutil.rmtree(group.bin_dir)
        os.replace(staged, group.bin_dir)
    print(f"built {', '.join(group.tools)} {group.version} in {time.monotonic() - started:.0f}s "
          f"({gobuild.cpu_seconds():.0f} CPU-seconds) into {cache_root()}", file=sys.stderr)


def _build_after(group: Group, pending: dict[str, concurrent.futures.Future[dict[str, Path]]]) -> dict[str, Path]:
    for dependency in group.after:
        if dependency in pending:
            pending[dependency].exception()  # wait; its own failure is reported by its own future
    return build(group)


#: Wall-clock minutes of a cold build of every group at once on 2 cores, measured inside `.ci/run` (empty Go module
#: and build caches, mypy and the unit tests sharing the cores): the estimate scales it by the missing groups' share.
COLD_BUILD_ALL_MINUTES = 56


def estimated_minutes(missing: Iterable[Group]) -> int:
    """Minutes a cold build of ``missing`` takes on 2 cores: the builds share the cores, so their costs add up."""
    missing = list(missing)
    total = sum(g.minutes for g in groups().values())
    share = sum(g.minutes for g in missing) / total
    return max(math.ceil(COLD_BUILD_ALL_MINUTES * share), max(g.minutes for g in missing))


def _report(progress: Progress, missing: list[Group]) -> None:
    progress(f"building {', '.join(g.name for g in missing)} into {cache_root()} (once per machine; on 2 cores "
             f"about {estimated_minutes(missing)} minutes with empty Go caches, logs in {cache_root()}/*.build.log)")


def _build_all(missing: list[Group], parallel: bool, progress: Progress) -> dict[str, Path]:
    _report(progress, missing)
    started = time.monotonic()
    result: dict[str, Path] = {}
    errors: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(missing) if parallel else 1) as pool:
        pending: dict[str, concurrent.futures.Future[dict[str, Path]]] = {}
        for group in sorted(missing, key=lambda g: len(g.after)):  # dependencies are submitted first
            pending[group.name] = pool.submit(_build_after, group, pending)
        while not all(f.done() for f in pending.values()):
            concurrent.futures.wait(pending.values(), timeout=30, return_when=concurrent.futures.ALL_COMPLETED)
            running = [n for n, f in pending.items() if not f.done()]
            if running:
                progress(f"still building {', '.join(running)} ({time.monotonic() - started:.0f}s)")
        for name, future in pending.items():
            try:
                result.update(future.result())
            except ToolError as exc:
                errors.append(f"{name}: {exc}")
    if errors:
        raise ToolError("\n".join(errors))
    return result


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure(names: Iterable[str] = TOOL_NAMES, *, parallel: bool = True, progress: Progress = _stderr) -> dict[str, Path]:
    """Return a path for every tool, building the groups of the missing ones (in parallel by default)."""
    names = tuple(names)
    result: dict[str, Path] = {}
    missing: dict[str, Group] = {}
    for name in names:
        found = find(name)
        if found:
            result[name] = found
        else:
            group = group_of(name)
            missing[group.name] = group
    if missing:
        built = _build_all(list(missing.values()), parallel, progress)
        result.update({name: path for name, path in built.items() if name in names and name not in result})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    ens = sub.add_parser("ensure", help="find or build every tool and print NAME=PATH lines")
    ens.add_argument("--serial", action="store_true", help="build one group at a time")
    ens.add_argument("--only", choices=sorted(SETS), default="all",
                     help="base: what all but the dataplane tests need (waits for a build of them already running)")
    sub.add_parser("versions", help="print each tool's pinned version and source")
    args = parser.parse_args(argv)
    if args.cmd == "versions":
        for name in TOOL_NAMES:
            group = group_of(name)
            print(f"{name} {group.version}: {group.source}")
        return 0
    started = time.monotonic()
    try:
        paths = ensure(SETS[args.only], parallel=not args.serial)
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in SETS[args.only]:
        print(f"{name}={paths[name]}")
        print(f"  {describe(name, paths[name])}", file=sys.stderr)
    print(f"tools ready in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
