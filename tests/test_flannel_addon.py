"""The OKE Flannel add-on step through the real OCI SDK against a local add-on / work-request endpoint."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from calico_component.errors import CalicoError, FlannelRemovalError, OciApiError
from calico_component.steps.addon import OkeAddonDisabledStep
from calico_component.steps.handler import Diff, Failure, Operation
from calico_component.steps.types import snake
from tests.fake_oke import FakeOke, write_oci_config

CLUSTER = "ocid1.cluster.oc1.iad.aaaaaaaatest"


def _camel(props: dict[str, Any]) -> dict[str, Any]:
    return {re.sub(r"_([a-z])", lambda m: m[1].upper(), k): v for k, v in props.items()}


def _snake(props: dict[str, Any]) -> dict[str, Any]:
    return {snake(k): v for k, v in props.items()}


@dataclass
class Result:
    outs: dict[str, Any] | None = None
    failures: list[Failure] = field(default_factory=list)
    id: str = ""


class OkeAddonDisabledProvider:
    """The add-on step as calico-oke's provider runs it, on these tests' snake_case properties."""

    def __init__(self, warned: list[str] | None = None) -> None:
        self.step = OkeAddonDisabledStep()
        self.op = Operation(warn=(warned if warned is not None else []).append)

    def create(self, props: dict[str, Any]) -> Result:
        resource_id, outs = self.step.create(_camel(props), self.op)
        return Result(_snake(outs), id=resource_id)

    def read(self, id_: str, props: dict[str, Any]) -> Result:
        return Result(_snake(self.step.read(id_, _camel(props), self.op)))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> Result:
        return Result(_snake(self.step.update(_camel(olds), _camel(news), self.op)))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self.step.delete(id_, _camel(props), self.op)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Result:
        return Result(failures=self.step.check(_camel(olds) or None, _camel(news), self.op))

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff:
        return self.step.diff(_camel(olds), _camel(news))


@pytest.fixture()
def oke() -> Iterator[FakeOke]:
    with FakeOke() as server:
        yield server


def _props(oke: FakeOke, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    props: dict[str, Any] = dict(cluster_id=CLUSTER, addon_name="Flannel", remove_resources=True,
                                 endpoint=oke.endpoint, config_file=str(write_oci_config(tmp_path)),
                                 timeout_seconds=10, poll_seconds=0.05, request_timeout_seconds=5,
                                 retry_base_seconds=0.05)
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


def test_unreachable_endpoint_is_retried_then_explained(tmp_path: Path) -> None:
    """An endpoint that accepts connections and never answers is retried within the add-on timeout, then a clear error
    naming the call, the attempts and what to do: not a hang, not a raw SDK traceback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        props = dict(cluster_id=CLUSTER, addon_name="Flannel", endpoint=f"http://127.0.0.1:{s.getsockname()[1]}",
                     config_file=str(write_oci_config(tmp_path)), request_timeout_seconds=0.3, timeout_seconds=2,
                     retry_base_seconds=0.1)
        started = time.monotonic()
        with pytest.raises(OciApiError, match=r"reading OKE add-on Flannel of cluster .* failed after (\d+) attempt") as err:
            OkeAddonDisabledProvider().create(props)
        assert time.monotonic() - started < 10
        assert int(re.search(r"after (\d+) attempt", str(err.value)).group(1)) >= 2  # type: ignore[union-attr]
        assert "run `pulumi up` again later" in str(err.value) and err.value.status is None


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


def test_another_cluster_or_addon_replaces_and_a_new_endpoint_asks_oci_again(oke: FakeOke, tmp_path: Path) -> None:
    """After a create, the same inputs change nothing; another cluster or another add-on name is a replacement (the
    old one is left as it is, the new one disabled); another endpoint is an update that asks OCI again."""
    props = _props(oke, tmp_path)
    outs = OkeAddonDisabledProvider().create(props).outs
    assert outs is not None
    step = OkeAddonDisabledStep()
    olds, news = _camel(outs), _camel(props)
    same = step.diff(olds, news)
    assert same.changes is False and same.diffs == () and same.replaces == ()
    other = step.diff(olds, {**news, "clusterId": "ocid1.cluster.oc1.iad.aaaaaaaaother"})
    assert other.changes is True and "clusterId" in other.replaces
    renamed = step.diff(olds, {**news, "addonName": "Flannel2"})
    assert renamed.changes is True and "addonName" in renamed.replaces
    moved = step.diff(olds, {**news, "endpoint": "http://127.0.0.1:1"})
    assert moved.changes is True and moved.diffs == ("endpoint",) and moved.replaces == ()


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


def test_throttling_is_retried_after_its_retry_after(oke: FakeOke, tmp_path: Path) -> None:
    """Three 429 answers with Retry-After 0.2 s to the add-on read: create waits them out (at least 0.6 s) and disables
    the add-on once."""
    oke.fail("GET", 429, times=3, path_part="/addons/", retry_after="0.2")
    started = time.monotonic()
    outs = OkeAddonDisabledProvider().create(_props(oke, tmp_path)).outs
    assert outs is not None and outs["addon_state"] == "DELETED" and "Flannel" not in oke.addons
    assert oke.answers[429] == 3 and oke.requests[f"GET {ADDON}"] == 4
    assert time.monotonic() - started >= 0.6
    assert oke.requests[f"DELETE {ADDON}"] == 1


