"""Command line: ``python -m calico_component render|mirror|versions|status|verify|demo``, thin wrappers over the library."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from .errors import CalicoError, ConfigurationError
from .manifest.fetch import FetchOptions
from .manifest.images import registry_warning, validate_registry
from .manifest.mirror import manifest_images, mirror
from .manifest.releases import (
    KUBERNETES_COLUMNS,
    KUBERNETES_MINORS,
    NETWORK_TYPES,
    NODE_OSES,
    RELEASES,
    SUPPORTED_VERSIONS,
    normalize_version,
    version_table,
)
from .manifest.render import render

EXIT_ERROR = 1
EXIT_USAGE = 2
#: 128 + SIGPIPE: what a shell tool returns when its reader went away (`calico-oke versions | head -3`).
EXIT_SIGPIPE = 141

#: The names the library's input validation gives a value (CalicoArgs fields, wherever a message names them), and the
#: flag a CLI user gave it with: a refused value is reported by its flag.
FIELD_FLAGS: dict[str, str] = {
    "calico_version": "--calico-version",
    "manifest_sha256": "--sha256",
    "image_registry": "--image-registry",
    "pod_cidr": "--pod-cidr",
    "typha_replicas": "--typha-replicas",
    "calico_node_max_unavailable": "--calico-node-max-unavailable",
}
#: The words some validators start their message with instead of a field name, and the flag they mean.
LEADING_FLAGS: dict[str, str] = {
    "Calico": "--calico-version",  # an unlisted release: "Calico 3.31.0 is not in Oracle's tested table ..."
    "SHA-256 digest": "--sha256",
    "image registry": "--image-registry",
    "pod CIDR": "--pod-cidr",
    "mirror": "--mirror",
    "manifest": "--manifest",
}
_FIELD_RE = re.compile(r"(?<![\w-])(" + "|".join(FIELD_FLAGS) + r")(?!\w)")
_LEADING_RE = re.compile(r"^(" + "|".join(map(re.escape, LEADING_FLAGS)) + r") ")
#: ``(--sha256 / manifest_sha256)``, ``(typha='on' / --typha)``: a flag and the component's spelling, for both audiences.
_ALTERNATIVES_RE = re.compile(r"\((--[a-z0-9-]+) / [^()]*\)|\([^()]* / (--[a-z0-9-]+)\)")


def flag_message(message: str) -> str:
    """A validation message of the library as a CLI user needs it: each value named by its flag, not by the field."""
    text = _LEADING_RE.sub(lambda m: LEADING_FLAGS[m[1]] + " ", message)
    text = _FIELD_RE.sub(lambda m: FIELD_FLAGS[m[1]], text)
    return _ALTERNATIVES_RE.sub(lambda m: f"({m[1] or m[2]})", text)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one ``error:`` line on stderr (the CLI's error contract)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


class _Version(argparse.Action):
    """``--version``: ``calico-oke <version>`` from the installed distribution, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print calico-oke's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> NoReturn:
        from .steps.types import package_version

        sys.stdout.write(f"calico-oke {package_version()}\n")
        parser.exit(0)


class _Progress:
    """Download progress on stderr, only when stderr is a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False

    def __call__(self, received: int, total: int | None) -> None:
        if total:
            text = f"\rdownloading manifest: {received // 1024} / {total // 1024} KiB ({100 * received // total}%)"
        else:
            text = f"\rdownloading manifest: {received // 1024} KiB"
        self.stream.write(text)
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


# --- argument types: each refuses a bad value before anything is imported, read or started ------------------------


def _optional_path(text: str) -> str | None:
    """A path or URL; empty means unset: ``--mirror "$CALICO_MIRROR"`` with the variable empty is no --mirror."""
    return text if text.strip() else None


def _required_path(text: str) -> str:
    """A path that must be given: empty (an unset variable) is as missing."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string (an unset variable?)")
    return text


