"""Worker process pools for LAMMPS work (dataset workflows, analyses of many structures).

Workers are started by a ``forkserver`` (``spawn`` where forkserver is missing), never by
forking a process that has loaded LAMMPS; each runs one thread per numerical library and
leaves Ctrl-C to the parent. Serial LAMMPS runs in parallel processes beat one threaded
run on small machines (docs/workflows.md, *Speed and expected wall times*).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any

SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Thread-count variables set to 1 in every worker."""


def mp_context(preload: Sequence[str] = ()) -> multiprocessing.context.BaseContext:
    """forkserver where available (no fork of a process that loaded LAMMPS), else spawn.

    The fork server, started once per parent process, imports `preload` (module names;
    ``"__main__"`` is always added), so a new pool's workers start in milliseconds
    instead of re-importing numpy, ASE and amtoolkit (~3 s on a busy machine). Only
    the first pool of a process decides what the server preloads.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["__main__", *preload])  # no effect once the server runs
    return ctx


@contextlib.contextmanager
def single_thread_environment() -> Iterator[None]:
    """Set SINGLE_THREAD_ENV to 1 while worker processes may start, then restore.

    The variables must be in the environment a worker starts with: BLAS reads them
    when numpy is imported, before any initializer runs. Threaded BLAS makes the many
    3x3 solves of cell relaxations ~90x slower when the cores are busy.
    """
    saved = {name: os.environ.get(name) for name in SINGLE_THREAD_ENV}
    os.environ.update({name: "1" for name in SINGLE_THREAD_ENV})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


OWNER_POLL_S = 1.0
"""How often a worker checks that the process that started its pool is alive, s."""


def init_worker(owner: int | None = None) -> None:
    """Worker start: one thread per library; Ctrl-C is handled by the parent only; the
    worker exits when `owner` (the pid of the process that made the pool) is gone."""
    for name in SINGLE_THREAD_ENV:
        os.environ[name] = "1"
    with contextlib.suppress(ImportError):  # optional; the environment already asks for 1
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if owner is not None:
        threading.Thread(target=_exit_without, args=(owner,), daemon=True).start()


def _exit_without(owner: int) -> None:
    """Exit this worker once process `owner` no longer exists: a parent killed with
    SIGKILL cannot stop its pool, and the sample a worker runs then is lost anyway
    (LAMMPS, called through ctypes, releases the GIL, so this thread runs beside it)."""
    while True:
        time.sleep(OWNER_POLL_S)
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:  # the pid now belongs to another user's process
            os._exit(1)


def check_main_guard() -> None:
    """Raise RuntimeError when the script being run starts worker processes without an
    ``if __name__ == "__main__":`` guard.

    Workers import the main script again (forkserver and spawn do), so a script that
    calls e.g. ``make_dataset(..., workers=2)`` at its top level runs it again in every
    worker, which dies, and each task would fail as "a process in the pool was
    terminated abruptly". A script without the text ``__main__`` cannot hold the guard.
    """
    if multiprocessing.current_process().name != "MainProcess":
        return
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not path:  # python -c, an interactive session, a notebook: nothing is re-imported
        return
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return
    if "__main__" not in text:
        raise RuntimeError(
            f"{path} starts worker processes at its top level; each worker imports the "
            'script again: put the calls under `if __name__ == "__main__":`'
        )


def new_executor(workers: int, preload: Sequence[str] = ()) -> ProcessPoolExecutor:
    """A pool of `workers` processes (start it inside `single_thread_environment`); the
    workers exit by themselves when this process dies.

    Raises:
        RuntimeError: the script being run has no ``__main__`` guard (`check_main_guard`).
    """
    check_main_guard()
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp_context(preload),
        initializer=init_worker,
        initargs=(os.getpid(),),
    )


def terminate(executor: ProcessPoolExecutor) -> None:
    """Stop the worker processes of `executor` now (they run our tasks only)."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=5)


def run_unordered(
    function: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    workers: int,
    preload: Sequence[str] = (),
) -> Iterator[tuple[int, Any]]:
    """``(k, function(*calls[k]))`` as the calls finish in a pool of at most `workers`
    processes. Stopping early (an exception here or in the caller's loop) terminates the
    pool; `function` and its arguments must be picklable, and a call that raises raises
    here."""
    if not calls:
        return
    with single_thread_environment():
        executor = new_executor(min(workers, len(calls)), preload=preload)
        futures: dict[Future, int] = {
            executor.submit(function, *arguments): k for k, arguments in enumerate(calls)
        }
    try:
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BaseException:
        terminate(executor)  # also when the caller stops at a failed call
        raise
    executor.shutdown(wait=True)
