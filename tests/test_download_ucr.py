"""data.download=true against a local HTTP server serving a zip built from the shared GunPoint
files: the download equals the local copy; a wrong or bad download leaves nothing behind."""
import functools
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers import data_cfg, require_ucr

from data_provider import ucr_uea
from utils.download import DownloadError

REPO = Path(__file__).resolve().parents[1]


class _Handler(SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        _Handler.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):  # an http_proxy setting must not catch 127.0.0.1
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    root = tmp_path / "srv"
    root.mkdir()
    _Handler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def make_zip(path, src_dir, name, test_lines=None):
    """A zip laid out like the archive's (files in a <name>/ folder) plus hostile members."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(src_dir / f"{name}_TRAIN.ts", f"{name}/{name}_TRAIN.ts")
        test = (src_dir / f"{name}_TEST.ts").read_text()
        if test_lines is not None:  # keep the header and only the first test_lines cases
            head, _, body = test.partition("@data\n")
            test = head + "@data\n" + "".join(body.splitlines(True)[:test_lines])
        zf.writestr(f"{name}/{name}_TEST.ts", test)
        zf.writestr("../../evil.txt", "must never be written")
        zf.writestr(f"/abs/{name}_TRAIN.txt", "1 2 3\n")  # no TEST partner: never chosen


def make_cfg(data_dir, url, **data):
    cfg = OmegaConf.create({"data": data_cfg("ucr"),
                            "seed": 0, "task": {"name": "classification"},
                            "paths": {"data_dir": str(data_dir), "cache_dir": None}})
    cfg.data.name = "GunPoint"
    cfg.data.download = True
    cfg.data.source_url = url + "/{name}.zip"
    for k, v in data.items():
        cfg.data[k] = v
    return cfg


def all_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_download_equals_local_copy(tmp_path, data_dir, server):
    require_ucr(data_dir, "GunPoint")
    srv, url = server
    src = data_dir / "UCR" / "GunPoint"
    make_zip(srv / "GunPoint.zip", src, "GunPoint")
    dest = tmp_path / "data"
    got = ucr_uea.build(make_cfg(dest, url))
    local = ucr_uea.build(make_cfg(data_dir, url, download=False))
    for s in ("train", "val", "test"):
        for k in ("x", "y", "mask", "index"):
            assert torch.equal(got.splits[s].arrays[k], local.splits[s].arrays[k])
    assert got.meta["class_names"] == local.meta["class_names"] == ["1", "2"]
    folder = dest / "UCR" / "GunPoint"
    for split in ("TRAIN", "TEST"):
        f = f"GunPoint_{split}.ts"
        assert (folder / f).read_bytes() == (src / f).read_bytes()
    # only the two files and a provenance note; no zip, temp folder or hostile member
    assert all_files(dest) == ["UCR", "UCR/GunPoint", "UCR/GunPoint/GunPoint_TEST.ts",
                               "UCR/GunPoint/GunPoint_TRAIN.ts", "UCR/GunPoint/SOURCE.txt"]
    assert not list(tmp_path.rglob("evil.txt"))
    assert "GunPoint.zip" in (folder / "SOURCE.txt").read_text()
    assert _Handler.requests == ["/GunPoint.zip"]
    ucr_uea.build(make_cfg(dest, url))  # files now present: no second download
    assert _Handler.requests == ["/GunPoint.zip"]


def test_wrong_size_download_is_rejected(tmp_path, data_dir, server):
    require_ucr(data_dir, "GunPoint")
    srv, url = server
    make_zip(srv / "GunPoint.zip", data_dir / "UCR" / "GunPoint", "GunPoint")
    size = (srv / "GunPoint.zip").stat().st_size
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match="does not match the expected"):
        ucr_uea.build(make_cfg(dest, url, source_size=size + 1))
    assert not dest.exists() or all_files(dest) == []


def test_download_with_wrong_contents_is_rejected(tmp_path, data_dir, server):
    require_ucr(data_dir, "GunPoint")
    srv, url = server
    make_zip(srv / "GunPoint.zip", data_dir / "UCR" / "GunPoint", "GunPoint", test_lines=100)
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"n_test=100 \(expected 150\)"):
        ucr_uea.build(make_cfg(dest, url))
    assert not dest.exists() or all_files(dest) == []


def test_not_a_zip_and_http_error(tmp_path, server):
    srv, url = server
    (srv / "GunPoint.zip").write_text("<html>not found</html>")
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match="not a usable UCR archive"):
        ucr_uea.build(make_cfg(dest, url))
    with pytest.raises(DownloadError, match="could not download"):
        ucr_uea.build(make_cfg(dest, url + "/nothing-here"))
    assert not dest.exists() or all_files(dest) == []
