"""Image files: every image decoded faithfully to 8-bit RGB, a decompression bomb refused in
one line, a folder walked once whatever its links, a tree without classes named."""

import os

import numpy as np
import pytest
from PIL import Image

from backfill_lib.data.images import (
    MAX_IMAGE_PIXELS,
    DatasetNotFoundError,
    class_folders,
    inside,
    list_images,
    open_rgb,
)


def test_a_16_bit_image_keeps_its_gradient(tmp_path):
    """A 16-bit greyscale PNG from 0 to 65535 becomes 0..255 in steps, not only {0, 255}."""
    gradient = np.linspace(0, 65535, 64 * 4).astype(np.uint16).reshape(4, 64)
    Image.fromarray(gradient).save(tmp_path / "deep.png")
    pixels = np.asarray(open_rgb(tmp_path / "deep.png"))
    assert pixels.shape == (4, 64, 3) and pixels.dtype == np.uint8
    assert pixels.min() == 0 and pixels.max() == 255 and len(np.unique(pixels)) > 200
    np.testing.assert_allclose(pixels[..., 0], gradient / 257, atol=0.5)


def test_float_and_wide_images_are_scaled_not_clipped(tmp_path):
    unit = np.linspace(0, 1, 32, dtype=np.float32).reshape(4, 8)
    Image.fromarray(unit, mode="F").save(tmp_path / "unit.tiff")
    assert (
        np.asarray(open_rgb(tmp_path / "unit.tiff"))[..., 0].tolist()
        == np.rint(unit * 255).astype(np.uint8).tolist()
    )
    wide = np.linspace(-1000, 3000, 32, dtype=np.float32).reshape(4, 8)
    Image.fromarray(wide, mode="F").save(tmp_path / "wide.tiff")
    values = np.asarray(open_rgb(tmp_path / "wide.tiff"))[..., 0]
    assert values.min() == 0 and values.max() == 255 and len(np.unique(values)) == 32


def test_an_image_past_the_pixel_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    Image.new("L", (300, 300)).save(tmp_path / "big.png")  # 90,000 pixels: few bytes
    monkeypatch.setattr("backfill_lib.data.images.MAX_IMAGE_PIXELS", 200 * 200)
    with pytest.raises(ValueError, match=r"big.png: more than 40,000 pixels .* shrink or delete"):
        open_rgb(tmp_path / "big.png")
    assert MAX_IMAGE_PIXELS == 8192 * 8192


def test_a_decompression_bomb_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """Past Pillow's own limit (it raises before reading a pixel): the same one line."""
    Image.new("L", (300, 300)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses over 2x this
    with pytest.raises(ValueError, match="bomb.png: more than .* pixels"):
        open_rgb(tmp_path / "bomb.png")


def test_links_are_followed_and_a_loop_is_walked_once(tmp_path):
    """c0/sub/loop points back at c0 and c0/sub/up at train/ (loops: c0's images once, not
    forever, and not c1's through train/); c1/again points at c0/sub (a link to elsewhere:
    followed, its images counted in c1)."""
    for name in ("c0", "c1"):
        (tmp_path / "train" / name / "sub").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (4, 4)).save(tmp_path / "train" / name / "sub" / f"{i}.png")
    os.symlink("..", tmp_path / "train" / "c0" / "sub" / "loop")  # c0/sub/loop -> c0
    os.symlink("../..", tmp_path / "train" / "c0" / "sub" / "up")  # -> train/, c1 too
    os.symlink(tmp_path / "train" / "c0" / "sub", tmp_path / "train" / "c1" / "again")
    items = list_images(tmp_path / "train", ["c0", "c1"])
    assert [label for _, label in items] == [0] * 3 + [1] * 3 + [1] * 3
    names = [str(path.relative_to(tmp_path / "train")) for path, _ in items]
    assert names[:3] == ["c0/sub/0.png", "c0/sub/1.png", "c0/sub/2.png"]
    assert names[3:6] == ["c1/again/0.png", "c1/again/1.png", "c1/again/2.png"]


def test_a_tree_without_classes_or_a_class_without_images_is_named(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetNotFoundError, match="holds no class folders"):
        class_folders(tmp_path / "train")
    (tmp_path / "train" / "c0").mkdir()
    (tmp_path / "train" / "c0" / "notes.txt").write_text("no image")
    with pytest.raises(DatasetNotFoundError, match="c0 holds no image"):
        list_images(tmp_path / "train", ["c0"])


def test_a_named_file_must_stay_inside_the_dataset(tmp_path):
    root = tmp_path / "data"
    (root / "val").mkdir(parents=True)
    assert inside(root, root / "val" / "x.png") == (root / "val" / "x.png").resolve()
    with pytest.raises(ValueError, match="points outside the dataset folder"):
        inside(root, root / "val" / ".." / ".." / "secret.png")
