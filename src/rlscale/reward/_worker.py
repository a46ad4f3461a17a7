"""A verifier worker process: `python -m rlscale.reward._worker MODULE:FUNCTION`.

Reads one JSON request per line on stdin (`{"gold": ..., "answer": ...}`), answers one JSON line
(`{"correct": bool}`) on the original stdout. The parent kills it when an answer takes too long.
"""

import importlib
import json
import os
import resource
import sys

# sympy can build gigantic integers from short inputs; past this address space the answer fails
# with MemoryError (scored 0) instead of swapping the machine.
_MEMORY_LIMIT_BYTES = 4 << 30


def main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT_BYTES, _MEMORY_LIMIT_BYTES))
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    module_name, _, function_name = sys.argv[1].partition(":")
    check = getattr(importlib.import_module(module_name), function_name)
    check("1", "1")  # warm up the parsers so the first real answer is not charged for it
    protocol.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        try:
            correct = bool(check(request["gold"], request["answer"]))
        except Exception:  # a parser failure on model output means "not verified", never a crash
            correct = False
        protocol.write(json.dumps({"correct": correct}) + "\n")


if __name__ == "__main__":
    main()
