"""``python -m calico_component demo``: the stack program through the pulumi CLI on a throwaway cluster of fake nodes.

Every step has a name; a failure is one ``error:`` line naming the step and the directory its logs
were kept in. Everything the demo starts (control plane, pulumi and its plugins) stops when it
returns, fails or is interrupted, unless ``--keep`` asks to leave the cluster up. Nothing is
written to the user's Pulumi home, ``~/.kube`` or the repository: each run works in a directory
of its own under the system's temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import yaml

from . import tools
from .controlplane import PIDS_FILE, ControlPlane, stop_detached
from .dataplane import DataplaneNode, missing_host_requirements
from .nodes import add_nodes, calico_node_pods, cordon, flannel_present, pod_ready, run_fake_flannel
from .policydemo import BACKEND_PORT, ENFORCED, OPEN, OTHER_PORT, Scenario, Watch, enforcement_line
from .program import copy_example, copy_stack_program
from .workspace import PulumiCli, PulumiCommandError, engine_env

RUN_PREFIX = "calico-oke-demo-"


@dataclass(frozen=True)
class DemoOptions:
    """What the command line asked for (validated by the CLI's parser)."""

    calico_version: str
    nodes: int = 3
    network_type: str = "vcn-native"
    upgrade_to: str | None = None
    apply_upgrade: bool = False
    mirror: str | None = None
    offline: bool = False
    keep: bool = False
    #: Add one node with a real dataplane (Felix built from source) and show the demo policies enforced there.
    enforce: bool = False
    #: How long a fake node's calico-node pod takes to become Ready (0: at once).
    calico_node_ready_seconds: float = 0
    #: The stack program's awaitTimeoutSeconds (None: the provider's default).
    await_timeout_seconds: float | None = None


class StepError(Exception):
    """A named step of the demo failed; ``reason`` is one line."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step} failed: {reason}")
        self.step = step
        self.reason = reason


@dataclass
class UpgradePreview:
    """What ``pulumi preview`` of a version change would do, by operation."""

    target: str
    counts: dict[str, int]

    def summary(self) -> str:
        c = self.counts
        return (f"upgrade preview to {self.target}: {c.get('update', 0)} updates, {c.get('create', 0)} creates, "
                f"{c.get('delete', 0)} deletes, {c.get('replace', 0)} replacements")

    def final(self) -> str:
        return (f"upgrade preview to {self.target}: {self.counts.get('update', 0)} updates, "
                f"{self.counts.get('replace', 0)} replacements")


#: Lines pulumi adds after the real error, which say only that something failed.
_GENERIC_ERRORS = ("an unhandled error occurred", "update failed", "preview failed", "Program failed")


def _first_error_line(text: str) -> str:
    """The line of a pulumi command's output that says what went wrong: its first specific ``error:`` line."""
    lines = [ln.strip() for ln in text.splitlines() if "error:" in ln and not ln.strip().endswith("error:")]
    specific = [ln for ln in lines if not any(g in ln for g in _GENERIC_ERRORS)]
    return (specific or lines or [text.strip().splitlines()[-1] if text.strip() else "no output"])[0]


def _interrupt_on_signals() -> Callable[[], None]:
    """Ctrl-C and SIGTERM both raise KeyboardInterrupt, so cleanup runs; return what restores the old handlers.

    SIGINT is set explicitly: a process started in the background by a non-interactive shell inherits it
    ignored, and Python then installs no handler of its own.
    """
    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, on_term),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


