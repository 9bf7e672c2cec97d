"""The Calico release table: versions Oracle lists, pinned manifest digests, tested Kubernetes versions."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

from ..errors import CompatibilityError, ConfigurationError, UnsupportedVersionError

T = TypeVar("T")

NetworkType = Literal["flannel-overlay", "vcn-native"]
NodeOS = Literal["oracle-linux-7", "oracle-linux-8", "oracle-linux-9"]
ManifestFile = Literal["calico.yaml", "calico-policy-only.yaml", "calico-typha.yaml"]

NETWORK_TYPES: tuple[NetworkType, ...] = get_args(NetworkType)
NODE_OSES: tuple[NodeOS, ...] = get_args(NodeOS)
MANIFEST_FILES: tuple[ManifestFile, ...] = get_args(ManifestFile)

#: Which upstream manifest each OKE network type uses (PROCEDURE.md, table "Why").
MANIFEST_FOR_NETWORK: dict[NetworkType, ManifestFile] = {
    "flannel-overlay": "calico.yaml",
    "vcn-native": "calico-policy-only.yaml",
}

#: flannel-overlay with Typha (large clusters, a decision beyond Oracle's document): Calico's install
#: docs use calico-typha.yaml above 50 nodes; it is calico.yaml plus the calico-typha objects.
TYPHA_MANIFEST: ManifestFile = "calico-typha.yaml"

#: OKE's ``cluster_pod_network_options[].cni_type`` value for each network type.
OKE_CNI_TYPE: dict[NetworkType, str] = {
    "flannel-overlay": "FLANNEL_OVERLAY",
    "vcn-native": "OCI_VCN_IP_NATIVE",
}

#: The two editions of Oracle's page "Example: Installing Calico and Setting Up Network Policies" (PROCEDURE.md).
ORIGINAL_PAGE = "Oracle's original page (its tested cells were lost: placement inferred from release dates)"
SEPTEMBER_2026_PAGE = "Oracle's page as published in September 2026 (placement printed on the page)"

#: Kubernetes minor versions in Oracle's table (the columns), each with the edition of the page it comes from.
KUBERNETES_COLUMNS: dict[str, str] = {
    "1.30": ORIGINAL_PAGE,
    "1.31": ORIGINAL_PAGE,
    "1.32": ORIGINAL_PAGE,
    "1.33": ORIGINAL_PAGE,
    "1.34": SEPTEMBER_2026_PAGE,
    "1.35": SEPTEMBER_2026_PAGE,
    "1.36": SEPTEMBER_2026_PAGE,
}
KUBERNETES_MINORS: tuple[str, ...] = tuple(KUBERNETES_COLUMNS)
#: Editions whose "tested" cells are an inference, not what the page printed.
INFERRED_EDITIONS = frozenset({ORIGINAL_PAGE})

UPSTREAM_BASE_URL = "https://raw.githubusercontent.com/projectcalico/calico"

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class Release:
    """One Calico release in Oracle's table."""

    version: str
    #: The Kubernetes minor Oracle lists it as tested on, or None.
    tested_kubernetes: str | None
    #: (file, SHA-256) of each upstream manifest file at the release tag.
    digests: tuple[tuple[ManifestFile, str], ...]

    @property
    def tested_is_inferred(self) -> bool:
        """True when the tested cell comes from the edition of the page that lost it (placement inferred)."""
        return self.tested_kubernetes is not None and KUBERNETES_COLUMNS[self.tested_kubernetes] in INFERRED_EDITIONS

    def manifest_url(self, file: ManifestFile, base_url: str = UPSTREAM_BASE_URL) -> str:
        """Upstream URL of one manifest file of this release."""
        return manifest_url(self.version, file, base_url)

    def sha256(self, file: ManifestFile) -> str:
        """Pinned SHA-256 of one manifest file of this release."""
        return dict(self.digests)[file]

    def tested_with(self, kubernetes_minor: str) -> bool:
        """True when Oracle lists this release as tested on that Kubernetes minor."""
        return self.tested_kubernetes == kubernetes_minor


