"""Find or build the pinned binaries the end-to-end suite needs: pulumi, the provider, a control plane, kubectl, kwok."""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Pinned versions. Each is the nearest version the Go module proxy serves to what the
# Python SDKs in requirements.txt ask for (see README, "End-to-end suite").
PULUMI_VERSION = "v3.274.1"
PULUMI_CLIPBOARD_REPLACE = "github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"
PROVIDER_MODULE = "github.com/pulumi/pulumi-kubernetes/provider/v4"
PROVIDER_VERSION = "v4.0.0-20260115033456-f47bc2d6f199"
PROVIDER_SDK_VERSION = "v4.24.0"
KUBERNETES_VERSION = "v1.33.13"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"

#: Built from k8s.io/kubernetes at KUBERNETES_VERSION.
KUBE_TOOLS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
#: What controller-runtime's envtest ships, so KUBEBUILDER_ASSETS can provide them.
ENVTEST_TOOLS = ("kube-apiserver", "kube-controller-manager", "etcd", "kubectl")
TOOL_NAMES = ("pulumi", "pulumi-resource-kubernetes", *KUBE_TOOLS, "etcd", "kwok")


class ToolError(RuntimeError):
    """A tool is missing and could not be built."""


@dataclass(frozen=True)
class Tool:
    """One binary: where to look for it and how to build it."""

    name: str
    version: str

    @property
    def cache_dir(self) -> Path:
        return cache_root() / f"{self.name}-{self.version}"

    @property
    def cached_binary(self) -> Path:
        return self.cache_dir / "bin" / self.name


TOOLS = {
    "pulumi": Tool("pulumi", PULUMI_VERSION),
    "pulumi-resource-kubernetes": Tool("pulumi-resource-kubernetes", PROVIDER_VERSION),
    **{name: Tool(name, KUBERNETES_VERSION) for name in KUBE_TOOLS},
    "etcd": Tool("etcd", ETCD_VERSION),
    "kwok": Tool("kwok", KWOK_VERSION),
}


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


#: Never taken from PATH: the adoption tests exercise kubectl's own apply behaviour, and the kubectl on a
#: PATH is often a cloud SDK's version dispatcher or some other release.
NOT_FROM_PATH = frozenset({"kubectl"})


def find(name: str, *, use_path: bool = True) -> Path | None:
    """Return an existing binary for ``name`` (env var, PATH, then build cache) or None."""
    found = _env_candidate(name)
    if found:
        return found
    if use_path and name not in NOT_FROM_PATH and os.environ.get("CALICO_OKE_E2E_IGNORE_PATH") != "1":
        on_path = shutil.which(name)
        if on_path:
            return Path(on_path)
    cached = TOOLS[name].cached_binary
    if cached.is_file():
        return cached
    return None


def creates_with_client_side_create(provider: Path) -> bool:
    """True for pulumi-kubernetes 4.29+, where a create of an existing object fails unless upsertExistingObjects.

    Probed from the binary itself (the option's config key appears in 4.29), so a provider given
    through CALICO_OKE_E2E_PULUMI_RESOURCE_KUBERNETES or PATH is classified without knowing its version.
    """
    with provider.open("rb") as fh:
        return b"upsertExistingObjects" in fh.read()


def _go() -> str:
    go = shutil.which("go")
    if not go:
        raise ToolError(
            "the Go toolchain is needed to build the e2e tools and is not on PATH; install Go 1.24+ "
            "(e.g. apt-get install golang) or provide the binaries (see README, End-to-end suite)"
        )
    return go


def _run(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> None:
    full_env = dict(os.environ)
    full_env.update({"GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"})
    if env:
        full_env.update(env)
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(cmd)}  (in {cwd})\n")
        fh.flush()
        rc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=full_env).returncode
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise ToolError(f"command failed ({rc}): {' '.join(cmd)}\n--- last lines of {log} ---\n{tail}")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _build_pulumi(work: Path, out_dir: Path, log: Path) -> None:
    go = _go()
    _write(
        work / "go.mod",
        "module calicooke.local/pulumicli\n\ngo 1.24\n\n"
        f"require (\n\tgithub.com/pulumi/pulumi/pkg/v3 {PULUMI_VERSION}\n"
        f"\tgithub.com/pulumi/pulumi/sdk/v3 {PULUMI_VERSION}\n)\n\n"
        f"replace github.com/atotto/clipboard => {PULUMI_CLIPBOARD_REPLACE}\n",
    )
    _run([go, "mod", "download", "github.com/pulumi/pulumi/pkg/v3"], work, log)
    ldflags = f"-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version={PULUMI_VERSION}"
    _run([go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(out_dir / "pulumi"),
          "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"], work, log)


