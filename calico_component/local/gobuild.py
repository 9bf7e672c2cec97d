"""Go build steps for the local tools: the toolchain, logged commands, and the builds from pinned Go modules."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

# Pinned versions. Each is the nearest version the Go module proxy serves to what the
# Python SDKs in requirements.txt ask for (see docs/contributing.md, "End-to-end suite").
PULUMI_VERSION = "v3.274.1"
PULUMI_CLIPBOARD_REPLACE = "github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"
PULUMI_YAML_VERSION = "v1.25.0"
#: Versions pulumi-kubernetes v4.32.0 needs above what pkg v3.274.1 asks for. Required by every build against
#: the CLI's pkg/sdk (CLI, language hosts, provider), they make all of them resolve the same version of
#: everything pulumi's packages import, so Go compiles those packages once and the later builds reuse them.
SHARED_REQUIRES = (
    "github.com/djherbis/times v1.6.0",
    "github.com/jonboulle/clockwork v0.5.0",
    "github.com/moby/term v0.5.2",
    "github.com/santhosh-tekuri/jsonschema/v5 v5.3.1",
)
PROVIDER_MODULE = "github.com/pulumi/pulumi-kubernetes/provider/v4"
#: The newest provider/v4 the proxy serves (v4.25.0 plus commits): the fallback without ../shared/third-party,
#: and the source of the schema.json that the third-party v4.32.0 snapshot lacks.
PROVIDER_MODULE_VERSION = "v4.0.0-20260115033456-f47bc2d6f199"
PROVIDER_SDK_VERSION = "v4.24.0"
#: OKE's newest supported Kubernetes (1.34-1.36 today); the proxy serves v1.36.3.
KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
#: Built from k8s.io/kubernetes at KUBERNETES_VERSION.
KUBE_TOOLS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


class ToolError(RuntimeError):
    """A tool is missing and could not be built."""


def go() -> str:
    found = shutil.which("go")
    if not found:
        raise ToolError(
            "the Go toolchain is needed to build the local tools and is not on PATH; install Go 1.24+ "
            "(https://go.dev/dl/ or apt-get install golang) or provide the binaries (see docs/contributing.md, End-to-end suite)"
        )
    return found


#: CPU seconds of the build commands each thread ran (one group builds on one thread).
_usage = threading.local()


def reset_cpu() -> None:
    """Start counting this thread's build CPU time from zero."""
    _usage.cpu = 0.0


def cpu_seconds() -> float:
    """User + system seconds of the commands this thread ran since reset_cpu(), the compilers and linkers included."""
    return float(getattr(_usage, "cpu", 0.0))


def _wait_counting_cpu(proc: subprocess.Popen[bytes]) -> int:
    """Wait for ``proc``; add its CPU time and that of the processes it waited for (compile, link) to this thread's."""
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    _usage.cpu = cpu_seconds() + usage.ru_utime + usage.ru_stime
    return proc.returncode


def run(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> str:
    """Run one build command, appending its output to ``log``; return its stdout, or fail with the log's tail."""
    full_env = dict(os.environ)
    full_env.update({"GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"})
    if env:
        full_env.update(env)
    with log.open("ab") as fh, tempfile.TemporaryFile() as out:
        fh.write(f"$ {' '.join(cmd)}  (in {cwd})\n".encode())
        fh.flush()
        returncode = _wait_counting_cpu(subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=fh, env=full_env))
        out.seek(0)
        stdout = out.read()
        fh.write(stdout)
    if returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise ToolError(f"command failed ({returncode}): {' '.join(cmd)}\n--- last lines of {log} ---\n{tail}")
    return stdout.decode(errors="replace")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def writable_copy(src: Path, dst: Path) -> Path:
    """Copy a read-only source tree (module cache, ../shared) to ``dst`` and make it writable."""
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dst


def download(module: str, version: str, work: Path, log: Path) -> Path:
    """``go mod download`` one module version; return its directory in the module cache."""
    return Path(json.loads(run([go(), "mod", "download", "-json", f"{module}@{version}"], work, log))["Dir"])


def pulumi_ldflags() -> str:
    return f"-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version={PULUMI_VERSION}"


def pulumi_go_mod(module: str) -> str:
    """A go.mod that builds ``module`` against the pinned CLI's pkg/sdk (so their compiled packages are shared)."""
    requires = [f"github.com/pulumi/pulumi/pkg/v3 {PULUMI_VERSION}", f"github.com/pulumi/pulumi/sdk/v3 {PULUMI_VERSION}",
                *SHARED_REQUIRES]
    lines = "".join(f"\t{r}\n" for r in requires)
    return (f"module {module}\n\ngo 1.24\n\nrequire (\n{lines})\n\n"
            f"replace github.com/atotto/clipboard => {PULUMI_CLIPBOARD_REPLACE}\n")


