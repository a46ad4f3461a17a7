"""`rlscale verify PAIRS.jsonl`: verify model outputs against gold answers, one JSON line each."""

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

from rlscale.errors import DataError

_CHUNK = 64  # answers per batch: enough to keep the workers busy, small enough to show progress


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """(answer, gold) per non-blank line of a JSONL file; DataError names the line and field."""
    pairs = []
    with open(path, "rb") as lines:
        for line_number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"not valid UTF-8 (byte {error.start})", path=path,
                                line=line_number) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"not valid JSON ({error.msg})", path=path,
                                line=line_number) from None
            except RecursionError:
                raise DataError("JSON nested too deeply", path=path, line=line_number) from None
            if not isinstance(record, dict):
                raise DataError("expected a JSON object", path=path, line=line_number)
            for field in ("gold", "answer"):
                if record.get(field) is None:
                    raise DataError("missing", path=path, line=line_number, field=field)
            if not isinstance(record["answer"], str):
                raise DataError("must be a string", path=path, line=line_number, field="answer")
            if isinstance(record["gold"], bool) or not isinstance(record["gold"], str | int | float):
                raise DataError("must be a string or a number", path=path, line=line_number,
                                field="gold")
            pairs.append((record["answer"], str(record["gold"])))
    return pairs


def verify(
    pairs_file: Path = typer.Argument(
        ..., exists=True, dir_okay=False,
        help='JSONL, one {"gold": ..., "answer": MODEL_OUTPUT} per line.'),
    timeout: float = typer.Option(5.0, help="Hard limit in seconds per answer in math-verify "
                                            "(a finite number > 0)."),
    workers: int = typer.Option(1, min=1, help="math-verify worker processes (at most your core "
                                               "count)."),
):
    """Verify each model output's last \\boxed{} answer against its gold answer; print one JSON
    line per input, in order: {"correct", "extracted", "timed_out"}."""
    from rlscale.reward import Verifier

    pairs = read_pairs(pairs_file)
    console = Console(stderr=True)
    with Verifier(workers=workers, timeout=timeout) as verifier, \
            Progress(console=console, transient=True) as progress:
        task = progress.add_task("verifying", total=len(pairs))
        for start in range(0, len(pairs), _CHUNK):
            chunk = pairs[start:start + _CHUNK]
            verdicts = verifier.verify_batch([a for a, _ in chunk], [g for _, g in chunk])
            for verdict in verdicts:
                sys.stdout.write(json.dumps({"correct": verdict.correct,
                                             "extracted": verdict.extracted,
                                             "timed_out": verdict.timed_out}) + "\n")
            sys.stdout.flush()
            progress.advance(task, len(chunk))
    if verifier.n_timeouts:
        console.print(f"{verifier.n_timeouts} answer(s) timed out (scored incorrect)")
    if verifier.n_too_complex:
        console.print(f"{verifier.n_too_complex} answer(s) too large or too deeply nested for "
                      "math-verify (scored incorrect)")
