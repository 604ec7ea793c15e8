"""download_file and download_bapps against a loopback HTTP server (127.0.0.1 only)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from bapps_toolkit import _download
from bapps_toolkit._download import download_file
from bapps_toolkit.data import download as dl
from bapps_toolkit.errors import DownloadError, LockedError

try:
    from http_server import LoopbackServer, closed_port_url, tar_gz
except ImportError:  # tests/ imported as a package
    from tests.http_server import LoopbackServer, closed_port_url, tar_gz

DATA = bytes((i * 7 + (i >> 8) * 13) % 256 for i in range(300_000))
SHA = hashlib.sha256(DATA).hexdigest()


def _gets(srv):
    return [r for r in srv.requests if r[0] == "GET"]


# ------------------------------------------------------------------------------ download_file
def test_plain_download_with_size_and_sha(tmp_path):
    dest = tmp_path / "sub" / "f.bin"
    with LoopbackServer({"/f.bin": DATA}) as srv:
        out = download_file(srv.url("/f.bin"), dest, expected_size=len(DATA), sha256=SHA,
                            progress=False)
    assert out == dest
    assert dest.read_bytes() == DATA
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    assert srv.requests == [("GET", "/f.bin", None)]


def test_cut_mid_file_then_resume(tmp_path):
    dest = tmp_path / "f.bin"
    part = tmp_path / "f.bin.part"
    with LoopbackServer({"/f.bin": DATA}, cut_after=100_000, max_cuts=1) as srv:
        with pytest.raises(DownloadError) as ei:
            download_file(srv.url("/f.bin"), dest, progress=False)
        msg = str(ei.value)
        assert srv.url("/f.bin") in msg and "cut" in msg
        assert not dest.exists()
        kept = part.stat().st_size
        assert 0 < kept <= 100_000
        assert part.read_bytes() == DATA[:kept]
        download_file(srv.url("/f.bin"), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert not part.exists()
    assert srv.requests[1] == ("GET", "/f.bin", f"bytes={kept}-")


def test_cut_with_known_size_resumes_too(tmp_path):
    dest = tmp_path / "f.bin"
    with LoopbackServer({"/f.bin": DATA}, cut_after=12_345, max_cuts=2) as srv:
        for _ in range(2):
            with pytest.raises(DownloadError, match="run the same command again to resume"):
                download_file(srv.url("/f.bin"), dest, expected_size=len(DATA), progress=False)
        download_file(srv.url("/f.bin"), dest, expected_size=len(DATA), sha256=SHA,
                      progress=False)
    assert dest.read_bytes() == DATA
    ranges = [r[2] for r in srv.requests]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[2].startswith("bytes=")
    assert int(ranges[2][6:-1]) > int(ranges[1][6:-1])


def test_server_ignoring_range_restarts_from_zero(tmp_path):
    dest = tmp_path / "f.bin"
    part = tmp_path / "f.bin.part"
    part.write_bytes(b"\xff" * 5000)  # garbage: appending to it would corrupt the file
    with LoopbackServer({"/f.bin": DATA}, honour_range=False) as srv:
        download_file(srv.url("/f.bin"), dest, sha256=SHA, progress=False)
    assert srv.requests[0][2] == "bytes=5000-"  # asked to resume, got a 200 with everything
    assert dest.read_bytes() == DATA


@pytest.mark.parametrize("etag", [True, False], ids=["etag", "no-etag"])
def test_file_changed_on_server_between_attempts(tmp_path, etag):
    """Resuming must not splice a new file onto the old bytes: with an ETag the resume request
    carries If-Range (the server answers 200 with the new file); without one, the changed total
    size gives it away."""
    dest = tmp_path / "f.bin"
    new = DATA[::-1] + (b"" if etag else b"0123")
    with LoopbackServer({"/f.bin": DATA}, cut_after=100_000, send_etag=etag) as srv:
        with pytest.raises(DownloadError, match="cut"):
            download_file(srv.url("/f.bin"), dest, progress=False)
        assert (tmp_path / "f.bin.part.json").exists()
        srv.files["/f.bin"] = new
        download_file(srv.url("/f.bin"), dest, sha256=hashlib.sha256(new).hexdigest(),
                      progress=False)
        if etag:
            assert srv.if_range[1] is not None and srv.if_range[1].startswith('"')
            assert len(srv.requests) == 2
        else:
            assert srv.if_range == [None, None, None]
            assert [r[2] for r in srv.requests] == [None, "bytes=100000-", None]
    assert dest.read_bytes() == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_complete_part_from_killed_run_is_finished(tmp_path):
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(DATA)
    with LoopbackServer({"/f.bin": DATA}) as srv:
        download_file(srv.url("/f.bin"), dest, sha256=SHA, progress=False)
        # size unknown: one range request past the end, answered 416 "bytes */N"
        assert srv.requests == [("GET", "/f.bin", f"bytes={len(DATA)}-")]
    assert dest.read_bytes() == DATA


def test_wrong_expected_size_is_refused(tmp_path):
    dest = tmp_path / "f.bin"
    with LoopbackServer({"/f.bin": DATA}) as srv:
        with pytest.raises(DownloadError, match=f"announces {len(DATA)} bytes, expected 1000"):
            download_file(srv.url("/f.bin"), dest, expected_size=1000, progress=False)
    assert not dest.exists()


def test_part_longer_than_expected_is_removed(tmp_path):
    dest = tmp_path / "f.bin"
    part = tmp_path / "f.bin.part"
    part.write_bytes(b"x" * (len(DATA) + 10))
    with LoopbackServer({"/f.bin": DATA}) as srv:
        download_file(srv.url("/f.bin"), dest, expected_size=len(DATA), sha256=SHA,
                      progress=False)
        assert srv.requests == [("GET", "/f.bin", None)]  # restarted, no range
    assert dest.read_bytes() == DATA


def test_server_lying_about_length(tmp_path):
    dest = tmp_path / "f.bin"
    url_path = "/f.bin"
    # Announces more than it sends: the short body is a cut connection, nothing final.
    with LoopbackServer({url_path: DATA}, content_length={url_path: len(DATA) + 500}) as srv:
        with pytest.raises(DownloadError, match="cut after 300000 of 300500 bytes"):
            download_file(srv.url(url_path), dest, progress=False)
    assert not dest.exists()
    # Announces less than the expected size: refused before keeping anything.
    (tmp_path / "f.bin.part").unlink()
    with LoopbackServer({url_path: DATA}, content_length={url_path: 1000}) as srv:
        with pytest.raises(DownloadError, match="announces 1000 bytes"):
            download_file(srv.url(url_path), dest, expected_size=len(DATA), progress=False)
    assert not dest.exists()


def test_sha_mismatch_removes_part(tmp_path):
    dest = tmp_path / "f.bin"
    bad = "0" * 64
    with LoopbackServer({"/f.bin": DATA}) as srv:
        with pytest.raises(DownloadError, match="SHA-256") as ei:
            download_file(srv.url("/f.bin"), dest, sha256=bad, progress=False)
        assert srv.url("/f.bin") in str(ei.value) and SHA in str(ei.value)
        assert not dest.exists() and not (tmp_path / "f.bin.part").exists()
        with pytest.raises(DownloadError, match="does not start with deadbeef"):
            download_file(srv.url("/f.bin"), dest, sha256_prefix="deadbeef", progress=False)
        assert not dest.exists()
        download_file(srv.url("/f.bin"), dest, sha256_prefix=SHA[:8], progress=False)
    assert dest.read_bytes() == DATA


def test_idempotent_rerun_makes_no_request(tmp_path):
    dest = tmp_path / "f.bin"
    with LoopbackServer({"/f.bin": DATA}) as srv:
        download_file(srv.url("/f.bin"), dest, expected_size=len(DATA), sha256=SHA,
                      progress=False)
        n = len(srv.requests)
        mtime = dest.stat().st_mtime_ns
        download_file(srv.url("/f.bin"), dest, expected_size=len(DATA), sha256=SHA,
                      progress=False)
        assert len(srv.requests) == n == 1
        assert dest.stat().st_mtime_ns == mtime
        # An existing file that fails its check is fetched again (atomically replaced).
        dest.write_bytes(b"y" * len(DATA))
        download_file(srv.url("/f.bin"), dest, expected_size=len(DATA), sha256=SHA,
                      progress=False)
        assert len(srv.requests) == 2
    assert dest.read_bytes() == DATA


DiskUsage = namedtuple("DiskUsage", "total used free")


def test_free_disk_check(tmp_path, monkeypatch):
    monkeypatch.setattr(_download.shutil, "disk_usage",
                        lambda p: DiskUsage(10**9, 10**9 - 1000, 1000))
    dest = tmp_path / "f.bin"
    with LoopbackServer({"/f.bin": DATA}) as srv:
        with pytest.raises(DownloadError, match="not enough free disk space") as ei:
            download_file(srv.url("/f.bin"), dest, expected_size=len(DATA), progress=False)
        assert str(tmp_path) in str(ei.value)
        assert srv.requests == []  # refused before any request
        # size unknown up front: checked from Content-Length before writing a byte
        with pytest.raises(DownloadError, match="not enough free disk space"):
            download_file(srv.url("/f.bin"), dest, progress=False)
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()


def test_network_and_http_errors_name_the_url(tmp_path):
    url = closed_port_url("/f.bin")
    with pytest.raises(DownloadError, match="cannot connect") as ei:
        download_file(url, tmp_path / "f.bin", progress=False)
    assert url in str(ei.value)
    with LoopbackServer({}) as srv:
        with pytest.raises(DownloadError, match="HTTP error 404") as ei:
            download_file(srv.url("/missing.bin"), tmp_path / "f.bin", progress=False)
        assert srv.url("/missing.bin") in str(ei.value)
    with pytest.raises(DownloadError, match="only http"):
        download_file("file:///etc/passwd", tmp_path / "f.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ download_bapps
def _fake_bapps():
    """Tiny archives in the official layout (bytes stand in for PNG and .npy files)."""
    jnd, val, train = {}, {}, {}
    for cat in ("traditional", "cnn"):
        for i in range(2):
            for sub in ("p0", "p1"):
                jnd[f"jnd/val/{cat}/{sub}/{i:06d}.png"] = f"jnd {cat} {sub} {i}".encode()
            jnd[f"jnd/val/{cat}/same/{i:06d}.npy"] = f"same {cat} {i}".encode()
    for split, cats, out in (("val", ("traditional", "cnn", "superres", "deblur", "color",
                                      "frameinterp"), val),
                             ("train", ("traditional", "cnn", "mix"), train)):
        for cat in cats:
            for i in range(2):
                for sub in ("ref", "p0", "p1"):
                    out[f"{split}/{cat}/{sub}/{i:06d}.png"] = f"{split} {cat} {sub} {i}".encode()
                out[f"{split}/{cat}/judge/{i:06d}.npy"] = f"judge {split} {cat} {i}".encode()
    return {"jnd.tar.gz": (tar_gz(jnd), jnd), "twoafc_val.tar.gz": (tar_gz(val), val),
            "twoafc_train.tar.gz": (tar_gz(train), train)}


FAKE = _fake_bapps()


@pytest.fixture
def small_archives(monkeypatch):
    """The real approximate sizes (6.6 GB) would make the up-front disk check depend on the
    machine running the tests: scale them down to the fake archives."""
    small = tuple(dataclasses.replace(a, approx_bytes=len(FAKE[a.name][0])) for a in dl.ARCHIVES)
    monkeypatch.setattr(dl, "ARCHIVES", small)
    return small


def _serve_all():
    return LoopbackServer({f"/dataset/{name}": blob for name, (blob, _) in FAKE.items()})


def _assert_unpacked(root: Path, names):
    for name in names:
        spec = dl.ARCHIVES_BY_NAME[name]
        dest = spec.dest(root)
        for member, data in FAKE[name][1].items():
            assert (dest / member).read_bytes() == data, member
        marker = json.loads(spec.marker(root).read_text())
        assert marker["sha256"] == hashlib.sha256(FAKE[name][0]).hexdigest()


def test_download_bapps_full(tmp_path, small_archives):
    root = tmp_path / "bapps"
    with _serve_all() as srv:
        res = dl.download_bapps(root, base_url=srv.url("/dataset/"), progress=False)
        assert sorted(res) == sorted(FAKE)
        assert all(r["status"] == "extracted" for r in res.values())
        _assert_unpacked(root, FAKE)
        assert (root / "jnd" / "val" / "cnn" / "same" / "000001.npy").exists()
        assert (root / "2afc" / "val" / "frameinterp" / "judge" / "000000.npy").exists()
        assert (root / "2afc" / "train" / "mix" / "ref" / "000001.png").exists()
        manifest = json.loads((root / dl.MANIFEST_NAME).read_text())
        for name, (blob, _) in FAKE.items():
            assert manifest["archives"][name]["sha256"] == hashlib.sha256(blob).hexdigest()
            assert manifest["archives"][name]["size"] == len(blob)
            assert not (root / name).exists()  # archives deleted after unpacking
        assert not list(root.rglob(dl.EXTRACT_TMP_PREFIX + "*"))
        n = len(srv.requests)
        # A run killed after its marker but before deleting the archive leaves it behind.
        (root / "jnd.tar.gz").write_bytes(FAKE["jnd.tar.gz"][0])
        res2 = dl.download_bapps(root, base_url=srv.url("/dataset/"), progress=False)
        assert not (root / "jnd.tar.gz").exists()
        assert len(srv.requests) == n == 3  # rerun: no request at all
        assert all(r["status"] == "already extracted" for r in res2.values())


def test_download_bapps_val_only_and_resume_after_cut(tmp_path, small_archives):
    root = tmp_path / "bapps"
    with _serve_all() as srv:
        srv.cut_after, srv.max_cuts = 200, 1
        with pytest.raises(DownloadError, match="jnd.tar.gz"):
            dl.download_bapps(root, val_only=True, base_url=srv.url("/dataset"), progress=False)
        assert (root / "jnd.tar.gz.part").exists() and not (root / "jnd").exists()
        res = dl.download_bapps(root, val_only=True, base_url=srv.url("/dataset"), progress=False)
        assert sorted(res) == ["jnd.tar.gz", "twoafc_val.tar.gz"]
        assert all("train" not in p for _, p, _ in srv.requests)
        assert srv.requests[1][2] is not None and srv.requests[1][2].startswith("bytes=")
    _assert_unpacked(root, ["jnd.tar.gz", "twoafc_val.tar.gz"])
    assert not (root / "2afc" / "train").exists()


def test_manifest_sha_checked_on_rerun(tmp_path, small_archives):
    root = tmp_path / "bapps"
    with _serve_all() as srv:
        dl.download_bapps(root, val_only=True, base_url=srv.url("/dataset/"), progress=False)
        # The marker goes (say, the user wants a fresh unpack) and the mirror now serves
        # different bytes of the same length: the recorded SHA-256 catches it.
        dl.ARCHIVES_BY_NAME["jnd.tar.gz"].marker(root).unlink()
        blob = FAKE["jnd.tar.gz"][0]
        srv.files["/dataset/jnd.tar.gz"] = blob[:-1] + bytes([blob[-1] ^ 1])
        with pytest.raises(DownloadError, match="recorded in .*bapps_download.json"):
            dl.download_bapps(root, val_only=True, base_url=srv.url("/dataset/"), progress=False)
        assert not (root / "jnd.tar.gz").exists()
        srv.files["/dataset/jnd.tar.gz"] = blob
        res = dl.download_bapps(root, val_only=True, base_url=srv.url("/dataset/"),
                                progress=False)
    assert res["jnd.tar.gz"]["status"] == "extracted"
    assert res["twoafc_val.tar.gz"]["status"] == "already extracted"
    _assert_unpacked(root, ["jnd.tar.gz", "twoafc_val.tar.gz"])


def test_download_bapps_refuses_wrong_content(tmp_path, small_archives):
    root = tmp_path / "bapps"
    files = {"/d/jnd.tar.gz": FAKE["twoafc_val.tar.gz"][0]}  # the wrong archive under the name
    with LoopbackServer(files) as srv:
        with pytest.raises(DownloadError, match="not under 'jnd/'"):
            dl.download_bapps(root, val_only=True, base_url=srv.url("/d/"), progress=False)
    assert not (root / "jnd").exists() and not (root / "val").exists()
    assert not dl.ARCHIVES_BY_NAME["jnd.tar.gz"].marker(root).exists()


def test_download_bapps_disk_check_up_front(tmp_path, monkeypatch):
    monkeypatch.setattr(_download.shutil, "disk_usage",
                        lambda p: DiskUsage(10**12, 10**12 - 10**9, 10**9))  # 1 GB free
    with LoopbackServer({}) as srv:
        with pytest.raises(DownloadError, match="not enough free disk space.*twoafc_train"):
            dl.download_bapps(tmp_path / "r", base_url=srv.url("/"), progress=False)
        assert srv.requests == []


def test_download_bapps_lock(tmp_path):
    from bapps_toolkit._io import FileLock

    root = tmp_path / "r"
    root.mkdir()
    with FileLock(root / ".bapps_download", "test"):
        with pytest.raises(LockedError):
            dl.download_bapps(root, base_url=closed_port_url("/"), progress=False)


def test_from_archive_detects_by_members(tmp_path, small_archives):
    root = tmp_path / "bapps"
    renamed = tmp_path / "whatever-I-called-it.tgz"
    renamed.write_bytes(FAKE["twoafc_val.tar.gz"][0])
    res = dl.download_bapps(root, from_archive=renamed, base_url=closed_port_url("/"),
                            progress=False)
    assert res == {"twoafc_val.tar.gz": {
        "status": "extracted from archive", "sha256": hashlib.sha256(renamed.read_bytes()).hexdigest(),
        "size": renamed.stat().st_size, "dest": str(root / "2afc")}}
    _assert_unpacked(root, ["twoafc_val.tar.gz"])
    assert renamed.exists()  # the user's file is left alone
    res = dl.download_bapps(root, from_archive=renamed, progress=False)
    assert res["twoafc_val.tar.gz"]["status"] == "already extracted"
    # Later downloads skip what --from-archive unpacked (no request to the closed port).
    jnd = tmp_path / "jnd.tar.gz"
    jnd.write_bytes(FAKE["jnd.tar.gz"][0])
    dl.download_bapps(root, from_archive=jnd, progress=False)
    res = dl.download_bapps(root, val_only=True, base_url=closed_port_url("/"), progress=False)
    assert {r["status"] for r in res.values()} == {"already extracted"}


def test_from_archive_unknown_layout(tmp_path):
    other = tmp_path / "jnd.tar.gz"
    other.write_bytes(tar_gz({"something/else.txt": b"x"}))
    with pytest.raises(DownloadError, match="not one of the BAPPS archives.*its name says"):
        dl.download_bapps(tmp_path / "r", from_archive=other, progress=False)
    with pytest.raises(DownloadError, match="no such file"):
        dl.download_bapps(tmp_path / "r", from_archive=tmp_path / "nope.tar.gz", progress=False)


def test_cli_download(tmp_path, small_archives, capsys):
    from bapps_toolkit.cli.main import main

    root = tmp_path / "bapps"
    with _serve_all() as srv:
        rc = main(["download", "--root", str(root), "--val-only", "--base-url",
                   srv.url("/dataset/"), "--no-progress", "--keep-archives"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "jnd.tar.gz: extracted" in out and "twoafc_val.tar.gz: extracted" in out
    assert (root / "jnd.tar.gz").read_bytes() == FAKE["jnd.tar.gz"][0]
    _assert_unpacked(root, ["jnd.tar.gz", "twoafc_val.tar.gz"])
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not an archive")
    rc = main(["download", "--root", str(root), "--from-archive", str(bad), "--no-progress"])
    assert rc == 2
    assert "bad.tar.gz" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_shell_wrapper_help():
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "data_scripts" / "download_bapps.sh"
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
               PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(script), "/nonexistent-root", "--help"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--from-archive" in proc.stdout and "--val-only" in proc.stdout
