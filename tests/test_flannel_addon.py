"""The OKE Flannel add-on step through the real OCI SDK against a local add-on / work-request endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from calico_component.flannel import FlannelRemovalError, OkeAddonDisabledProvider
from tests.fake_oke import FakeOke, write_oci_config

CLUSTER = "ocid1.cluster.oc1.iad.aaaaaaaatest"


@pytest.fixture()
def oke() -> Iterator[FakeOke]:
    with FakeOke() as server:
        yield server


def _props(oke: FakeOke, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    props: dict[str, Any] = dict(cluster_id=CLUSTER, addon_name="Flannel", remove_resources=True,
                                 endpoint=oke.endpoint, config_file=str(write_oci_config(tmp_path)),
                                 timeout_seconds=10, poll_seconds=0.05, request_timeout_seconds=5)
    props.update(kw)
    return props


ADDON = f"/20180222/clusters/{CLUSTER}/addons/Flannel"


def test_disable_succeeds_and_waits_for_work_request(oke: FakeOke, tmp_path: Path) -> None:
    """An active add-on is disabled with resource removal, and create waits for the work request to succeed."""
    result = OkeAddonDisabledProvider().create(_props(oke, tmp_path))
    assert result.id == f"{CLUSTER}/Flannel"
    assert result.outs is not None and result.outs["addon_state"] == "DELETED"
    assert result.outs["work_request_id"].startswith("ocid1.clustersworkrequest")
    assert oke.requests[f"DELETE {ADDON}"] == 1
    assert oke.requests[f"GET /20180222/workRequests/{result.outs['work_request_id']}"] == 2
    assert "Flannel" not in oke.addons
    assert oke.signed and all(oke.signed)


def test_already_disabled_is_success(oke: FakeOke, tmp_path: Path) -> None:
    """An add-on that is already gone makes create succeed without a DELETE."""
    oke.addons.clear()
    result = OkeAddonDisabledProvider().create(_props(oke, tmp_path))
    assert result.outs is not None and result.outs["addon_state"] == "ABSENT"
    assert oke.requests[f"DELETE {ADDON}"] == 0


def test_failing_work_request_is_an_error(oke: FakeOke, tmp_path: Path) -> None:
    """A work request that ends FAILED makes create fail with the request id and what to do."""
    oke.work_request_outcome = "FAILED"
    with pytest.raises(FlannelRemovalError, match=r"ended FAILED.*pulumi up"):
        OkeAddonDisabledProvider().create(_props(oke, tmp_path))


def test_work_request_timeout(oke: FakeOke, tmp_path: Path) -> None:
    """A work request that never finishes fails after the configured timeout, naming it."""
    oke.work_request_outcome = "IN_PROGRESS"
    with pytest.raises(FlannelRemovalError, match=r"still IN_PROGRESS after 0.5s"):
        OkeAddonDisabledProvider().create(_props(oke, tmp_path, timeout_seconds=0.5))


def test_unreachable_endpoint_times_out(tmp_path: Path) -> None:
    """An endpoint that does not answer is a clear error, not a hang."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        props = dict(cluster_id=CLUSTER, addon_name="Flannel", endpoint=f"http://127.0.0.1:{s.getsockname()[1]}",
                     config_file=str(write_oci_config(tmp_path)), request_timeout_seconds=0.5)
        with pytest.raises(FlannelRemovalError, match="reading OKE add-on Flannel"):
            OkeAddonDisabledProvider().create(props)


def test_refresh_notices_reenabled_addon(oke: FakeOke, tmp_path: Path) -> None:
    """read() reports the add-on ACTIVE again, and diff() then asks for an update that disables it again."""
    provider = OkeAddonDisabledProvider()
    props = _props(oke, tmp_path)
    outs = provider.create(props).outs
    assert outs is not None
    oke.addons["Flannel"] = "ACTIVE"
    refreshed = provider.read(f"{CLUSTER}/Flannel", outs)
    assert refreshed.outs is not None and refreshed.outs["addon_state"] == "ACTIVE"
    assert provider.diff("id", refreshed.outs, props).changes
    assert not provider.diff("id", outs, props).changes
    updated = provider.update("id", refreshed.outs, props).outs
    assert updated is not None and updated["addon_state"] == "DELETED" and "Flannel" not in oke.addons


def test_delete_leaves_flannel_alone(oke: FakeOke, tmp_path: Path) -> None:
    """Destroy does not re-enable or touch the add-on: no request is made."""
    before = sum(oke.requests.values())
    OkeAddonDisabledProvider().delete(f"{CLUSTER}/Flannel", _props(oke, tmp_path))
    assert sum(oke.requests.values()) == before


def test_existing_nodes_guard_on_first_create_only() -> None:
    """check() refuses a first install on a cluster with worker nodes unless allowed, and never fails later."""
    provider = OkeAddonDisabledProvider()
    news = {"cluster_id": CLUSTER, "existing_node_count": 3, "allow_existing_nodes": False}
    failures = provider.check({}, news).failures
    assert failures and "already has 3 worker node(s)" in failures[0].reason
    assert not provider.check({}, {**news, "allow_existing_nodes": True}).failures
    assert not provider.check({"cluster_id": CLUSTER}, news).failures
    assert not provider.check({}, {**news, "existing_node_count": 0}).failures


def test_missing_oci_config_is_explained(tmp_path: Path) -> None:
    """Without an OCI config the error says how to configure it or skip the add-on step."""
    with pytest.raises(FlannelRemovalError, match="disable_flannel_addon=False"):
        OkeAddonDisabledProvider().create(dict(cluster_id=CLUSTER, addon_name="Flannel",
                                               config_file=str(tmp_path / "missing")))