def _build_provider(work: Path, out_dir: Path, log: Path) -> None:
    go = _go()
    _run([go, "mod", "download", f"{PROVIDER_MODULE}@{PROVIDER_VERSION}"], work, log)
    modcache = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    src = Path(modcache) / f"{PROVIDER_MODULE}@{PROVIDER_VERSION}"
    copy = work / "provider"
    shutil.copytree(src, copy)
    for p in copy.rglob("*"):
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    copy.chmod(copy.stat().st_mode | stat.S_IWUSR)
    gomod = copy / "go.mod"
    text = gomod.read_text()
    # The repository points the SDK at a sibling checkout; take the published SDK module instead.
    text = re.sub(
        r"^replace github.com/pulumi/pulumi-kubernetes/sdk/v4 => \.\./sdk$",
        f"replace github.com/pulumi/pulumi-kubernetes/sdk/v4 => github.com/pulumi/pulumi-kubernetes/sdk/v4 {PROVIDER_SDK_VERSION}",
        text,
        flags=re.M,
    )
    gomod.write_text(text)
    cmd_dir = copy / "cmd" / "pulumi-resource-kubernetes"
    plain_version = PROVIDER_VERSION.lstrip("v")
    # main.go embeds schema-embed.json, which upstream generates and does not commit.
    _run([go, "run", "generate.go"], cmd_dir, log, env={"VERSION": plain_version})
    ldflags = f"-s -w -X {PROVIDER_MODULE}/pkg/version.Version={plain_version}"
    _run([go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(out_dir / "pulumi-resource-kubernetes"),
          "./cmd/pulumi-resource-kubernetes"], copy, log)


def _build_kube(work: Path, out_dir: Path, log: Path) -> None:
    """Every KUBE_TOOLS binary in one ``go build``: they share most packages, which are then compiled once."""
    go = _go()
    _run([go, "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"], work, log)
    modcache = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    upstream_mod = (Path(modcache) / "cache" / "download" / "k8s.io" / "kubernetes" / "@v" / f"{KUBERNETES_VERSION}.mod").read_text()
    staging = sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/src/", upstream_mod, flags=re.M)))
    if not staging:
        raise ToolError(f"no staging replaces found in k8s.io/kubernetes {KUBERNETES_VERSION} go.mod")
    minor = KUBERNETES_VERSION.split(".", 1)[1]  # v1.33.13 -> 33.13
    replaces = "\n".join(f"\t{m} => {m} v0.{minor}" for m in staging)
    _write(
        work / "go.mod",
        f"module calicooke.local/kubeapiserver\n\ngo 1.24\n\nrequire k8s.io/kubernetes {KUBERNETES_VERSION}\n\n"
        f"replace (\n{replaces}\n)\n",
    )
    major, mnr, _ = KUBERNETES_VERSION.lstrip("v").split(".")
    stamp = [
        f"-X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}",
        f"-X k8s.io/component-base/version.gitMajor={major}",
        f"-X k8s.io/component-base/version.gitMinor={mnr}",
        "-X k8s.io/component-base/version.gitTreeState=clean",
        f"-X k8s.io/client-go/pkg/version.gitVersion={KUBERNETES_VERSION}",
        f"-X k8s.io/client-go/pkg/version.gitMajor={major}",
        f"-X k8s.io/client-go/pkg/version.gitMinor={mnr}",
    ]
    ldflags = "-s -w " + " ".join(stamp)
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBE_TOOLS]
    _run([go, "build", "-trimpath", "-ldflags", ldflags, "-o", f"{out_dir}{os.sep}", *packages], work, log)


def _build_kwok(work: Path, out_dir: Path, log: Path) -> None:
    go = _go()
    # kwok's go.mod has no replace directives, so the published module installs as is.
    _run([go, "install", "-trimpath", "-ldflags", "-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"], work, log,
         env={"GOBIN": str(out_dir), "GOFLAGS": ""})


