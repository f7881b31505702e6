"""Worker pools: workers leave when the process that started them is gone."""

from __future__ import annotations

import subprocess
import sys

from amtoolkit._processes import OWNER_POLL_S, new_executor, single_thread_environment


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_worker_exits_when_its_owner_is_gone():
    code = f"from amtoolkit._processes import _exit_without; _exit_without({_dead_pid()})"
    done = subprocess.run([sys.executable, "-c", code], timeout=120, check=False)
    assert done.returncode == 1


def _pid_after_a_poll() -> int:
    import os
    import time

    time.sleep(1.5 * OWNER_POLL_S)  # the watchdog has checked the owner at least once
    return os.getpid()


def test_workers_of_a_live_owner_keep_working():
    with single_thread_environment():
        executor = new_executor(1)
    try:
        first = executor.submit(_pid_after_a_poll).result(timeout=120)
        assert executor.submit(_pid_after_a_poll).result(timeout=120) == first  # same worker
    finally:
        executor.shutdown()


def test_a_script_without_a_main_guard_is_told_so(tmp_path):
    """Workers import the main script again: one starting a pool at its top level would
    see every task fail as "terminated abruptly"; it gets the reason instead."""
    body = "from amtoolkit._processes import run_unordered\n\ndef square(x):\n    return x * x\n\n"
    bare = tmp_path / "bare.py"
    bare.write_text(body + "print(list(run_unordered(square, [(2,)], 1)))\n")
    run = subprocess.run([sys.executable, str(bare)], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "bare.py starts worker processes at its top level" in run.stderr.splitlines()[-1]
    guarded = tmp_path / "guarded.py"
    guarded.write_text(
        body + 'if __name__ == "__main__":\n    print(list(run_unordered(square, [(2,)], 1)))\n'
    )
    run = subprocess.run(
        [sys.executable, str(guarded)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and run.stdout.strip() == "[(0, 4)]", run.stderr
