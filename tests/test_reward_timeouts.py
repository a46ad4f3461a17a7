"""Hard time limits: adversarial outputs, hung and crashing workers, threads, a torch process.

Wall-time checks here are loose hang guards (limit + 10 s), not performance assertions.
"""

import random
import textwrap
import threading
import time

import pytest

import rlscale.reward.verifier as verifier_module
from rlscale.reward import Verifier

TIMEOUT = 2.0


def _adversarial_outputs() -> list[str]:
    rng = random.Random(0)
    garbage = "".join(rng.choice("\\{}^_$boxedfrac0123456789 ") for _ in range(100_000))
    deep = 10_000
    return [
        r"\boxed{" + "{" * deep + "1" + "}" * deep + "}",  # deeply nested braces
        r"\boxed{10^{10^{10^{10}}}}",                        # sympy hangs on it (math-verify 0.9)
        garbage,                                              # 100 KB of garbage
        r"\boxed{" + garbage + "}",                           # ... inside a box
        r"\boxed{\frac{1}{2}",                                # unbalanced braces
        r"so \boxed{",                                        # a box that never ends
        r"\boxed{" + "(" * 5_000 + "}",                       # unbalanced parentheses
    ]


def test_adversarial_outputs_return_incorrect_within_the_limit():
    outputs = _adversarial_outputs()
    with Verifier(workers=1, timeout=TIMEOUT) as verifier:
        started = time.monotonic()
        verdicts = verifier.verify_batch(outputs, ["10"] * len(outputs))
        elapsed = time.monotonic() - started
        assert [v.correct for v in verdicts] == [False] * len(outputs)
        assert verdicts[4].extracted is None and verdicts[5].extracted is None
        assert verifier.n_timeouts == sum(v.timed_out for v in verdicts)
        assert elapsed < len(outputs) * (TIMEOUT + 10)
        # the verifier still works after killing workers
        assert verifier.verify_batch([r"\boxed{2+8}"], ["10"])[0].correct


@pytest.fixture
def fake_checks(tmp_path, monkeypatch):
    """A module of check functions the workers import: one hangs, one kills its process."""
    (tmp_path / "fake_checks.py").write_text(textwrap.dedent("""
        import os, time

        def check(gold, answer):
            if answer == "hang":
                time.sleep(600)
            if answer == "crash":
                os._exit(3)
            return answer == gold + "!"
    """))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return "fake_checks:check"


def test_hung_worker_is_killed_counted_and_scored_zero(fake_checks):
    outputs = [r"\boxed{a!}", r"\boxed{hang}", r"\boxed{b!}", r"\boxed{hang}", r"\boxed{c!}"]
    golds = ["a", "x", "b", "y", "z"]
    with Verifier(workers=2, timeout=1.0, check=fake_checks) as verifier:
        started = time.monotonic()
        verdicts = verifier.verify_batch(outputs, golds)
        assert time.monotonic() - started < 2 * (1.0 + 10)
        assert [v.correct for v in verdicts] == [True, False, True, False, False]
        assert [v.timed_out for v in verdicts] == [False, True, False, True, False]
        assert verifier.n_timeouts == 2
        # replacement workers serve the next batch
        again = verifier.verify_batch([r"\boxed{d!}", r"\boxed{hang}"], ["d", "e"])
        assert [(v.correct, v.timed_out) for v in again] == [(True, False), (False, True)]
        assert verifier.n_timeouts == 3


def test_crashing_worker_scores_zero_and_is_replaced(fake_checks):
    with Verifier(workers=1, timeout=5.0, check=fake_checks) as verifier:
        verdicts = verifier.verify_batch([r"\boxed{crash}", r"\boxed{a!}"], ["a", "a"])
        assert [(v.correct, v.timed_out) for v in verdicts] == [(False, False), (True, False)]
        assert verifier.n_crashes == 1 and verifier.n_timeouts == 0


def test_works_off_the_main_thread_in_a_torch_process():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    results = {}

    def work():
        with Verifier(workers=1, timeout=TIMEOUT) as verifier:
            results["verdicts"] = verifier.verify_batch(
                [r"\boxed{\sqrt{2}/2}", r"\boxed{10^{10^{10^{10}}}}"], [r"\frac{1}{\sqrt{2}}", "1"])

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert [v.correct for v in results["verdicts"]] == [True, False]


def test_repeated_answers_are_checked_once(fake_checks):
    with Verifier(workers=1, timeout=1.0, check=fake_checks) as verifier:
        started = time.monotonic()
        verdicts = verifier.verify_batch([r"\boxed{hang}"] * 3 + [r"\boxed{a!}"], ["x"] * 3 + ["a"])
        assert time.monotonic() - started < 3 * (1.0 + 10)
        assert [(v.correct, v.timed_out) for v in verdicts] == [(False, True)] * 3 + [(True, False)]
        assert verifier.n_timeouts == 1


def test_worker_that_died_while_idle_is_replaced_without_losing_the_answer(fake_checks):
    with Verifier(workers=1, timeout=5.0, check=fake_checks) as verifier:
        assert verifier.verify_batch([r"\boxed{a!}"], ["a"])[0].correct
        verifier._workers[0].process.kill()
        verifier._workers[0].process.wait()
        assert verifier.verify_batch([r"\boxed{b!}"], ["b"])[0].correct
        assert verifier.n_crashes == 0


def test_interrupted_batch_leaves_no_busy_worker(fake_checks, monkeypatch):
    """A batch interrupted (Ctrl-C) while a worker hangs must not make the next batch wait for it."""
    real_wait = verifier_module.wait_readable
    with Verifier(workers=1, timeout=30.0, check=fake_checks) as verifier:

        def interrupt_while_busy(fds, timeout):
            if any(worker.job is not None for worker in verifier._workers):
                raise KeyboardInterrupt
            return real_wait(fds, timeout)

        monkeypatch.setattr(verifier_module, "wait_readable", interrupt_while_busy)
        with pytest.raises(KeyboardInterrupt):
            verifier.verify_batch([r"\boxed{hang}"], ["x"])
        monkeypatch.setattr(verifier_module, "wait_readable", real_wait)
        started = time.monotonic()
        assert verifier.verify_batch([r"\boxed{a!}"], ["a"])[0].correct
        assert time.monotonic() - started < 30.0  # did not wait for the hung answer's deadline
        assert verifier.n_timeouts == 0
