"""Interrupted downloads (issue 19, item 5): a connection cut part-way, a bad checksum, a dead server, a full disk or a
killed process never leave a partial file as the data; the message says what happened; the next attempt succeeds."""

import errno
import gzip
import hashlib
import http.server
import io
import os
import threading
import time
import urllib.request

import pytest

from genlab.data import download
from genlab.data.download import fetch
from genlab.data.idx import download_idx
from genlab.errors import DataError

PAYLOAD = bytes(range(256)) * 4000  # 1,024,000 bytes, less than one chunk: the cut lands inside the first read
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    cut_after: int | None = None  # bytes sent before the connection is dropped (None: the whole body)

    def do_GET(self):
        if self.path.startswith("/missing"):
            self.send_error(404, "Not Found")
            return
        body = self.server.files.get(self.path.lstrip("/"), PAYLOAD)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.server.cut_after.get(self.path.lstrip("/"))
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local HTTP server: `server.cut_after[name] = n` drops the connection after n bytes of file `name`."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.cut_after = {}, {}
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def parts(folder):
    return sorted(p.name for p in folder.glob(".*.part"))


def test_a_cut_connection_leaves_nothing_and_a_retry_succeeds(server, tmp_path):
    target = tmp_path / "data.bin"
    server.cut_after["data.bin"] = 300_000
    with pytest.raises(
        DataError, match=r"stopped after 300,000 of 1,024,000 bytes; nothing was saved as data\.bin\. Run the same command again"
    ):
        fetch(f"{server.url}/data.bin", target, sha256=SHA)
    assert not target.exists() and parts(tmp_path) == []
    del server.cut_after["data.bin"]
    assert fetch(f"{server.url}/data.bin", target, sha256=SHA) == target
    assert target.read_bytes() == PAYLOAD and parts(tmp_path) == []


def test_a_cut_without_a_checksum_is_caught_by_the_announced_length(server, tmp_path):
    server.cut_after["data.bin"] = 10
    with pytest.raises(DataError, match="stopped after 10 of 1,024,000 bytes"):
        fetch(f"{server.url}/data.bin", tmp_path / "data.bin")
    assert list(tmp_path.iterdir()) == []


def test_a_checksum_mismatch_keeps_the_old_file(server, tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"the user's own copy")
    with pytest.raises(DataError, match="does not match the expected"):
        fetch(f"{server.url}/data.bin", target, sha256="0" * 64)
    assert target.read_bytes() == b"the user's own copy" and parts(tmp_path) == []


def test_http_error_and_dead_server(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        fetch(f"{server.url}/missing.bin", tmp_path / "m.bin")
    with pytest.raises(DataError, match=r"could not start \(.*Connection refused"):
        fetch("http://127.0.0.1:9/none.bin", tmp_path / "n.bin", timeout=5)  # port 9 (discard): nobody listens
    assert list(tmp_path.iterdir()) == []


def test_a_connection_reset_part_way(tmp_path, monkeypatch):
    """A response that raises after 5 bytes (a reset connection) rather than ending short."""

    class Reset(io.BytesIO):
        headers = {"Content-Length": "100"}

        def read(self, n=-1):
            if self.tell() >= 5:
                raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
            return super().read(5)

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Reset(b"x" * 100))
    with pytest.raises(DataError, match=r"interrupted after 5 bytes \(ConnectionResetError\)"):
        fetch("http://example.invalid/f", tmp_path / "f")
    assert list(tmp_path.iterdir()) == []


def test_part_files_of_a_killed_download_are_swept_but_not_a_live_one(server, tmp_path):
    dead, live = tmp_path / ".data.bin.abc.part", tmp_path / ".data.bin.xyz.part"
    dead.write_bytes(b"half")
    live.write_bytes(b"busy")
    old = time.time() - download.STALE_PART_SECONDS - 5
    os.utime(dead, (old, old))
    fetch(f"{server.url}/data.bin", tmp_path / "data.bin", sha256=SHA)
    assert not dead.exists() and live.exists()


def test_a_full_disk_while_downloading(server, tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    class Full(io.RawIOBase):
        def __init__(self, f):
            self.f = f

        def write(self, b):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self):
            self.f.close()

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(
        DataError, match=f"downloading {server.url}/data.bin: no space left on device while writing {tmp_path / 'data.bin'}"
    ):
        fetch(f"{server.url}/data.bin", tmp_path / "data.bin", sha256=SHA)
    assert list(tmp_path.iterdir()) == []


def test_download_idx_keeps_the_complete_files_and_resumes(server, tmp_path):
    """MNIST's downloader: a cut in the second file keeps the verified first one; the retry fetches only the second."""
    files = {name: gzip.compress(name.encode() * 1000) for name in ("a.gz", "b.gz")}
    server.files.update(files)
    hashes = {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}
    server.cut_after["b.gz"] = 7
    with pytest.raises(DataError, match="b.gz"):
        download_idx(tmp_path / "cache", server.url, hashes)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["a.gz"]
    del server.cut_after["b.gz"]
    server.files["a.gz"] = b"changed on the server: must not be fetched again"
    download_idx(tmp_path / "cache", server.url, hashes)
    assert {p.name: p.read_bytes() for p in (tmp_path / "cache").iterdir()} == files
