import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# Keep the suite predictable on small CI machines.
# Two threads suit the 2-core CI machine; an explicit OMP_NUM_THREADS (e.g. 1 on a machine
# busy with other jobs, where oversubscribed threads slow torch down badly) wins.
if not os.environ.get("OMP_NUM_THREADS"):
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets (read-only), from the DATA_DIR environment variable."""
    d = os.environ.get("DATA_DIR")
    if not d or not Path(d).is_dir():
        pytest.fail("set DATA_DIR to the folder with the real datasets, e.g. "
                    "DATA_DIR=../shared/data python -m pytest -q (see README)")
    return Path(d).resolve()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One writable preprocessing cache for the whole session (the data dir is read-only)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine run several times faster on one thread
    (two threads spin-wait against the other processes)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
