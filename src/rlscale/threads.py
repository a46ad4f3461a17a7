"""Deliberate CPU thread settings: oversubscribing small machines makes torch 5-25x slower."""

import contextlib
import os


def set_torch_threads(n: int | None = None) -> int:
    """Give torch `n` intra-op threads (default: all cores, or RLSCALE_THREADS) and one inter-op."""
    import torch

    if n is None:
        n = int(os.environ.get("RLSCALE_THREADS", 0)) or (os.cpu_count() or 1)
    torch.set_num_threads(max(1, n))
    with contextlib.suppress(RuntimeError):  # already set once in this process; harmless
        torch.set_num_interop_threads(1)
    return n
