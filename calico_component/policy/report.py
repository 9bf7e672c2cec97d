"""What the policy check says: one line per node checked, the summary line, and for a failure one message naming the
nodes, the step, what the probe did instead, the likely causes in order and how to look. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .plan import STEPS
from .run import NodeResult, ProbeResult

#: Why policy can be accepted and not enforced, most likely first, each with how to look on the node.
ENFORCEMENT_CAUSES = (
    "the interface prefix: Felix only polices interfaces named with FELIX_INTERFACEPREFIX (vcn-native: 'oci'); "
    "compare it with the pods' host-side interfaces (`ip -o link` on the node)",
    "traffic accepted before Calico's rules (chain insert mode Append): a rule ahead of Felix's jump in FORWARD or "
    "INPUT accepts the packet first (`iptables -S FORWARD` on the node: cali-FORWARD must come before any ACCEPT)",
    "the iptables backend: Felix writes to the other one than the node uses (FELIX_IPTABLESBACKEND; compare "
    "`iptables-nft -S` and `iptables-legacy -S` on the node)",
    "Felix not programming: `kubectl logs -n kube-system <calico-node pod on the node> -c calico-node`, and "
    "`kubectl get felixconfiguration default -o yaml`",
)
REACHABILITY_CAUSES = (
    "pod networking on the node: the CNI gave the pods no working address or route (`kubectl get pods -o wide` in "
    "the check's namespace while it runs, the CNI's logs on the node)",
    "a policy outside the check's namespace already denies it (a GlobalNetworkPolicy or a default deny applied to "
    "every namespace)",
)


def _partition(results: Sequence[NodeResult]) -> tuple[list[NodeResult], list[NodeResult], list[NodeResult]]:
    """(enforced, failed, not run): every node checked is in exactly one."""
    enforced = [r for r in results if r.enforced]
    not_run = [r for r in results if r.not_run]
    failed = [r for r in results if not r.enforced and not r.not_run]
    return enforced, failed, not_run


def _names(results: Sequence[NodeResult]) -> str:
    return ", ".join(r.node for r in results)


def _steps_proved() -> str:
    return ", ".join(step.name for step in STEPS[1:])


def node_line(result: NodeResult) -> str:
    """``<node>: enforced (...)``, ``<node>: NOT ENFORCED ...`` or ``<node>: could not run ...``."""
    if result.not_run:
        return f"{result.node}: could not run the check: {result.not_run}"
    failure = result.first_failure()
    if failure is None:
        probes = sum(len(r) for _s, r in result.steps)
        return f"{result.node}: policy enforced ({_steps_proved()}; {probes} probes)"
    step, probe = failure
    return f"{result.node}: FAILED at step '{step.name}': {_what_happened(probe)}"


def _what_happened(result: ProbeResult) -> str:
    did = {"ok": "it connected", "timeout": "it timed out", "refused": "it was refused (a reset, not a drop)",
           "other": f"it failed otherwise ({result.detail})", "not-run": result.detail}[result.outcome]
    return f"{result.probe.describe()}, but {did} (after {result.attempts} attempt(s))"


def summary(results: Sequence[NodeResult]) -> str:
    """The one line a user reads first."""
    enforced, failed, not_run = _partition(results)
    if len(enforced) == len(results):
        return (f"verify: policy enforced on {len(enforced)} of {len(results)} nodes checked ({_names(enforced)}): "
                f"{_steps_proved()}")
    parts = []
    if failed:
        parts.append(f"policy NOT enforced on {_names(failed)}")
    if not_run:
        parts.append(f"could not run on {_names(not_run)}")
    return f"verify: {'; '.join(parts)} ({len(enforced)} of {len(results)} nodes checked passed)"


def _causes(results: Sequence[NodeResult]) -> tuple[str, ...]:
    """Something that must connect did not (reachability), or something that must be dropped was not (enforcement)."""
    first = [f for f in (r.first_failure() for r in results) if f is not None]
    if first and all(probe.probe.expect == "ok" for _, probe in first):
        return REACHABILITY_CAUSES
    return ENFORCEMENT_CAUSES


def failure_message(results: Sequence[NodeResult]) -> str | None:
    """One message for everything that failed, or None when policy was enforced on every node checked."""
    _enforced, failed, not_run = _partition(results)
    if not failed and not not_run:
        return None
    lines = [summary(results)] + [f"  {node_line(r)}" for r in results if not r.enforced]
    if failed:
        lines.append("Likely causes, in order:")
        lines += [f"  {i}. {cause}" for i, cause in enumerate(_causes(failed), 1)]
    if not_run:
        lines.append("A node where the check could not run runs no containers (a virtual or simulated node), or "
                     "cannot pull the probe image: mirror it with image_registry and check the node's events.")
    return "\n".join(lines)


def error_line(results: Sequence[NodeResult]) -> str:
    """The CLI's last line on failure (without ``error:``): the first failed node and step, or why it could not run."""
    _enforced, failed, not_run = _partition(results)
    if failed:
        found = failed[0].first_failure()
        step = f" at step '{found[0].name}'" if found else ""
        return f"policy NOT enforced on {_names(failed)}: {failed[0].node} failed{step} (details above)"
    return f"could not run the policy check on {_names(not_run)}: {not_run[0].not_run}"


@dataclass(frozen=True)
class Report:
    """A check's results as the CLI and the component both show them."""

    #: One line per node checked, in the order checked.
    lines: tuple[str, ...]
    summary: str
    #: The whole failure (nodes, step, causes), None when policy was enforced on every node checked.
    failure: str | None


def report(results: Sequence[NodeResult]) -> Report:
    """The node lines, the summary and the failure message of one check."""
    return Report(tuple(node_line(r) for r in results), summary(results), failure_message(results))
