"""Decoding any image into RGB uint8 HWC, hashing decoded pixels, and resizing for models."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ..errors import ImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")
# Never silently accept a truncated file: PIL would pad it with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Images above this many pixels are refused as likely decompression bombs (PIL's own default, 89.5 MP);
# CLEARSET_MAX_IMAGE_PIXELS raises it for data known to hold huge images.
MAX_IMAGE_PIXELS = int(os.environ.get("CLEARSET_MAX_IMAGE_PIXELS") or Image.MAX_IMAGE_PIXELS or 89_478_485)
if os.environ.get("CLEARSET_MAX_IMAGE_PIXELS"):
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, MAX_IMAGE_PIXELS)  # PIL's own check, kept above ours


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def decode(payload: bytes | str | os.PathLike | np.ndarray, *, what: str = "image") -> np.ndarray:
    """Return the image as a C-contiguous RGB uint8 array of shape (H, W, 3).

    ``payload`` is encoded bytes, a path, or an array (HW or HWC, uint8/uint16/bool/float in [0, 1]).
    Grayscale, palette, RGBA (composited on white), CMYK and 16-bit images are normalised to RGB uint8.
    Raises ImageError naming ``what`` when the image is corrupt, truncated or empty.
    """
    if isinstance(payload, np.ndarray):
        return array_to_rgb(payload, what=what)
    try:
        src = io.BytesIO(payload) if isinstance(payload, (bytes, bytearray, memoryview)) else Path(payload)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # ours below says it in one line
            im = Image.open(src)
        with im:
            if im.width * im.height > MAX_IMAGE_PIXELS:  # checked before decoding: a bomb costs nothing
                raise ImageError(f"{what}: {im.width}x{im.height} pixels ({im.width * im.height / 1e6:.0f} MP), above "
                                 f"the {MAX_IMAGE_PIXELS / 1e6:.0f} MP limit for untrusted images (set "
                                 f"CLEARSET_MAX_IMAGE_PIXELS to allow larger)")
            im.load()
            return pil_to_rgb(im)
    except FileNotFoundError:
        raise ImageError(f"{what}: file not found") from None
    except UnidentifiedImageError:
        raise ImageError(f"{what}: not a readable image (corrupt, or an unsupported format)") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{what}: far above the {MAX_IMAGE_PIXELS / 1e6:.0f} MP limit for untrusted images (a "
                         f"decompression bomb?; set CLEARSET_MAX_IMAGE_PIXELS to allow larger)") from None
    except (OSError, SyntaxError, ValueError) as e:
        msg = str(e)
        if "truncated" in msg.lower() or isinstance(e, (SyntaxError, ValueError)):
            raise ImageError(f"{what}: truncated or damaged image data ({msg})") from None
        raise ImageError(f"{what}: cannot decode ({msg})") from None


def pil_to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit/32-bit grayscale: scale by the bit depth, not by the image's own range.
        arr = np.asarray(im)
        full = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if im.mode == "F":
            full = 1.0 if float(arr.max(initial=0)) <= 1.0 else 255.0
        arr = np.clip(np.rint(arr.astype(np.float64) * (255.0 / full)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    arr = np.asarray(im.convert("RGB"))
    if arr.size == 0:
        raise ValueError("image has no pixels")
    return np.ascontiguousarray(arr)


def array_to_rgb(arr: np.ndarray, *, what: str = "array") -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or arr.size == 0:
        raise ImageError(f"{what}: expected an HW or HWC (C=1,3,4) image array, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = np.rint(arr / 257.0).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError(f"{what}: image array holds NaN or inf")
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
        arr = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
            raise ImageError(f"{what}: integer pixels outside 0..255 (dtype {arr.dtype})")
        arr = arr.astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 4:
        return pil_to_rgb(Image.fromarray(np.ascontiguousarray(arr), "RGBA"))
    return np.ascontiguousarray(arr)


def pixel_sha256(rgb: np.ndarray) -> str:
    """sha256 of the decoded pixels and their shape: equal images hash equal whatever their file format."""
    h = hashlib.sha256(f"{rgb.shape[0]}x{rgb.shape[1]}x{rgb.shape[2]}:".encode())
    h.update(np.ascontiguousarray(rgb).data.cast("B"))
    return h.hexdigest()


def resize_center(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize so the shorter side is ``size`` (bilinear, antialiased), then centre-crop to size x size.

    Square images keep all their content; this is the resize policy of ``clearset embed``.
    """
    h, w = rgb.shape[:2]
    if h == size and w == size:
        return rgb
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    im = Image.fromarray(rgb).resize((nw, nh), Image.Resampling.BILINEAR)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.asarray(im)[top : top + size, left : left + size]
