"""`python -m calico_component demo` run as a user would: its last line, its exit codes, and nothing left behind."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from calico_component.local.controlplane import free_port
from calico_component.local.tools import cache_root
from tests.conftest import REPO, upstream_image
from tests.e2e.conftest import mirror

OK_LINE = re.compile(r"demo ok: Calico 3\.31\.5 ready on 3/3 nodes; upgrade preview to 3\.32\.0: (\d+) updates, "
                     r"(\d+) replacements")
SKIPPED_IN_REPO = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


@dataclass
class DemoRun:
    """One demo process: its environment carries a marker every process it starts inherits."""

    marker: str
    home: Path
    proc: subprocess.Popen[str]

    def finish(self, timeout: float = 600) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def survivors(marker: str, grace: float = 10) -> list[str]:
    """Processes whose environment holds ``marker`` (started by the demo), after up to ``grace`` seconds."""
    needle = f"CALICO_OKE_DEMO_TEST={marker}".encode()
    deadline = time.monotonic() + grace
    while True:
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if needle in (proc / "environ").read_bytes():
                    cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")[:120]
                    found.append(f"{proc.name}: {cmdline!r}")
            except OSError:
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def repo_files() -> dict[str, float]:
    """Every file of the checkout with its mtime (bytecode and tool caches aside): the demo must change none."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(REPO):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_IN_REPO]
        for name in filenames:
            path = Path(dirpath, name)
            files[str(path.relative_to(REPO))] = path.stat().st_mtime
    return files


Starter = Callable[..., DemoRun]


