"""scripts/fetch_data.py: what is present is reported, what is missing is downloaded from the
official source and verified (a local HTTP server stands in for it here), a wrong file is
refused and nothing is left where a loader would read it."""
import shutil
import subprocess
import sys

import pytest

from tests.helpers import REPO, require_files

sys.path.insert(0, str(REPO / "scripts"))
import fetch_data  # noqa: E402


def test_present_datasets_are_reported_and_nothing_is_fetched(data_dir):
    require_files(data_dir, "UCR/ECG200", "forecast/ETT-small/ETTh1.csv")
    r = subprocess.run([sys.executable, "scripts/fetch_data.py", "--data-dir", str(data_dir),
                        "ucr:ECG200", "ett:ETTh1"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert [line.split()[1] for line in r.stdout.splitlines()] == ["present", "present"]
    assert "sha256 verified" in r.stdout.splitlines()[1]


def test_missing_file_is_downloaded_and_verified(data_dir, tmp_path, serve, monkeypatch):
    require_files(data_dir, "forecast/ETT-small/ETTh1.csv")
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(data_dir / "forecast/ETT-small/ETTh1.csv", served / "ETTh1.csv")
    monkeypatch.setattr(fetch_data.forecast_data, "ETT_URL", serve(served) + "{name}.csv")
    ok, status = fetch_data.fetch_one(tmp_path / "data", "ett:ETTh1")
    assert ok and status.startswith("downloaded to")
    assert (tmp_path / "data/forecast/ETT-small/ETTh1.csv").read_bytes() == (served / "ETTh1.csv").read_bytes()
    # a file that differs from the official one is refused and not left in place
    (served / "ETTh1.csv").write_bytes((served / "ETTh1.csv").read_bytes().replace(b"2016", b"2017", 1))
    ok, status = fetch_data.fetch_one(tmp_path / "other", "ett:ETTh1")
    assert not ok and "does not match" in status
    assert not list((tmp_path / "other").rglob("ETTh1.csv*"))


@pytest.mark.parametrize("key,expected", [("tfc:Epilepsy", "not downloadable"),
                                          ("ett:ETTh9", "unknown dataset")])
def test_undownloadable_and_unknown_datasets_say_so(tmp_path, key, expected):
    ok, status = fetch_data.fetch_one(tmp_path, key)
    assert not ok and expected in status
