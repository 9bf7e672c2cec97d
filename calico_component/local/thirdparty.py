"""Builds from ../shared/third-party (sources the Go module proxy refuses), each with the small patch it needs.

The sources are unmodified upstream snapshots (see their README). Each build copies one into a
scratch directory, applies the patches listed here (every one says why), writes a go.mod of its
own where the upstream one points at a sibling checkout, and builds into the tool cache. Nothing
of the sources is ever copied into this repository.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from . import gobuild
from .gobuild import ToolError

#: The tag the language-host snapshots come from (pulumi/pulumi), built against gobuild.PULUMI_VERSION.
HOSTS_SOURCE_VERSION = "v3.259.0"
#: The tag of the pulumi-kubernetes provider snapshot.
PROVIDER_SOURCE_VERSION = "v4.32.0"
#: pkg/sdk at the CLI's version instead of v3.243.0 (so the CLI's compiled packages are reused), and a served
#: fluxcd/pkg/ssa instead of the pseudo-version the proxy refuses; both measured to build.
PROVIDER_REQUIRES = (
    f"github.com/pulumi/pulumi/pkg/v3@{gobuild.PULUMI_VERSION}",
    f"github.com/pulumi/pulumi/sdk/v3@{gobuild.PULUMI_VERSION}",
    "github.com/fluxcd/pkg/ssa@v0.72.0",
)
#: What its go.mod's `replace ... => ../sdk` becomes: the SDK module version it requires, as published.
PROVIDER_SDK_REQUIRE = "github.com/pulumi/pulumi-kubernetes/sdk/v4@v4.31.1"
#: Calico releases whose Felix, calico-node and CNI plugin are built from ``calico-<version>`` snapshots (the proxy
#: refuses github.com/projectcalico/calico): what the local dataplane node runs for a calico/node image of that tag.
CALICO_VERSIONS = ("v3.30.3", "v3.31.5", "v3.32.0")
#: Each Calico build's binaries (the tool is ``<binary>-<version>``) and the package it is built from.
CALICO_BINARIES = {
    "calico-felix": "./felix/cmd/calico-felix",
    "calico-node": "./node/cmd/calico-node",
    "calico-cni": "./cni-plugin/cmd/calico",
}


def root() -> Path | None:
    """$CALICO_OKE_THIRD_PARTY, else ``shared/third-party`` beside the checkout; None when neither exists."""
    env = os.environ.get("CALICO_OKE_THIRD_PARTY")
    if env:
        if not Path(env).is_dir():
            raise ToolError(f"CALICO_OKE_THIRD_PARTY={env} is not a directory; unset it or point it at the sources")
        return Path(env)
    beside = Path(__file__).resolve().parents[2].parent / "shared" / "third-party"
    return beside if beside.is_dir() else None


def calico_source(version: str) -> Path:
    """The ``calico-<version>`` snapshot, or a ToolError saying where it comes from."""
    base = root()
    folder = f"calico-{version}"
    if base is None or not (base / folder).is_dir():
        raise ToolError(
            f"Calico {version}'s sources are not at {base or '../shared/third-party'}/{folder}: the local dataplane "
            f"node builds Felix, calico-node and the CNI plugin from them (the Go module proxy refuses "
            f"github.com/projectcalico/calico). Set CALICO_OKE_THIRD_PARTY to a folder holding {folder} (made by "
            "../shared/third-party/snapshot-calico.sh from a projectcalico/calico checkout)"
        )
    return base / folder


def source(folder: str) -> Path:
    """One snapshot folder, or a ToolError saying how to get the tool instead."""
    base = root()
    if base is None or not (base / folder).is_dir():
        raise ToolError(
            f"{folder} is not on PATH and its sources are not at {base or '../shared/third-party'}/{folder}. "
            "A normal Pulumi install ships the language hosts next to the pulumi binary "
            "(https://www.pulumi.com/docs/install/): put that directory on PATH, or set CALICO_OKE_THIRD_PARTY "
            "to a folder holding the sources"
        )
    return base / folder


@dataclass(frozen=True)
class Patch:
    """Insert ``text`` before the one occurrence of ``anchor`` in ``file`` (``anchor=""``: append), or with ``replace``
    put it in the anchor's place."""

    file: str
    anchor: str
    text: str
    why: str
    replace: bool = False

    def apply(self, tree: Path) -> None:
        path = tree / self.file
        content = path.read_text()
        if not self.anchor:
            path.write_text(content + self.text)
            return
        if content.count(self.anchor) != 1:
            raise ToolError(
                f"cannot patch {path}: expected {self.anchor!r} exactly once, found it {content.count(self.anchor)} "
                f"times. The upstream source changed; update the patch in calico_component/local/thirdparty.py "
                f"({self.why})"
            )
        path.write_text(content.replace(self.anchor, self.text if self.replace else self.text + self.anchor))


