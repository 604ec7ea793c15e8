"""PNG decoding rule (official loader: PIL convert('RGB') then Resize(64)) and judgment files."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bapps_toolkit.data.images import decode_image, load_judgment
from bapps_toolkit.errors import DataError


def _save(tmp_path, arr_or_img, name="x.png", **kw):
    p = tmp_path / name
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    img.save(p, **kw)
    return p


def test_rgb_64_passes_through(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = decode_image(_save(tmp_path, a))
    assert out.dtype == np.uint8 and out.shape == (64, 64, 3) and out.flags.writeable
    np.testing.assert_array_equal(out, a)


def test_grayscale_replicated(tmp_path):
    g = np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) % 251
    out = decode_image(_save(tmp_path, g.astype(np.uint8)))
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], g)


def test_rgba_transparent_refused_opaque_dropped(tmp_path):
    a = np.zeros((64, 64, 4), np.uint8)
    a[..., 0], a[..., 1], a[..., 2] = 200, 100, 50
    a[..., 3] = 0  # fully transparent: no longer decoded to its hidden colour (the alpha rule)
    with pytest.raises(DataError, match="4096 transparent pixel"):
        decode_image(_save(tmp_path, a))
    a[..., 3] = 255  # fully opaque: the alpha is dropped, which changes nothing
    out = decode_image(_save(tmp_path, a))
    assert (out == np.array([200, 100, 50], np.uint8)).all()


def test_palette_expanded(tmp_path):
    im = Image.new("P", (64, 64))
    im.putpalette([0, 0, 0, 10, 20, 30] + [0] * (254 * 3))
    im.paste(1, (0, 0, 32, 64))
    out = decode_image(_save(tmp_path, im))
    assert (out[:, :32] == [10, 20, 30]).all() and (out[:, 32:] == 0).all()


def test_square_resize_is_pil_bilinear_like_resize64(tmp_path):
    # 128x128, columns in blocks of 2 holding v_i = 4 i. PIL bilinear (what torchvision's
    # Resize(64) calls on a PIL image) at scale 1/2 is the tent filter (1, 3, 3, 1)/8 over
    # columns 2i-1 .. 2i+2, so out_i = (v_{i-1} + 6 v_i + v_{i+1}) / 8 = 4 i inside; at the
    # borders the clipped taps renormalise: (6 v_0 + v_1) / 7 = 0.57 -> 1, (v_62 + 6 v_63) / 7
    # = 251.4 -> 251. Cross-checked against torchvision 0.20.1 Resize(64) on random images.
    v = (np.arange(64) * 4).astype(np.uint8)
    big = np.repeat(np.repeat(v[None, :], 2, axis=1), 128, axis=0)
    out = decode_image(_save(tmp_path, big))
    expected = (np.arange(64) * 4).astype(np.uint8)
    expected[0], expected[-1] = 1, 251
    for c in range(3):
        np.testing.assert_array_equal(out[10, :, c], expected)
        np.testing.assert_array_equal(out[:, 20, c], np.full(64, 80))


def test_upsampling_small_square(tmp_path):
    out = decode_image(_save(tmp_path, np.full((32, 32, 3), 77, np.uint8)))
    assert out.shape == (64, 64, 3) and (out == 77).all()


def test_non_square_refused(tmp_path):
    p = _save(tmp_path, np.zeros((64, 80, 3), np.uint8), "wide.png")
    with pytest.raises(DataError, match=r"wide\.png is 80x64, not square"):
        decode_image(p)


def _png_with_header(path, width, height):
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("w,h", [(100000, 100000), (20000, 20000), (9000, 9000)])
def test_absurd_dimensions_refused_before_decoding(tmp_path, w, h):
    p = _png_with_header(tmp_path / f"bomb{w}.png", w, h)
    with pytest.raises(DataError, match=rf"bomb{w}\.png has absurd dimensions"):
        decode_image(p)


def test_corrupt_and_truncated_png(tmp_path):
    good = _save(tmp_path, np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = good.read_bytes()
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"trunc\.png.*corrupt or truncated"):
        decode_image(trunc)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image at all")
    with pytest.raises(DataError, match=r"junk\.png.*corrupt or truncated"):
        decode_image(junk)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png"):
        decode_image(empty)
    with pytest.raises(DataError, match=r"missing\.png does not exist"):
        decode_image(tmp_path / "missing.png")


@pytest.mark.parametrize("value", [np.float64(0.4), np.array([0.4], np.float32),
                                   np.array([[0.4]], np.float64), np.array([1], np.int64)])
def test_judgment_accepted_shapes(tmp_path, value):
    p = tmp_path / "j.npy"
    np.save(p, value)
    assert load_judgment(p) == pytest.approx(float(np.asarray(value).reshape(())))


@pytest.mark.parametrize("value,match", [
    (np.array([0.1, 0.2]), r"shape \(2,\)"),
    (np.zeros((1, 2)), r"shape \(1, 2\)"),
    (np.array([1.5]), "outside"),
    (np.array([-0.01]), "outside"),
    (np.array([np.nan]), "outside"),
    (np.array([np.inf]), "outside"),
    (np.array(["0.5"]), "dtype"),
])
def test_judgment_rejected(tmp_path, value, match):
    p = tmp_path / "bad.npy"
    np.save(p, value)
    with pytest.raises(DataError, match=rf"bad\.npy.*{match}|{match}.*bad\.npy"):
        load_judgment(p)


def test_judgment_corrupt_or_pickled(tmp_path):
    p = tmp_path / "junk.npy"
    p.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"junk\.npy"):
        load_judgment(p)
    q = tmp_path / "obj.npy"
    np.save(q, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy"):
        load_judgment(q)