@dataclass(frozen=True)
class ManifestRef:
    """What to fetch for a render: the file, its upstream URL and the digest it must have."""

    version: str
    file: ManifestFile
    url: str
    sha256: str
    pinned: bool


# Oracle's table, one row per release: the Kubernetes minor Oracle tested it on (None: "not tested" on every
# column), then the SHA-256 of each upstream file at its release tag (facts from shared/calico-manifests/SHA256SUMS).
# Adding the next release is one more row here.
def _row(version: str, tested_on: str | None, *, calico: str, policy_only: str, typha: str) -> Release:
    if tested_on is not None and tested_on not in KUBERNETES_COLUMNS:
        raise AssertionError(f"Calico {version}: tested on {tested_on}, which is not a column of the table")
    digests: tuple[tuple[ManifestFile, str], ...] = (
        ("calico.yaml", calico), ("calico-policy-only.yaml", policy_only), ("calico-typha.yaml", typha))
    return Release(version, tested_on, digests)


_TABLE: tuple[Release, ...] = (
    _row("3.25.1", None,
         calico="907e3aa4ef102526a020735bbc053611b8c284bcadcbbb476f9ba46a4fd78329",
         policy_only="b0cbf6c86a09c34f1a25fa00c211b0538a567d63281924ef5f76522af41dcd35",
         typha="832d521ea656165473198516af6bd9af22d2853b66200a5c79ca0590f32363ef"),
    _row("3.26.1", None,
         calico="5e71ad6c338050de4bd8c1d580f7f8862de6da0029d253e220c055922bd624b9",
         policy_only="612b0395719e728948564e7db51fc807ab12d3035f4fde60af1827e814aec3b3",
         typha="cb3c9aeefaf581c20f15214c467d0fb7b2d07fc1af473410af069d1f69281aaf"),
    _row("3.26.4", None,
         calico="022563a4c47a6904fe244591f35fdc377ed1c72a9455172d9f04c987e2947852",
         policy_only="b343c2155dbb4111b4f6cb30f2428563654a36f57a20d6a9c7265e57a22fd97a",
         typha="8ca7b4f1e984d428680df12f8fe0361b52240b0ea4ad30942cf8ed06d5a7b9b0"),
    _row("3.27.2", None,
         calico="8d8bf4efcb1bd14a1f907200cf96b101c0ca1a58925aaedafd0231cd49aac144",
         policy_only="ff2024c29ea2d6dfa96955983bd93e20b03a3b76c6d723c8953c69c25d2d8468",
         typha="9c7f1ea74b9e4dca72a375aa512983890a43fd67575b2b9132e77228461cacd6"),
    _row("3.28.0", "1.30",
         calico="93e7f39c3f93f9dc67ee2386aa7240d8d13ff62e54535a2f5f6432e8c6c0f24f",
         policy_only="c7e45c51b9b484d2e9af6891fe37724dc6f22d31a86597d756be89e85bd60c84",
         typha="847fe66a4e87d1c03f630c6f9b3f6cf82a8ef3bc1d74925a96a3cebdff58efe4"),
    _row("3.28.2", "1.31",
         calico="be59408bf990e96276f631d2f9285c2a0f9802194c0ad1cecdb6d9c52623a1c8",
         policy_only="908c6248676651c31d234cbff96df30ba0dde69752b28085a342ed99ce955f09",
         typha="a350c2184c092492bf550b8f623b111c92705f28c5c324d50deb5632b00404fe"),
    _row("3.29.2", "1.32",
         calico="999fe49427009aa1e6cc627061f9d54142c0d9dbe764350a70b4a5ac23c16afc",
         policy_only="ca76969aa32f3e2094d79e732b5ebb55d4556a5cf0881f9fcfa78ed712a401e1",
         typha="bca8b463a97c1850195ecf7cb16a14ddb140227de276ca744150140f9ca3f0bf"),
    _row("3.30.0", "1.33",
         calico="cfa6f94645138e0a7e567ffb819ac8d1066734b6873c3e2a8f224b7cc812b248",
         policy_only="0a3ba91e70d58eb19789cbd76ab736b86f145d953a5fa6bf04245204f798d499",
         typha="238cf808c20787a7188c4eb0e203883ec7d68819a8960a87523257cabe54d58f"),
    _row("3.30.3", "1.34",
         calico="9382d2b27a76f40c170454b408653e6d71e2205ef0aef069e942bb690e7381d0",
         policy_only="18bbd847f02fc6b5388e8bfbdde28d13dcd43b01ff6a18deb5522f5414d4a728",
         typha="b132c5e8c745ebd8ca002625a11887f0fe127b103b8b618e682adedf9890ac2c"),
    _row("3.31.5", "1.35",
         calico="d45842abe9f95afb4d346278eafb2e454dacdfb502d48cf1d5cede71a9046997",
         policy_only="d46eaca9d7faa7cdc0df7372c3604ed518c794ee7231d5ba95cdb953b3f14841",
         typha="2ae3bd12dc6df2e38dc2afc5f976e517b416a2c86746be52fc66b8f398aad3ed"),
    _row("3.32.0", "1.36",
         calico="bccabc607685551db918f66da724893eca3e69a50c5a3e3077029b02dbab8d35",
         policy_only="0b09d96323cf250ad028450d2954fc0068ce4104545f1eab823f359a48eb69a3",
         typha="25e472d44d11b357d8efa3eab0d1a1659446a9aed1887cfdda984a68a65dc7d3"),
)

