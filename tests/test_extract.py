"""Safe extraction of untrusted tar archives (bapps_toolkit.data.download.safe_extract)."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from bapps_toolkit.data import download as dl
from bapps_toolkit.data import extract
from bapps_toolkit.errors import DownloadError

GOOD = {"jnd/val/cnn/p0/000000.png": b"p0-0", "jnd/val/cnn/p1/000000.png": b"p1-0",
        "jnd/val/cnn/same/000000.npy": b"same-0"}


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    tar.addfile(ti, io.BytesIO(data))


def _special(name: str, type_: bytes, linkname: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.linkname = linkname
    ti.mode = 0o644
    return ti


def _archive(path: Path, files: dict, extra=(), extra_first: bool = False) -> Path:
    """A .tar.gz with ``files`` and the special members ``extra`` (TarInfo or (name, bytes))."""
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        def add_extra():
            for e in extra:
                if isinstance(e, tarfile.TarInfo):
                    tar.addfile(e)
                else:
                    _add_file(tar, *e)
        if extra_first:
            add_extra()
        for name, data in files.items():
            _add_file(tar, name, data)
        if not extra_first:
            add_extra()
    return path


def _tree(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


BAD_CASES = {
    "dotdot": ([("../evil", b"evil")], "'..' component"),
    "dotdot_inside": ([("jnd/../../evil", b"evil")], "'..' component"),
    "absolute": ([("/tmp/bapps-evil-absolute", b"evil")], "absolute path"),
    "symlink_out": ([_special("jnd/link", tarfile.SYMTYPE, "../../outside")],
                    "symbolic link to '../../outside', outside"),
    "symlink_abs": ([_special("jnd/link", tarfile.SYMTYPE, "/etc/passwd")],
                    "symbolic link to '/etc/passwd', outside"),
    "hardlink_out": ([_special("jnd/hard", tarfile.LNKTYPE, "../outside")],
                     "hard link to '../outside', outside"),
    "hardlink_abs": ([_special("jnd/hard", tarfile.LNKTYPE, "/etc/passwd")],
                     "hard link to '/etc/passwd', outside"),
    "chardev": ([_special("jnd/dev", tarfile.CHRTYPE)], "device file"),
    "blockdev": ([_special("jnd/blk", tarfile.BLKTYPE)], "device file"),
    "fifo": ([_special("jnd/fifo", tarfile.FIFOTYPE)], "FIFO"),
    # A link that stays inside, then a member written through it to the outside.
    "through_symlink": ([_special("jnd/here", tarfile.SYMTYPE, "."),
                         ("jnd/here/../../evil", b"evil")], "'..' component"),
    "through_symlink2": ([_special("jnd/up", tarfile.SYMTYPE, ".."),
                          ("jnd/up/evil", b"evil")], "through a symbolic link"),
    "symlink_chain": ([_special("jnd/a", tarfile.SYMTYPE, "."),
                       _special("jnd/a/b", tarfile.SYMTYPE, "../x")], "through a symbolic link"),
}


@pytest.mark.parametrize("first", [False, True], ids=["bad-last", "bad-first"])
@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_unsafe_member_refused_and_nothing_extracted(tmp_path, case, first):
    extra, why = BAD_CASES[case]
    archive = _archive(tmp_path / "a.tar.gz", GOOD, extra, extra_first=first)
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(DownloadError) as ei:
        dl.safe_extract(archive, root, progress=False)
    msg = str(ei.value)
    assert str(archive) in msg and why in msg and "nothing was extracted" in msg
    bad_name = extra[-1].name if isinstance(extra[-1], tarfile.TarInfo) else extra[-1][0]
    assert repr(bad_name) in msg
    assert _tree(root) == []                      # not even the good members
    assert _tree(tmp_path) == ["a.tar.gz", "root"]  # nothing escaped either
    assert not Path("/tmp/bapps-evil-absolute").exists()


def test_data_filter_or_checks_refuse_without_our_precheck(tmp_path, monkeypatch):
    """Defence in depth: even if the pre-check missed a traversal, the extraction refuses it
    (tarfile's data filter) and nothing reaches the destination."""
    if not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile extraction filters")
    monkeypatch.setattr(extract, "check_members", lambda archive, members: None)
    archive = _archive(tmp_path / "a.tar.gz", GOOD, [("../evil", b"evil")])
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(DownloadError, match="extraction failed"):
        dl.safe_extract(archive, root, progress=False)
    assert _tree(root) == [] and not (tmp_path / "evil").exists()


def test_good_archive_extracts(tmp_path):
    extra = [_special("jnd/val/cnn/alias.png", tarfile.SYMTYPE, "p0/000000.png"),
             _special("jnd/val/cnn/hard.png", tarfile.LNKTYPE, "jnd/val/cnn/p1/000000.png")]
    archive = _archive(tmp_path / "a.tar.gz", GOOD, extra)
    root = tmp_path / "root"
    placed = dl.safe_extract(archive, root, progress=False)
    assert placed == [root / "jnd"]
    for name, data in GOOD.items():
        assert (root / name).read_bytes() == data
    assert (root / "jnd/val/cnn/alias.png").is_symlink()
    assert (root / "jnd/val/cnn/alias.png").read_bytes() == b"p0-0"
    assert (root / "jnd/val/cnn/hard.png").read_bytes() == b"p1-0"
    assert not list(root.glob(dl.EXTRACT_TMP_PREFIX + "*"))


def test_dot_slash_names_and_expected_top(tmp_path):
    archive = _archive(tmp_path / "a.tar", {"./jnd/x.txt": b"x"})
    root = tmp_path / "root"
    assert dl.safe_extract(archive, root, progress=False, expected_top="jnd") == [root / "jnd"]
    assert (root / "jnd/x.txt").read_bytes() == b"x"
    with pytest.raises(DownloadError, match="not under 'val/'"):
        dl.safe_extract(archive, tmp_path / "r2", progress=False, expected_top="val")
    assert not (tmp_path / "r2" / "jnd").exists()


def test_existing_tree_is_replaced_whole(tmp_path):
    root = tmp_path / "root"
    (root / "jnd" / "stale").mkdir(parents=True)
    (root / "jnd" / "stale" / "old.png").write_bytes(b"old")
    (root / "other").mkdir()
    archive = _archive(tmp_path / "a.tar.gz", GOOD)
    dl.safe_extract(archive, root, progress=False)
    assert not (root / "jnd" / "stale").exists()
    assert (root / "other").is_dir()  # entries the archive does not contain are untouched
    assert (root / "jnd/val/cnn/p0/000000.png").read_bytes() == b"p0-0"


@pytest.mark.parametrize("blob", [b"", b"not a tar at all" * 10], ids=["empty", "garbage"])
def test_corrupt_archive_named(tmp_path, blob):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(blob)
    with pytest.raises(DownloadError, match="bad.tar.gz"):
        dl.safe_extract(bad, tmp_path / "root", progress=False)


def test_truncated_archive_named(tmp_path):
    big = {f"jnd/val/cnn/p0/{i:06d}.png": bytes(range(256)) * 40 for i in range(50)}
    good = _archive(tmp_path / "full.tar.gz", big)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DownloadError, match="cut.tar.gz"):
        dl.safe_extract(cut, tmp_path / "root", progress=False)
    assert not (tmp_path / "root").exists()


