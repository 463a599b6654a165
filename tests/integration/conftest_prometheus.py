"""A real Prometheus (Debian's `prometheus` package) scraping the demo Mycelia every second.

Each test gets its own: a temporary folder, a generated prometheus.yml, a free loopback port
and its own TSDB; it is stopped by PID afterwards (SIGTERM, then SIGKILL). Import the fixture
into a test module: `from tests.integration.conftest_prometheus import prometheus_server_fixture`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.conftest import free_port
from upgrades.runners import prometheus

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: mycelia-demo
    metrics_path: /metrics
    static_configs:
      - targets: ["{target}"]
"""


@dataclass
class PrometheusServer:
    url: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def value_when(
        self, query: str, accept: Callable[[float], bool], *, timeout: float = 20.0
    ) -> float:
        """Poll an instant query until its value is accepted (Prometheus needs a few scrapes
        before rate() has two points); fail with the last answer when the deadline passes."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = prometheus.prometheus_query(base_url=self.url, query=query, timeout_s=2)
            if last.value is not None and accept(last.value):
                return last.value
            time.sleep(0.25)
        raise AssertionError(f"{query} not as wanted within {timeout} s; last: {last}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture(name="prometheus_server")
def prometheus_server_fixture(demo_mycelia, tmp_path) -> Iterator[PrometheusServer]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: apt-get install -y prometheus (.ci/run does)")
    folder = tmp_path / "prometheus"
    folder.mkdir()
    target = urlsplit(demo_mycelia.url).netloc
    (folder / "prometheus.yml").write_text(CONFIG.format(target=target))
    port = free_port()
    log_path = folder / "prometheus.log"
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={folder / 'data'}",
            "--log.level=warn",
        ],
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        cwd=folder,
    )
    server = PrometheusServer(url=f"http://127.0.0.1:{port}", proc=proc, log_path=log_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited at start: {server.log()}")
            try:
                if httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus not ready within 20 s: {server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        server.stop()
