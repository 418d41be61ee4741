import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from utils.download import DataUnavailable

REPO = Path(__file__).resolve().parents[1]

# Keep the suite predictable on small CI machines.
# Two threads suit a 2-core machine; an explicit OMP_NUM_THREADS (e.g. 1 on a machine
# busy with other jobs, where oversubscribed threads slow torch down badly) wins.
if not os.environ.get("OMP_NUM_THREADS"):
    torch.set_num_threads(min(2, os.cpu_count() or 1))

# A test never downloads a dataset: an absent one skips the test (or fails it, strictly).
os.environ["DATA_DOWNLOAD"] = "false"

# REQUIRE_DATA=1: a test whose dataset is absent fails instead of skipping (CI sets it, so CI
# runs every test on the full data).
STRICT = os.environ.get("REQUIRE_DATA", "").lower() in ("1", "true", "yes")


def _skip_when_data_missing():
    """Run a test phase; a DataUnavailable (a dataset absent from DATA_DIR) skips the test
    with the loader's own message, unless REQUIRE_DATA asks for the full data."""
    try:
        return (yield)
    except DataUnavailable as error:
        if STRICT:
            raise
        pytest.skip(f"{error} (REQUIRE_DATA=1 fails instead of skipping)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):      # fixtures that load a dataset
    return (yield from _skip_when_data_missing())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _skip_when_data_missing())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets (read-only): the DATA_DIR environment variable, default ./dataset."""
    return Path(os.environ.get("DATA_DIR") or REPO / "dataset").resolve()


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


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(folder) -> base URL of a local HTTP server for that folder."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_Quiet, directory=str(folder))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
