"""Typha and pod-CIDR decisions: the 50-node threshold, explicit settings, and the refusals that go with them."""

from __future__ import annotations

import pytest

from calico_component.errors import ConfigurationError
from calico_component.manifest.plan import choose_pod_cidr, choose_typha, validate_typha_mode


@pytest.mark.parametrize("nodes, enabled", [(0, False), (50, False), (51, True), (300, True)])
def test_typha_auto_threshold(nodes: int, enabled: bool) -> None:
    """auto turns Typha on above 50 managed nodes (Calico's install docs), and off at 50 or fewer."""
    choice = choose_typha("auto", "flannel-overlay", node_count=nodes, replicas=None)
    assert choice.enabled is enabled and choice.typha_manifest is enabled
    assert str(nodes) in choice.reason


def test_typha_auto_without_node_count_is_off() -> None:
    """Without a cluster lookup (a cluster created in the same program), auto leaves Typha off and says why."""
    choice = choose_typha("auto", "flannel-overlay", node_count=None, replicas=None)
    assert not choice.enabled and "node count" in choice.reason


def test_typha_replicas_with_auto_means_on() -> None:
    """Asking for Typha replicas under auto turns Typha on, whatever the node count."""
    assert choose_typha("auto", "flannel-overlay", node_count=3, replicas=2).typha_manifest


def test_typha_explicit_on_and_off() -> None:
    """on and off override the node count."""
    assert choose_typha("on", "flannel-overlay", node_count=1, replicas=None).typha_manifest
    assert not choose_typha("off", "flannel-overlay", node_count=500, replicas=None).enabled


def test_typha_off_with_replicas_is_refused() -> None:
    """typha='off' together with typha_replicas is a contradiction, named in the error."""
    with pytest.raises(ConfigurationError, match=r"typha_replicas=3 needs Typha"):
        choose_typha("off", "flannel-overlay", node_count=None, replicas=3)


def test_vcn_native_always_has_typha() -> None:
    """vcn-native keeps Oracle's calico-policy-only.yaml (which has Typha): auto/on change nothing, off is refused."""
    for mode in ("auto", "on"):
        choice = choose_typha(mode, "vcn-native", node_count=500, replicas=None)
        assert choice.enabled and not choice.typha_manifest
    with pytest.raises(ConfigurationError, match="only to flannel-overlay"):
        choose_typha("off", "vcn-native", node_count=None, replicas=None)


def test_bad_typha_mode() -> None:
    """A typha value outside auto/on/off names the value and the valid ones."""
    with pytest.raises(ConfigurationError, match=r"typha 'yes' is not supported; expected one of auto, on, off"):
        validate_typha_mode("yes")


def test_pod_cidr_precedence() -> None:
    """flannel-overlay: explicit pod_cidr beats the cluster's pods CIDR, which beats nothing."""
    assert choose_pod_cidr("flannel-overlay", "10.50.0.0/16", "10.244.0.0/16").cidr == "10.50.0.0/16"
    from_cluster = choose_pod_cidr("flannel-overlay", None, "10.244.0.0/16")
    assert (from_cluster.cidr, from_cluster.source, from_cluster.warning) == ("10.244.0.0/16", "cluster", None)


def test_unknown_pod_cidr_warns_about_calicos_default() -> None:
    """Without either, Calico's 192.168.0.0/16 default is named in a warning that says how to set the CIDR."""
    choice = choose_pod_cidr("flannel-overlay", None, None)
    assert choice.cidr is None and choice.warning is not None
    assert "192.168.0.0/16" in choice.warning and "pod_cidr" in choice.warning


def test_vcn_native_ignores_cluster_pods_cidr() -> None:
    """vcn-native pods take VCN addresses: the cluster's pods CIDR is not used and nothing is warned."""
    choice = choose_pod_cidr("vcn-native", None, "10.244.0.0/16")
    assert choice.cidr is None and choice.warning is None