def _kept_demo(text: str) -> str:
    """--stop's directory: one that exists (demo.stop checks it is one a --keep demo left)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected the directory a --keep demo printed, got an empty string")
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory; pass the one a --keep demo printed")
    return text


def _pinned_version(text: str) -> str:
    """A release of the table (``3.32.0`` or ``v3.32.0``): only those have pinned digests to verify against."""
    try:
        version = normalize_version(text)
    except ConfigurationError:
        version = ""
    if version not in RELEASES:
        raise argparse.ArgumentTypeError(f"expected a release with pinned digests, one of {', '.join(SUPPORTED_VERSIONS)}; "
                                         f"got {text!r}")
    return version


def _positive_int(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 1000, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to 3600, got {text!r}")
    return value


def _timeout(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a timeout above 0 seconds, got 0")
    return value


# --- the parser -----------------------------------------------------------------------------------------------------

USAGE_EXIT = "2 on a usage error (a missing or bad flag or value), one 'error:' line on stderr naming the flag"

_REGISTRY_HELP = ("registry host and path to put before calico/<image> (iad.ocir.io/mytenancy makes "
                  "iad.ocir.io/mytenancy/calico/node:v3.32.0, not .../mytenancy/calico)")


def _invoked_as() -> str:
    """The command as the user typed it: ``calico-oke`` from the installed script, else the module form."""
    return "calico-oke" if os.path.basename(sys.argv[0]) == "calico-oke" else "python -m calico_component"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=_invoked_as(),
        description="Render the Calico manifest for an OKE cluster exactly as Oracle documents it, mirror it for "
        "air-gapped clusters, and check Calico on a cluster.",
        epilog=f"Exit status: 0 on success; 1 when the command fails (one 'error:' line on stderr says why); "
        f"{USAGE_EXIT}. Each command's --help says what it prints.",
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{render,mirror,versions,status,verify,demo}",
                                parser_class=_Parser)
    _add_render(sub.add_parser(
        "render",
        help="write the transformed multi-document YAML",
        description="Fetch, verify and transform the upstream Calico manifest; write multi-document YAML.",
        epilog=(
            "Digest rules: --sha256, when given, is what the file is checked against; without it a version "
            "from the table is checked against its pinned digest, and a version outside the table is refused. "
            "Exit status: 0 with the YAML on stdout (or in --output); 1 on any other error (a download, a digest, "
            f"the manifest's shape), one 'error:' line on stderr; {USAGE_EXIT}."
        ),
    ))
    _add_mirror(sub.add_parser(
        "mirror",
        help="fill a manifest mirror (--mirror, manifestMirror) and list the images to copy",
        description="Write the upstream manifest file(s) a release and network type need into DIR as "
        "v<VERSION>/<file>, the layout --mirror and manifestMirror read, each verified against its pinned SHA-256; "
        "print the images the rendered manifest uses, one per line, sorted (with --image-registry: "
        "'SOURCE TARGET', for skopeo copy docker://SOURCE docker://TARGET).",
        epilog="Exit status: 0 with the image lines on stdout and one 'wrote' line per file on stderr; 1 on any other "
        f"error (a download, a digest that does not match: then nothing is written), one 'error:' line; {USAGE_EXIT}.",
    ))
    sub.add_parser("versions", help="print the version table with Oracle's tested marks",
                   description="Print the supported Calico versions and where Oracle tested them.",
                   epilog=f"Exit status: 0 with the table on stdout; {USAGE_EXIT}.")
    _add_status(sub.add_parser(
        "status",
        help="show which Calico a cluster runs, who installed it, and whether it is ready on every node (read-only)",
        description="Read (never change) the cluster of --kubeconfig: the Calico release calico-node runs and whether "
        "Oracle's table lists it for the cluster's Kubernetes, who installed it (the calico-oke stack of its mark, or "
        "by hand), calico-node ready per node, the Felix settings of calico-node's env, and its rollout.",
        epilog="Exit status: 0 when calico-node is ready on every node and its rollout is complete (a last line "
        "'status: healthy ...'); 1 when it is not, Calico is not installed or the cluster cannot be read, with a last "
        f"line 'error: <reason>' on stderr; {USAGE_EXIT}.",
    ))
    _add_verify(sub.add_parser(
        "verify",
        help="prove NetworkPolicy is enforced on a cluster (probe pods and policies in a temporary namespace)",
        description="In a temporary namespace, run a server and one-shot client pods (agnhost) on sample nodes and "
        "prove, per node: the client connects before any policy; a default-deny ingress policy drops it; an allow by "
        "pod label lets only the labelled client in, only on the allowed port; an egress deny is enforced. Everything "
        "is deleted afterwards, also on failure and Ctrl-C.",
        epilog="Exit status: 0 with one line per node checked and a last line 'verify: policy enforced ...'; 1 with "
        f"the failing nodes and steps, the likely causes, and one last 'error:' line; {USAGE_EXIT}.",
    ))
    _add_demo(sub.add_parser(
        "demo",
        help="try calico-oke on a throwaway local cluster with fake nodes (no cloud account)",
        description="Start a control plane on 127.0.0.1 with fake nodes (kwok), run the repository's stack program "
        "through the pulumi CLI (preview, awaited up), and show calico-node on every node. Tools are found on PATH "
        "or built once with Go into ~/.cache/calico-oke-e2e. Nothing is written to your Pulumi home, ~/.kube or "
        "the repository.",
        epilog="Exit status: 0 with a last line 'demo ok: ...'; 1 with one 'error:' line naming the failed step and "
        f"its logs; {USAGE_EXIT}.",
    ))
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each command's own parser, by name (argparse keeps them in its subparsers action)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _add_render(r: argparse.ArgumentParser) -> None:
    r.add_argument("--calico-version", required=True, help=f"Calico release, one of {', '.join(SUPPORTED_VERSIONS)} "
                   "(others need --sha256)")
    r.add_argument("--network-type", required=True, choices=NETWORK_TYPES,
                   help="flannel-overlay: Calico replaces flannel (calico.yaml); "
                   "vcn-native: policy only beside the OCI CNI (calico-policy-only.yaml)")
    r.add_argument("--node-os", required=True, choices=NODE_OSES,
                   help="worker node image; Oracle Linux 8 and 9 get FELIX_IPTABLESBACKEND=NFT")
    r.add_argument("--mirror", type=_optional_path, metavar="DIR_OR_URL",
                   help="directory or https base URL laid out as v<VERSION>/<file> (see the mirror command), used "
                   "instead of upstream; empty: none")
    r.add_argument("--manifest", type=_optional_path, metavar="FILE_OR_URL",
                   help="use this one manifest file or https URL instead; empty: none")
    r.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the manifest (required for unlisted versions)")
    r.add_argument("--offline", action="store_true", help="never download from upstream: use the cache or --mirror")
    r.add_argument("--image-registry", metavar="REGISTRY", help=f"{_REGISTRY_HELP}, in every image")
    r.add_argument("--pod-cidr", metavar="CIDR",
                   help="flannel-overlay only: set CALICO_IPV4POOL_CIDR to the cluster's pods CIDR (e.g. OKE's "
                   "default 10.244.0.0/16); without it Calico's first pool is 192.168.0.0/16")
    r.add_argument("--typha", action="store_true",
                   help="flannel-overlay only: render calico-typha.yaml (Typha, for clusters above 50 nodes) "
                   "instead of calico.yaml, with the same edits")
    r.add_argument("--typha-replicas", type=int, metavar="N",
                   help="replicas of calico-typha (vcn-native, or flannel-overlay with --typha); default: upstream's")
    r.add_argument("--calico-node-max-unavailable", metavar="N|P%",
                   help="calico-node's rolling update: nodes ('3') or share of them ('10%%') without a ready "
                   "calico-node at once; default: upstream's 1")
    r.add_argument("--timeout", type=_timeout, default=30.0, metavar="SECONDS", help="per-attempt download timeout")
    r.add_argument("--output", "-o", type=_optional_path, metavar="FILE",
                   help="write here instead of stdout; empty: stdout")


def _add_mirror(m: argparse.ArgumentParser) -> None:
    m.add_argument("--calico-version", required=True, type=_pinned_version, metavar="VERSION",
                   help=f"Calico release, one of {', '.join(SUPPORTED_VERSIONS)}")
    m.add_argument("--network-type", required=True, choices=NETWORK_TYPES,
                   help="vcn-native: calico-policy-only.yaml; flannel-overlay: calico.yaml")
    m.add_argument("--output", "-o", required=True, type=_required_path, metavar="DIR",
                   help="the mirror's root directory (created if missing); files go to DIR/v<VERSION>/<file>")
    m.add_argument("--image-registry", metavar="REGISTRY",
                   help=f"{_REGISTRY_HELP}: then each line is 'SOURCE TARGET', the upstream image and where the "
                   "rendered manifest expects it")
    m.add_argument("--mirror", type=_optional_path, metavar="DIR_OR_URL",
                   help="take the files from this mirror (directory or https base URL) instead of upstream; empty: none")
    m.add_argument("--offline", action="store_true", help="never download from upstream: use the cache or --mirror")
    m.add_argument("--typha", action="store_true",
                   help="flannel-overlay only: calico-typha.yaml too (what a cluster above 50 nodes uses), and its image")
    m.add_argument("--timeout", type=_timeout, default=30.0, metavar="SECONDS", help="per-attempt download timeout")


def _add_status(s: argparse.ArgumentParser) -> None:
    s.add_argument("--kubeconfig", required=True, type=_required_path, metavar="FILE",
                   help="kubeconfig of the cluster to read (never the current kube context)")


def _add_verify(v: argparse.ArgumentParser) -> None:
    v.add_argument("--kubeconfig", required=True, type=_required_path, metavar="FILE",
                   help="kubeconfig of the cluster to check")
    v.add_argument("--nodes", type=_positive_int, default=3, metavar="N",
                   help="nodes to sample (default 3); at least one per node pool and OS image is always checked")
    v.add_argument("--node", action="append", metavar="NAME", help="check this node (repeatable) instead of a sample")
    v.add_argument("--image-registry", metavar="REGISTRY",
                   help="pull the probe image from this registry instead: the registry host and path that go before "
                   "e2e-test-images/agnhost (iad.ocir.io/mytenancy makes iad.ocir.io/mytenancy/e2e-test-images/"
                   "agnhost:2.53, pinned by digest)")
    v.add_argument("--pod-timeout", type=_timeout, default=120.0, metavar="SECONDS",
                   help="how long a probe pod may take to start and finish (default 120)")


def _add_demo(d: argparse.ArgumentParser) -> None:
    d.add_argument("--nodes", type=_positive_int, default=3, metavar="N", help="fake worker nodes, 1-1000 (default 3)")
    d.add_argument("--calico-version", choices=SUPPORTED_VERSIONS, metavar="VERSION",
                   help=f"Calico to install, one of {', '.join(SUPPORTED_VERSIONS)} (default: the newest; with --enforce "
                   "the newest one built from source)")
    d.add_argument("--network-type", choices=NETWORK_TYPES, default="vcn-native",
                   help="vcn-native (default), or flannel-overlay: a fake kube-flannel-ds is put on the nodes first, "
                   "and its removal shown")
    d.add_argument("--upgrade-to", choices=SUPPORTED_VERSIONS, metavar="VERSION",
                   help="then preview the upgrade to this version: updates, creates, deletes, replacements")
    d.add_argument("--apply-upgrade", action="store_true", help="with --upgrade-to: also apply it (awaited)")
    d.add_argument("--mirror", type=_optional_path, metavar="DIR_OR_URL",
                   help="manifest mirror laid out as v<VERSION>/<file>; empty: none")
    d.add_argument("--offline", action="store_true", help="never download manifests: the cache or --mirror only")
    d.add_argument("--enforce", action="store_true",
                   help="add one node with a real dataplane (Calico's own Felix, built from source, policing pods in "
                   "network namespaces; needs root and iptables, ipset, nftables) and show examples/network-policy-demo's "
                   "policies taking effect there")
    d.add_argument("--calico-node-ready-seconds", type=_seconds, default=0.0, metavar="S",
                   help="make each fake node's calico-node pod Ready S to 1.5*S seconds after it starts, as a real "
                   "node's image pull, start and readiness probe take (default 0: at once)")
    d.add_argument("--await-timeout-seconds", type=_timeout, metavar="S",
                   help="the stack program's awaitTimeoutSeconds (default: the provider's 10 minutes)")
    d.add_argument("--keep", action="store_true",
                   help="leave the cluster running; prints its kubeconfig path and the command that stops it")
    d.add_argument("--stop", type=_kept_demo, metavar="DIR", help="stop a cluster a --keep demo left running, and remove DIR")


# --- the commands ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _flag_errors(parser: argparse.ArgumentParser) -> Iterator[None]:
    """A value the library's input validation refuses (ConfigurationError) is a usage error naming its flag."""
    try:
        yield
    except ConfigurationError as exc:
        parser.error(flag_message(" ".join(str(exc).split())))


