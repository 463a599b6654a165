"""What the first-day browser test needs besides the browser: a second web process (the
production server, `python -m mycelia_ops.serve`) with a data folder of its own, started in the
background while the browser works, and the S3 settings every process of the test shares."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from django.conf import settings

from tests.integration.conftest import ROOT, _database_url, free_port, wait_for
from tests.upgrades.test_artifact_storage import KEYS, MotoServer


def s3_environment(moto: MotoServer, bucket: str) -> dict[str, str]:
    """ARTIFACTS_STORAGE=s3 and its bucket, as an operator puts them in every service's .env."""
    return {
        "ARTIFACTS_STORAGE": "s3", "ARTIFACTS_S3_BUCKET": bucket,
        "ARTIFACTS_S3_ENDPOINT_URL": moto.url, "ARTIFACTS_S3_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": KEYS["access_key"], "AWS_SECRET_ACCESS_KEY": KEYS["secret_key"],
    }  # fmt: skip


class OtherWebProcess:
    """The production web server in a process of its own, on the test database, with another
    data folder (and so another media folder and secret key): it shares nothing with the test's
    live server but the database and the artifacts storage settings. Started at once, waited
    for with ready(); stopped by its process group."""

    def __init__(self, tmp_path: Path, data_dir: Path, **extra_env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "other-web.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ARTIFACTS_", "AWS_"))},
            "DATABASE_URL": _database_url(),
            "MYCELIA_DATA_DIR": str(data_dir),
            "MEDIA_ROOT": str(data_dir / "media"),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_WORKERS": "1",
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        assert Path(env["MYCELIA_DATA_DIR"]) != Path(settings.DATA_DIR)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mycelia_ops.serve"], cwd=ROOT, env=env,
            stdout=self.log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the other web process exited:\n{self.log_path.read_text()}")
        try:
            return httpx.get(f"{self.url}/accounts/login/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def ready(self) -> OtherWebProcess:
        wait_for(self._answers, timeout=30, every=0.2)
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
