"""Answer verification with a hard time limit per answer.

math-verify can hang (sympy stuck in C on `10^{10^{10^{10}}}`), and its signal.alarm timeouts
only work on the main thread, so it runs in worker processes that are killed and replaced when an
answer exceeds the limit. Cheap cases (no box, same normalised spelling, plain numbers) are decided
in the calling process and never reach a worker.
"""

import atexit
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_readable
from pathlib import Path

from rlscale.errors import ConfigError
from rlscale.reward.extract import extract_boxed, fast_match, too_complex, undo_double_escape

DEFAULT_CHECK = "rlscale.reward.mathverify:math_verify_equal"
# Starting a worker imports sympy and math-verify (seconds on a busy machine); that is not
# charged to any answer, but a worker that never comes up is an installation fault.
_STARTUP_LIMIT_S = 120.0


@dataclass(frozen=True)
class Verdict:
    correct: bool
    extracted: str | None
    timed_out: bool = False


class VerifierError(RuntimeError):
    """The verifier's worker processes cannot run (e.g. math-verify fails to import)."""


class _Worker:
    """One worker process and its line protocol. Plain subprocess rather than multiprocessing:
    a fresh `python -m` never re-imports the caller's `__main__` (which may load torch) and
    gets single-threaded BLAS/OpenMP through its environment from the start."""

    def __init__(self, check: str):
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", RLSCALE_THREADS="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rlscale.reward._worker", check],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0,
        )
        self.fd = self.process.stdout.fileno()
        self.buffer = b""
        self.ready = False
        self.started_at = time.monotonic()
        self.job: int | None = None
        self.deadline = 0.0

    def send(self, job: int, gold: str, answer: str, timeout: float) -> bool:
        """Hand the worker one comparison; False when the worker is already dead."""
        self.job, self.deadline = job, time.monotonic() + timeout
        try:
            self.process.stdin.write((json.dumps({"gold": gold, "answer": answer}) + "\n").encode())
            return True
        except (BrokenPipeError, OSError):
            return False

    def read_message(self) -> dict | None:
        """Read what is available: a complete message, {} when more is coming, None on exit."""
        chunk = os.read(self.fd, 65536)
        if not chunk:
            return None
        self.buffer += chunk
        line, newline, self.buffer = self.buffer.partition(b"\n")
        if not newline:
            self.buffer = line
            return {}
        return json.loads(line)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()

    def close(self) -> None:
        try:
            self.process.stdin.close()  # EOF: the worker finishes its loop and exits
            self.process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class Verifier:
    r"""Verifies model outputs against gold answers; use as a context manager.

    `workers` math-verify processes run in parallel (started on first need, reused across
    batches); each answer gets at most `timeout` seconds there, after which its worker is killed
    and replaced, the answer scores 0 and `n_timeouts` grows. With `use_math_verify=False` only
    the in-process fast path is used (undecided answers score 0): the cheap mode for integer golds.
    `check` names the function workers run ("module:function"), replaceable for tests.
    Thread-safe: concurrent calls are served one batch at a time.
    """

    def __init__(self, workers: int = 1, timeout: float = 5.0, *, use_math_verify: bool = True,
                 check: str = DEFAULT_CHECK):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"key 'workers': must be an integer >= 1, got {workers!r}")
        _check_timeout(timeout)
        self.n_workers, self.timeout = workers, timeout
        self.use_math_verify, self.check = use_math_verify, check
        self.n_timeouts = 0
        self.n_crashes = 0
        self.n_too_complex = 0  # answers the pre-check kept from math-verify (scored incorrect)
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "Verifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes (a later batch starts new ones)."""
        with self._lock:
            for worker in self._workers:
                worker.close()
            self._workers = []

    def verify_batch(self, outputs: list[str], golds: list, *,
                     timeout: float | None = None) -> list[Verdict]:
        """One Verdict per (output, gold) pair, in order; `timeout` overrides the limit."""
        if len(outputs) != len(golds):
            raise ValueError(f"{len(outputs)} outputs but {len(golds)} golds")
        if timeout is not None:
            _check_timeout(timeout)
        extracted = [extract_boxed(output) for output in outputs]
        golds = [str(gold) for gold in golds]
        decided: list[bool | None] = [
            False if answer is None else fast_match(answer, gold)
            for answer, gold in zip(extracted, golds, strict=True)
        ]
        for i, answer in enumerate(extracted):
            # The pre-check: an answer no fast rule decided that is too big or too deeply nested
            # for math-verify scores 0 at once instead of costing its whole time limit.
            if decided[i] is None and too_complex(answer):
                decided[i] = False
                self.n_too_complex += 1
        undecided = [i for i, d in enumerate(decided) if d is None]
        timed_out = set()
        if undecided and self.use_math_verify:
            # GRPO samples repeat answers; each distinct (gold, answer) goes to a worker once.
            pair_of = {i: (undo_double_escape(golds[i]), undo_double_escape(extracted[i]))
                       for i in undecided}
            jobs = list(dict.fromkeys(pair_of.values()))
            with self._lock:
                results = dict(zip(jobs, self._run_workers(jobs, timeout or self.timeout),
                                   strict=True))
            for i in undecided:
                decided[i], late = results[pair_of[i]]
                if late:
                    timed_out.add(i)
        return [Verdict(bool(decided[i]), extracted[i], i in timed_out)
                for i in range(len(outputs))]

    def _run_workers(self, jobs: list[tuple[str, str]], timeout: float) -> list[tuple[bool, bool]]:
        """(correct, timed_out) per job, spreading jobs over the workers, killing stuck ones."""
        results: list[tuple[bool, bool] | None] = [None] * len(jobs)
        pending = deque(range(len(jobs)))
        for worker in [w for w in self._workers if w.job is not None]:
            worker.kill()  # still busy from an interrupted batch: its answer would be stale
            self._workers.remove(worker)
        while len(self._workers) < self.n_workers:
            self._workers.append(_Worker(self.check))

        def replace(worker: _Worker, result: tuple[bool, bool]) -> None:
            if worker.job is not None:
                results[worker.job] = result
            worker.kill()
            self._workers[self._workers.index(worker)] = _Worker(self.check)

        while pending or any(w.job is not None for w in self._workers):
            for worker in self._workers:
                if worker.ready and worker.job is None and pending:
                    job = pending.popleft()
                    if not worker.send(job, *jobs[job], timeout):  # died idle: not this job's fault
                        pending.appendleft(job)
                        worker.job = None
                        replace(worker, (False, False))
            now = time.monotonic()
            deadlines = [w.deadline for w in self._workers if w.job is not None]
            deadlines += [w.started_at + _STARTUP_LIMIT_S for w in self._workers if not w.ready]
            wait = max(0.0, min(deadlines) - now) if deadlines else None
            readable = wait_readable([w.fd for w in self._workers], wait)  # poll: no fd limit
            for worker in [w for w in self._workers if w.fd in readable]:
                message = worker.read_message()
                if message is None:  # the worker died: crashed on this answer, or cannot start
                    if not worker.ready:
                        raise VerifierError(
                            f"verifier worker '{self.check}' exited while starting (see stderr)")
                    self.n_crashes += 1
                    replace(worker, (False, False))
                elif message.get("ready"):
                    worker.ready = True
                elif "correct" in message:
                    results[worker.job] = (bool(message["correct"]), False)
                    worker.job = None
            now = time.monotonic()
            for worker in list(self._workers):
                if worker.job is not None and now >= worker.deadline:
                    self.n_timeouts += 1
                    replace(worker, (False, True))
                elif not worker.ready and now >= worker.started_at + _STARTUP_LIMIT_S:
                    raise VerifierError(
                        f"verifier worker '{self.check}' did not start in {_STARTUP_LIMIT_S:.0f} s")
        return results


def _check_timeout(timeout) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
            or not math.isfinite(timeout) or timeout <= 0:
        raise ConfigError(f"key 'timeout': must be a finite number of seconds > 0, got {timeout!r}")


_shared: Verifier | None = None
_shared_lock = threading.Lock()


def verify(output: str, gold, *, timeout: float = 5.0) -> Verdict:
    """Verify one model output against its gold answer (a shared one-worker Verifier)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Verifier(workers=1, timeout=timeout)
            atexit.register(_shared.close)
    return _shared.verify_batch([output], [gold], timeout=timeout)[0]
