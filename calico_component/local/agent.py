"""The agent of a local node with a real dataplane: PID 1 of the node's own pid, network and mount namespaces.

``calico_component.local.dataplane`` starts it under ``unshare``; everything it starts lives in
those namespaces and dies with it. This module is only its entry point; the node is built from:

- ``node_host``: the node's network (a dummy ``eth0`` with the node's address, IP forwarding, and one
  rule in each filter chain, there before Calico, so where Felix inserts its chains shows), mounts,
  event log and processes;
- ``apiproxy``: the API server, reached through a forwarder on the node's loopback;
- ``kubelet``: every pod bound to the node, kept running as its spec says;
- ``calico_node_pod``: calico-node's pod, Calico's own processes built for the pod's image release,
  with the pod's environment as the API server has it;
- ``pods`` and ``pod_network``: other pods get a network namespace, a veth and an address (from
  Calico's CNI plugin or the VCN-native stand-in) and a stand-in container listening on their TCP
  ports; other host-network pods and unpullable images only get a status.

Run: ``python -m calico_component.local.agent CONFIG.json`` (only the dataplane module does).
"""


from __future__ import annotations

import signal
import sys
import threading
import traceback
from pathlib import Path

from .apiproxy import ApiForwarder
from .kubelet import Kubelet
from .node_host import Events, NodeConfig, add_node_rules, now, prepare_mounts, prepare_network


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    cfg = NodeConfig.load(Path(args[0]))
    workdir = Path(cfg.workdir)
    events = Events(workdir / "events.log")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    kubelet: Kubelet | None = None
    try:
        kubelet = _boot(cfg, workdir, events)
        (workdir / "agent.ready").write_text(now())
        events("node-ready", node=cfg.node)
        kubelet.run(stop)
        return 0
    except Exception:
        (workdir / "agent.error").write_text(traceback.format_exc())
        events("agent-failed")
        return 1
    finally:
        if kubelet is not None:
            kubelet.shutdown()
        events("agent-stopped")


def _boot(cfg: NodeConfig, workdir: Path, events: Events) -> Kubelet:
    """The node's mounts, network, API forwarder and pre-existing rules, then a kubelet connected through it."""
    import yaml
    from kubernetes import config as k8s_config

    prepare_mounts(workdir)
    prepare_network(cfg)
    ApiForwarder(("127.0.0.1", cfg.api_listen_port), cfg.api_upstream, cfg.host_netns_fd).start()
    add_node_rules()
    kubeconfig = yaml.safe_load(Path(cfg.kubeconfig).read_text())
    api_client = k8s_config.new_client_from_config_dict(kubeconfig)  # type: ignore[no-untyped-call]
    return Kubelet(cfg, api_client, events)


if __name__ == "__main__":
    sys.exit(main())