PYTHON_HOST_PATCHES = (
    Patch("main.go", "\tflag.Parse()\n",
          '\tflag.String("root", "", "the plugin or program root the CLI passes (accepted, unused)")\n'
          '\tflag.String("virtualenv", "", "the plugin\'s runtime option, also in each request (accepted, unused)")\n'
          '\tflag.String("toolchain", "", "the plugin\'s runtime option, also in each request (accepted, unused)")\n'
          '\tflag.String("typechecker", "", "the plugin\'s runtime option, also in each request (accepted, unused)")\n',
          "CLI 3.274.1 passes -root, and a plugin's PulumiPlugin.yaml runtime options as flags (-virtualenv ...), "
          "when it loads a plugin such as a Python component package; v3.259.0 defines none of them and exits with "
          "'flag provided but not defined'"),
)
#: Raised when PYTHON_HOST_PATCHES change, so a cached host built without them is rebuilt.
PYTHON_HOST_RECIPE = 1
PROVIDER_PATCHES = (
    Patch("pkg/gen/schema.go", "pschema.ResourceSpec{\n\t\t\tObjectTypeSpec: pschema.ObjectTypeSpec{\n"
          "\t\t\t\tDescription: \"The provider type for the kubernetes package.\"", "&",
          "pkg v3.274.1's PackageSpec.Provider is a *ResourceSpec (a ResourceSpec in v3.243.0)"),
)
NODEJS_HOST_PATCHES = (
    Patch("proxy.go", "", (
        "\n// ExistsResource is forwarded like every other call (added by calico-oke's build step).\n"
        "func (p *monitorProxy) ExistsResource(\n"
        "\tctx context.Context, req *pulumirpc.ExistsResourceRequest,\n"
        ") (*pulumirpc.ExistsResourceResponse, error) {\n"
        "\treturn p.target.ExistsResource(ctx, req)\n"
        "}\n"),
          "SDK v3.274.1's ResourceMonitorServer has ExistsResource, which the v3.259.0 proxy lacks"),
)

