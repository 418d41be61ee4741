"""A refusal is one short paragraph and a non-zero exit, not a traceback.

The errors a user can cause and fix - a wrong or missing config value, a missing or corrupt
file, a run directory that may not take the run, a device the machine lacks, a diverging
loss - are printed as ``Error: <message>`` with exit status 2. ``HYDRA_FULL_ERROR=1`` shows
the full traceback instead.
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager

from utils.device import DeviceUnavailable
from utils.download import DownloadError
from utils.run_directory import RunDirectoryError

REFUSALS = (ValueError, TypeError, KeyError, OSError, FloatingPointError, DownloadError,
            RunDirectoryError, DeviceUnavailable)
EXIT_REFUSED = 2


def full_errors() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR", "") == "1"


def refuse(message: str, log: logging.Logger | None = None) -> None:
    """Print the refusal and exit with status 2."""
    text = message.strip().strip("'\"")
    if log is not None:
        log.error(text)
    print(f"Error: {text}\n(HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
    sys.exit(EXIT_REFUSED)


@contextmanager
def refuse_on_error(log: logging.Logger | None = None):
    try:
        yield
    except REFUSALS as err:
        if full_errors():
            raise
        refuse(str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err), log)
