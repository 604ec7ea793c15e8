"""Benchmark downloads from a 127.0.0.1 server; zip member checks; manual instructions."""
from __future__ import annotations

import io
import stat
import zipfile

import pytest

from bapps_toolkit.cli.main import main
from bapps_toolkit.data.iqa import loader
from bapps_toolkit.data.iqa.download_iqa import download_benchmark, instructions, safe_extract_zip
from bapps_toolkit.errors import DownloadError
from tests.http_server import LoopbackServer


def _zip_tree(root, top) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted((root / top).rglob("*")):
            zf.write(p, p.relative_to(root).as_posix())
    return buf.getvalue()


def test_kadid_from_local_server_resumes_and_loads(replica_root, tmp_path, capsys):
    data = _zip_tree(replica_root / "kadid10k", "kadid10k")
    with LoopbackServer({"/m/kadid10k.zip": data}, cut_after=len(data) // 3, max_cuts=1) as srv:
        with pytest.raises(DownloadError):  # first attempt cut
            download_benchmark("kadid10k", tmp_path, base_url=srv.url("/m/"), progress=False)
        rc = main(["download", "--dataset", "kadid10k", "--root", str(tmp_path), "--base-url", srv.url("/m/"),
                   "--no-progress"])
        assert rc == 0 and "unpacked" in capsys.readouterr().out
        assert any(r[2] is not None for r in srv.requests)  # resumed with Range
        again = download_benchmark("kadid10k", tmp_path, base_url=srv.url("/m/"), progress=False)
    assert again["kadid10k.zip"]["status"] == "already unpacked"
    s = loader("kadid10k")(tmp_path / "kadid10k")
    assert len(s) == 60 and not (tmp_path / "kadid10k" / "kadid10k.zip").exists()
    assert not list((tmp_path / "kadid10k").glob(".bapps_extract-*"))


@pytest.mark.parametrize("name, why", [("../evil.txt", "'..'"), ("/abs.txt", "absolute"), ("link", "symbolic")])
def test_unsafe_zip_members_refused(tmp_path, name, why):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok/a.txt", "a")
        info = zipfile.ZipInfo(name)
        if why == "symbolic":
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    archive = tmp_path / "x.zip"
    archive.write_bytes(buf.getvalue())
    dest = tmp_path / "out"
    with pytest.raises(DownloadError, match=why):
        safe_extract_zip(archive, dest)
    assert not (dest / "ok").exists() and not (tmp_path / "evil.txt").exists()


def test_manual_sets_print_what_to_do(tmp_path, capsys):
    assert main(["download", "--dataset", "live", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "registration" in out and str(tmp_path / "live" / "databaserelease2") in out
    assert "non-commercial" in instructions("pieapp", tmp_path)
    assert "Google Drive" in instructions("pipal", tmp_path)
    with pytest.raises(DownloadError, match="registration"):
        download_benchmark("live", tmp_path)


def test_tid2013_rar_is_fetched_and_unpacking_explained(tmp_path):
    with LoopbackServer({"/m/tid2013.rar": b"Rar!\x1a\x07\x00fake"}) as srv:
        out = download_benchmark("tid2013", tmp_path, base_url=srv.url("/m/"), progress=False)
    assert out["tid2013.rar"]["status"] == "downloaded" and "bsdtar" in out["tid2013.rar"]["todo"]
