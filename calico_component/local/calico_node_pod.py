"""calico-node's pod on a local dataplane node: Calico's own start-up and runit services, supervised, with readiness."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import podspec
from .node_host import CNI_NET_DIR, PATH, SERVICEACCOUNT_DIR, STOP_GRACE, stop_process
from .pods import Context, PodRuntime, running_status
from .podspec import Obj


class StartupError(RuntimeError):
    """A step of calico/node's start-up (``-startup``, the first tunnel address allocation) failed."""


@dataclass
class Service:
    """One runit service of calico/node: a ``calico-node`` flag run and restarted by its supervisor."""

    flag: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    started_at: float = 0.0
    #: Exits in a row that came soon after a start (each doubles the wait before the next start).
    quick_exits: int = 0
    next_start: float = 0.0

    def exited(self, now: float) -> bool:
        """Whether its process has exited; if so, when to start it again (runit's second, longer after quick exits)."""
        if self.proc is None or self.proc.poll() is None or self.next_start:
            return False
        self.quick_exits = self.quick_exits + 1 if now - self.started_at < 10 else 0
        self.next_start = now + min(30.0, 2.0 ** self.quick_exits) if self.quick_exits else now + 1.0
        return True


@dataclass
class CalicoState:
    """What the node's Calico is doing, written to ``calico.json`` for tests and the demo to read."""

    pod: str
    uid: str
    release: str
    binary: str
    #: The directory of this pod's Calico logs (``felix.log``, ``startup.log``, one per service).
    logs: str = ""
    felix_env: dict[str, str] = field(default_factory=dict)
    felix_pid: int | None = None
    ready: bool = False
    restarts: int = 0
    not_run: list[str] = field(default_factory=list)
    error: str = ""


class CalicoNodePod(PodRuntime):
    """calico-node's pod: the image's start-up (``calico-node -startup``, a first tunnel address allocation), then
    its runit services (Felix and the rest ``podspec.node_services`` lists), each restarted when it exits.

    Every process gets the container's environment resolved from the live Pod and ConfigMaps, the in-cluster
    API address, and the pod's own ServiceAccount token mounted where client-go looks for it. The pod is Ready
    only while Felix answers 200 on its health endpoint's ``/readiness``.
    """

    def __init__(self, pod: Obj, ctx: Context, binary: str, release: str) -> None:
        super().__init__(pod, ctx)
        self.binary = binary
        self.logs = Path(ctx.cfg.workdir) / "calico" / f"{pod['metadata']['name']}-{pod['metadata']['uid'][:8]}"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.state = CalicoState(self.key, pod["metadata"]["uid"], release, binary, str(self.logs))
        self.services: list[Service] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._container, name=f"calico-node {self.key}", daemon=True)
        self.env: dict[str, str] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=STOP_GRACE * 3)
        for service in self.services:
            if service.proc is not None:
                stop_process(service.proc)
        self.ctx.events("calico-stopped", pod=self.key, release=self.state.release)
        self._save()

    def status(self) -> dict[str, Any] | None:
        message = self.state.error or None
        return running_status(self.pod, self.ctx.cfg.node_ip, self.ctx.cfg.node_ip, self.state.ready,
                               self.state.restarts, message)

    def _container(self) -> None:
        """The container's life: start up, supervise, and start over (a restart) when start-up fails."""
        while not self._stopping.is_set():
            try:
                self._start_up()
                self._supervise()
            except Exception as exc:  # any failure is this container's: reported on the pod, then restarted
                self.state.error = " ".join(str(exc).split())[:500]
                self.state.restarts += 1
                self.ctx.events("calico-startup-failed", pod=self.key, error=self.state.error)
                self._save()
                self._stopping.wait(min(10.0, 1.0 * self.state.restarts))

    def _start_up(self) -> None:
        self.env = self._environment()
        write_serviceaccount(self.ctx, self.pod, self.ctx.cfg.ca_file)
        if podspec.has_init_container(self.pod, podspec.INSTALL_CNI):
            self._install_cni()
        self.ctx.events("calico-starting", pod=self.key, release=self.state.release)
        self._once("-startup", timeout=120)
        nodename = Path("/var/lib/calico/nodename")
        if nodename.is_file():
            self.env["NODENAME"] = nodename.read_text().strip()
        self._once("-allocate-tunnel-addrs", "-allocate-tunnel-addrs-run-once", timeout=60)
        plan = podspec.node_services(self.env, self.state.release)
        self.state.not_run = list(plan.not_run)
        self.services = [Service(flag, self.logs / f"{flag.lstrip('-')}.log") for flag in plan.long_running]
        for service in self.services:
            self._launch(service)
        self.state.error = ""
        self._save()

    def _environment(self, container: str | None = None) -> dict[str, str]:
        """A container's environment from the live Pod and the live ConfigMaps it names, plus the kubelet's."""
        core = self.ctx.api()
        names = podspec.config_maps_referenced(self.pod, container)
        config_maps = {name: data for name in names if (data := read_config_map(core, "kube-system", name)) is not None}
        env = podspec.resolve_env(self.pod, config_maps, container)
        return {"PATH": PATH, "HOSTNAME": self.ctx.cfg.node,
                **podspec.in_cluster_env("127.0.0.1", self.ctx.cfg.api_listen_port), **env}

    def _install_cni(self) -> None:
        """What calico/cni's install-cni does, from its live env: the CNI plugin and calico-ipam in the node's CNI bin
        directory, a kubeconfig with a calico-cni-plugin token, and ``cni_network_config`` filled in as CNI_CONF_NAME."""
        binary = self.ctx.cfg.calico_cni.get(self.state.release)
        if binary is None:
            raise StartupError(f"no local build of Calico's CNI plugin {self.state.release} for install-cni")
        env = self._environment(podspec.INSTALL_CNI)
        kubeconfig = CNI_NET_DIR / "calico-kubeconfig"
        server = f"https://{env['KUBERNETES_SERVICE_HOST']}:{env['KUBERNETES_SERVICE_PORT']}"
        token = request_token(self.ctx, self.pod, "calico-cni-plugin", bound=False)  # as install-cni asks for it
        kubeconfig.write_text(podspec.kubeconfig_text(server, Path(self.ctx.cfg.ca_file).read_bytes(), token))
        conflist = podspec.cni_conflist(env.get("CNI_NETWORK_CONFIG", ""), env.get("KUBERNETES_NODE_NAME", ""),
                                        env.get("CNI_MTU", "1500"), str(kubeconfig))
        bin_dir = self.ctx.cfg.cni_bin
        bin_dir.mkdir(exist_ok=True)
        for name in ("calico", "calico-ipam"):
            (bin_dir / name).unlink(missing_ok=True)
            (bin_dir / name).symlink_to(binary)
        (CNI_NET_DIR / env.get("CNI_CONF_NAME", "10-calico.conflist")).write_text(json.dumps(conflist, indent=1))
        self.ctx.events("cni-installed", pod=self.key, release=self.state.release)

    def _once(self, *flags: str, timeout: float) -> None:
        log = self.logs / f"{flags[0].lstrip('-')}.log"
        with log.open("ab") as out:
            proc = subprocess.run([self.binary, *flags], env=self.env, stdout=out, stderr=out, timeout=timeout)
        if proc.returncode != 0:
            tail = " | ".join(log.read_text(errors="replace").splitlines()[-3:])
            raise StartupError(f"calico-node {' '.join(flags)} exited {proc.returncode}: {tail}")

    def _launch(self, service: Service) -> None:
        env = podspec.felix_service_env(self.env) if service.flag == "-felix" else self.env
        with service.log.open("ab") as out:
            service.proc = subprocess.Popen([self.binary, service.flag], env=env, stdout=out, stderr=out)
        service.starts += 1
        service.started_at, service.next_start = time.monotonic(), 0.0
        if service.flag == "-felix":
            self.state.felix_env = dict(env)
            self.state.felix_pid = service.proc.pid
            self.ctx.events("felix-started", pod=self.key, release=self.state.release, pid=service.proc.pid)

    def _supervise(self) -> None:
        """runit's job: start a service again after it exits; meanwhile follow Felix's readiness."""
        host, port = podspec.health_endpoint(self.env)
        url = f"http://{'127.0.0.1' if host == 'localhost' else host}:{port}/readiness"
        while not self._stopping.wait(0.2):
            now = time.monotonic()
            for service in self.services:
                if service.exited(now):
                    assert service.proc is not None
                    self.ctx.events("service-exited", pod=self.key, service=service.flag, code=service.proc.returncode,
                                    restart_in=f"{service.next_start - now:.0f}s")
                elif service.next_start and now >= service.next_start:
                    self._launch(service)
            self._set_ready(felix_ready(url))

    def _set_ready(self, ready: bool) -> None:
        if ready != self.state.ready:
            self.state.ready = ready
            self.ctx.events("felix-ready" if ready else "felix-not-ready", pod=self.key, release=self.state.release)
            self._save()

    def _save(self) -> None:
        path = Path(self.ctx.cfg.workdir) / "calico.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state), indent=1))
        tmp.replace(path)