@pytest.fixture()
def start(tmp_path: Path, tool_paths: dict[str, Path]) -> Iterator[Starter]:
    """Start the demo as a subprocess with a HOME of its own (the tool cache stays the suite's); kill it at the end."""
    runs: list[DemoRun] = []

    def run(*args: str, path: str | None = None) -> DemoRun:
        home = tmp_path / f"home-{len(runs)}"
        home.mkdir()
        marker = uuid.uuid4().hex
        env = {**os.environ, "HOME": str(home), "CALICO_OKE_E2E_CACHE": str(cache_root()),
               "CALICO_OKE_DEMO_TEST": marker, **({"PATH": path} if path else {})}
        env.pop("KUBECONFIG", None)
        proc = subprocess.Popen([sys.executable, "-m", "calico_component", "demo", *args], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs.append(DemoRun(marker, home, proc))
        return runs[-1]

    yield run
    for r in runs:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait()


POLICY_LINE = re.compile(r"policy: client -> backend:8080 denied after \d+\.\ds; frontend -> backend:8080 allowed; "
                         r"frontend -> backend:9090 denied after \d+\.\ds \(seconds after `up` returned\)")


ENFORCEMENT_LINE = re.compile(r"enforcement during the upgrade: denied client connected (\d+) of (\d+) probes; "
                              r"allowed client's longest gap (\d+\.\d)s")


def test_demo_enforce_probes_through_an_applied_upgrade_on_flannel_overlay(start: Starter) -> None:
    """--enforce --network-type flannel-overlay --calico-version 3.30.3 --upgrade-to 3.32.0 --apply-upgrade (the registry
    move to quay.io and 3.32's CRD change on the way): the node's pods get Calico CNI
    addresses, one `policy:` line says the unlabelled client is denied and frontend allowed on 8080 only, the line
    before the last says the denied client connected 0 times during the upgrade (with the probe count and the allowed
    client's longest gap), the component's own check (verifyPolicy) printed its `verify:` line after the install and
    again after the upgrade, the last line says policy is enforced, and nothing is left running."""
    run = start("--enforce", "--network-type", "flannel-overlay", "--nodes", "1", "--calico-version", "3.30.3",
                "--upgrade-to", "3.32.0", "--apply-upgrade", "--mirror", mirror())
    code, out, err = run.finish()
    assert code == 0, f"exit {code}\n{out}\n{err}"
    lines = out.strip().splitlines()
    assert [line for line in lines if POLICY_LINE.fullmatch(line)], out
    checks = [line for line in lines if line.startswith("verify:")]
    assert checks == ["verify: policy enforced on 1 of 1 nodes checked (dataplane-0): default-deny, label allow, "
                      "egress deny"] * 2, out
    enforcement = [m for line in lines[:-1] if (m := ENFORCEMENT_LINE.fullmatch(line))]
    assert len(enforcement) == 1, out
    assert int(enforcement[0][1]) == 0 and int(enforcement[0][2]) > 50, enforcement[0][0]
    assert lines[-1].startswith("demo ok: Calico 3.32.0 ready on 2/2 nodes; upgrade preview to 3.32.0: "), lines[-1]
    assert lines[-1].endswith("; policy enforced on dataplane-0"), lines[-1]
    assert not survivors(run.marker)


def test_demo_enforce_without_a_debian_package_is_one_error_line(start: Starter, tmp_path: Path) -> None:
    """--enforce on a machine without ipset: exit 1, one `error:` line naming the package to install, nothing started."""
    bin_dir = tmp_path / "bin-without-ipset"
    bin_dir.mkdir()
    for command in ("unshare", "nsenter", "mount", "ip", "iptables-nft", "iptables-nft-restore", "iptables-legacy-save",
                    "nft", "sh", "go"):
        found = shutil.which(command)
        if found:
            (bin_dir / command).symlink_to(found)
    run = start("--enforce", "--calico-version", "3.32.0", "--mirror", mirror(), path=str(bin_dir))
    code, out, err = run.finish(timeout=120)
    assert code == 1, f"exit {code}\n{out}\n{err}"
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: tools failed:"), err
    assert "ipset (apt-get install -y ipset)" in err
    assert not survivors(run.marker)


def test_demo_installs_and_previews_the_upgrade(start: Starter) -> None:
    """3 nodes, 3.31.5, --upgrade-to 3.32.0: exit 0, the documented last line, no process left, nothing written to
    HOME (Pulumi home, ~/.kube) or to the repository."""
    before = repo_files()
    run = start("--nodes", "3", "--calico-version", "3.31.5", "--upgrade-to", "3.32.0", "--mirror", mirror())
    code, out, err = run.finish()
    assert code == 0, f"exit {code}\n{out}\n{err}"
    last = out.strip().splitlines()[-1]
    match = OK_LINE.fullmatch(last)
    assert match, last
    assert int(match[1]) > 0 and int(match[2]) == 0
    assert out.count(upstream_image("3.31.5")) == 3 and out.count(" ready ") >= 3
    assert survivors(run.marker) == []
    assert list(run.home.iterdir()) == [], f"the demo wrote to HOME: {list(run.home.rglob('*'))[:5]}"
    assert repo_files() == before
    program = Path(re.search(r"stack program: (\S+)", out)[1])  # type: ignore[index]
    assert program.parent.name.startswith("calico-oke-demo-") and not program.parent.exists(), "run directory left"


def test_demo_bad_flag_is_a_usage_error(start: Starter) -> None:
    """A bad --network-type exits 2 with one `error:` line and prints nothing else."""
    run = start("--network-type", "calico-overlay")
    code, out, err = run.finish(timeout=60)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:") and "calico-overlay" in err


def test_demo_unreachable_offline_mirror_fails_in_one_line(start: Starter, tmp_path: Path) -> None:
    """--offline with an unreachable mirror exits 1 with one line naming the step and the kept logs; nothing runs on."""
    port = free_port()  # nothing listens on it
    run = start("--nodes", "1", "--mirror", f"https://127.0.0.1:{port}/calico", "--offline")
    code, _, err = run.finish()
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: preview failed:"), err
    assert f"https://127.0.0.1:{port}/calico/" in lines[0] and "failed after 4 attempt(s)" in lines[0], lines[0]
    logs = Path(re.search(r"logs in (\S+)$", lines[0])[1])  # type: ignore[index]
    assert logs.is_dir() and (logs / "kube-apiserver.log").is_file() and list(logs.glob("pulumi-*-preview.log"))
    assert [p.name for p in logs.parent.iterdir()] == ["logs"], "only the logs are kept after a failure"
    assert survivors(run.marker) == []


def test_demo_interrupted_stops_everything(start: Starter) -> None:
    """Ctrl-C while `pulumi up` runs: exit 130 with one line, and every process the demo started is gone."""
    run = start("--nodes", "2", "--calico-version", "3.32.0", "--mirror", mirror())
    assert run.proc.stdout is not None
    for line in run.proc.stdout:
        if line.startswith("pulumi up"):
            break
    time.sleep(2)  # well inside the up: the providers and the program are running
    run.proc.send_signal(signal.SIGINT)
    code, _, err = run.finish(timeout=120)
    assert code == 130, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted during step up")
    assert survivors(run.marker) == []


def test_demo_keep_then_stop(start: Starter) -> None:
    """--keep leaves the cluster running and prints its kubeconfig and the one command that stops it, which does."""
    run = start("--nodes", "1", "--calico-version", "3.32.0", "--mirror", mirror(), "--keep")
    code, out, err = run.finish()
    assert code == 0, err
    kubeconfig = Path(re.search(r"KUBECONFIG=(\S+)", out)[1])  # type: ignore[index]
    stop_command = re.search(r"stop it with: (.+)$", out, flags=re.M)[1]  # type: ignore[index]
    assert kubeconfig.is_file() and survivors(run.marker, grace=0), "--keep stopped the cluster"
    argv = shlex.split(stop_command)
    assert argv[:4] == ["python", "-m", "calico_component", "demo"]
    stopped = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert survivors(run.marker) == []
    assert not Path(argv[-1]).exists()