#: The Calico build recipe's revision (the tool cache folder ends with it): 2 since CALICO_PATCHES.
CALICO_RECIPE = 2
CALICO_PATCHES = (
    Patch("felix/bpf/libbpf/libbpf_stub.go",
          'func OpenObject(filename string) (*Obj, error) {\n\tpanic("LIBBPF syscall stub")\n}\n',
          "func OpenObject(filename string) (*Obj, error) {\n\treturn nil, objectNotLoaded(filename)\n}\n\n"
          "// objectNotLoaded is what OpenObject returns without libbpf (added by calico-oke's build step).\n"
          "type objectNotLoaded string\n\n"
          "func (f objectNotLoaded) Error() string {\n"
          '\treturn "BPF object " + string(f) + " not opened: built without libbpf (CGO_ENABLED=0)"\n}\n',
          "from 3.31, Felix's start-up in iptables mode removes any leftover connect-time load balancer, which opens a "
          "BPF object file through libbpf; without cgo the stub panicked there. An error instead is what libbpf gives "
          "on a node without that file, and Felix logs it and goes on ('Failed to remove BPF connect-time load "
          "balancer, ignoring')",
          replace=True),
    Patch("node/cmd/calico-node/main.go", "",
          "\n// A goroutine that only sleeps, so that a command waiting for good (as -allocate-tunnel-addrs does with\n"
          "// USE_POD_CIDR) is not declared deadlocked (added by calico-oke's build step).\n"
          "func init() {\n\tgo func() {\n\t\tfor {\n\t\t\ttime.Sleep(time.Hour)\n\t\t}\n\t}()\n}\n",
          "the image's calico-node is built with cgo, where Go's runtime never declares a deadlock; from 3.31, "
          "-allocate-tunnel-addrs with USE_POD_CIDR=true (calico-policy-only.yaml) blocks on a channel that never "
          "closes, which the CGO_ENABLED=0 build reports as 'all goroutines are asleep - deadlock!' and exits"),
)


def _module_path(gomod: Path) -> str:
    match = re.search(r"^module\s+(\S+)", gomod.read_text(), flags=re.M)
    if not match:
        raise ToolError(f"no module line in {gomod}")
    return match.group(1)


def _build_host(folder: str, binary: str, patches: tuple[Patch, ...], work: Path, out_dir: Path, log: Path) -> Path:
    """Copy, patch and build one language host with a go.mod of its own against the pinned CLI's pkg/sdk.

    The upstream go.mod replaces pkg/sdk with relative paths into a pulumi checkout; keeping its
    module path (its own packages import it) with pkg/sdk at the CLI's version instead lets the
    build reuse what the CLI's build compiled.
    """
    tree = gobuild.writable_copy(source(folder), work / folder)
    for patch in patches:
        patch.apply(tree)
    (tree / "go.mod").write_text(gobuild.pulumi_go_mod(_module_path(tree / "go.mod")))
    (tree / "go.sum").unlink(missing_ok=True)
    gobuild.run([gobuild.go(), "mod", "tidy"], tree, log)
    gobuild.run([gobuild.go(), "build", "-trimpath", "-ldflags", gobuild.pulumi_ldflags(), "-o",
                 str(out_dir / binary), "."], tree, log)
    return tree


def _copy_script(src: Path, out_dir: Path) -> None:
    target = out_dir / src.name
    shutil.copyfile(src, target)
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def build_python_host(work: Path, out_dir: Path, log: Path) -> None:
    """pulumi-language-python, plus the two scripts a Pulumi install ships beside it (the program executor and
    the dynamic-provider plugin)."""
    tree = _build_host("pulumi-language-python", "pulumi-language-python", PYTHON_HOST_PATCHES, work, out_dir, log)
    for script in ("pulumi-language-python-exec", "pulumi-resource-pulumi-python"):
        _copy_script(tree / script, out_dir)


def build_nodejs_host(work: Path, out_dir: Path, log: Path) -> None:
    _build_host("pulumi-language-nodejs", "pulumi-language-nodejs", NODEJS_HOST_PATCHES, work, out_dir, log)


def build_go_host(work: Path, out_dir: Path, log: Path) -> None:
    _build_host("pulumi-language-go", "pulumi-language-go", (), work, out_dir, log)