@dataclass
class Demo:
    """One demo run: tools, cluster, stack program, preview, up, optional upgrade."""

    options: DemoOptions
    out: TextIO = sys.stdout
    run_dir: Path = field(init=False)
    step: str = field(init=False, default="start")

    def __post_init__(self) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix=RUN_PREFIX))
        self.logs = self.run_dir / "logs"
        self.logs.mkdir()
        self._commands = 0
        self._scenario: Scenario | None = None
        self._enforcement = ""

    def say(self, message: str) -> None:
        self.out.write(message + "\n")
        self.out.flush()

    @contextlib.contextmanager
    def _step(self, name: str) -> Iterator[None]:
        """Run one step: any failure becomes StepError(name, one line)."""
        self.step = name
        try:
            yield
        except (StepError, KeyboardInterrupt):
            raise
        except PulumiCommandError as exc:
            raise StepError(name, f"pulumi {' '.join(exc.args_)}: {_first_error_line(exc.output)}") from exc
        except Exception as exc:  # every other failure is reported as this step's, in one line
            raise StepError(name, " ".join(str(exc).split()) or type(exc).__name__) from exc

    def run(self) -> str:
        """Run every step; return the final line. Cleans up on every way out."""
        restore = _interrupt_on_signals()
        succeeded = False
        try:
            with self._step("tools"):
                paths = tools.ensure(self._tool_names(), progress=self.say)
                self.say("tools: " + "; ".join(tools.describe(name, paths[name], with_path=False)
                                               for name in ("pulumi", "pulumi-resource-kubernetes")))
            final = self._with_cluster(paths)
            succeeded = True
            return final
        finally:
            restore()
            self._tidy(succeeded)

    def _tool_names(self) -> tuple[str, ...]:
        """The demo's tools; with --enforce also Calico's own binaries (and a check that this machine can run them)."""
        if not self.options.enforce:
            return tools.DEMO_TOOLS
        missing = missing_host_requirements()
        if missing:
            raise StepError("tools", "--enforce runs a node with a real dataplane, which needs " + "; ".join(missing))
        return (*tools.DEMO_TOOLS, *(t for release in self._releases() for t in tools.calico_tools(release)))

    def _releases(self) -> list[str]:
        """The Calico releases the dataplane node runs: the installed one, and the upgrade's when it is applied."""
        o = self.options
        return [f"v{v}" for v in (o.calico_version, o.upgrade_to if o.apply_upgrade else None) if v]

    @property
    def total_nodes(self) -> int:
        return self.options.nodes + (1 if self.options.enforce else 0)

    def _with_cluster(self, paths: dict[str, Path]) -> str:
        with self._step("cluster"):
            self.say(f"starting a control plane on 127.0.0.1 with {self.options.nodes} fake nodes (kwok) ...")
            cp = ControlPlane(paths["etcd"], paths["kube-apiserver"], paths["kube-controller-manager"],
                              kube_scheduler=paths["kube-scheduler"], kwok=paths["kwok"], log_dir=self.logs,
                              outlive_parent=self.options.keep, parent_dir=self.run_dir,
                              calico_node_ready_seconds=self.options.calico_node_ready_seconds)
            cp.__enter__()
        node: DataplaneNode | None = None
        try:
            if self.options.enforce:
                node = self._dataplane_node(cp, paths)
            final = self._on_cluster(cp, paths, node)
            if self.options.keep:
                self._detach(cp, node)
            return final
        finally:
            if node is not None:
                node.__exit__(None, None, None)
            cp.__exit__(None, None, None)

    def _dataplane_node(self, cp: ControlPlane, paths: dict[str, Path]) -> DataplaneNode:
        with self._step("dataplane node"):
            binaries = {release: paths[f"calico-node-{release}"] for release in self._releases()}
            cni = {release: paths[f"calico-cni-{release}"] for release in self._releases()}
            node = DataplaneNode(cp, binaries, calico_cni=cni, pod_network=self.options.network_type,
                                 parent_dir=self.run_dir, outlive_parent=self.options.keep)
            node.__enter__()
            self.say(f"node {node.name}: a real dataplane (network namespaces; calico-node runs Calico "
                     f"{', '.join(binaries)} built from source, Felix polices its pods); kwok plays the other nodes")
        return node

    def _on_cluster(self, cp: ControlPlane, paths: dict[str, Path], node: DataplaneNode | None) -> str:
        from kubernetes import config as k8s_config

        k8s = k8s_config.new_client_from_config_dict(yaml.safe_load(cp.kubeconfig))  # type: ignore[no-untyped-call]
        with self._step("cluster"):
            fake = add_nodes(k8s, self.options.nodes)
            if node is not None:
                cordon(k8s, fake)  # the policy demo's pods go to the node whose dataplane is real
            if self.options.network_type == "flannel-overlay":
                self._fake_flannel(k8s)
        cli = self._stack(cp, paths)
        with self._step("preview"):
            self._show_preview(cli)
        with self._step("up"):
            self.say("pulumi up --yes: waiting until calico-node is ready on every node ...")
            self._pulumi(cli, "up", "--yes", "--skip-preview")
            ready = self._show_nodes(k8s, self.options.calico_version)
            self._show_policy_check(cli)
        enforced = self._policy_demo(cp, cli, k8s, node) if node is not None else None
        version = self.options.calico_version
        upgrade = None
        if self.options.upgrade_to:
            upgrade = self._upgrade(cli, k8s)
            if self.options.apply_upgrade:
                version = self.options.upgrade_to
                ready = self._show_nodes(k8s, version)
                self._show_policy_check(cli)
        parts = [f"demo ok: Calico {version} ready on {ready}/{self.total_nodes} nodes",
                 *([upgrade.final()] if upgrade else []), *([enforced] if enforced else [])]
        if self._enforcement:
            self.say(self._enforcement)
        return "; ".join(parts)

    def _fake_flannel(self, k8s: Any) -> None:
        run_fake_flannel(k8s, self.total_nodes)
        self.say(f"kube-system/kube-flannel-ds running on {self.total_nodes} nodes (a fake flannel, as on an "
                 "OKE flannel-overlay cluster)")

    def _stack(self, cp: ControlPlane, paths: dict[str, Path]) -> PulumiCli:
        with self._step("stack program"):
            program = copy_stack_program(self.run_dir / "program")
            env = engine_env(self.run_dir / "pulumi", paths)
            cli = PulumiCli(paths["pulumi"], program, env)
            self._pulumi(cli, "stack", "init", "demo")
            for key, value in self._config().items():
                self._pulumi(cli, "config", "set", key, value)
            self._pulumi(cli, "config", "set", "--secret", "kubeconfig", stdin=cp.kubeconfig)
            self.say(f"stack program: {program} (a copy of the repository's Pulumi.yaml and __main__.py)")
        return cli

    def _policy_demo(self, cp: ControlPlane, stack: PulumiCli, k8s: Any, node: DataplaneNode) -> str:
        """examples/network-policy-demo beside the stack program: connections before, and after its policies' `up`."""
        with self._step("policy demo"):
            cli = PulumiCli(stack.binary, copy_example("network-policy-demo", self.run_dir / "policy-demo"), stack.env)
            self._pulumi(cli, "stack", "init", "demo")
            for key, value in {"installCalico": "false", "policies": "false"}.items():
                self._pulumi(cli, "config", "set", key, value)
            self._pulumi(cli, "config", "set", "--secret", "kubeconfig", stdin=cp.kubeconfig)
            self.say("examples/network-policy-demo (installCalico=false): pulumi up --yes: backend deployment ...")
            self._pulumi(cli, "up", "--yes", "--skip-preview")
            scenario, other = Scenario.start(node, k8s)
            try:
                summary = self._policies_take_effect(cli, scenario)
            finally:
                other.terminate()
            self._scenario = scenario
            return summary

    def _policies_take_effect(self, cli: PulumiCli, scenario: Scenario) -> str:
        before = scenario.matrix()
        if before != OPEN:
            raise RuntimeError(f"before any policy every connection should succeed; saw {before}")
        self.say(f"before the policies: client and frontend reach backend:{BACKEND_PORT} and backend:{OTHER_PORT}")
        self._pulumi(cli, "config", "set", "policies", "true")
        self.say("pulumi up --yes: default-deny-ingress and allow-frontend-to-backend ...")
        self._pulumi(cli, "up", "--yes", "--skip-preview")
        denied = scenario.until("client", BACKEND_PORT, "timeout", 30)
        other = scenario.until("frontend", OTHER_PORT, "timeout", 30)
        seen = scenario.matrix()
        words = {"ok": "allowed", "timeout": "denied"}
        self.say(f"policy: client -> backend:{BACKEND_PORT} denied after {denied:.1f}s; frontend -> backend:"
                 f"{BACKEND_PORT} {words.get(seen['frontend:8080'], seen['frontend:8080'])}; frontend -> backend:"
                 f"{OTHER_PORT} denied after {other:.1f}s (seconds after `up` returned)")
        if seen != ENFORCED:
            raise RuntimeError(f"the policies are not enforced as written: expected {ENFORCED}, saw {seen}")
        return f"policy enforced on {scenario.node.name}"

    def _config(self) -> dict[str, str]:
        o = self.options
        config = {"calicoVersion": o.calico_version, "networkType": o.network_type, "nodeOs": "oracle-linux-8"}
        if o.mirror:
            config["manifestMirror"] = o.mirror
        if o.offline:
            config["manifestOffline"] = "true"
        if o.await_timeout_seconds is not None:
            config["awaitTimeoutSeconds"] = f"{o.await_timeout_seconds:g}"
        if o.enforce:
            # The component's own check (verifyPolicy) after each change; the cordoned kwok nodes are not sampled.
            config["verifyPolicy"] = "true"
        if o.network_type == "flannel-overlay":
            # No OKE here: only kube-flannel-ds is deleted, and the nodes already run flannel.
            config.update(disableFlannelAddon="false", allowExistingNodes="true")
        return config

    def _show_policy_check(self, cli: PulumiCli) -> None:
        """With --enforce, the `verify:` line the component's check printed during the last `up` (not the stack output,
        which would still show an earlier run's)."""
        if not self.options.enforce:
            return
        up = next(out for args, out in reversed(cli.transcript) if args[0] == "up")
        lines = [line.strip() for line in up.splitlines() if line.strip().startswith("verify:")]
        self.say(lines[-1] if lines else "the component's policy check did not run during this `up`")

    def _pulumi(self, cli: PulumiCli, *args: str, stdin: str | None = None) -> str:
        """Run one pulumi command, its output kept in the logs directory."""
        self._commands += 1
        log = self.logs / f"pulumi-{self._commands:02d}-{args[0]}.log"
        try:
            proc = cli(*args, stdin=stdin)
        finally:
            if cli.transcript:
                log.write_text(cli.transcript[-1][1])
        return proc.stdout

    def _show_preview(self, cli: PulumiCli) -> None:
        output = self._pulumi(cli, "preview", "--diff")
        summary = output[output.rfind("Resources:"):].strip().splitlines() if "Resources:" in output else []
        self.say("pulumi preview --diff: " + "; ".join(line.strip() for line in summary[1:] if line.strip()))

    def _show_nodes(self, k8s: Any, version: str) -> int:
        """Print calico-node per node (ready, image); return how many nodes run the expected image and are ready."""
        ready = 0
        for pod in sorted(calico_node_pods(k8s), key=lambda p: p.spec.node_name or ""):
            is_ready = pod_ready(pod)
            image = pod.spec.containers[0].image
            ready += is_ready and image.endswith(f":v{version}")
            self.say(f"  {pod.spec.node_name:<12} {pod.metadata.name:<24} {'ready' if is_ready else 'NOT READY':<10} "
                     f"{image}")
        if self.options.network_type == "flannel-overlay":
            self.say(f"  kube-system/kube-flannel-ds: {'still present' if flannel_present(k8s) else 'removed'}")
        return ready

    def _upgrade(self, cli: PulumiCli, k8s: Any) -> UpgradePreview:
        target = self.options.upgrade_to
        assert target is not None
        with self._step("upgrade preview"):
            self._pulumi(cli, "config", "set", "calicoVersion", target)
            changes = json.loads(self._pulumi(cli, "preview", "--json")).get("changeSummary", {})
            upgrade = UpgradePreview(target, {op: int(n) for op, n in changes.items()})
            self.say(upgrade.summary())
        if self.options.apply_upgrade:
            with self._step("upgrade"):
                self.say(f"pulumi up --yes: upgrading to {target}, waiting for every calico-node pod ...")
                if self._scenario is None:
                    self._pulumi(cli, "up", "--yes", "--skip-preview")
                else:
                    self._upgrade_probed(cli, self._scenario)
        return upgrade

    def _upgrade_probed(self, cli: PulumiCli, scenario: Scenario) -> None:
        """The upgrade with the demo's denied and allowed clients probing the backend every 50 ms throughout."""
        self.say("  probing: client (denied) and frontend (allowed) -> backend:8080 every 50 ms during the upgrade")
        with Watch(scenario, self.logs / "probes") as watch:
            self._pulumi(cli, "up", "--yes", "--skip-preview")
        logs = watch.logs()
        self._enforcement = enforcement_line(logs)
        if logs["client"].count("ok"):
            self.say(self._enforcement)
            raise RuntimeError(f"the denied client connected {logs['client'].count('ok')} times during the upgrade "
                               f"(probe logs in {self.logs / 'probes'})")

    def _detach(self, cp: ControlPlane, node: DataplaneNode | None) -> None:
        cp.detach(dependents=(node.detach(),) if node is not None else ())
        self.say(f"cluster kept: KUBECONFIG={cp.kubeconfig_path}")
        self.say(f"stop it with: python -m calico_component demo --stop {self.run_dir}")

    def _tidy(self, succeeded: bool) -> None:
        """Success: remove the run directory (unless kept). Failure: keep only its logs."""
        if self.options.keep and succeeded:
            return
        if succeeded:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            return
        for child in self.run_dir.iterdir():
            if child != self.logs:
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)


def stop(run_dir: Path) -> str:
    """Stop a cluster a ``--keep`` demo left running, and remove its directory."""
    if not run_dir.name.startswith(RUN_PREFIX) or not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a directory a demo kept (they are named {RUN_PREFIX}*)")
    stopped = sum(stop_detached(pids.parent) for pids in run_dir.glob(f"*/{PIDS_FILE}"))
    shutil.rmtree(run_dir, ignore_errors=True)
    return f"stopped {stopped} processes and removed {run_dir}"


def run(options: DemoOptions, out: TextIO = sys.stdout) -> tuple[int, str]:
    """The command: (exit status, last line). Failures name the step and where its logs are."""
    demo = Demo(options, out)
    started = time.monotonic()
    try:
        final = demo.run()
    except StepError as exc:
        return 1, f"error: {exc}; logs in {demo.logs}"
    except KeyboardInterrupt:
        return 130, f"error: interrupted during step {demo.step}; everything it started was stopped; logs in {demo.logs}"
    out.write(f"done in {time.monotonic() - started:.0f}s\n")
    return 0, final

