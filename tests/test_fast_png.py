"""The optional fast PNG decoder (imagecodecs / libspng) gives PIL's pixels, refuses what PIL
refuses, and never sees a file before the size checks; PIL stays the fallback."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

import bapps_toolkit.data.fast_png as fast_png
from bapps_toolkit.data.images import ImageFileError, decode_image, has_alpha, read_rgb
from bapps_toolkit.errors import DataError
from bapps_toolkit.scoring.pair_stream import read_image

pytest.importorskip("imagecodecs", reason="the fast-decode extra (in the test extra too)")

RNG = np.random.default_rng(21)
SIG = b"\x89PNG\r\n\x1a\n"
# Adam7 passes: (first row, first column, row step, column step)
ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _row_bytes(samples: np.ndarray, depth: int) -> bytes:
    """One scanline's samples (ints < 2**depth) packed MSB first, with filter byte 0 (None)."""
    if depth == 16:
        return b"\x00" + samples.astype(">u2").tobytes()
    if depth == 8:
        return b"\x00" + samples.astype(np.uint8).tobytes()
    bits = ((samples.astype(np.uint8)[:, None] >> np.arange(depth - 1, -1, -1)) & 1).reshape(-1)
    return b"\x00" + np.packbits(bits).tobytes()


def raw_png(samples: np.ndarray, depth: int, colour: int, *, interlace: bool = False,
            before_idat: bytes = b"", idat: bytes | None = None, tail: bytes | None = None) -> bytes:
    """A PNG written sample by sample: ``samples`` is ``[H, W, channels]`` of ints."""
    h, w, ch = samples.shape
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    rows = []
    for y0, x0, dy, dx in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            rows += [_row_bytes(r.reshape(-1), depth) for r in sub]
    data = zlib.compress(b"".join(rows)) if idat is None else idat
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, int(interlace))
    end = chunk(b"IEND", b"") if tail is None else tail
    return SIG + chunk(b"IHDR", ihdr) + before_idat + chunk(b"IDAT", data) + end