def build_provider(work: Path, out_dir: Path, log: Path) -> None:
    """pulumi-resource-kubernetes v4.32.0 from the snapshot of its provider/ folder.

    Substitutions, each measured to build: the SDK module it replaces with ``../sdk`` comes from
    the proxy at the version it requires; pkg/sdk move to the CLI's version (one patch for an API
    change) and fluxcd/pkg/ssa to a served one; gobuild.SHARED_REQUIRES line it up with the CLI;
    ``schema.json``, too large for the snapshot, comes from the proxy's January module (the
    provider uses it only to answer GetSchema and for imports).
    """
    tree = gobuild.writable_copy(source("pulumi-kubernetes-provider"), work / "provider")
    for patch in PROVIDER_PATCHES:
        patch.apply(tree)
    go = gobuild.go()
    edits = ["-dropreplace", "github.com/pulumi/pulumi-kubernetes/sdk/v4", "-require", PROVIDER_SDK_REQUIRE]
    for require in (*PROVIDER_REQUIRES, *(r.replace(" ", "@") for r in gobuild.SHARED_REQUIRES)):
        edits += ["-require", require]
    gobuild.run([go, "mod", "edit", *edits], tree, log)
    january = gobuild.download(gobuild.PROVIDER_MODULE, gobuild.PROVIDER_MODULE_VERSION, work, log)
    schema = "cmd/pulumi-resource-kubernetes/schema.json"
    shutil.copyfile(january / schema, tree / schema)
    gobuild.schema_generate_and_build(tree, out_dir, log, PROVIDER_SOURCE_VERSION.lstrip("v"))



def calico_ldflags(version: str) -> str:
    """Version stamps as Calico's Makefiles set them: startup writes it into ClusterInformation, Felix logs it."""
    project = "github.com/projectcalico/calico"
    stamps = [f"{project}/node/pkg/lifecycle/startup.VERSION={version}", f"{project}/node/buildinfo.GitVersion={version}",
              f"{project}/felix/buildinfo.GitVersion={version}", f"main.VERSION={version}"]
    return "-s -w " + " ".join(f"-X {stamp}" for stamp in stamps)


#: The line of a snapshot's ``SNAPSHOT`` file that lists the ``go mod edit -replace`` arguments its build needs.
SNAPSHOT_REPLACES = "listed with replaces:"


def snapshot_replaces(snapshot: Path) -> tuple[str, ...]:
    """The replaces a Calico snapshot declares (``old=new@version`` each); none when it lists none or has no file.

    3.31.5's go.mod asks for k8s.io modules at versions the proxy refuses; its snapshot names the served ones
    (and the knftables version its Felix compiles against). The go.mod stays upstream's; the build applies these.
    """
    if not snapshot.is_file():
        return ()
    for line in snapshot.read_text().splitlines():
        if line.startswith(SNAPSHOT_REPLACES):
            replaces = tuple(r for r in line[len(SNAPSHOT_REPLACES):].split() if r != "none")
            malformed = [r for r in replaces if not re.fullmatch(r"[^=@\s]+=[^=@\s]+@[^=@\s]+", r)]
            if malformed:
                raise ToolError(f"{snapshot}: replaces must read module=module@version, not {', '.join(malformed)}")
            return replaces
    return ()


def build_calico(version: str, work: Path, out_dir: Path, log: Path) -> None:
    """calico-felix, calico-node and the CNI plugin ``calico`` of one release, in one ``go build``, with CALICO_PATCHES.

    CGO_ENABLED=0 (gobuild.run): Felix's libbpf code is replaced by its ``!cgo`` stubs, which drops only the eBPF
    dataplane; the iptables/nftables dataplane OKE's manifests use is complete. The snapshot's go.mod resolves
    ``github.com/projectcalico/api`` to its own ``./api``; every other module comes from the proxy.
    """
    tree = gobuild.writable_copy(calico_source(version), work / "calico")
    for patch in CALICO_PATCHES:
        patch.apply(tree)
    replaces = snapshot_replaces(tree / "SNAPSHOT")
    if replaces:
        gobuild.run([gobuild.go(), "mod", "edit", *(f"-replace={r}" for r in replaces)], tree, log)
    built = work / "out"
    built.mkdir()
    gobuild.run([gobuild.go(), "build", "-trimpath", "-ldflags", calico_ldflags(version), "-o", f"{built}{os.sep}",
                 *CALICO_BINARIES.values()], tree, log)
    for binary, package in CALICO_BINARIES.items():
        shutil.move(built / Path(package).name, out_dir / f"{binary}-{version}")
