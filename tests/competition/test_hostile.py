"""Untrusted competition inputs: the manifest, the judged set, the study database and the
resume state are checked (ids validated, no path from data, sizes checked) and every problem is a
DataError/ValueError naming the file, never another exception or a silent result."""
from __future__ import annotations

import io
import json
import shutil
import sqlite3
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bapps_toolkit.competition import MadConfig, read_manifest, run_mad
from bapps_toolkit.competition import records as rec
from bapps_toolkit.errors import DataError
from bapps_toolkit.judge import create_from_set, export
from bapps_toolkit.report.competition import competition_report

KEY = "2afc/val/mad-l2-ssim"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    out = base / "set"
    run_mad(MadConfig("l2", "ssim", out=str(out), size=32, limit=2, max_steps=3))
    db = create_from_set(out, base / "study.sqlite", judgments_per_item=1, sentinel_share=0.0)
    con = sqlite3.connect(db)
    con.execute("INSERT INTO raters (id, created) VALUES ('r1', 0)")
    for (item,) in con.execute("SELECT id FROM items").fetchall():
        con.execute("INSERT INTO assignments VALUES ('r1', ?, ?)", (item, item))
        con.execute("INSERT INTO answers (rater, item, swapped, side, answer, rt_ms, created) "
                    "VALUES ('r1', ?, 0, 'right', ?, 500, 0)", (item, item % 2))
    con.commit()
    con.close()
    export(db, base / "judged")
    return out, db, base / "judged"


def _doc(made) -> dict:
    return json.loads((made[0] / "competition.json").read_text())


def _write(tmp_path, doc) -> str:
    p = tmp_path / "competition.json"
    p.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return str(p)


def test_the_honest_inputs_report(made, tmp_path):
    out, db, judged = made
    for source in (judged, db):
        rep = competition_report(source, out, n_boot=200)
        assert len(rep.verdict.judged) == 4


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["items"][0].update(stem="../../etc/passwd"), "not a safe name"),
    (lambda d: d["items"][0].update(stem=".hidden"), "not a safe name"),
    (lambda d: d["items"][0].update(stem="a" * 65), "not a safe name"),
    (lambda d: d["items"][0].update(key="2afc/val/../../x"), "not a 2AFC set key"),
    (lambda d: d["items"][0].update(key="jnd/val/x"), "not a 2AFC set key"),
    (lambda d: d["items"][0].update(kind="other"), "kind"),
    (lambda d: d["items"][0]["values"].pop("ssim"), "exactly the held and the pushed"),
    (lambda d: d["items"][0]["values"].update(ssim=["1", 2]), "finite number"),
    (lambda d: d["items"][0]["values"].update(ssim=[True, 2]), "finite number"),
    (lambda d: d["items"][0].update(held_drift=[0.1]), "two numbers"),
    (lambda d: d["items"][0].update(level=True), "level"),
    (lambda d: d["items"][0].update(steps=[1, 2, 3]), "steps"),
    (lambda d: d["items"][0].update(digests={"p0": "zz"}), "SHA-256"),
    (lambda d: d["items"][0].update(digests={"../x": "0" * 64}), "digests"),
    (lambda d: d["items"].append(dict(d["items"][0])), "appears twice"),
    (lambda d: d["items"][0].update(held="nobody", values={"nobody": [1, 2], "ssim": [1, 2]}), "not in 'metrics'"),
    (lambda d: d.update(items=[]), "'items'"),
    (lambda d: d.update(items={"a": 1}), "'items'"),
    (lambda d: d.update(format="other/1"), "not a competition manifest"),
    (lambda d: d.update(kind="x"), "kind"),
    (lambda d: d.update(metrics=[{"name": "l2"}]), "metrics"),
    (lambda d: d.update(notes=[1]), "notes"),
])
def test_bad_manifests_are_refused_naming_the_file(made, tmp_path, edit, match):
    doc = _doc(made)
    edit(doc)
    with pytest.raises(DataError, match=match):
        read_manifest(_write(tmp_path, doc))


@pytest.mark.parametrize("text, match", [
    ("not json", "not valid JSON"),
    ('{"format": "bapps-competition/1", "items": [NaN]}', "not valid JSON"),
    ("[" * 100000 + "]" * 100000, "not valid JSON"),
])
def test_manifests_that_are_not_json_are_refused(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        read_manifest(_write(tmp_path, text))


def test_infinite_numbers_and_non_utf8_are_refused(made, tmp_path):
    text = (made[0] / "competition.json").read_text().replace('"held_start": ', '"held_start": 1e999, "x": ', 1)
    with pytest.raises(DataError, match="finite number"):
        read_manifest(_write(tmp_path, text))
    (tmp_path / "competition.json").write_bytes(b'{"format": "\xff"}')
    with pytest.raises(DataError, match="not valid JSON"):
        read_manifest(tmp_path / "competition.json")


def test_sizes_are_checked_before_parsing(made, tmp_path, monkeypatch):
    monkeypatch.setattr(rec, "MAX_MANIFEST_BYTES", 100)
    with pytest.raises(DataError, match="bytes"):
        read_manifest(made[0])
    monkeypatch.setattr(rec, "MAX_MANIFEST_BYTES", 64 * 1024 * 1024)
    monkeypatch.setattr(rec, "MAX_ITEMS", 3)
    with pytest.raises(DataError, match="1 to 3 items"):
        read_manifest(made[0])


def test_a_judged_set_with_swapped_sides_or_another_set_is_refused(made, tmp_path):
    out, _, judged = made
    bad = tmp_path / "judged"
    shutil.copytree(judged, bad)
    d = bad / KEY
    (d / "p0" / "000001.png").rename(d / "tmp.png")
    (d / "p1" / "000001.png").rename(d / "p0" / "000001.png")
    (d / "tmp.png").rename(d / "p1" / "000001.png")
    with pytest.raises(DataError, match="000001 is not the image the manifest names"):
        competition_report(bad, out, n_boot=200)


def test_a_judged_set_with_bad_judgments_is_refused(made, tmp_path):
    out, _, judged = made
    for payload, match in ((np.array([1.5], np.float32), "outside"), (np.array(["x"], dtype=object), "npy")):
        bad = tmp_path / f"j{len(match)}"
        shutil.copytree(judged, bad)
        np.save(bad / KEY / "judge" / "000002.npy", payload, allow_pickle=True)
        with pytest.raises(DataError, match=match):
            competition_report(bad, out, n_boot=200)
    bad = tmp_path / "nojudge"
    shutil.copytree(judged, bad)
    shutil.rmtree(bad / KEY / "judge")
    with pytest.raises(DataError, match="judge"):
        competition_report(bad, out, n_boot=200)


def _bomb_png(w: int = 100_000, h: int = 100_000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))