def _pil_save(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def _corpus() -> dict[str, bytes]:
    """PNGs of every colour type and bit depth, odd sizes, interlaced, with the chunks that could
    make a decoder differ from PIL (tRNS, gAMA, sRGB, iCCP, eXIf orientation)."""
    rgb = RNG.integers(0, 256, (37, 53, 3))
    grey = RNG.integers(0, 256, (23, 41, 1))
    palette = RNG.integers(0, 256, 3 * 256).astype(np.uint8).tobytes()
    c: dict[str, bytes] = {
        "RGB": raw_png(rgb, 8, 2),
        "RGB 1x1": raw_png(rgb[:1, :1], 8, 2),
        "RGB 1x77": raw_png(RNG.integers(0, 256, (1, 77, 3)), 8, 2),
        "RGB interlaced": raw_png(rgb, 8, 2, interlace=True),
        "RGB interlaced 3x5": raw_png(rgb[:3, :5], 8, 2, interlace=True),
        "RGBA": raw_png(RNG.integers(0, 256, (29, 31, 4)), 8, 6),
        "RGBA interlaced": raw_png(RNG.integers(0, 256, (29, 31, 4)), 8, 6, interlace=True),
        "L": raw_png(grey, 8, 0),
        "L interlaced": raw_png(grey, 8, 0, interlace=True),
        "LA": raw_png(RNG.integers(0, 256, (19, 17, 2)), 8, 4),
        "P": raw_png(RNG.integers(0, 256, (33, 35, 1)), 8, 3, before_idat=chunk(b"PLTE", palette)),
        "P tRNS": raw_png(RNG.integers(0, 256, (33, 35, 1)), 8, 3,
                          before_idat=chunk(b"PLTE", palette) + chunk(b"tRNS", bytes(range(0, 256, 3)))),
        "P short PLTE": raw_png(RNG.integers(0, 200, (9, 11, 1)), 8, 3, before_idat=chunk(b"PLTE", bytes(range(30)))),
        "L tRNS": raw_png(grey, 8, 0, before_idat=chunk(b"tRNS", b"\x00\x07")),
        "RGB tRNS": raw_png(rgb, 8, 2, before_idat=chunk(b"tRNS", b"\x00\x01\x00\x02\x00\x03")),
        "RGB gAMA sRGB": raw_png(rgb, 8, 2, before_idat=chunk(b"gAMA", struct.pack(">I", 100000))
                                 + chunk(b"sRGB", b"\x00")),
        "RGB iCCP": raw_png(rgb, 8, 2, before_idat=chunk(b"iCCP", b"x\x00\x00" + zlib.compress(b"\x00" * 200))),
        "RGB eXIf rotate": _pil_save(Image.fromarray(rgb.astype(np.uint8)), exif=_exif_rotated()),
        "16-bit L": raw_png(RNG.integers(0, 65536, (13, 15, 1)), 16, 0),
        "16-bit RGB": raw_png(RNG.integers(0, 65536, (13, 15, 3)), 16, 2),
        "16-bit RGBA": raw_png(RNG.integers(0, 65536, (13, 15, 4)), 16, 6),
        "16-bit LA": raw_png(RNG.integers(0, 65536, (13, 15, 2)), 16, 4),
        "16-bit RGB interlaced": raw_png(RNG.integers(0, 65536, (13, 15, 3)), 16, 2, interlace=True),
        "PIL RGB optimized": _pil_save(Image.fromarray(rgb.astype(np.uint8)), optimize=True),
        "PIL P quantized": _pil_save(Image.fromarray(rgb.astype(np.uint8)).quantize(77)),
    }
    for depth in (1, 2, 4):
        values = RNG.integers(0, 2 ** depth, (21, 19, 1))
        c[f"{depth}-bit L"] = raw_png(values, depth, 0)
        c[f"{depth}-bit L interlaced"] = raw_png(values, depth, 0, interlace=True)
        c[f"{depth}-bit P"] = raw_png(values, depth, 3, before_idat=chunk(b"PLTE", palette[:3 * 2 ** depth]))
    return c


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° (PIL's convert ignores it; so must the fast decoder)
    return exif.tobytes()


CORPUS = _corpus()
#: Files the fast decoder must decode itself (the others go to PIL by design).
NOT_FAST = {"LA", "16-bit L", "16-bit RGB", "16-bit RGBA", "16-bit LA", "16-bit RGB interlaced"}


def _transparent(data: bytes) -> bool:
    """Whether a file has a pixel with alpha < 255 (refused by the readers' alpha rule)."""
    with Image.open(io.BytesIO(data)) as im:
        if not has_alpha(im):
            return False
        return bool((np.asarray(im.convert("RGBA").getchannel("A")) < 255).any())


def _pil_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.array(im.convert("RGB"), dtype=np.uint8)


@pytest.fixture
def decoder(monkeypatch, request):
    monkeypatch.setenv(fast_png.DECODER_ENV, request.param)
    return request.param


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / (name.replace(" ", "_") + ".png")
    p.write_bytes(data)
    return p


@pytest.mark.filterwarnings("ignore:Palette images with Transparency")
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_fast_decoder_gives_pils_pixels(tmp_path, monkeypatch, name):
    data = CORPUS[name]
    path = _write(tmp_path, name, data)
    with Image.open(io.BytesIO(data)) as im:
        size, fmt, mode = im.size, im.format, im.mode
    reference = _pil_rgb(data)
    direct = fast_png.decode_png_rgb(data, size)
    if _transparent(data):  # the alpha rule: refused by both decoders, naming the file
        for which in ("auto", "pil"):
            monkeypatch.setenv(fast_png.DECODER_ENV, which)
            with pytest.raises(ImageFileError, match="transparent pixel"):
                read_rgb(path)
        return
    if name in NOT_FAST:
        assert direct is None or not fast_png.fast_png_eligible(fmt, mode, size, len(data))
    else:
        assert fast_png.fast_png_eligible(fmt, mode, size, len(data)), (fmt, mode)
        assert direct is not None, "the fast decoder handed a file it should decode back to PIL"
        assert direct.dtype == np.uint8 and direct.shape == reference.shape
        np.testing.assert_array_equal(direct, reference)
    monkeypatch.setenv(fast_png.DECODER_ENV, "auto")
    fast = read_rgb(path)
    fast_scaled = read_image(path)
    monkeypatch.setenv(fast_png.DECODER_ENV, "pil")
    slow = read_rgb(path)
    slow_scaled = read_image(path)
    np.testing.assert_array_equal(slow, reference)
    for a, b in ((fast, slow), (fast_scaled, slow_scaled)):
        assert a.dtype == b.dtype == np.uint8 and a.shape == b.shape and a.flags.c_contiguous
        np.testing.assert_array_equal(a, b)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_16bit_grey_keeps_the_toolkits_scaling(tmp_path, monkeypatch):
    """16-bit grey is PIL's (the fast decoder hands it back), scaled by 1/257 in read_image."""
    monkeypatch.setenv(fast_png.DECODER_ENV, "auto")
    values = np.array([[0, 257, 65535, 1000]])
    path = _write(tmp_path, "grey16", raw_png(values[..., None], 16, 0))
    np.testing.assert_array_equal(read_image(path)[0, :, 0], [0, 1, 255, 4])


def _with_idat(data: bytes) -> bytes:
    good = CORPUS["RGB"]
    start = good.index(b"IDAT") - 4
    length = struct.unpack(">I", good[start:start + 4])[0]
    return good[:start] + chunk(b"IDAT", data) + good[start + 12 + length:]


def _hostile() -> dict[str, tuple[bytes, bool]]:
    """``{name: (bytes, PIL decodes it)}``: broken files, each decoder must agree with PIL."""
    good = CORPUS["RGB"]
    start = good.index(b"IDAT") - 4
    length = struct.unpack(">I", good[start:start + 4])[0]
    rows = zlib.decompress(good[start + 8:start + 8 + length])
    stream = zlib.compress(rows)
    flipped = bytearray(stream)
    flipped[len(flipped) // 2] ^= 0x55
    bad_crc = bytearray(good)
    bad_crc[start + 8 + length] ^= 0xFF
    bad_filter = bytearray(rows)
    bad_filter[0] = 9
    return {
        "truncated in IDAT": (good[:start + 8 + length // 2], False),
        "truncated after IDAT": (good[:start + 12 + length], True),
        "bad zlib checksum": (_with_idat(stream[:-4] + bytes([stream[-4] ^ 1]) + stream[-3:]), False),
        "corrupt deflate data": (_with_idat(bytes(flipped)), False),
        "rows missing": (_with_idat(zlib.compress(rows[:-60])), False),
        "bad filter type": (_with_idat(zlib.compress(bytes(bad_filter))), False),
        "bad IDAT CRC": (bytes(bad_crc), True),
        "extra rows": (_with_idat(zlib.compress(rows + bytes(500))), True),
        "empty IDAT": (_with_idat(b""), False),
    }


HOSTILE = _hostile()


@pytest.mark.parametrize("decoder", ["auto", "pil"], indirect=True)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_broken_files_as_pil_decides(tmp_path, decoder, name):
    data, pil_decodes = HOSTILE[name]
    path = _write(tmp_path, name, data)
    if pil_decodes:
        np.testing.assert_array_equal(read_rgb(path), _pil_rgb(data))
    else:
        with pytest.raises(DataError, match=str(path)):
            read_rgb(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_fast_decoder_refuses_what_pil_refuses():
    """Directly, without the PIL fallback: a corrupt stream is never turned into pixels."""
    for name, (data, pil_decodes) in HOSTILE.items():
        if not pil_decodes:
            assert fast_png.decode_png_rgb(data, (53, 37)) is None, name


@pytest.fixture
def spy_decoder(monkeypatch):
    """The fast decoder, recording every call."""
    calls: list[int] = []
    real = fast_png._spng_decode()

    def spy(data: bytes) -> np.ndarray:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(fast_png, "_spng_decode", lambda: spy)
    monkeypatch.setenv(fast_png.DECODER_ENV, "auto")
    return calls


def test_size_limits_and_bomb_guard_before_the_fast_decoder(tmp_path, monkeypatch, spy_decoder):
    big = _write(tmp_path, "big", raw_png(RNG.integers(0, 256, (40, 50, 3)), 8, 2))
    with pytest.raises(DataError, match="absurd dimensions"):
        read_rgb(big, max_side=49)
    with pytest.raises(DataError, match="absurd dimensions"):
        read_rgb(big, max_pixels=1999)
    with pytest.raises(DataError, match="not square"):
        decode_image(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # PIL's own guard: a warning above, an error at 2x
    with pytest.raises(DataError, match="decompression-bomb"):
        read_rgb(big)
    assert spy_decoder == []
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert read_rgb(big).shape == (40, 50, 3) and len(spy_decoder) == 1


def test_only_png_reaches_the_fast_decoder(tmp_path, spy_decoder):
    rgb = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for fmt in ("JPEG", "BMP", "TIFF"):
        p = tmp_path / f"x.{fmt.lower()}"
        Image.fromarray(rgb).save(p, fmt)
        with Image.open(p) as im:
            expected = np.array(im.convert("RGB"))
        np.testing.assert_array_equal(read_rgb(p), expected)
    assert spy_decoder == []
    # an animated PNG: PIL (frame 0), not the fast decoder
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    p = tmp_path / "anim.png"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    np.testing.assert_array_equal(read_rgb(p), rgb)
    assert spy_decoder == []


def test_oversized_file_streams_through_pil(tmp_path, spy_decoder):
    """A PNG far larger than its pixels (1.5 MB of text chunk) is not read whole for libspng."""
    rgb = RNG.integers(0, 256, (8, 8, 3))
    path = _write(tmp_path, "padded", raw_png(rgb, 8, 2, before_idat=chunk(b"tEXt", b"k\x00" + b"v" * (3 << 19))))
    np.testing.assert_array_equal(read_rgb(path), rgb.astype(np.uint8))
    assert spy_decoder == []


def test_decoder_choice(monkeypatch):
    monkeypatch.setenv(fast_png.DECODER_ENV, "pil")
    assert fast_png.png_decoder() == "pil"
    assert fast_png.decode_png_rgb(CORPUS["RGB"], (53, 37)) is None
    monkeypatch.setenv(fast_png.DECODER_ENV, "auto")
    assert fast_png.png_decoder() == "imagecodecs"
    monkeypatch.setenv(fast_png.DECODER_ENV, "libpng")
    with pytest.raises(ValueError, match="BAPPS_PNG_DECODER"):
        read_rgb("never-opened.png")
    monkeypatch.setenv(fast_png.DECODER_ENV, "auto")
    monkeypatch.setattr(fast_png, "_spng_decode", lambda: None)  # the extra not installed
    assert fast_png.png_decoder() == "pil"
    assert fast_png.decode_png_rgb(CORPUS["RGB"], (53, 37)) is None
