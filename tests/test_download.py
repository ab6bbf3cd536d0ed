"""plotgpt download against a real HTTP server on 127.0.0.1 (no network needed)."""
import hashlib
import http.server
import io
import socket
import tarfile
import threading

import pytest

from helpers import cli
from helpers.download import DownloadError, download


def _archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = "".join(f"{i}\tMovie {i} plot: a hero rises, falls and rises again.\n" for i in range(50)).encode()
        info = tarfile.TarInfo("MovieSummaries/plot_summaries.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


BODY = _archive()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/missing":
            self.send_error(404)
            return
        body = BODY
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/truncated":
            self.wfile.write(body[: len(body) // 2])  # promise more than we send, then hang up
            self.close_connection = True
            return
        for i in range(0, len(body), 4096):
            self.wfile.write(body[i:i + 4096])

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_download_verifies_and_renames_only_when_complete(server, tmp_path):
    sha = hashlib.sha256(BODY).hexdigest()
    path = download(f"{server}/MovieSummaries.tar.gz", tmp_path / "MovieSummaries.tar.gz", sha256=sha, progress=False)
    assert path.read_bytes() == BODY
    assert (tmp_path / "MovieSummaries.tar.gz.sha256").read_text().startswith(sha)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("route,kwargs,msg", [
    ("/truncated", {}, "incomplete|broke off"),
    ("/missing", {}, "HTTP 404"),
    ("/ok", {"sha256": "0" * 64}, "sha256 mismatch"),
    ("/ok", {"min_bytes": 10**9}, "expected at least"),
])
def test_bad_downloads_leave_nothing_behind(server, tmp_path, route, kwargs, msg):
    dest = tmp_path / "f.tar.gz"
    with pytest.raises(DownloadError, match=msg):
        download(f"{server}{route}", dest, progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_offline_gives_a_clear_message(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    with pytest.raises(DownloadError, match="cannot reach .*offline"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "x", progress=False, timeout=5)


def test_cli_download_then_prepare_the_cmu_format(server, tmp_path, capsys):
    out = tmp_path / "dl"
    assert cli.main(["download", "cmu-plots", "--url", f"{server}/MovieSummaries.tar.gz", "--out", str(out),
                     "--quiet"]) == 0
    assert "next: plotgpt prepare" in capsys.readouterr().out
    assert cli.main(["prepare", str(out / "MovieSummaries.tar.gz"), "--vocab-size", "300", "--out",
                     str(tmp_path / "p"), "--quiet"]) == 0
    assert "45 train, 5 val" in capsys.readouterr().out
