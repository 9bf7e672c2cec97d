"""Command line: ``python -m calico_component render|versions``, a thin wrapper over render()."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from .errors import CalicoError
from .fetch import FetchOptions
from .releases import KUBERNETES_MINORS, NETWORK_TYPES, NODE_OSES, SUPPORTED_VERSIONS, version_table
from .render import render

EXIT_ERROR = 1
EXIT_USAGE = 2


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
    sub = parser.add_subparsers(dest="command", required=True, metavar="{render,versions}", parser_class=_Parser)
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
    r.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="per-attempt download timeout")
    r.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    sub.add_parser("versions", help="print the version table with Oracle's tested marks",
                   description="Print the supported Calico versions and where Oracle tested them.")
    return parser


def _versions(out: TextIO) -> None:
    header = ["Calico"] + [f"K8s {m}" for m in KUBERNETES_MINORS]
    rows = [[v] + [cells[m] for m in KUBERNETES_MINORS] for v, cells in version_table()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")
    out.write(
        "\n(inferred): the source lost these cells; placement follows release dates. "
        "Oracle supports only tested combinations.\n"
    )


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "versions":
            _versions(sys.stdout)
        else:
            _render(args)
    except CalicoError as exc:
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    return 0