def felix_ready(url: str) -> bool:
    """Whether Felix's health endpoint answers 200 on ``/readiness`` (what ``calico-node -felix-ready`` checks)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def read_config_map(core: Any, namespace: str, name: str) -> dict[str, str] | None:
    """A ConfigMap's data as the API server has it now, None when it does not exist."""
    from kubernetes.client.exceptions import ApiException

    try:
        response = core.read_namespaced_config_map(name, namespace, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    data: dict[str, str] = json.loads(response.data).get("data") or {}
    return data


def request_token(ctx: Context, pod: Obj, account: str, *, bound: bool = True) -> str:
    """A token of ServiceAccount ``account`` in the pod's namespace; ``bound`` (the pod's own account only): bound to
    the pod, so invalid once it is gone, as a kubelet's projected token is."""
    from kubernetes import client

    meta = pod["metadata"]
    ref = client.V1BoundObjectReference(api_version="v1", kind="Pod", name=meta["name"], uid=meta["uid"])
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
        audiences=[], expiration_seconds=86400, bound_object_ref=ref if bound else None))
    answer: Any = ctx.api().create_namespaced_service_account_token(account, meta["namespace"], request)
    return str(answer.status.token)


def write_serviceaccount(ctx: Context, pod: Obj, ca_file: str) -> None:
    """Mount the pod's ServiceAccount as a kubelet does: a token bound to this pod, the cluster CA, the namespace."""
    meta = pod["metadata"]
    token = request_token(ctx, pod, pod["spec"].get("serviceAccountName") or "default")
    (SERVICEACCOUNT_DIR / "token").write_text(token)
    (SERVICEACCOUNT_DIR / "ca.crt").write_bytes(Path(ca_file).read_bytes())
    (SERVICEACCOUNT_DIR / "namespace").write_text(meta["namespace"])

