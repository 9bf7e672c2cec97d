"""Taking over a Calico installed by hand never opens a window: with policies in force and clients probing, the stack
program with adoptExisting adopts it, the denied client never connects, and nothing is recreated or restarted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.cluster import live_uids
from tests.e2e.enforcement import NETWORK_CONFIG, Enforcement, enforcement_cluster, rendered_manifest, watched

CONFIG = {"calicoVersion": "3.32.0", **NETWORK_CONFIG["vcn-native"]}


@pytest.fixture(scope="module")
def hand_installed(dataplane_tool_paths: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enforcement]:
    with enforcement_cluster(dataplane_tool_paths, tmp_path_factory.mktemp("adopt"), CONFIG, by_hand=True) as cluster:
        yield cluster


def test_adopting_a_hand_install_keeps_every_policy_enforced(hand_installed: Enforcement, tmp_path: Path) -> None:
    """Calico 3.32.0 from `kubectl apply --server-side`, the demo policies in force: `pulumi config set adoptExisting
    true` and an awaited `up` take every object over; the denied client never connected, no UID changed, the node's
    Calico kept running the same pod, and preview then has nothing to change."""
    e = hand_installed
    objects = [o for o in yaml.safe_load_all(rendered_manifest("3.32.0", CONFIG)) if o]
    uids = live_uids(e.k8s, objects)
    calico_pod = e.node.calico_state()["uid"]
    change = watched(e, tmp_path / "probes", ("config", "set", "adoptExisting", "true"),
                     ("up", "--yes", "--skip-preview"))
    change.assert_denied_client_never_connected()
    assert live_uids(e.k8s, objects) == uids, "adoption recreated objects"
    assert e.node.calico_state()["uid"] == calico_pod, "adoption restarted the node's Calico"
    e.stack("preview", "--expect-no-changes")
