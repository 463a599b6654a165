"""`make run`: migrate, seed the playbook and a demo, then run the web server, a Celery worker,
the scheduler and the demo Mycelia target side by side until Ctrl-C.

Honours PORT (default 8000) and DATABASE_URL; with neither set it uses SQLite and the filesystem
broker under data/, so nothing but Python is needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def main() -> int:
    port = os.environ.get("PORT", "8000")
    demo_port = os.environ.get("DEMO_TARGET_PORT", "8100")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "mycelia_ops.settings")
    # Links in mails and on the status page point where this run serves.
    env.setdefault("MYCELIA_BASE_URL", f"http://127.0.0.1:{port}")
    manage = [sys.executable, str(ROOT / "manage.py")]

    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], check=True, cwd=ROOT, env=env)
    subprocess.run([*manage, "comms_seed"], check=True, cwd=ROOT, env=env, capture_output=True)
    seed = subprocess.run(
        [*manage, "seed", "--demo", f"--demo-url=http://127.0.0.1:{demo_port}"],
        check=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )

    processes = {
        "demo-target": [*manage, "demo_target", "--port", demo_port],
        "worker": [
            str(BIN / "celery"), "-A", "mycelia_ops", "worker", "-l", "warning",
            "--concurrency", "2", "-n", "worker@%h",
        ],
        "scheduler": [
            str(BIN / "celery"), "-A", "mycelia_ops", "beat", "-l", "warning",
            "-s", str(ROOT / "data" / "celerybeat-schedule"),
        ],
        # The production server (mycelia_ops.serve), on this machine only, logging each request.
        "web": [sys.executable, "-m", "mycelia_ops.serve"],
    }  # fmt: skip
    web_env = {"HOST": "127.0.0.1", "PORT": port, "WEB_ACCESS_LOG": "true"}
    running: dict[str, subprocess.Popen] = {}
    for name, argv in processes.items():
        running[name] = subprocess.Popen(
            argv, cwd=ROOT, env={**env, **web_env} if name == "web" else env
        )

    time.sleep(2)
    print("\n" + "=" * 64)
    print(f"  Mycelia Ops is running at http://127.0.0.1:{port}/")
    print(seed.stdout.rstrip())
    print("  Admin (staff): sign in as manager at /admin/")
    print("  Stop with Ctrl-C.")
    print("=" * 64 + "\n", flush=True)

    def stop(*_):
        for proc in running.values():
            if proc.poll() is None:
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            for name, proc in running.items():
                if proc.poll() is not None:
                    print(f"{name} stopped with exit code {proc.returncode}; stopping the rest.")
                    stop()
                    return proc.returncode or 1
            time.sleep(1)
    except KeyboardInterrupt:
        stop()
    for proc in running.values():
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
