from __future__ import annotations

import functools
import http.server
import threading

import pytest

from benchmark.errors import DataError
from benchmark.fetch import fetch, read_sums
from benchmark.tasks.base import FileSet, RealFile
from conftest import make_tiny_task


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server over ``tmp_path/served``; counts the requests it answers."""
    served = tmp_path / "served"
    served.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def _task(base_url):
    files = (RealFile("a.bin", url=f"{base_url}/a.bin"), RealFile("b.bin", url=f"{base_url}/b.bin"))
    return make_tiny_task(file_sets=(FileSet("bins", files, "by hand"),))


def test_fetch_downloads_records_hashes_and_then_stays_offline(server, tmp_path):
    served, url, hits = server
    (served / "a.bin").write_bytes(b"a" * 1000)
    (served / "b.bin").write_bytes(b"b" * 2000)
    root = tmp_path / "data"
    paths = fetch(_task(url), root, progress=False)
    assert [p.read_bytes()[:1] for p in paths] == [b"a", b"b"]
    sums = read_sums(root / "tiny")
    assert set(sums) == {"a.bin", "b.bin"} and all(len(d) == 64 for d in sums.values())
    n_hits = len(hits)
    fetch(_task(url), root, progress=False)
    assert len(hits) == n_hits == 2  # second fetch: no request at all


def test_fetch_verifies_against_the_recorded_hash(server, tmp_path):
    served, url, _ = server
    (served / "a.bin").write_bytes(b"a" * 1000)
    (served / "b.bin").write_bytes(b"b" * 2000)
    root = tmp_path / "data"
    fetch(_task(url), root, progress=False)
    (root / "tiny" / "a.bin").write_bytes(b"corrupted")  # local copy damaged
    with pytest.raises(DataError, match=r"a\.bin: SHA-256 .* does not match the recorded"):
        fetch(_task(url), root, progress=False)
    (root / "tiny" / "a.bin").unlink()  # upstream changed: the re-download must not be accepted
    (served / "a.bin").write_bytes(b"x" * 1000)
    with pytest.raises(DataError, match="does not match the recorded SHA-256"):
        fetch(_task(url), root, progress=False)
    assert not (root / "tiny" / "a.bin").exists()


def test_mirror_replaces_the_origin(server, tmp_path):
    served, url, hits = server
    (served / "a.bin").write_bytes(b"a")
    (served / "b.bin").write_bytes(b"b")
    fetch(_task("http://127.0.0.1:9/nowhere"), tmp_path / "data", mirror=url, progress=False)
    assert sorted(hits) == ["/a.bin", "/b.bin"]


def test_unreachable_or_not_public_gives_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="could not download http://127.0.0.1:9/a.bin"):
        fetch(_task("http://127.0.0.1:9"), tmp_path, progress=False)
    private = make_tiny_task(file_sets=(FileSet("npz", (RealFile("x.npz"),), "ask the collaboration"),))
    with pytest.raises(DataError, match="no publicly downloadable files. ask the collaboration"):
        fetch(private, tmp_path, progress=False)
