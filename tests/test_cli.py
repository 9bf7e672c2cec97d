"""The real ``python -m calico_component`` as a subprocess: output, exit codes and the error contract."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from calico_component.local.workspace import user_environ
from tests.conftest import REPO, kubeconfig_text, upstream_bytes, upstream_image, upstream_objects
from tests.https_server import ManifestServer

#: Every row of Oracle's table, both editions (PROCEDURE.md).
VERSIONS = ["3.25.1", "3.26.1", "3.26.4", "3.27.2", "3.28.0", "3.28.2", "3.29.2", "3.30.0", "3.30.3", "3.31.5", "3.32.0"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "calico_component", *args], capture_output=True, text=True,
                          env=full_env, cwd=REPO, timeout=120)


def assert_error(proc: subprocess.CompletedProcess[str], *needles: str, code: int) -> None:
    """Exit ``code``, nothing on stdout, one ``error:`` line on stderr holding every needle, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_render_all_versions_both_modes_both_os(version: str, mirror: Path, tmp_path: Path) -> None:
    """render works for every version x mode x OS; output parses and has one doc per upstream object."""
    for mode, file in (("flannel-overlay", "calico.yaml"), ("vcn-native", "calico-policy-only.yaml")):
        for os_name in ("oracle-linux-7", "oracle-linux-8"):
            out = tmp_path / f"{mode}-{os_name}.yaml"
            proc = run("render", "--calico-version", version, "--network-type", mode, "--node-os", os_name,
                       "--mirror", str(mirror), "--output", str(out))
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout == ""
            docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
            assert len(docs) == len(upstream_objects(version, file))
            ds = next(d for d in docs if d["kind"] == "DaemonSet" and d["metadata"]["name"] == "calico-node")
            env = {e["name"]: e.get("value") for e in ds["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert (env.get("FELIX_IPTABLESBACKEND") == "NFT") == (os_name == "oracle-linux-8")
            assert (env.get("FELIX_INTERFACEPREFIX") == "oci") == (mode == "vcn-native")
            images = [c["image"] for d in docs for k in ("initContainers", "containers")
                      for c in d.get("spec", {}).get("template", {}).get("spec", {}).get(k, [])]
            host = upstream_image(version).partition("/")[0]  # upstream's registry for this release
            assert images and all(i.startswith(f"{host}/calico/") and i.endswith(f":v{version}") for i in images)


def test_render_to_stdout(mirror: Path) -> None:
    """Without --output the YAML goes to stdout and nothing but it."""
    proc = run("render", "--calico-version", "v3.28.0", "--network-type", "vcn-native", "--node-os",
               "oracle-linux-8", "--mirror", str(mirror))
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert len(docs) == 34
    assert proc.stderr == ""


def test_render_over_https_with_image_registry(mirror: Path, tmp_path: Path) -> None:
    """A https mirror (trusted via SSL_CERT_FILE) and --image-registry work through the CLI."""
    with ManifestServer(mirror) as server:
        proc = run("render", "--calico-version", "3.29.2", "--network-type", "flannel-overlay", "--node-os",
                   "oracle-linux-7", "--mirror", server.base_url, "--image-registry", "iad.ocir.io/t",
                   env={"SSL_CERT_FILE": str(server.ca_file), "CALICO_OKE_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    images: list[Any] = []
    for d in yaml.safe_load_all(proc.stdout):
        pod = (d or {}).get("spec", {}).get("template", {}).get("spec")
        if pod:
            images += [c["image"] for k in ("initContainers", "containers") for c in pod.get(k, [])]
    assert images and all(i.startswith("iad.ocir.io/t/calico/") for i in images)


def test_versions_lists_table_with_inferred_marks() -> None:
    """versions prints every release on columns 1.30-1.36: the original page's cells inferred, today's printed."""
    proc = run("versions")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].split("  ")[0] == "Calico"
    assert [c.strip() for c in lines[0].split("  ") if c.strip()][1:] == [f"K8s 1.{m}" for m in range(30, 37)]
    rows = {line.split()[0]: [c.strip() for c in line.split("  ") if c.strip()][1:] for line in lines[1:12]}
    assert list(rows) == VERSIONS
    assert rows["3.30.0"] == ["not tested"] * 3 + ["tested (inferred)"] + ["not tested"] * 3
    assert rows["3.30.3"] == ["not tested"] * 4 + ["tested"] + ["not tested"] * 2
    assert rows["3.31.5"] == ["not tested"] * 5 + ["tested", "not tested"]
    assert rows["3.32.0"] == ["not tested"] * 6 + ["tested"]
    assert rows["3.25.1"] == ["not tested"] * 7
    assert any(line.startswith("K8s 1.30-1.33: Oracle's original page") and "inferred" in line for line in lines)
    assert any(line.startswith("K8s 1.34-1.36: Oracle's page as published in September 2026") for line in lines)


def test_help_documents_every_flag() -> None:
    """render --help names every flag of the contract."""
    proc = run("render", "--help")
    assert proc.returncode == 0
    for flag in ("--calico-version", "--network-type", "--node-os", "--mirror", "--manifest", "--sha256",
                 "--offline", "--image-registry", "--pod-cidr", "--typha", "--typha-replicas", "--output"):
        assert flag in proc.stdout


@pytest.mark.parametrize(
    "args, needles",
    [
        (["render", "--calico-version", "3.31.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8"],
         ["3.31.0", "--sha256"]),
        (["render", "--calico-version", "3.28.0", "--network-type", "cilium", "--node-os", "oracle-linux-8"],
         ["cilium", "vcn-native"]),
        (["render", "--calico-version", "3.28.0", "--network-type", "vcn-native", "--node-os", "windows"],
         ["windows", "oracle-linux-8"]),
        (["render", "--calico-version", "latest", "--network-type", "vcn-native", "--node-os", "oracle-linux-8"],
         ["latest"]),
        (["render", "--network-type", "vcn-native", "--node-os", "oracle-linux-8"], ["--calico-version"]),
        (["render", "--calico-version", "3.28.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
          "--mirror", "http://127.0.0.1:9/"], ["HTTPS only"]),
        (["render", "--calico-version", "3.28.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
          "--sha256", "xyz", "--offline"], ["xyz", "64 hexadecimal"]),
        (["frobnicate"], ["frobnicate"]),
        (["render", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
          "--image-registry", "mytenancy/calico"], ["'mytenancy/calico'", "registry host", "iad.ocir.io"]),
        (["render", "--calico-version", "3.28.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
          "--typha"], ["--typha", "flannel-overlay"]),
        (["render", "--calico-version", "3.28.0", "--network-type", "flannel-overlay", "--node-os", "oracle-linux-8",
          "--typha-replicas", "2"], ["--typha-replicas=2 needs Typha", "(--typha)"]),
        (["render", "--calico-version", "3.28.0", "--network-type", "flannel-overlay", "--node-os", "oracle-linux-8",
          "--typha", "--typha-replicas", "many"], ["--typha-replicas", "many"]),
        (["render", "--calico-version", "3.28.0", "--network-type", "flannel-overlay", "--node-os", "oracle-linux-8",
          "--typha", "--typha-replicas", "101"], ["--typha-replicas must be", "101"]),
    ],
)
def test_errors_are_one_line_on_stderr(args: list[str], needles: list[str]) -> None:
    """Every bad flag or value exits 2 with a single 'error:' line naming the problem and nothing on stdout."""
    assert_error(run(*args), *needles, code=2)


def test_offline_without_cache_or_mirror_errors(tmp_path: Path) -> None:
    """--offline with an empty cache and no mirror fails with a hint, without touching the network."""
    proc = run("render", "--calico-version", "3.28.0", "--network-type", "vcn-native", "--node-os",
               "oracle-linux-8", "--offline", env={"CALICO_OKE_CACHE_DIR": str(tmp_path)})
    assert_error(proc, "offline mode", "--mirror", code=1)


def test_digest_mismatch_via_cli(mirror: Path) -> None:
    """A wrong --sha256 for a mirrored file is a one-line checksum error naming both digests."""
    proc = run("render", "--calico-version", "3.28.0", "--network-type", "vcn-native", "--node-os",
               "oracle-linux-8", "--mirror", str(mirror), "--sha256", "ab" * 32)
    assert_error(proc, "SHA-256 mismatch", "ab" * 32, "c7e45c51b9b484d2e9af6891fe37724dc6f22d31a86597d756be89e85bd60c84",
                 code=1)


@pytest.mark.parametrize("body, needle", [(b"", "no Kubernetes objects"), (b"{{{ not: yaml", "not valid YAML"),
                                          (b"- just\n- a list\n", "expected a Kubernetes object")])
def test_empty_or_non_yaml_manifest(body: bytes, needle: str, tmp_path: Path) -> None:
    """An empty or non-YAML manifest file is a clear one-line error."""
    import hashlib

    path = tmp_path / "m.yaml"
    path.write_bytes(body)
    proc = run("render", "--calico-version", "3.28.0", "--network-type", "vcn-native", "--node-os",
               "oracle-linux-8", "--manifest", str(path), "--sha256", hashlib.sha256(body).hexdigest())
    assert_error(proc, needle, code=1)


def test_output_to_unwritable_path(mirror: Path, tmp_path: Path) -> None:
    """An --output path that cannot be written is a one-line error."""
    proc = run("render", "--calico-version", "3.28.0", "--network-type", "vcn-native", "--node-os",
               "oracle-linux-8", "--mirror", str(mirror), "--output", str(tmp_path / "no" / "such" / "dir.yaml"))
    assert_error(proc, "cannot write", code=1)


def test_render_flannel_overlay_with_typha(mirror: Path) -> None:
    """--typha --typha-replicas --pod-cidr renders calico-typha.yaml scaled, with the pool CIDR and NFT."""
    proc = run("render", "--calico-version", "3.29.2", "--network-type", "flannel-overlay", "--node-os",
               "oracle-linux-8", "--mirror", str(mirror), "--typha", "--typha-replicas", "3",
               "--pod-cidr", "10.244.0.0/16")
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert len(docs) == len(upstream_objects("3.29.2", "calico-typha.yaml"))
    typha = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "calico-typha")
    assert typha["spec"]["replicas"] == 3
    ds = next(d for d in docs if d["kind"] == "DaemonSet" and d["metadata"]["name"] == "calico-node")
    env = {e["name"]: e.get("value") for e in ds["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CALICO_IPV4POOL_CIDR"] == "10.244.0.0/16" and env["FELIX_IPTABLESBACKEND"] == "NFT"


def test_render_calico_node_max_unavailable(mirror: Path) -> None:
    """--calico-node-max-unavailable 10% sets calico-node's rolling update to 10 % of the nodes; without it upstream's
    one node at a time stays; a malformed value is refused naming it."""
    def max_unavailable(*extra: str) -> Any:
        proc = run("render", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--node-os",
                   "oracle-linux-8", "--mirror", str(mirror), *extra)
        assert proc.returncode == 0, proc.stderr
        ds = next(d for d in yaml.safe_load_all(proc.stdout)
                  if d and d["kind"] == "DaemonSet" and d["metadata"]["name"] == "calico-node")
        return ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"]

    assert max_unavailable() == 1
    assert max_unavailable("--calico-node-max-unavailable", "10%") == "10%"
    proc = run("render", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
               "--mirror", str(mirror), "--calico-node-max-unavailable", "ten")
    assert_error(proc, "--calico-node-max-unavailable 'ten' is not a node count", code=2)


@pytest.mark.parametrize("args", [["versions"], ["render", "--calico-version", "3.32.0", "--network-type",
                                                  "vcn-native", "--node-os", "oracle-linux-8", "--offline"]])
def test_a_reader_that_stops_early_ends_the_command_quietly(args: list[str], mirror: Path) -> None:
    """`calico-oke versions | head -1`: read to the end, the command exits 0; with the pipe closed before it writes,
    it exits 141 (as a shell tool killed by SIGPIPE) with nothing on stderr, not a traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CALICO_OKE_MANIFEST_MIRROR": str(mirror)}
    command = [sys.executable, "-m", "calico_component", *args]
    full = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert full.returncode == 0 and len(full.stdout.splitlines()) > 10 and full.stderr == ""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the command writes a byte (it takes a while to import)
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and stderr == ""


def test_version_prints_the_installed_distributions_version() -> None:
    """`--version` prints `calico-oke <version>` of the installed distribution and exits 0, without a command."""
    from importlib import metadata

    proc = run("--version")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"calico-oke {metadata.version('calico-oke')}\n", "")


def test_usage_names_the_command_the_user_typed() -> None:
    """The installed `calico-oke` script says `calico-oke` in its usage and error hints; the module form its own."""
    script = Path(sys.executable).parent / "calico-oke"
    assert script.is_file(), f"{script} missing: install the checkout with `pip install -e .` (README, Set-up)"
    module = run("render", "--calico-version")
    assert_error(module, "--calico-version", "'python -m calico_component render --help'", code=2)
    env = user_environ({})  # a user's shell: the script alone decides which calico_component it runs
    installed = subprocess.run([str(script), "render", "--calico-version"], capture_output=True, text=True,
                               timeout=120, env=env)
    assert_error(installed, "--calico-version", "'calico-oke render --help'", code=2)
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120, env=env)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: calico-oke "), helped.stdout[:80]


def _field_names() -> set[str]:
    """The component's input names a CLI user never types (snake_case CalicoArgs fields)."""
    import dataclasses

    from calico_component.component.args import CalicoArgs

    return {f.name for f in dataclasses.fields(CalicoArgs) if "_" in f.name}


KUBECONFIG_PLACEHOLDER = "kubeconfig-never-read"

#: One bad value per flag that checks one, in every command: (arguments, the flag the error must name).
BAD_VALUES = [
    (["render", "--calico-version", "3.99.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8"],
     "--calico-version"),
    (["render", "--calico-version", "3.32.0", "--network-type", "flannel-overlay", "--node-os", "oracle-linux-8",
      "--typha", "--typha-replicas", "101"], "--typha-replicas"),
    (["render", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
      "--calico-node-max-unavailable", "0%"], "--calico-node-max-unavailable"),
    (["render", "--calico-version", "3.32.0", "--network-type", "flannel-overlay", "--node-os", "oracle-linux-8",
      "--pod-cidr", "10.0.0.1/8"], "--pod-cidr"),
    (["render", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
      "--pod-cidr", "10.244.0.0/16"], "--pod-cidr"),
    (["render", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
      "--image-registry", "https://iad.ocir.io/t"], "--image-registry"),
    (["render", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
      "--sha256", "abc"], "--sha256"),
    (["render", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
      "--manifest", "http://127.0.0.1:9/calico.yaml"], "--manifest"),
    (["render", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
      "--mirror", "https://user:secret@mirror.example/"], "--mirror"),
    (["render", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
      "--timeout", "0"], "--timeout"),
    (["mirror", "--calico-version", "3.31.0", "--network-type", "vcn-native", "--output", "out"], "--calico-version"),
    (["mirror", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--output", "out",
      "--image-registry", "mytenancy"], "--image-registry"),
    (["mirror", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--output", "out", "--typha"], "--typha"),
    (["status"], "--kubeconfig"),
    (["verify", "--kubeconfig", KUBECONFIG_PLACEHOLDER, "--image-registry", "Bad/Registry"], "--image-registry"),
    (["verify", "--kubeconfig", KUBECONFIG_PLACEHOLDER, "--pod-timeout", "-5"], "--pod-timeout"),
    (["verify", "--kubeconfig", KUBECONFIG_PLACEHOLDER, "--nodes", "0"], "--nodes"),
    (["demo", "--nodes", "1001"], "--nodes"),
    (["demo", "--calico-version", "3.32.0", "--upgrade-to", "3.32.0"], "--upgrade-to"),
]


@pytest.mark.parametrize(("args", "flag"), BAD_VALUES, ids=[f"{a[0]}{f}" for a, f in BAD_VALUES])
def test_a_bad_value_is_a_usage_error_naming_its_flag(args: list[str], flag: str, tmp_path: Path) -> None:
    """A refused value exits 2 with one `error:` line naming the flag typed, never the input's field name, and writes nothing."""
    proc = subprocess.run([sys.executable, "-m", "calico_component", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "CALICO_OKE_CACHE_DIR": str(tmp_path / "cache")},
                          cwd=tmp_path, timeout=120)
    assert_error(proc, flag, code=2)
    line = proc.stderr.split(" (see '")[0]
    leaked = {name for name in _field_names() if re.search(rf"(?<![\w-]){name}(?!\w)", line)}
    assert not leaked, line
    assert not (tmp_path / "out").exists() and not (tmp_path / KUBECONFIG_PLACEHOLDER).exists()


def _blocked_heavy_imports(tmp_path: Path) -> dict[str, str]:
    """An environment where importing kubernetes or pulumi fails (packages of those names that raise first on
    PYTHONPATH)."""
    fake = tmp_path / "fake-site"
    for name in ("kubernetes", "pulumi"):
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text(f"raise ImportError('{name} imported before the arguments were checked')\n")
    return {**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{REPO}"}


#: Runs the CLI with calico_component.local refused as well (a meta path finder; a subpackage cannot be shadowed).
_WITHOUT_LOCAL = """
import runpy, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "calico_component.local" or name.startswith("calico_component.local."):
            raise ImportError(name + " imported before the arguments were checked")
        return None
sys.meta_path.insert(0, Refuse())
runpy.run_module("calico_component", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(("args", "flag"), [
    (["demo", "--nodes", "0"], "--nodes"),
    (["demo", "--calico-node-ready-seconds", "-1"], "--calico-node-ready-seconds"),
    (["demo", "--apply-upgrade"], "--apply-upgrade"),
    (["demo", "--calico-version", "3.31.5", "--upgrade-to", "3.31.5"], "--upgrade-to"),
    (["demo", "--network-type", "cilium"], "--network-type"),
    (["demo", "--stop", ""], "--stop"),
    (["demo", "--stop", "/no/such/calico-oke-demo-dir"], "--stop"),
    (["verify", "--kubeconfig", ""], "--kubeconfig"),
    (["verify", "--kubeconfig", "k", "--nodes", "zero"], "--nodes"),
    (["verify", "--kubeconfig", "k", "--image-registry", "no-host/agnhost"], "--image-registry"),
    (["status", "--kubeconfig", ""], "--kubeconfig"),
])
def test_arguments_are_checked_before_heavy_imports(args: list[str], flag: str, tmp_path: Path) -> None:
    """Bad demo/verify/status arguments exit 2 naming the flag where kubernetes, pulumi and calico_component.local cannot load."""
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_LOCAL, *args], capture_output=True, text=True,
                          env=_blocked_heavy_imports(tmp_path), cwd=tmp_path, timeout=60)
    assert_error(proc, flag, code=2)


def test_the_import_block_of_the_argument_check_test_bites(tmp_path: Path) -> None:
    """Control for the test above: arguments that pass reach the blocked imports, so importing them too early would fail it."""
    env = _blocked_heavy_imports(tmp_path)
    config = tmp_path / "config"
    config.write_text(kubeconfig_text())
    for args, module in ((["demo", "--stop", str(tmp_path)], "calico_component.local"),
                         (["status", "--kubeconfig", str(config)], "kubernetes")):
        proc = subprocess.run([sys.executable, "-c", _WITHOUT_LOCAL, *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=60)
        assert proc.returncode == 1 and f"{module} imported before the arguments were checked" in proc.stderr, args


def test_every_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """`-h` of the top level and of every command states its exit status: 0, 1 where it can fail, 2 for a usage error."""
    from calico_component import cli

    commands = cli.subcommands(cli.build_parser())
    assert set(commands) == {"render", "mirror", "versions", "status", "verify", "demo"}
    for argv in ([], *([name] for name in commands)):
        with pytest.raises(SystemExit) as info:
            cli.main([*argv, "-h"])
        text = " ".join(capsys.readouterr().out.split())
        assert info.value.code == 0
        assert "Exit status: 0 " in text and "2 on a usage error" in text, argv
        if argv != ["versions"]:
            assert re.search(r"; 1 (when|on|with)\b", text), (argv, text)


@pytest.mark.parametrize(("args", "flag"), [
    (["verify", "--kubeconfig", ""], "--kubeconfig"),
    (["status", "--kubeconfig", "  "], "--kubeconfig"),
    (["mirror", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--output", ""], "--output"),
    (["demo", "--stop", ""], "--stop"),
])
def test_an_empty_required_path_is_a_missing_one(args: list[str], flag: str) -> None:
    """An empty needed path (`--kubeconfig "$UNSET"`) is a usage error naming the flag, not a read of the current directory."""
    assert_error(run(*args), flag, "empty", code=2)


def test_an_empty_optional_path_is_no_path(mirror: Path, tmp_path: Path) -> None:
    """`--mirror ""`, `--manifest ""`, `--output ""` are as if not given: the environment's mirror, the YAML on stdout."""
    env = {"CALICO_OKE_MANIFEST_MIRROR": str(mirror), "CALICO_OKE_CACHE_DIR": str(tmp_path / "cache")}
    proc = run("render", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--node-os", "oracle-linux-8",
               "--mirror", "", "--manifest", "", "--output", "", "--offline", env=env)
    assert proc.returncode == 0, proc.stderr
    assert any(d and d["kind"] == "DaemonSet" for d in yaml.safe_load_all(proc.stdout))
    out = tmp_path / "mirrored"
    proc = run("mirror", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--output", str(out),
               "--mirror", "", "--offline", env=env)
    assert proc.returncode == 0, proc.stderr
    assert (out / "v3.32.0" / "calico-policy-only.yaml").read_bytes() == upstream_bytes("3.32.0", "calico-policy-only.yaml")


def test_every_path_flag_treats_empty_as_unset_or_missing() -> None:
    """Every FILE/DIR/URL flag of every command converts an empty value to not given, or refuses it as empty where needed."""
    import argparse

    from calico_component import cli

    checked = 0
    for name, sub in cli.subcommands(cli.build_parser()).items():
        for action in sub._actions:
            if not re.search(r"FILE|DIR", str(action.metavar or "")):
                continue
            assert callable(action.type), (name, action.dest)
            if action.required or action.dest == "stop":
                with pytest.raises(argparse.ArgumentTypeError, match="empty"):
                    action.type("")
            else:
                assert action.type("") is None and action.type(" ") is None, (name, action.dest)
            checked += 1
    assert checked >= 9


def test_an_image_registry_ending_with_calico_is_warned_about(mirror: Path) -> None:
    """--image-registry .../calico renders with one `warning:` (doubled path, the value meant); iad.ocir.io/t without one."""
    def render_with(registry: str) -> subprocess.CompletedProcess[str]:
        return run("render", "--calico-version", "3.32.0", "--network-type", "vcn-native", "--node-os",
                   "oracle-linux-8", "--mirror", str(mirror), "--image-registry", registry)

    node = upstream_image("3.32.0").partition("/")[2]  # calico/node:v3.32.0
    warned = render_with("iad.ocir.io/t/calico")
    assert warned.returncode == 0 and warned.stdout
    lines = warned.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: --image-registry 'iad.ocir.io/t/calico' ends with /calico")
    assert f"iad.ocir.io/t/calico/{node}" in lines[0] and lines[0].endswith("set --image-registry to iad.ocir.io/t")
    plain = render_with("iad.ocir.io/t")
    assert plain.returncode == 0 and plain.stderr == ""
    assert f"image: iad.ocir.io/t/{node}" in plain.stdout
