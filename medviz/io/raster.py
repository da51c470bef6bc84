"""PNG / JPEG images (photos, exported X-rays, fundus, slices) via Pillow.

Only the PNG and JPEG decoders are allowed (``Image.open(..., formats=["PNG", "JPEG"])``), and
``Image.MAX_IMAGE_PIXELS`` is set from :class:`~medviz.config.Limits` (never None) with the
decompression-bomb warning raised as an error, so an oversized image is refused before decoding.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from medviz.io import limits as _lim
from medviz.types import Volume, affine_from_spacing

_GRAY_MODES = {"1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


def read_raster(data: bytes, source: str) -> Volume:
    """Read a PNG or JPEG image into a one-slice Volume.

    Args:
        data: the file bytes (format sniffed from content by Pillow, not from the name).
        source: the file name as given (display name and messages).

    Returns:
        A :class:`~medviz.types.Volume` with ``Z == 1``: grayscale (8- or 16-bit) as
        ``(1, H, W)`` float32 with the stored values; colour (RGB, RGBA, palette, CMYK) as
        ``(1, H, W, 3)`` uint8, alpha dropped. Rows/columns keep the file order (EXIF rotation
        applied for JPEG), ``spacing_known`` is False (1 mm assumed), orientation ``"unknown"``.

    Raises:
        ValueError: not PNG/JPEG, truncated or corrupt.
        medviz.io.limits.InputTooLarge: more pixels than ``Limits.max_image_pixels``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    lim = _lim.limits()
    Image.MAX_IMAGE_PIXELS = int(lim.max_image_pixels)
    warn: list[str] = []
    fmt = "image"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])
            w, h = im.size
            if w * h > lim.max_image_pixels:
                raise _lim.InputTooLarge(
                    f"image of {w}×{h} = {w * h:,} pixels is over the limit of {lim.max_image_pixels:,}"
                )
            _lim.check_voxels((1, h, w), "image")
            fmt = im.format or fmt
            im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _lim.InputTooLarge(
            f"image is too large (decompression-bomb guard, limit {lim.max_image_pixels:,} pixels): {e}"
        ) from e
    except UnidentifiedImageError as e:
        raise ValueError("not a PNG or JPEG image (other formats such as TIFF, GIF or BMP are not accepted)") from e
    except (OSError, SyntaxError) as e:
        raise ValueError(f"truncated or corrupt {fmt}: {e}") from e
    if _exif_orientation(im) not in (None, 1):
        im = ImageOps.exif_transpose(im)
        warn.append("EXIF orientation applied (the image was rotated/flipped as a photo viewer would)")
    mode = im.mode
    if mode in _GRAY_MODES:
        array = np.asarray(im).astype(np.float32)[np.newaxis]
        units = "a.u."
    elif mode in ("LA", "La"):
        array = np.asarray(im.getchannel(0)).astype(np.float32)[np.newaxis]
        units = "a.u."
        warn.append("alpha channel dropped")
    else:
        if "A" in mode or "transparency" in im.info:
            warn.append("alpha channel dropped")
        array = np.asarray(im.convert("RGB"), dtype=np.uint8)[np.newaxis]
        units = "RGB"
    return planar_volume(
        np.ascontiguousarray(array),
        name=source.replace("\\", "/").rsplit("/", 1)[-1],
        units=units,
        meta={"Format": fmt, "Mode": mode, "Rows": int(array.shape[1]), "Columns": int(array.shape[2])},
        warnings=tuple(warn),
    )


def planar_volume(array: np.ndarray, name: str, units: str, meta: dict, warnings: tuple[str, ...] = ()) -> Volume:
    """A photo-like image with no patient geometry: 1 mm assumed, ``spacing_known=False``.

    Args:
        array: ``(1, Y, X)`` float32 or ``(1, Y, X, 3)`` uint8.
        name: display name (no patient identifier).
        units: ``"a.u."`` or ``"RGB"``.
    """
    return Volume(
        array=array,
        spacing=(1.0, 1.0, 1.0),
        affine=affine_from_spacing((1.0, 1.0, 1.0)),
        modality="OT",
        units=units,
        orientation="unknown",
        spacing_known=False,
        name=name,
        meta=meta,
        warnings=warnings,
    )


def _exif_orientation(im) -> int | None:
    try:
        return im.getexif().get(0x0112)
    except (AttributeError, OSError, ValueError):
        return None