def _build_etcd(work: Path, out_dir: Path, log: Path) -> None:
    go = _go()
    _write(
        work / "go.mod",
        f"module calicooke.local/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n",
    )
    _write(
        work / "main.go",
        "// Command etcd runs the etcd server from the pinned etcd server module.\n"
        "package main\n\nimport (\n\t\"os\"\n\n\t\"go.etcd.io/etcd/server/v3/etcdmain\"\n)\n\n"
        "func main() { etcdmain.Main(os.Args) }\n",
    )
    _run([go, "mod", "tidy"], work, log)
    _run([go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out_dir / "etcd"), "."], work, log)


#: One build per group, each writing its binaries into the directory it is given.
GROUPS: dict[str, tuple[tuple[str, ...], Callable[[Path, Path, Path], None]]] = {
    "pulumi": (("pulumi",), _build_pulumi),
    "pulumi-resource-kubernetes": (("pulumi-resource-kubernetes",), _build_provider),
    # kube-controller-manager: the garbage collector (foreground deletes, i.e. pulumi destroy) and, with nodes, the
    # workload controllers; kube-scheduler binds pods to kwok's fake nodes; kubectl installs Calico by hand.
    "kubernetes": (KUBE_TOOLS, _build_kube),
    "etcd": (("etcd",), _build_etcd),
    "kwok": (("kwok",), _build_kwok),
}


def group_of(name: str) -> str:
    return next(group for group, (names, _) in GROUPS.items() if name in names)


def build(group: str) -> dict[str, Path]:
    """Build one group into the cache (each binary moved into place atomically); return its binaries' paths."""
    names, builder = GROUPS[group]
    cache_root().mkdir(parents=True, exist_ok=True)
    version = TOOLS[names[0]].version
    log = cache_root() / f"{group}-{version}.build.log"
    log.write_text(f"building {', '.join(names)} {version}\n")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"build-{group}-", dir=cache_root()) as tmp:
        work = Path(tmp) / "src"
        work.mkdir()
        staged = Path(tmp) / "bin"
        staged.mkdir()
        builder(work, staged, log)
        for name in names:
            tool = TOOLS[name]
            tool.cache_dir.mkdir(parents=True, exist_ok=True)
            final_bin = tool.cache_dir / "bin"
            if not tool.cached_binary.is_file():
                final_bin.mkdir(exist_ok=True)
                os.replace(staged / name, tool.cached_binary)
    print(f"built {', '.join(names)} {version} in {time.monotonic() - started:.0f}s into {cache_root()}", file=sys.stderr)
    return {name: TOOLS[name].cached_binary for name in names}


def ensure(names: tuple[str, ...] = TOOL_NAMES, *, parallel: bool = True) -> dict[str, Path]:
    """Return a path for every tool, building the groups of the missing ones (in parallel by default)."""
    result: dict[str, Path] = {}
    missing: list[str] = []
    for name in names:
        found = find(name)
        if found:
            result[name] = found
        else:
            missing.append(name)
    if missing:
        groups = sorted({group_of(n) for n in missing})
        print(f"building e2e tools into {cache_root()}: {', '.join(missing)}", file=sys.stderr)
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(groups) if parallel else 1) as pool:
            futures = {pool.submit(build, g): g for g in groups}
            errors = []
            for fut in concurrent.futures.as_completed(futures):
                try:
                    built = fut.result()
                except ToolError as exc:
                    errors.append(f"{futures[fut]}: {exc}")
                else:
                    result.update({n: p for n, p in built.items() if n in missing})
            if errors:
                raise ToolError("\n".join(errors))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    ens = sub.add_parser("ensure", help="find or build every tool and print NAME=PATH lines")
    ens.add_argument("--serial", action="store_true", help="build one tool at a time")
    sub.add_parser("versions", help="print the pinned versions")
    args = parser.parse_args(argv)
    if args.cmd == "versions":
        for name in TOOL_NAMES:
            print(f"{name} {TOOLS[name].version}")
        return 0
    started = time.monotonic()
    try:
        paths = ensure(parallel=not args.serial)
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in TOOL_NAMES:
        print(f"{name}={paths[name]}")
    print(f"tools ready in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
