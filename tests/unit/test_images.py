import numpy as np
import pytest
from PIL import Image

from clearset.data.images import array_to_rgb, decode, pixel_sha256, resize_center
from clearset.errors import ImageError
from conftest import encoded, rgb, write_image


def test_png_roundtrip_equals_array_hash(tmp_path):
    a = rgb(0)
    path = write_image(tmp_path / "a.png", a)
    out = decode(path)
    assert out.dtype == np.uint8 and out.shape == (12, 10, 3)
    assert np.array_equal(out, a)
    assert pixel_sha256(out) == pixel_sha256(decode(encoded(a, "BMP")))


def test_hash_depends_on_shape():
    flat = np.zeros((4, 6, 3), np.uint8)
    assert pixel_sha256(flat) != pixel_sha256(flat.reshape(6, 4, 3))


@pytest.mark.parametrize("mode", ["L", "P", "1", "CMYK"])
def test_modes_become_rgb(tmp_path, mode):
    path = write_image(tmp_path / f"x.{'jpg' if mode == 'CMYK' else 'png'}", rgb(1), mode=mode)
    out = decode(path)
    assert out.shape == (12, 10, 3) and out.dtype == np.uint8


def test_grayscale_repeats_channels(tmp_path):
    g = np.arange(120, dtype=np.uint8).reshape(12, 10)
    out = decode(write_image(tmp_path / "g.png", g))
    assert np.array_equal(out[:, :, 0], g) and np.array_equal(out[:, :, 2], g)


def test_rgba_is_composited_on_white(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)
    a[..., 0] = 255  # red
    a[:2, :, 3] = 255  # top opaque, bottom transparent
    out = decode(write_image(tmp_path / "t.png", a))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[3, 0].tolist() == [255, 255, 255]


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    assert decode(tmp_path / "p.png")[0, 0].tolist() == [255, 255, 255]


def test_16_bit_png_scaled_by_bit_depth(tmp_path):
    a = np.full((3, 3), 65535, np.uint16)
    a[0, 0] = 0
    a[1, 1] = 32896  # 128 * 257
    Image.fromarray(a).save(tmp_path / "d.png")
    out = decode(tmp_path / "d.png")
    assert out[0, 0, 0] == 0 and out[2, 2, 0] == 255 and out[1, 1, 0] == 128


def test_truncated_file_is_an_error(tmp_path):
    data = encoded(rgb(2, 64, 64), "JPEG")
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated|damaged"):
        decode(tmp_path / "t.jpg")


def test_corrupt_bytes_are_an_error(tmp_path):
    (tmp_path / "c.png").write_bytes(b"definitely not an image")
    with pytest.raises(ImageError, match="c.png: not a readable image"):
        decode(tmp_path / "c.png", what=str(tmp_path / "c.png"))


@pytest.mark.parametrize("arr,expected", [
    (np.ones((2, 2), bool), 255),
    (np.full((2, 2), 257 * 10, np.uint16), 10),
    (np.full((2, 2, 1), 0.5, np.float32), 128),
    (np.full((2, 2, 3), 7, np.int64), 7),
])
def test_array_dtypes(arr, expected):
    out = array_to_rgb(arr)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8 and int(out[0, 0, 0]) == expected


@pytest.mark.parametrize("arr", [np.zeros((2, 2, 5), np.uint8), np.full((2, 2), np.nan), np.full((2, 2), 300)])
def test_bad_arrays(arr):
    with pytest.raises(ImageError):
        array_to_rgb(arr)


def test_resize_center_keeps_square_content_and_crops_long_side():
    a = rgb(3, 32, 32)
    assert resize_center(a, 32) is a
    assert resize_center(a, 64).shape == (64, 64, 3)
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 10:20] = 255  # the centre third is white
    out = resize_center(wide, 20)
    assert out.shape == (20, 20, 3) and out[10, 10, 0] == 255