def build_pulumi(work: Path, out_dir: Path, log: Path) -> None:
    write(work / "go.mod", pulumi_go_mod("calicooke.local/pulumicli"))
    run([go(), "mod", "download", "github.com/pulumi/pulumi/pkg/v3"], work, log)
    run([go(), "build", "-trimpath", "-ldflags", pulumi_ldflags(), "-o", str(out_dir / "pulumi"),
         "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"], work, log)


def build_yaml_host(work: Path, out_dir: Path, log: Path) -> None:
    # pulumi-yaml's go.mod has no replace directives, so the published module installs as is. It pins pkg/sdk
    # v3.206.0, whose API v3.274.1 changed, so it cannot share the CLI's compiled packages.
    run([go(), "install", "-trimpath", "-ldflags", "-s -w",
         f"github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml@{PULUMI_YAML_VERSION}"], work, log,
        env={"GOBIN": str(out_dir), "GOFLAGS": ""})


def schema_generate_and_build(copy: Path, out_dir: Path, log: Path, version: str) -> None:
    """The provider's own build: embed the versioned schema (``go run generate.go``), then ``go build``."""
    cmd_dir = copy / "cmd" / "pulumi-resource-kubernetes"
    run([go(), "run", "generate.go"], cmd_dir, log, env={"VERSION": version})
    ldflags = f"-s -w -X {PROVIDER_MODULE}/pkg/version.Version={version}"
    run([go(), "build", "-trimpath", "-ldflags", ldflags, "-o", str(out_dir / "pulumi-resource-kubernetes"),
         "./cmd/pulumi-resource-kubernetes"], copy, log)


def build_provider_module(work: Path, out_dir: Path, log: Path) -> None:
    """The January 2026 provider from the module proxy (the fallback where ../shared/third-party is absent)."""
    copy = writable_copy(download(PROVIDER_MODULE, PROVIDER_MODULE_VERSION, work, log), work / "provider")
    gomod = copy / "go.mod"
    # The repository points the SDK at a sibling checkout; take the published SDK module instead.
    gomod.write_text(re.sub(
        r"^replace github.com/pulumi/pulumi-kubernetes/sdk/v4 => \.\./sdk$",
        f"replace github.com/pulumi/pulumi-kubernetes/sdk/v4 => github.com/pulumi/pulumi-kubernetes/sdk/v4 {PROVIDER_SDK_VERSION}",
        gomod.read_text(), flags=re.M,
    ))
    schema_generate_and_build(copy, out_dir, log, PROVIDER_MODULE_VERSION.lstrip("v"))


def build_kube(work: Path, out_dir: Path, log: Path) -> None:
    """Every KUBE_TOOLS binary in one ``go build``: they share most packages, which are then compiled once."""
    info = json.loads(run([go(), "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"], work, log))
    upstream_mod = Path(info["GoMod"]).read_text()
    staging = sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/src/", upstream_mod, flags=re.M)))
    if not staging:
        raise ToolError(f"no staging replaces found in k8s.io/kubernetes {KUBERNETES_VERSION} go.mod")
    minor = KUBERNETES_VERSION.split(".", 1)[1]  # v1.33.13 -> 33.13
    replaces = "\n".join(f"\t{m} => {m} v0.{minor}" for m in staging)
    write(
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
    run([go(), "build", "-trimpath", "-ldflags", ldflags, "-o", f"{out_dir}{os.sep}", *packages], work, log)


def build_kwok(work: Path, out_dir: Path, log: Path) -> None:
    # kwok's go.mod has no replace directives, so the published module installs as is.
    run([go(), "install", "-trimpath", "-ldflags", "-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"], work, log,
        env={"GOBIN": str(out_dir), "GOFLAGS": ""})


def build_etcd(work: Path, out_dir: Path, log: Path) -> None:
    write(
        work / "go.mod",
        f"module calicooke.local/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n",
    )
    write(
        work / "main.go",
        "// Command etcd runs the etcd server from the pinned etcd server module.\n"
        "package main\n\nimport (\n\t\"os\"\n\n\t\"go.etcd.io/etcd/server/v3/etcdmain\"\n)\n\n"
        "func main() { etcdmain.Main(os.Args) }\n",
    )
    run([go(), "mod", "tidy"], work, log)
    run([go(), "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out_dir / "etcd"), "."], work, log)
