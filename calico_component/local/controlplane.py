"""A throwaway Kubernetes cluster on 127.0.0.1: etcd, kube-apiserver (RBAC, token user), controllers, optional fake nodes.

Without nodes only the garbage collector runs (pulumi destroy deletes in the foreground). With
``kube_scheduler`` and ``kwok`` the workload controllers run too, kube-scheduler binds pods, and
kwok plays the kubelet of the Node objects added with ``nodes.add_nodes``.

Every process stops when the cluster is left (``with``), and, unless ``outlive_parent``, also
when the Python process that started it dies for any reason (the kernel's parent-death signal).
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import nodes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ControlPlane:
    """Start with ``with ControlPlane(paths) as cp:``; everything is stopped and removed on exit."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path | None = None
    kwok: Path | None = None
    startup_timeout: float = 90.0
    #: Where each process writes ``<name>.log`` (default: the cluster's own directory, removed on exit).
    log_dir: Path | None = None
    #: Keep running after the starting process exits (``demo --keep``); stop later with ``stop_detached``.
    outlive_parent: bool = False
    #: Where the cluster's own directory is created (default: the system's temporary directory).
    parent_dir: Path | None = None
    #: How long a calico-node pod on a kwok node takes to become Ready (a real node's pull, start and readiness
    #: probe); 0: at once.
    calico_node_ready_seconds: float = 0
    workdir: Path = field(init=False)
    kubeconfig: str = field(init=False, default="")
    kubeconfig_path: Path = field(init=False)
    server: str = field(init=False, default="")
    token: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="calico-oke-cluster-", dir=self.parent_dir))
        self._remove_on_exit = True
        self.kubeconfig_path = self.workdir / "kubeconfig"
        self._logs = self.log_dir or self.workdir
        self._logs.mkdir(parents=True, exist_ok=True)
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def _start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with (self._logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen([*die_with_parent(self.outlive_parent), *cmd], stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env={**os.environ, **env} if env else None)
        self._procs.append((name, proc))
        return proc

    @property
    def pids(self) -> list[int]:
        """Process ids of everything the cluster runs (each leads a process group of its own)."""
        return [proc.pid for _, proc in self._procs]

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self._logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _wait(self, name: str, proc: subprocess.Popen[bytes], url: str, headers: dict[str, str]) -> None:
        ctx = ssl._create_unverified_context()  # the apiserver's self-signed serving cert
        deadline = time.monotonic() + self.startup_timeout
        last = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                req = urllib.request.Request(url, headers=headers)
                with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
                    if r.status == 200:
                        return
            except Exception as exc:
                last = str(exc)
            time.sleep(0.3)
        raise RuntimeError(f"{name} not ready after {self.startup_timeout}s ({last}):\n{self.log_tail(name)}")

    def __enter__(self) -> ControlPlane:
        try:
            self._boot()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _boot(self) -> None:
        w = self.workdir
        client_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{client_port}"
        etcd = self._start("etcd", [
            str(self.etcd), "--name", "e2e", "--data-dir", str(w / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"e2e=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ])
        self._wait("etcd", etcd, f"{etcd_url}/health", {})

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sa_key = w / "sa.key"
        sa_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        self.token = secrets.token_hex(16)
        (w / "tokens.csv").write_text(f'{self.token},e2e-admin,e2e-admin-uid,"system:masters"\n')
        self.server = f"https://127.0.0.1:{api_port}"
        api = self._start("kube-apiserver", [
            str(self.kube_apiserver),
            "--etcd-servers", etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(api_port),
            "--cert-dir", str(w / "certs"),
            "--token-auth-file", str(w / "tokens.csv"),
            "--authorization-mode", "RBAC",
            "--service-account-issuer", f"https://127.0.0.1:{api_port}",
            "--service-account-key-file", str(sa_key), "--service-account-signing-key-file", str(sa_key),
            "--service-cluster-ip-range", "10.0.0.0/24",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--disable-admission-plugins", "ServiceAccount",
            "--v", "1",
        ])
        self._wait("kube-apiserver", api, f"{self.server}/readyz", {"Authorization": f"Bearer {self.token}"})
        # The apiserver wrote a self-signed serving certificate and its CA into cert-dir: trust exactly that.
        ca = base64.b64encode((w / "certs" / "apiserver.crt").read_bytes()).decode()
        self.kubeconfig = (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: e2e\n  cluster:\n    server: {self.server}\n    certificate-authority-data: {ca}\n"
            f"users:\n- name: e2e-admin\n  user:\n    token: {self.token}\n"
            "contexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: e2e-admin\n"
            "current-context: e2e\n"
        )
        self.kubeconfig_path.write_text(self.kubeconfig)
        self._start("kube-controller-manager", [
            str(self.kube_controller_manager),
            "--kubeconfig", str(self.kubeconfig_path),
            "--controllers", ",".join(self.controllers),
            "--leader-elect=false", "--secure-port", "0",
            "--use-service-account-credentials=false",
            "--kube-api-qps", "200", "--kube-api-burst", "400",
            "--v", "1",
        ])
        if self.with_nodes:
            self._start_node_simulation()

    @property
    def with_nodes(self) -> bool:
        return self.kube_scheduler is not None and self.kwok is not None

    @property
    def controllers(self) -> list[str]:
        """The garbage collector and the namespace controller always (foreground deletes, a namespace's deletion); with
        nodes, what rollouts and Service endpoints need, and the pod garbage collector, which removes the pods of a
        deleted node (as on a real cluster: a DaemonSet's rollout stops counting them only then)."""
        workload = ["deployment-controller", "replicaset-controller", "daemonset-controller", "endpoints-controller",
                    "endpointslice-controller", "disruption-controller", "pod-garbage-collector-controller"]
        return ["garbage-collector-controller", "namespace-controller", *(workload if self.with_nodes else [])]

    def _start_node_simulation(self) -> None:
        assert self.kube_scheduler is not None and self.kwok is not None
        w = self.workdir
        self._start("kube-scheduler", [
            str(self.kube_scheduler), "--kubeconfig", str(self.kubeconfig_path), "--leader-elect=false",
            "--secure-port", "0", "--kube-api-qps", "200", "--kube-api-burst", "400", "--v", "1",
        ])
        (w / "kwok.yaml").write_text(nodes.kwok_stages(self.calico_node_ready_seconds))
        (w / "kwok-home").mkdir()
        self._start("kwok", [
            str(self.kwok), "--kubeconfig", str(self.kubeconfig_path), "--config", str(w / "kwok.yaml"),
            f"--manage-nodes-with-annotation-selector={nodes.KWOK_ANNOTATION[0]}={nodes.KWOK_ANNOTATION[1]}",
            "--cidr", nodes.POD_NETWORK,
        ], env={"HOME": str(w / "kwok-home")})  # kwok also reads ~/.kwok/kwok.yaml: keep it out

    def detach(self, dependents: tuple[int, ...] = ()) -> Path:
        """Leave everything running past ``with`` (needs ``outlive_parent``); return the directory to stop it with.

        ``dependents``: process groups that use the cluster (a dataplane node), stopped before it.
        """
        if not self.outlive_parent:
            raise RuntimeError("only a ControlPlane started with outlive_parent=True can be left running")
        (self.workdir / PIDS_FILE).write_text("".join(f"{pid}\n" for pid in (*self.pids, *dependents)))
        self._procs.clear()
        self._remove_on_exit = False
        return self.workdir

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        _stop_groups([proc.pid for _, proc in reversed(self._procs)])
        for _, proc in self._procs:
            proc.wait(timeout=5)
        self._procs.clear()
        if self._remove_on_exit:
            shutil.rmtree(self.workdir, ignore_errors=True)


PIDS_FILE = "pids"
def die_with_parent(outlive_parent: bool = False) -> list[str]:
    """A command prefix asking the kernel for SIGTERM when the parent dies: util-linux's ``setpriv --pdeathsig``,
    applied between fork and exec without running Python in the child (a ``preexec_fn`` in a process whose gRPC
    threads run can hang or crash the child before exec); nothing where setpriv is missing or to outlive the parent."""
    if outlive_parent:
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def _stop_groups(pids: list[int], grace: float = 15) -> None:
    """Stop each process group in turn (SIGTERM, then SIGKILL after ``grace`` seconds), in the order given.

    One at a time, dependents first: kube-apiserver stopped together with etcd waits for etcd
    until it is killed (15 s); stopped before it, it exits in about a second.
    """
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, 15)
        deadline = time.monotonic() + grace
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, 9)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)  # reap it if it is our child, so it does not linger as a zombie
    return True


def stop_detached(directory: Path) -> int:
    """Stop a cluster left running by ``detach`` and remove its directory; return how many processes it had."""
    pid_file = directory / PIDS_FILE
    if not pid_file.is_file():
        raise FileNotFoundError(f"{directory} is not a running local cluster (no {PIDS_FILE} file in it)")
    pids = [int(line) for line in pid_file.read_text().split()]
    _stop_groups(list(reversed(pids)))
    shutil.rmtree(directory, ignore_errors=True)
    return len(pids)
