import os
from pathlib import Path

import pytest

# Tests run on 2 cores next to other work: one torch thread keeps them from oversubscribing.
os.environ.setdefault("RLSCALE_THREADS", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip cleanly where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (tests that read the paper's files skip)")
    return SHARED_DATA