def test_kill_mid_extraction_then_rerun(tmp_path, monkeypatch):
    """An exception half-way through unpacking (standing in for a kill) leaves no completion
    marker and no tree under the final name; the rerun finishes the job."""
    jnd = _archive(tmp_path / "jnd.tar.gz", GOOD)
    root = tmp_path / "root"
    real_extract = tarfile.TarFile.extract
    calls = {"n": 0}

    def dying_extract(self, member, path="", **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real_extract(self, member, path, **kw)

    monkeypatch.setattr(tarfile.TarFile, "extract", dying_extract)
    with pytest.raises(KeyboardInterrupt):
        dl.download_bapps(root, from_archive=jnd, progress=False)
    marker = dl.ARCHIVES_BY_NAME["jnd.tar.gz"].marker(root)
    assert not marker.exists()
    assert not (root / "jnd").exists()
    monkeypatch.setattr(tarfile.TarFile, "extract", real_extract)

    # A real kill -9 would also leave the temporary folder behind: plant one.
    stale = root / (dl.EXTRACT_TMP_PREFIX + "jnd.tar.gz-1-dead")
    (stale / "jnd").mkdir(parents=True)
    res = dl.download_bapps(root, from_archive=jnd, progress=False)
    assert res["jnd.tar.gz"]["status"] == "extracted from archive"
    assert json.loads(marker.read_text())["archive"] == "jnd.tar.gz"
    for name, data in GOOD.items():
        assert (root / name).read_bytes() == data
    assert not stale.exists()
    assert not list(root.glob(dl.EXTRACT_TMP_PREFIX + "*"))


def test_kill_between_extract_and_rename(tmp_path, monkeypatch):
    jnd = _archive(tmp_path / "jnd.tar.gz", GOOD)
    root = tmp_path / "root"
    real_replace = extract.os.replace

    def dying_replace(src, dst):
        if Path(dst) == root / "jnd":
            raise OSError("simulated kill before the tree is renamed into place")
        return real_replace(src, dst)

    monkeypatch.setattr(extract.os, "replace", dying_replace)
    with pytest.raises(OSError):
        dl.download_bapps(root, from_archive=jnd, progress=False)
    assert not (root / "jnd").exists()
    assert not dl.ARCHIVES_BY_NAME["jnd.tar.gz"].marker(root).exists()
    monkeypatch.setattr(extract.os, "replace", real_replace)
    dl.download_bapps(root, from_archive=jnd, progress=False)
    assert (root / "jnd/val/cnn/p1/000000.png").read_bytes() == b"p1-0"