def _warn_registry(registry: str | None, images: Iterable[str]) -> None:
    """``warning:`` on stderr when --image-registry ends with /calico (shown on calico/node's image)."""
    found = sorted(images)
    example = next((i for i in found if i.partition("@")[0].rpartition(":")[0].endswith("/node")), None)
    warning = registry_warning(registry, example or found[0]) if registry and found else None
    if warning:
        sys.stderr.write(f"warning: {flag_message(warning)}\n")


def _versions(out: TextIO) -> int:
    header = ["Calico"] + [f"K8s {m}" for m in KUBERNETES_MINORS]
    rows = [[v] + [cells[m] for m in KUBERNETES_MINORS] for v, cells in version_table()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")
    out.write("\n")
    for edition in dict.fromkeys(KUBERNETES_COLUMNS.values()):
        minors = [m for m, e in KUBERNETES_COLUMNS.items() if e == edition]
        out.write(f"K8s {minors[0]}-{minors[-1]}: {edition}\n")
    out.write("Oracle supports only tested combinations.\n")
    return 0


def _render(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    try:
        with _flag_errors(parser):
            result = render(
                args.calico_version,
                args.network_type,
                args.node_os,
                manifest_sha256=args.sha256,
                image_registry=args.image_registry,
                pod_cidr=args.pod_cidr,
                typha=args.typha,
                typha_replicas=args.typha_replicas,
                calico_node_max_unavailable=args.calico_node_max_unavailable,
                fetch_options=FetchOptions(
                    mirror=args.mirror, manifest=args.manifest, offline=args.offline, timeout=args.timeout,
                    progress=progress,
                ),
            )
    finally:
        if progress:
            progress.finish()
    _warn_registry(args.image_registry, manifest_images(result.objects))
    text = result.to_yaml()
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as exc:
            raise CalicoError(f"cannot write {args.output}: {exc.strerror}") from exc
    else:
        sys.stdout.write(text)
    return 0


def _mirror(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Thin wrapper over manifest.mirror.mirror: 'wrote' lines on stderr, the image lines on stdout."""
    if args.typha and args.network_type != "flannel-overlay":
        parser.error("--typha applies only to flannel-overlay (calico-typha.yaml); vcn-native's calico-policy-only.yaml "
                     "always includes calico-typha, so its files and images are already mirrored without --typha")
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    try:
        with _flag_errors(parser):
            done = mirror(args.calico_version, args.network_type, Path(args.output), typha=args.typha,
                          image_registry=args.image_registry,
                          fetch_options=FetchOptions(mirror=args.mirror, offline=args.offline, timeout=args.timeout,
                                                     progress=progress))
    finally:
        if progress:
            progress.finish()
    for file in done.files:
        sys.stderr.write(f"wrote {file.path} (SHA-256 {file.sha256}, as pinned for Calico {done.calico_version})\n")
    _warn_registry(args.image_registry, done.images)
    sys.stdout.write("".join(f"{line}\n" for line in done.lines()))
    return 0


def _read_kubeconfig(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise CalicoError(f"cannot read --kubeconfig {path}: {exc.strerror}") from exc


def _status(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Thin wrapper over cluster.status.check: the report on stdout; when unhealthy, the reason as ``error:``."""
    from .cluster import status

    found = status.check(_read_kubeconfig(args.kubeconfig))
    sys.stdout.write("".join(f"{line}\n" for line in found.lines))
    if found.problem is None:
        return 0
    sys.stdout.flush()  # the report first, the error line last, also when both go to one terminal or file
    sys.stderr.write(f"error: {found.problem}\n")
    return EXIT_ERROR


def _verify(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Thin wrapper over verify_run.check_policy: lines per node on stdout; a failure's details, then ``error:``."""
    if args.image_registry is not None:
        with _flag_errors(parser):
            validate_registry(args.image_registry)
    kubeconfig = _read_kubeconfig(args.kubeconfig)
    from .policy import report as verify_report
    from .policy import run as verify_run

    settings = verify_run.new_settings(args.nodes, args.image_registry, args.pod_timeout)
    results = verify_run.check_policy(kubeconfig, settings, args.node)
    found = verify_report.report(results)
    sys.stdout.write("".join(f"{line}\n" for line in found.lines))
    if found.failure is None:
        sys.stdout.write(found.summary + "\n")
        return 0
    sys.stderr.write(found.failure + "\n")
    sys.stderr.write(f"error: {verify_report.error_line(results)}\n")
    return EXIT_ERROR


def _demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Thin wrapper over calico_component.local.demo, imported only once every flag was checked (the rest of the CLI
    never loads it)."""
    if args.stop:
        from .local import demo as stopping

        try:
            sys.stdout.write(stopping.stop(Path(args.stop)) + "\n")
        except FileNotFoundError as exc:
            parser.error(str(exc))
        return 0
    if args.apply_upgrade and not args.upgrade_to:
        parser.error("--apply-upgrade needs --upgrade-to VERSION")
    args.calico_version = args.calico_version or _default_demo_version(args.enforce)
    if args.enforce:
        _check_enforceable(parser, args)
    if args.upgrade_to == args.calico_version:
        parser.error(f"--upgrade-to {args.upgrade_to} is the version being installed; pick another")
    mirror_source = args.mirror
    if mirror_source and "://" not in mirror_source:
        mirror_source = str(Path(mirror_source).resolve())  # the stack program runs in another directory
    from .local import demo

    status, last = demo.run(demo.DemoOptions(
        calico_version=args.calico_version, nodes=args.nodes, network_type=args.network_type,
        upgrade_to=args.upgrade_to, apply_upgrade=args.apply_upgrade, mirror=mirror_source, offline=args.offline,
        keep=args.keep, enforce=args.enforce, calico_node_ready_seconds=args.calico_node_ready_seconds,
        await_timeout_seconds=args.await_timeout_seconds))
    (sys.stdout if status == 0 else sys.stderr).write(last + "\n")
    return status


def _default_demo_version(enforce: bool) -> str:
    """The newest version in the table; with --enforce, the newest whose Calico the local node can build and run."""
    if not enforce:
        return SUPPORTED_VERSIONS[-1]
    from .local.thirdparty import CALICO_VERSIONS  # a table only: the module needs nothing beyond the standard library

    return CALICO_VERSIONS[-1].lstrip("v")


def _check_enforceable(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--enforce runs Calico itself: only releases built from ../shared/third-party (and the upgrade applied to one)."""
    from .local.thirdparty import CALICO_VERSIONS

    runnable = [v.lstrip("v") for v in CALICO_VERSIONS]
    wanted = [args.calico_version] + ([args.upgrade_to] if args.apply_upgrade else [])
    for version in wanted:
        if version not in runnable:
            parser.error(f"--enforce runs Calico built from source, which exists here for {', '.join(runnable)}; "
                         f"{version} is not one of them (pick --calico-version/--upgrade-to among those)")


_COMMANDS: dict[str, Callable[[argparse.ArgumentParser, argparse.Namespace], int]] = {
    "render": _render,
    "mirror": _mirror,
    "versions": lambda _parser, _args: _versions(sys.stdout),
    "status": _status,
    "verify": _verify,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = subcommands(parser)[args.command]
    if args.command == "demo":
        return _demo(command, args)
    try:
        code = _COMMANDS[args.command](command, args)
        sys.stdout.flush()  # here, where a reader that went away is handled, not at the interpreter's exit
    except CalicoError as exc:
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:
        return _reader_gone()
    return code


def _reader_gone() -> int:
    """The reader of stdout closed it (``| head``): end quietly, as a shell tool killed by SIGPIPE does."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush then writes nowhere instead of failing
    return EXIT_SIGPIPE
