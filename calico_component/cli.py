"""Command line: ``python -m calico_component render|versions``, a thin wrapper over render()."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from .errors import CalicoError
from .manifest.fetch import FetchOptions
from .manifest.releases import KUBERNETES_COLUMNS, KUBERNETES_MINORS, NETWORK_TYPES, NODE_OSES, SUPPORTED_VERSIONS, version_table
from .manifest.render import render

EXIT_ERROR = 1
EXIT_USAGE = 2
#: 128 + SIGPIPE: what a shell tool returns when its reader went away (`calico-oke versions | head -3`).
EXIT_SIGPIPE = 141


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one ``error:`` line on stderr (the CLI's error contract)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m calico_component",
        description="Render the Calico manifest for an OKE cluster exactly as Oracle documents it.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{render,versions,demo,verify}",
                                parser_class=_Parser)
    r = sub.add_parser(
        "render",
        help="write the transformed multi-document YAML",
        description="Fetch, verify and transform the upstream Calico manifest; write multi-document YAML.",
        epilog=(
            "Digest rules: --sha256, when given, is what the file is checked against; without it a version "
            "from the table is checked against its pinned digest, and a version outside the table is refused. "
            "Exit status: 0 on success; 1 on an error, 2 on a usage error, each with one 'error:' line on stderr."
        ),
    )
    r.add_argument("--calico-version", required=True, help=f"Calico release, one of {', '.join(SUPPORTED_VERSIONS)} "
                   "(others need --sha256)")
    r.add_argument("--network-type", required=True, choices=NETWORK_TYPES,
                   help="flannel-overlay: Calico replaces flannel (calico.yaml); "
                   "vcn-native: policy only beside the OCI CNI (calico-policy-only.yaml)")
    r.add_argument("--node-os", required=True, choices=NODE_OSES,
                   help="worker node image; Oracle Linux 8 and 9 get FELIX_IPTABLESBACKEND=NFT")
    r.add_argument("--mirror", metavar="DIR_OR_URL",
                   help="directory or https base URL laid out as v<VERSION>/<file>, used instead of upstream")
    r.add_argument("--manifest", metavar="FILE_OR_URL", help="use this one manifest file or https URL instead")
    r.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the manifest (required for unlisted versions)")
    r.add_argument("--offline", action="store_true", help="never download from upstream: use the cache or --mirror")
    r.add_argument("--image-registry", metavar="REGISTRY",
                   help="rewrite every image to this registry prefix, e.g. iad.ocir.io/mytenancy/calico")
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
    r.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="per-attempt download timeout")
    r.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    sub.add_parser("versions", help="print the version table with Oracle's tested marks",
                   description="Print the supported Calico versions and where Oracle tested them.")
    _add_demo(sub.add_parser(
        "demo",
        help="try calico-oke on a throwaway local cluster with fake nodes (no cloud account)",
        description="Start a control plane on 127.0.0.1 with fake nodes (kwok), run the repository's stack program "
        "through the pulumi CLI (preview, awaited up), and show calico-node on every node. Tools are found on PATH "
        "or built once with Go into ~/.cache/calico-oke-e2e. Nothing is written to your Pulumi home, ~/.kube or "
        "the repository.",
        epilog="Exit status: 0 with a last line 'demo ok: ...'; 1 with one 'error:' line naming the failed step and "
        "its logs; 2 on a usage error.",
    ))
    _add_verify(sub.add_parser(
        "verify",
        help="prove NetworkPolicy is enforced on a cluster (probe pods and policies in a temporary namespace)",
        description="In a temporary namespace, run a server and one-shot client pods (agnhost) on sample nodes and "
        "prove, per node: the client connects before any policy; a default-deny ingress policy drops it; an allow by "
        "pod label lets only the labelled client in, only on the allowed port; an egress deny is enforced. Everything "
        "is deleted afterwards, also on failure and Ctrl-C.",
        epilog="Exit status: 0 with one line per node checked and a last line 'verify: policy enforced ...'; 1 with "
        "the failing nodes and steps, the likely causes, and one last 'error:' line; 2 on a usage error.",
    ))
    return parser


def _add_verify(v: argparse.ArgumentParser) -> None:
    v.add_argument("--kubeconfig", required=True, metavar="FILE", help="kubeconfig of the cluster to check")
    v.add_argument("--nodes", type=_positive_int, default=3, metavar="N",
                   help="nodes to sample (default 3); at least one per node pool and OS image is always checked")
    v.add_argument("--node", action="append", metavar="NAME", help="check this node (repeatable) instead of a sample")
    v.add_argument("--image-registry", metavar="REGISTRY",
                   help="pull the probe image (agnhost, pinned by digest) from this registry prefix instead")
    v.add_argument("--pod-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="how long a probe pod may take to start and finish (default 120)")


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
    d.add_argument("--mirror", metavar="DIR_OR_URL", help="manifest mirror laid out as v<VERSION>/<file>")
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
    d.add_argument("--stop", metavar="DIR", help="stop a cluster a --keep demo left running, and remove DIR")


def _versions(out: TextIO) -> None:
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


def _render(args: argparse.Namespace) -> None:
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    try:
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
    text = result.to_yaml()
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as exc:
            raise CalicoError(f"cannot write {args.output}: {exc.strerror}") from exc
    else:
        sys.stdout.write(text)


def _verify(args: argparse.Namespace) -> int:
    """Thin wrapper over verify_run.check_policy: lines per node on stdout; a failure's details, then ``error:``."""
    from .policy import report as verify_report
    from .policy import run as verify_run

    try:
        kubeconfig = Path(args.kubeconfig).read_text()
    except OSError as exc:
        raise CalicoError(f"cannot read --kubeconfig {args.kubeconfig}: {exc.strerror}") from exc
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
    """Thin wrapper over calico_component.local.demo (imported only here: the rest of the CLI never loads it)."""
    from .local import demo

    if args.stop:
        try:
            sys.stdout.write(demo.stop(Path(args.stop)) + "\n")
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
    mirror = args.mirror
    if mirror and "://" not in mirror:
        mirror = str(Path(mirror).resolve())  # the stack program runs in another directory
    status, last = demo.run(demo.DemoOptions(
        calico_version=args.calico_version, nodes=args.nodes, network_type=args.network_type,
        upgrade_to=args.upgrade_to, apply_upgrade=args.apply_upgrade, mirror=mirror, offline=args.offline,
        keep=args.keep, enforce=args.enforce, calico_node_ready_seconds=args.calico_node_ready_seconds,
        await_timeout_seconds=args.await_timeout_seconds))
    (sys.stdout if status == 0 else sys.stderr).write(last + "\n")
    return status


def _default_demo_version(enforce: bool) -> str:
    """The newest version in the table; with --enforce, the newest whose Calico the local node can build and run."""
    if not enforce:
        return SUPPORTED_VERSIONS[-1]
    from .local.thirdparty import CALICO_VERSIONS

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(parser, args)
    try:
        if args.command == "versions":
            _versions(sys.stdout)
        elif args.command == "verify":
            return _verify(args)
        else:
            _render(args)
        sys.stdout.flush()  # here, where a reader that went away is handled, not at the interpreter's exit
    except CalicoError as exc:
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:
        return _reader_gone()
    return 0


def _reader_gone() -> int:
    """The reader of stdout closed it (``| head``): end quietly, as a shell tool killed by SIGPIPE does."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush then writes nowhere instead of failing
    return EXIT_SIGPIPE
