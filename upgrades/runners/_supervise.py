"""The keeper of one command's process tree (Linux), run as a script between the worker and the
command: ``python -I -S _supervise.py <parent pid> <grace s> -- argv...``.

It leads the command's session and process group, and makes itself a child subreaper, so every
descendant that loses its parent (a deploy script's grandchild, a daemon that double-forks, one
that calls setsid) is re-parented here instead of to init. It ends the whole tree when:

- the command exits (stragglers it left behind are stopped: nothing a run started outlives it);
- it is told to stop (SIGTERM, SIGINT or SIGHUP: the worker's timeout, cancel or time limit);
- the worker dies (the parent-death signal, which ``setpriv --pdeathsig`` gives only the direct
  child, is set here on the keeper, which then stops every descendant, grandchildren too).

SIGTERM first, SIGKILL after the grace. It exits as the command did (the same code, or killed by
the same signal), so the worker reads the command's own result. Standard library only: it must
start in milliseconds and import nothing of the project.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class _Stop(BaseException):
    """Raised by the signal handler to break out of a blocking wait."""


def _prctl(option: int, value: int) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(option, value, 0, 0, 0) == 0


def descendants(root: int) -> list[int]:
    """Every live process below ``root``, from /proc (children before grandchildren)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended while we looked
        if fields[0] in ("Z", "X"):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal_tree(sig: int) -> list[int]:
    alive = descendants(os.getpid())
    if sig != signal.SIGKILL:  # the keeper ignores SIGTERM by now, not SIGKILL
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(0), sig)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    return alive


def _reap(wait_s: float = 0.0) -> None:
    """Collect the exit of every child that has ended; with ``wait_s``, wait that long for
    the killed ones to end too, so none is left a zombie for init to clear."""
    give_up = time.monotonic() + wait_s
    with contextlib.suppress(ChildProcessError):
        while True:
            if os.waitpid(-1, os.WNOHANG)[0]:
                continue
            if time.monotonic() >= give_up:
                return
            time.sleep(0.005)


def stop_tree(grace_s: float) -> None:
    """SIGTERM every descendant, wait up to ``grace_s`` for them to go, SIGKILL the rest."""
    _reap()
    if not descendants(os.getpid()):
        return
    _signal_tree(signal.SIGTERM)
    give_up = time.monotonic() + grace_s
    while time.monotonic() < give_up:
        _reap()
        if not descendants(os.getpid()):
            _reap(wait_s=1.0)
            return
        time.sleep(0.02)
    give_up = time.monotonic() + 10
    # SIGKILL until nothing is left (a fork may race us), bounded for a process stuck in the
    # kernel, which SIGKILL ends as soon as it leaves it.
    while descendants(os.getpid()) and time.monotonic() < give_up:
        _signal_tree(signal.SIGKILL)
        time.sleep(0.01)
        _reap()
    _reap(wait_s=1.0)


def _exit_as(status: int) -> None:
    """Exit with the command's exit code, or die of the signal that killed it."""
    sys.stdout.flush()
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be caught anyway
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        time.sleep(1)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def main(args: list[str]) -> None:
    parent, grace_s, argv = int(args[0]), float(args[1]), args[3:]

    def stop(signum: int, frame: object) -> None:
        raise _Stop

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    result: int | None = None
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            raise _Stop  # the worker died before the signal was set
        try:
            command = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        except OSError as exc:
            print(f"cannot run {argv[0]}: {exc}", file=sys.stderr, flush=True)
            os._exit(127)
        while result is None:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid == command.pid:
                result = status  # orphans reaped on the way are stragglers: stopped below
    except _Stop:
        pass
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # the group signal must not stop the keeper itself
    stop_tree(grace_s)
    if result is None:  # stopped from outside: die of SIGTERM, as the command would have
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        os._exit(128 + signal.SIGTERM)
    _exit_as(result)


if __name__ == "__main__":
    main(sys.argv[1:])