RELEASES: dict[str, Release] = {r.version: r for r in _TABLE}
SUPPORTED_VERSIONS: tuple[str, ...] = tuple(RELEASES)


def normalize_version(version: str) -> str:
    """Accept ``3.28.0`` or ``v3.28.0``; return ``3.28.0``; reject anything else."""
    if not isinstance(version, str):
        raise ConfigurationError(f"calico_version must be a string like '3.28.0', got {version!r}")
    m = _VERSION_RE.match(version.strip())
    if not m:
        raise ConfigurationError(
            f"calico_version {version!r} is not a version like '3.28.0'; "
            f"supported versions: {', '.join(SUPPORTED_VERSIONS)}"
        )
    return ".".join(m.groups())


def manifest_url(version: str, file: ManifestFile, base_url: str = UPSTREAM_BASE_URL) -> str:
    """``<base>/v<version>/manifests/<file>`` for the upstream layout."""
    return f"{base_url.rstrip('/')}/v{normalize_version(version)}/manifests/{file}"


def get_release(version: str) -> Release:
    """Look a version up in the table, or raise UnsupportedVersionError."""
    v = normalize_version(version)
    try:
        return RELEASES[v]
    except KeyError:
        raise UnsupportedVersionError(
            f"Calico {v} is not in Oracle's tested table ({', '.join(SUPPORTED_VERSIONS)}); "
            "pick one of those, or pass the manifest's SHA-256 explicitly (--sha256 / manifest_sha256) "
            "to use an unlisted open-source version at your own risk (Calico Enterprise is not supported)"
        ) from None


def one_of(value: object, choices: tuple[T, ...], what: str, hint: str = "") -> T:
    """Return ``value`` as the choice it equals, or raise ConfigurationError naming it and the valid ones."""
    for choice in choices:
        if value == choice:
            return choice
    raise ConfigurationError(
        f"{what} {value!r} is not supported; expected one of {', '.join(map(str, choices))}{hint}"
    )


def validate_network_type(value: str) -> NetworkType:
    """Return ``value`` as a NetworkType or raise ConfigurationError naming the valid ones."""
    return one_of(value, NETWORK_TYPES, "network type",
                  " (flannel-overlay: Calico replaces flannel; vcn-native: policy only beside the OCI VCN-native CNI)")


def validate_node_os(value: str) -> NodeOS:
    """Return ``value`` as a NodeOS or raise ConfigurationError naming the valid ones."""
    return one_of(value, NODE_OSES, "node OS")


def validate_sha256(value: str) -> str:
    """Return a lowercase 64-hex digest or raise ConfigurationError."""
    v = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", v):
        raise ConfigurationError(f"SHA-256 digest {value!r} is not 64 hexadecimal characters")
    return v


