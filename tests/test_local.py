"""The local-cluster layer without a cluster: tool lookup and builds, patch steps, stopping kept clusters, the demo's
command line, and that importing calico_component never loads any of it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from calico_component import cli
from calico_component.local import controlplane, demo, gobuild, nodes, thirdparty, tools, workspace
from calico_component.local.gobuild import ToolError
from tests.conftest import REPO


def _executable(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_patch_inserts_before_its_one_anchor(tmp_path: Path) -> None:
    """A patch adds its text right before the anchor and leaves the rest of the file as it was."""
    (tmp_path / "main.go").write_text("func main() {\n\tflag.Parse()\n}\n")
    thirdparty.PYTHON_HOST_PATCHES[0].apply(tmp_path)
    text = (tmp_path / "main.go").read_text()
    assert text.startswith("func main() {\n\tflag.String(\"root\"") and text.endswith("\tflag.Parse()\n}\n")


@pytest.mark.parametrize("content", ["func main() {}\n", "flag.Parse()\n\tflag.Parse()\n\tflag.Parse()\n"])
def test_patch_fails_loudly_when_upstream_changed(tmp_path: Path, content: str) -> None:
    """An anchor that is missing or not unique fails the build naming the file and why the patch exists."""
    (tmp_path / "main.go").write_text(content)
    with pytest.raises(ToolError, match=r"cannot patch .*main\.go.*-root"):
        thirdparty.PYTHON_HOST_PATCHES[0].apply(tmp_path)


def test_find_takes_env_then_path_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit env var wins, then PATH, then the cache; a bad env var is an error naming it."""
    monkeypatch.setenv("CALICO_OKE_E2E_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CALICO_OKE_E2E_IGNORE_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert tools.find("kwok") is None
    cached = _executable(tools.group_of("kwok").bin_dir / "kwok")
    assert tools.find("kwok") == cached
    on_path = _executable(tmp_path / "bin" / "kwok")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert tools.find("kwok") == on_path
    monkeypatch.setenv("CALICO_OKE_E2E_KWOK", str(tmp_path / "missing"))
    with pytest.raises(ToolError, match="CALICO_OKE_E2E_KWOK="):
        tools.find("kwok")


def test_kubectl_never_from_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kubectl on PATH (often a cloud SDK's dispatcher) is never taken."""
    monkeypatch.setenv("CALICO_OKE_E2E_CACHE", str(tmp_path / "cache"))
    _executable(tmp_path / "bin" / "kubectl")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    assert tools.find("kubectl") is None


def test_provider_is_v4_32_from_third_party_else_the_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the v4.32.0 snapshot present it is what gets built; without it, the January module is the fallback."""
    (tmp_path / "with" / "pulumi-kubernetes-provider").mkdir(parents=True)
    (tmp_path / "without").mkdir()
    monkeypatch.setenv("CALICO_OKE_THIRD_PARTY", str(tmp_path / "with"))
    assert tools.group_of("pulumi-resource-kubernetes").version == "v4.32.0"
    monkeypatch.setenv("CALICO_OKE_THIRD_PARTY", str(tmp_path / "without"))
    assert tools.group_of("pulumi-resource-kubernetes").version.startswith("v4.0.0-20260115")


def test_build_command_output_is_logged_and_its_cpu_counted(tmp_path: Path) -> None:
    """A build step returns its stdout, logs both streams, and counts the CPU of the processes it started."""
    log = tmp_path / "build.log"
    burn = "x = 0\nfor i in range(3_000_000): x += i"
    gobuild.reset_cpu()
    out = gobuild.run(["sh", "-c", f"{sys.executable} -c '{burn}'; echo out; echo err >&2"], tmp_path, log)
    assert out == "out\n"
    assert "err" in log.read_text() and "out" in log.read_text()
    assert gobuild.cpu_seconds() > 0.05
    with pytest.raises(ToolError, match=r"command failed \(3\).*\n.*last lines of .*\n(.*\n)*boom"):
        gobuild.run(["sh", "-c", "echo boom >&2; exit 3"], tmp_path, log)


def test_language_host_without_sources_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No host on PATH and no sources: the failure says a Pulumi install ships it and where to put it."""
    monkeypatch.setenv("CALICO_OKE_THIRD_PARTY", str(tmp_path))
    with pytest.raises(ToolError, match=r"pulumi-language-nodejs is not on PATH.*Pulumi install ships"):
        thirdparty.source("pulumi-language-nodejs")


def test_build_waits_for_what_it_reuses_and_skips_what_another_process_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups run after the group whose packages they reuse; a group already in the cache is not built again."""
    monkeypatch.setenv("CALICO_OKE_E2E_CACHE", str(tmp_path))
    order: list[str] = []

    def builder(name: str, seconds: float) -> tools.Builder:
        def build(work: Path, out: Path, log: Path) -> None:
            time.sleep(seconds)
            order.append(name)
            _executable(out / name)
        return build

    first = tools.Group("first", ("first",), "v1", "test", builder("first", 0.5))
    second = tools.Group("second", ("second",), "v1", "test", builder("second", 0), after=("first",))
    built = tools._build_all([second, first], parallel=True, progress=lambda _: None)
    assert order == ["first", "second"] and built["second"].is_file()
    assert tools.build(first) == {"first": first.bin_dir / "first"} and order == ["first", "second"]


def test_stop_detached_stops_a_kept_cluster(tmp_path: Path) -> None:
    """The directory a kept cluster prints is enough to stop every process it runs and remove it."""
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    (tmp_path / controlplane.PIDS_FILE).write_text(f"{proc.pid}\n")
    started = time.monotonic()
    assert controlplane.stop_detached(tmp_path) == 1
    assert time.monotonic() - started < 10, "SIGTERM was not enough"
    proc.wait(timeout=5)
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    assert not tmp_path.exists()
    with pytest.raises(FileNotFoundError, match="not a running local cluster"):
        controlplane.stop_detached(tmp_path)


def test_demo_error_line_is_the_specific_one() -> None:
    """From pulumi's output the demo reports the line that says what failed, not the generic ones after it."""
    output = ("Previewing update (demo):\nerror: GET https://m/v3.28.0/calico.yaml failed after 4 attempt(s)\n"
              "error: an unhandled error occurred: program exited with non-zero exit code: 1\n")
    assert demo._first_error_line(output) == "error: GET https://m/v3.28.0/calico.yaml failed after 4 attempt(s)"


def test_demo_flannel_config_skips_the_oke_addon() -> None:
    """flannel-overlay on the local cluster: no OKE add-on step, nodes already running flannel are allowed."""
    config = demo.Demo(demo.DemoOptions(calico_version="3.28.0", network_type="flannel-overlay", offline=True))
    try:
        assert config._config() == {"calicoVersion": "3.28.0", "networkType": "flannel-overlay",
                                    "nodeOs": "oracle-linux-8", "manifestOffline": "true",
                                    "disableFlannelAddon": "false", "allowExistingNodes": "true"}
    finally:
        config._tidy(succeeded=True)


def test_demo_passes_its_await_timeout_to_the_stack_program() -> None:
    """--await-timeout-seconds becomes the stack program's awaitTimeoutSeconds; without it the key is not set."""
    plain = demo.Demo(demo.DemoOptions(calico_version="3.32.0"))
    timed = demo.Demo(demo.DemoOptions(calico_version="3.32.0", await_timeout_seconds=90))
    try:
        assert "awaitTimeoutSeconds" not in plain._config()
        assert timed._config()["awaitTimeoutSeconds"] == "90"
    finally:
        plain._tidy(succeeded=True)
        timed._tidy(succeeded=True)


def test_fake_nodes_ready_calico_node_after_a_real_nodes_delay_and_everything_else_at_once() -> None:
    """kwok's stages: by default every pod starts at once; with calico_node_ready_seconds=30 a calico-node pod is
    started by a stage of its own delayed 30 to 45 s, every other pod by an undelayed one, and the two stages'
    selectors split pods on the k8s-app label."""
    def stages(seconds: float) -> dict[str, dict[str, Any]]:
        return {s["metadata"]["name"]: s["spec"] for s in yaml.safe_load_all(nodes.kwok_stages(seconds))}

    fast = stages(0)
    assert "delay" not in fast["calico-node-running"] and "delay" not in fast["pod-running"]
    slow = stages(30)
    assert slow["calico-node-running"]["delay"] == {"durationMilliseconds": 30000, "jitterDurationMilliseconds": 45000}
    assert "delay" not in slow["pod-running"] and "delay" not in slow["node-ready"]
    label = {"key": '.metadata.labels["k8s-app"]', "operator": "In", "values": ["calico-node"]}
    assert label in slow["calico-node-running"]["selector"]["matchExpressions"]
    assert {**label, "operator": "NotIn"} in slow["pod-running"]["selector"]["matchExpressions"]
    assert slow["calico-node-running"]["next"] == slow["pod-running"]["next"]
    # Apart from the label, both stages pick the same pods (bound, not deleted, not yet ready, a pullable image).
    def others(stage: str) -> list[Any]:
        return [e for e in slow[stage]["selector"]["matchExpressions"] if e["key"] != label["key"]]
    assert others("calico-node-running") == others("pod-running") and len(others("pod-running")) >= 4


@pytest.mark.parametrize(("argv", "message"), [
    (["demo", "--apply-upgrade"], "--apply-upgrade needs --upgrade-to"),
    (["demo", "--calico-version", "3.28.0", "--upgrade-to", "3.28.0"], "is the version being installed"),
    (["demo", "--nodes", "0"], "from 1 to 1000"),
    (["demo", "--stop", "/tmp"], "not a directory a demo kept"),
    (["demo", "--calico-node-ready-seconds", "-1"], "seconds from 0 to 3600, got '-1'"),
    (["demo", "--await-timeout-seconds", "0"], "a timeout above 0 seconds"),
    (["demo", "--enforce", "--calico-version", "3.30.0"], "built from source, which exists here for 3.30.3, 3.31.5, 3.32.0"),
    (["demo", "--enforce", "--upgrade-to", "3.30.0", "--calico-version", "3.30.3", "--apply-upgrade"], "3.30.0 is not"),
])
def test_demo_usage_errors_exit_2_in_one_line(argv: list[str], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Bad demo flags exit 2 with one `error:` line and start nothing."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error:") and message in err


def test_importing_the_package_loads_neither_pulumi_nor_the_local_layer() -> None:
    """`import calico_component` and the render CLI stay light: no Pulumi SDK, no local-cluster code."""
    code = ("import sys, calico_component, calico_component.cli; "
            "print(sorted(m for m in sys.modules if m == 'pulumi' or m.startswith('calico_component.local')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    assert out.strip() == "[]"


def test_calico_without_sources_names_where_they_come_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No calico-<version> snapshot: the build fails naming CALICO_OKE_THIRD_PARTY and the folder it looked for."""
    monkeypatch.setenv("CALICO_OKE_THIRD_PARTY", str(tmp_path))
    with pytest.raises(ToolError, match=r"calico-v3\.28\.0.*CALICO_OKE_THIRD_PARTY"):
        thirdparty.build_calico("v3.28.0", tmp_path / "work", tmp_path / "out", tmp_path / "log")


def test_each_calico_release_is_a_group_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Felix, calico-node and the CNI plugin of each release build together into a cache folder of their own."""
    monkeypatch.setenv("CALICO_OKE_E2E_CACHE", str(tmp_path))
    for release in tools.CALICO_RELEASES:
        group = tools.group_of(f"calico-node-{release}")
        assert group.tools == tools.calico_tools(release) == (
            f"calico-felix-{release}", f"calico-node-{release}", f"calico-cni-{release}")
        # The folder names the recipe's revision: a patched build never reuses binaries built before the patch.
        assert group.bin_dir == tmp_path / f"calico-{release}-r{thirdparty.CALICO_RECIPE}" / "bin"
    assert set(tools.CALICO_TOOLS) <= set(tools.TOOL_NAMES) and not set(tools.CALICO_TOOLS) & set(tools.DEMO_TOOLS)


def test_first_build_estimate_adds_up_what_is_missing() -> None:
    """The minutes shown before a cold build: everything is the measured figure, a subset less, one group not zero."""
    every = list(tools.groups().values())
    calico = [tools.group_of(f"calico-node-{release}") for release in tools.CALICO_RELEASES]
    without_calico = [g for g in every if g not in calico]
    assert tools.estimated_minutes(every) == tools.COLD_BUILD_ALL_MINUTES
    assert tools.COLD_BUILD_ALL_MINUTES > tools.estimated_minutes(without_calico) > tools.estimated_minutes(calico[:1])
    assert tools.estimated_minutes(calico[:1]) >= calico[0].minutes


def test_leftover_plugins_of_an_interrupted_command_are_killed_by_their_token() -> None:
    """A process that inherited a command's run token dies even in a session of its own; others are left alone."""
    token = f"{workspace.RUN_TOKEN}=test-{os.getpid()}"
    name, _, value = token.partition("=")
    marked = subprocess.Popen(["sleep", "60"], env={**os.environ, name: value}, start_new_session=True)
    other = subprocess.Popen(["sleep", "60"], env={**os.environ, name: value + "-other"}, start_new_session=True)
    try:
        assert workspace.kill_leftovers(token) == [marked.pid]
        assert marked.wait(timeout=5) == -9 and other.poll() is None
    finally:
        other.kill()
        marked.kill()
        other.wait()


def test_dataplane_node_names_the_missing_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataplane node without ipset or nft is refused with the apt-get line for each package, never skipped."""
    import shutil

    from calico_component.local import dataplane

    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd: None if cmd in ("ipset", "nft") else real(cmd))
    missing = dataplane.missing_host_requirements()
    assert "ipset (apt-get install -y ipset)" in missing and "nft (apt-get install -y nftables)" in missing
    with pytest.raises(dataplane.DataplaneError, match="apt-get install -y ipset"):
        dataplane.require_host()


def test_dataplane_pod_blocks_hold_a_full_node_and_do_not_overlap() -> None:
    """Each dataplane node's pod block has an address for every pod its capacity admits, and no two blocks overlap."""
    import ipaddress

    from calico_component.local import dataplane

    blocks = [ipaddress.ip_network(dataplane.pod_network(i)) for i in range(4)]
    capacity = dataplane.DataplaneNode.max_pods  # the default capacity
    assert all(block.num_addresses - 3 >= capacity for block in blocks)  # network, broadcast, the node side's .1
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1:])
