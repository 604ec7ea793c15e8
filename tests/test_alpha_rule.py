"""The alpha rule of :mod:`bapps_toolkit.data.images`: an image with transparency is decoded
only when every pixel is opaque (then its alpha is dropped, changing nothing); any transparent
pixel is refused with an error naming the file, in every reader path (decode and pack)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bapps_toolkit.data import pack
from bapps_toolkit.data.images import ImageFileError, decode_image, read_rgb
from bapps_toolkit.errors import DataError


def _rgb(seed: int = 0, side: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def test_opaque_rgba_decodes_to_its_rgb(tmp_path):
    rgb = _rgb()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(read_rgb(tmp_path / "a.png"), rgb)
    assert np.array_equal(decode_image(tmp_path / "a.png"), rgb)


def test_opaque_grey_alpha_decodes(tmp_path):
    g = _rgb()[..., 0]
    Image.fromarray(np.dstack([g, np.full_like(g, 255)]), "LA").save(tmp_path / "g.png")
    assert np.array_equal(read_rgb(tmp_path / "g.png"), np.repeat(g[..., None], 3, 2))


@pytest.mark.parametrize("alpha_value,count", [(254, 1), (0, 1), (128, 4096)])
def test_transparent_rgba_is_refused_naming_the_file(tmp_path, alpha_value, count):
    rgb = _rgb()
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    if count == 1:
        alpha[3, 5] = alpha_value
    else:
        alpha[:] = alpha_value
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "t.png")
    with pytest.raises(ImageFileError, match=rf"t.png has {count} transparent pixel\(s\).*composite"):
        read_rgb(tmp_path / "t.png")


def test_transparent_palette_entry_is_refused(tmp_path):
    im = Image.fromarray(_rgb()[..., 0] // 64, "L").convert("P")
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    with pytest.raises(ImageFileError, match="p.png has .* transparent pixel"):
        read_rgb(tmp_path / "p.png")


def test_pack_refuses_a_transparent_image_naming_it(tiny_tree, tmp_path):
    root = tiny_tree(("2afc/val/cnn",), n=2)
    f = root / "2afc" / "val" / "cnn" / "p0" / "000001.png"
    rgb = np.asarray(Image.open(f).convert("RGB"))
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 100, np.uint8)]), "RGBA").save(f)
    with pytest.raises(DataError, match=r"000001.png has 4096 transparent pixel"):
        pack(root, tmp_path / "o.h5", workers=1, progress=False)
    assert not (tmp_path / "o.h5").exists()