def manifest_file(network_type: NetworkType, *, typha: bool = False) -> ManifestFile:
    """The upstream file a render uses: the network type's, or calico-typha.yaml for flannel-overlay with Typha."""
    nt = validate_network_type(network_type)
    if typha:
        if nt != "flannel-overlay":
            raise ConfigurationError(
                f"Typha (--typha / typha) selects {TYPHA_MANIFEST} and applies only to flannel-overlay; vcn-native's "
                f"{MANIFEST_FOR_NETWORK['vcn-native']} always includes calico-typha (scale it with typha_replicas)"
            )
        return TYPHA_MANIFEST
    return MANIFEST_FOR_NETWORK[nt]


def resolve_manifest(
    version: str, network_type: NetworkType, sha256: str | None = None, *, typha: bool = False
) -> ManifestRef:
    """Work out which file to fetch and which digest it must match.

    A digest given by the user is authoritative. Without one, a version from the table is
    checked against its pin, and a version outside the table is refused.
    """
    v = normalize_version(version)
    file = manifest_file(network_type, typha=typha)
    url = manifest_url(v, file)
    if sha256 is not None:
        return ManifestRef(v, file, url, validate_sha256(sha256), pinned=False)
    release = get_release(v)
    return ManifestRef(v, file, url, release.sha256(file), pinned=True)


def kubernetes_minor(kubernetes_version: str) -> str:
    """``v1.33.1`` / ``1.33`` / ``v1.33.1-oke`` -> ``1.33``."""
    m = re.match(r"^v?(\d+)\.(\d+)", kubernetes_version.strip())
    if not m:
        raise ConfigurationError(f"Kubernetes version {kubernetes_version!r} is not like 'v1.33.1'")
    return f"{m.group(1)}.{m.group(2)}"


class UntestedCombinationWarning(UserWarning):
    """Oracle did not test this Calico / Kubernetes combination."""


def check_compatibility(version: str, kubernetes_version: str, *, strict: bool = False) -> str | None:
    """Warn (or raise, if ``strict``) when Oracle did not test the combination.

    Returns the warning text, or None for a tested combination.
    """
    v = normalize_version(version)
    minor = kubernetes_minor(kubernetes_version)
    release = RELEASES.get(v)
    if release is not None and release.tested_with(minor):
        return None
    msg = _untested_reason(v, minor, release)
    tested = [f"{r.version} on {r.tested_kubernetes}" for r in RELEASES.values() if r.tested_with(minor)]
    hint = f"; tested for {minor}: {', '.join(tested)}" if tested else ""
    msg += hint + ". Oracle supports only tested combinations."
    if strict:
        raise CompatibilityError(msg + " Turn off strict_version_check to proceed anyway.")
    warnings.warn(msg, UntestedCombinationWarning, stacklevel=2)
    return msg


def _untested_reason(version: str, minor: str, release: Release | None) -> str:
    """Why a combination is not a tested one: unknown release, no column for the minor, or another placement."""
    if release is None:
        return f"Calico {version} is not in Oracle's table; it has not been tested on OKE with Kubernetes {minor}"
    if minor not in KUBERNETES_COLUMNS:
        return (f"Oracle's table has no column for Kubernetes {minor} (it covers {KUBERNETES_MINORS[0]} to "
                f"{KUBERNETES_MINORS[-1]}), so Calico {version} is not tested on it")
    if release.tested_kubernetes is None:
        return f"Oracle lists Calico {version} as not tested on any of Kubernetes {', '.join(KUBERNETES_MINORS)}"
    return (f"Oracle did not test Calico {version} on Kubernetes {minor}; it is tested on {release.tested_kubernetes}"
            + (" (placement inferred, see docs/versions-and-edits.md)" if release.tested_is_inferred else ""))


def version_table() -> list[tuple[str, dict[str, str]]]:
    """Rows for display: version -> {k8s minor: 'tested' | 'tested (inferred)' | 'not tested'}."""
    rows = []
    for r in RELEASES.values():
        cells = {}
        for minor in KUBERNETES_MINORS:
            if r.tested_with(minor):
                cells[minor] = "tested (inferred)" if r.tested_is_inferred else "tested"
            else:
                cells[minor] = "not tested"
        rows.append((r.version, cells))
    return rows
