import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# Keep the suite predictable on small CI machines.
torch.set_num_threads(1)  # TEMP(session): agents share 2 cores; restore min(2, cpu_count)


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