def test_server_errors_on_every_call_are_survived(oke: FakeOke, tmp_path: Path) -> None:
    """503 bursts on the add-on read, 500 on the disable and 502 on the work-request poll are each retried: the add-on
    ends disabled with one accepted DELETE."""
    oke.fail("GET", 503, times=2, path_part="/addons/")
    oke.fail("DELETE", 500, times=2)
    oke.fail("GET", 502, times=2, path_part="/workRequests/")
    outs = OkeAddonDisabledProvider().create(_props(oke, tmp_path)).outs
    assert outs is not None and outs["addon_state"] == "DELETED" and "Flannel" not in oke.addons
    assert (oke.answers[503], oke.answers[500], oke.answers[502], oke.answers[202]) == (2, 2, 2, 1)
    assert oke.requests[f"DELETE {ADDON}"] == 3


def test_throttling_that_outlasts_the_timeout_names_the_call_and_status(oke: FakeOke, tmp_path: Path) -> None:
    """429 for longer than the add-on timeout: one OciApiError with the call, the last status and what to do."""
    oke.fail("GET", 429, times=10_000, path_part="/addons/", retry_after="0.2")
    with pytest.raises(OciApiError, match=r"reading OKE add-on Flannel .* failed after \d+ attempt.*HTTP 429") as err:
        OkeAddonDisabledProvider().create(_props(oke, tmp_path, timeout_seconds=1))
    assert err.value.status == 429 and "raise addon_timeout_seconds" in str(err.value)
    assert oke.requests[f"DELETE {ADDON}"] == 0


def test_a_second_up_waits_for_the_disable_still_in_flight(oke: FakeOke, tmp_path: Path) -> None:
    """The first create times out while OKE is still DELETING the add-on (as after Ctrl-C); the second finds it
    DELETING and waits for it (OKE holds the work request until it was read DELETING three times) instead of
    disabling it again, which OKE would answer 409."""
    oke.hold_until_deleting_reads = 3
    with pytest.raises(FlannelRemovalError, match="still IN_PROGRESS"):
        OkeAddonDisabledProvider().create(_props(oke, tmp_path, timeout_seconds=0.3))
    assert oke.requests[f"DELETE {ADDON}"] == 1 and oke.addons["Flannel"] == "DELETING"
    assert oke.served["DELETING"] == 0
    outs = OkeAddonDisabledProvider().create(_props(oke, tmp_path)).outs
    assert outs is not None and outs["addon_state"] == "ABSENT" and "Flannel" not in oke.addons
    assert oke.served["DELETING"] == 3
    assert oke.requests[f"DELETE {ADDON}"] == 1 and oke.answers[409] == 0


def test_a_conflict_from_another_operation_is_waited_out(oke: FakeOke, tmp_path: Path) -> None:
    """OKE answers 409 to the disable (an operation started between the read and the DELETE): create reads the state
    again and disables once the conflict is gone."""
    oke.fail("DELETE", 409, times=1)
    outs = OkeAddonDisabledProvider().create(_props(oke, tmp_path)).outs
    assert outs is not None and outs["addon_state"] == "DELETED"
    assert oke.answers[409] == 1 and oke.requests[f"DELETE {ADDON}"] == 2 and "Flannel" not in oke.addons


@pytest.mark.parametrize("status, fix", [(401, "API key, fingerprint"), (403, "manage cluster-family")])
def test_permanent_answers_fail_at_once_with_the_fix(oke: FakeOke, tmp_path: Path, status: int, fix: str) -> None:
    """401 and 403 are not retried: one request, and an error with the call, the status and the fix. A 429 to the same
    request, by contrast, is retried."""
    oke.fail("GET", 429, times=1, path_part="/addons/", retry_after="0")
    oke.fail("GET", status, times=10, path_part="/addons/")
    with pytest.raises(OciApiError, match=rf"reading OKE add-on Flannel .* failed: HTTP {status}") as err:
        OkeAddonDisabledProvider().create(_props(oke, tmp_path))
    assert fix in str(err.value) and err.value.status == status and isinstance(err.value, CalicoError)
    assert oke.requests[f"GET {ADDON}"] == 2 and oke.answers[429] == 1 and oke.answers[status] == 1


def test_a_missing_cluster_is_not_a_disabled_addon(oke: FakeOke, tmp_path: Path) -> None:
    """A 404 for the add-on of an existing cluster means it is gone (success); when the cluster itself answers 404,
    create fails naming cluster_id instead of reporting flannel removed."""
    oke.addons.clear()
    outs = OkeAddonDisabledProvider().create(_props(oke, tmp_path)).outs
    assert outs is not None and outs["addon_state"] == "ABSENT"
    oke.cluster_exists = False
    with pytest.raises(OciApiError, match=r"reading OKE cluster .* failed: HTTP 404.*check cluster_id"):
        OkeAddonDisabledProvider().create(_props(oke, tmp_path))


def test_refresh_keeps_the_last_state_when_oci_cannot_be_reached(oke: FakeOke, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """read() returns the live state when OCI answers; when it answers 503 past the refresh budget, the last known
    state with a warning; a 403 still fails the refresh."""
    from calico_component.cluster import oke_addon

    monkeypatch.setattr(oke_addon, "REFRESH_TIMEOUT_SECONDS", 0.5)
    warned: list[str] = []
    provider = OkeAddonDisabledProvider(warned)
    outs = provider.create(_props(oke, tmp_path)).outs
    assert outs is not None
    oke.addons["Flannel"] = "ACTIVE"
    live = provider.read("id", outs).outs
    assert live is not None and live["addon_state"] == "ACTIVE" and not warned
    oke.fail("GET", 503, times=10_000, path_part="/addons/")
    kept = provider.read("id", outs).outs
    assert kept is not None and kept["addon_state"] == "DELETED"
    assert len(warned) == 1 and "keeping the last known one (DELETED)" in warned[0] and "HTTP 503" in warned[0]
    oke.faults.clear()
    oke.fail("GET", 403, times=1, path_part="/addons/")
    with pytest.raises(OciApiError, match="HTTP 403"):
        provider.read("id", outs)
