"""dcu.download and the `dcu data` command (dcu.jobs.corpora.data_cli) against a local HTTP server on
127.0.0.1 serving fixture archives (no real network)."""

import hashlib
import http.server
import io
import threading
import zipfile

import numpy as np
import pytest
import soundfile as sf

from dcu.jobs.corpora import data_cli
from dcu.data import list_pairs
from dcu.download import (Archive, DownloadError, cache_dir, download_file, extract_zip, prepare_voicebank,
                          voicebank_dir)


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` with Range support; ``server.drop_after`` cuts transfers short."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        data = self.server.files.get(name)
        self.server.requests.append((name, self.headers.get("Range")))
        if data is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range") and self.server.ranges:
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.drop_after is not None:
            self.wfile.write(body[: self.server.drop_after])
            self.wfile.flush()
            self.server.drop_after = None  # only the first transfer is cut
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.requests, httpd.drop_after, httpd.ranges = {}, [], None, True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def wav_bytes(freq: float, seconds: float = 0.25, sr: int = 48000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr), sr, format="WAV")
    return buf.getvalue()


PAYLOAD = bytes(range(256)) * 400  # 102 400 bytes


def test_download_success(server, tmp_path):
    server.files["a.bin"] = PAYLOAD
    dest = download_file(f"{server.url}/a.bin", tmp_path / "a.bin", md5(PAYLOAD), len(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    download_file(f"{server.url}/a.bin", dest, md5(PAYLOAD), progress=False)  # cached: no new request
    assert len(server.requests) == 1


def test_resume_after_partial_file(server, tmp_path):
    server.files["a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD[:30000])
    dest = download_file(f"{server.url}/a.bin", tmp_path / "a.bin", md5(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("a.bin", "bytes=30000-")]  # only the missing bytes were asked for
    assert not (tmp_path / "a.bin.part").exists()


def test_server_without_range_support_restarts_cleanly(server, tmp_path):
    server.files["a.bin"], server.ranges = PAYLOAD, False
    (tmp_path / "a.bin.part").write_bytes(b"stale bytes from another file")
    dest = download_file(f"{server.url}/a.bin", tmp_path / "a.bin", md5(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_bad_checksum_removes_file(server, tmp_path):
    corrupted = bytearray(PAYLOAD)
    corrupted[5000] ^= 0xFF
    server.files["a.zip"] = bytes(corrupted)
    with pytest.raises(DownloadError, match=r"a\.zip: MD5 .* expected .*removed, run the command again"):
        download_file(f"{server.url}/a.zip", tmp_path / "a.zip", md5(PAYLOAD), progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DownloadError, match="size 102400 bytes, expected 99"):
        download_file(f"{server.url}/a.zip", tmp_path / "a.zip", size=99, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_connection_dropped_then_resumed(server, tmp_path):
    server.files["a.bin"], server.drop_after = PAYLOAD, 40000
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="connection dropped after 40000 .*run the command again to resume"):
        download_file(f"{server.url}/a.bin", dest, md5(PAYLOAD), progress=False)
    assert not dest.exists()  # nothing under the final name
    assert (tmp_path / "a.bin.part").stat().st_size == 40000
    download_file(f"{server.url}/a.bin", dest, md5(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD and server.requests[-1] == ("a.bin", "bytes=40000-")


def test_missing_remote_file(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(f"{server.url}/nope.zip", tmp_path / "nope.zip", progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("evil", ["../escaped.txt", "/tmp/absolute.txt", "a/../../escaped.txt"])
def test_zip_slip_refused(tmp_path, evil):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_bytes({"ok/fine.txt": b"fine", evil: b"gotcha"}))
    target = tmp_path / "out" / "evil"
    with pytest.raises(DownloadError, match="outside .*refusing to unpack"):
        extract_zip(archive, target)
    assert not (tmp_path / "out").exists() and not (tmp_path / "escaped.txt").exists()


def test_symlink_member_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    (tmp_path / "l.zip").write_bytes(buf.getvalue())
    with pytest.raises(DownloadError, match="refusing"):
        extract_zip(tmp_path / "l.zip", tmp_path / "out")


def test_corrupt_zip(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DownloadError, match="not a valid zip"):
        extract_zip(tmp_path / "bad.zip", tmp_path / "out")


def fixture_corpus(server):
    """Four tiny archives laid out like the real ones: 48 kHz WAVs in a top folder."""
    names = {"train": ["p226_001", "p230_002", "p230_003"], "test": ["p232_001", "p257_002"]}
    archives = []
    for split, top in (("train", "{}_trainset_28spk_wav"), ("test", "{}_testset_wav")):
        for side in ("clean", "noisy"):
            folder = top.format(side)
            data = zip_bytes({f"{folder}/{n}.wav": wav_bytes(300 + 10 * i) for i, n in enumerate(names[split])})
            server.files[f"{folder}.zip"] = data
            archives.append(Archive(f"{folder}.zip", split, side, md5(data), len(data)))
    return archives


def test_prepare_voicebank_end_to_end(server, tmp_path, capsys):
    archives = fixture_corpus(server)
    out = prepare_voicebank(tmp_path / "cache", server.url, archives, progress=False)
    assert out == voicebank_dir(tmp_path / "cache")
    assert [c.stem for _, c in list_pairs("train", root=out)] == ["p230_002", "p230_003"]
    assert [c.stem for _, c in list_pairs("valid", root=out)] == ["p226_001"]  # held-out speakers
    noisy, clean = list_pairs("test", root=out)[0]
    info = sf.info(str(clean))
    assert (info.samplerate, info.format, info.frames) == (16000, "FLAC", 4000)  # 0.25 s at 16 kHz
    assert not (out / "raw").exists()  # 48 kHz WAVs removed after conversion
    assert data_cli(["info", "--cache", str(tmp_path / "cache")]) == 0
    text = capsys.readouterr().out
    assert "voicebank: complete" in text and "test " in text and "p232, p257" in text


def test_list_pairs_voicebank_keyword(tmp_path, monkeypatch):
    monkeypatch.setenv("DCU_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="dcu data download voicebank"):
        list_pairs("train", root="voicebank")


def test_cli_reports_failure_without_traceback(server, tmp_path, capsys):
    code = data_cli(["download", "voicebank", "--cache", str(tmp_path), "--base-url", server.url])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("dcu data: error: ") and "HTTP 404" in err
    assert not any(p.is_file() and not p.name.endswith(".part") for p in tmp_path.rglob("*"))


def test_info_lists_shipped_splits(tmp_path, capsys):
    assert data_cli(["info", "--cache", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    for split in ("train", "valid", "test", "unseen"):
        assert f"  {split}" in text
    assert "voicebank: not prepared (0 of 4 archives downloaded)" in text