def test_a_judged_set_with_an_absurd_image_is_refused(made, tmp_path):
    out, _, judged = made
    bad = tmp_path / "judged"
    shutil.copytree(judged, bad)
    (bad / KEY / "p0" / "000000.png").write_bytes(_bomb_png())
    with pytest.raises(DataError, match="absurd dimensions"):
        competition_report(bad, out, n_boot=200)


def test_files_that_are_not_study_databases_are_refused(made, tmp_path):
    out = made[0]
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"hello, not sqlite")
    with pytest.raises(DataError, match="neither a judged folder"):
        competition_report(junk, out)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(DataError, match="not a study database"):
        competition_report(other, out)


def test_a_study_database_with_hostile_rows(made, tmp_path):
    out, db, _ = made
    bad = tmp_path / "s.sqlite"
    shutil.copy(db, bad)
    con = sqlite3.connect(bad)
    con.execute("UPDATE items SET stem='../../escape' WHERE stem='000003'")
    con.commit()
    with pytest.raises(DataError, match=r"items row id=\d+, field 'stem': '\.\./\.\./escape' is not a valid item id"):
        competition_report(bad, out, n_boot=200)
    con.execute("UPDATE items SET stem='zz_unknown' WHERE stem='../../escape'")
    con.commit()
    rep = competition_report(bad, out, n_boot=200)  # an unknown stem is not an item of this competition
    assert {j.item.stem for j in rep.verdict.judged} == {"000000", "000001", "000002"}
    con.execute("UPDATE items SET p0=? WHERE stem='000000'", (_bomb_png(),))
    con.commit()
    with pytest.raises(DataError, match="refusing to decode"):
        competition_report(bad, out, n_boot=200)
    con.execute("UPDATE items SET p0=? WHERE stem='000000'", (b"garbage",))
    con.commit()
    with pytest.raises(DataError, match="cannot decode"):
        competition_report(bad, out, n_boot=200)
    con.close()


def test_a_study_database_whose_sides_were_swapped_is_refused(made, tmp_path):
    out, db, _ = made
    bad = tmp_path / "s.sqlite"
    shutil.copy(db, bad)
    con = sqlite3.connect(bad)
    con.execute("UPDATE items SET p0=p1, p1=p0 WHERE stem='000002'")
    con.commit()
    con.close()
    with pytest.raises(DataError, match="000002 is not the image"):
        competition_report(bad, out, n_boot=200)


def test_tampered_resume_state_is_refused(made, tmp_path):
    out = tmp_path / "set"
    shutil.copytree(made[0], out)
    rec_path = out / ".competition" / "items" / "000001.json"
    doc = json.loads(rec_path.read_text())
    doc["stem"] = "../x"
    rec_path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="not a safe name"):
        run_mad(MadConfig("l2", "ssim", out=str(out), size=32, limit=2, max_steps=3))
    rec_path.write_text("{")
    with pytest.raises(DataError, match="not readable JSON"):
        run_mad(MadConfig("l2", "ssim", out=str(out), size=32, limit=2, max_steps=3))
    (out / ".competition" / "settings.json").write_text("[1]")
    with pytest.raises(DataError, match="settings object"):
        run_mad(MadConfig("l2", "ssim", out=str(out), size=32, limit=2, max_steps=3))


def test_png_helpers_round_trip():
    arr = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    from bapps_toolkit.competition.output import png_bytes, to_uint8

    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(arr)))), arr)
    assert np.array_equal(to_uint8(arr.transpose(2, 0, 1) / 255.0), arr)


def test_report_cli_on_both_sources_and_option_checks(made, tmp_path, capsys):
    from bapps_toolkit.cli.main import main

    out, db, judged = made
    assert main(["competition-report", str(db), "--manifest", str(out), "--n-boot", "200", "--out",
                 str(tmp_path / "v")]) == 0
    printed = capsys.readouterr().out
    assert "l2 vs ssim" in printed and (tmp_path / "v" / "verdict.json").is_file()
    doc = json.loads((tmp_path / "v" / "verdict.json").read_text())
    assert doc["kind"] == "mad" and len(doc["pairs"]) == 1
    assert main(["competition-report", str(judged), "--manifest", str(out), "--min-sentinel-accuracy", "0.5"]) == 2
    assert "study database" in capsys.readouterr().err
    assert main(["competition-report", str(judged), "--manifest", str(tmp_path / "none.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
