"""Small PNG (and other still image) read/write helpers built on PyAV.

No Pillow or OpenCV: PyAV (FFmpeg) decodes the file and encodes PNG.

* :func:`read_image` returns an ``H x W x 3`` ``uint8`` array. Grayscale files
  (``gray``, ``ya8``, ...) are expanded to three equal channels without going
  through swscale, so the grey values are kept exactly. Use
  :func:`read_image_info` (or ``return_gray=True``) to learn whether the file
  was grayscale.
* :func:`write_png` writes an ``H x W`` / ``H x W x 1`` (grayscale) or
  ``H x W x 3`` (RGB) ``uint8`` array. The file is first written under a
  temporary name in the destination folder and renamed onto the final name
  only once it is complete, so a crash never leaves a truncated PNG behind.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import av
import numpy as np

__all__ = ["read_image", "read_image_info", "is_gray", "write_png", "encode_png"]

# FFmpeg pixel formats that carry one luma/grey channel (optionally with alpha).
_GRAY_FORMATS = {"gray", "ya8"}
_GRAY16_FORMATS = {"gray16be", "gray16le", "ya16be", "ya16le"}


def _decode_first_frame(path: str | os.PathLike) -> av.VideoFrame:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame
    raise ValueError(f"{path}: no image found")


def read_image_info(path: str | os.PathLike) -> tuple[np.ndarray, bool]:
    """Read an image as ``(rgb_uint8_HxWx3, was_gray)``."""
    frame = _decode_first_frame(path)
    fmt = frame.format.name
    if fmt in _GRAY_FORMATS:
        g = frame.to_ndarray()
        if g.ndim == 3:  # ya8: grey + alpha -> keep grey, drop alpha
            g = g[..., 0]
        rgb = np.repeat(g[:, :, None], 3, axis=2)
        return np.ascontiguousarray(rgb, dtype=np.uint8), True
    if fmt in _GRAY16_FORMATS:
        g = frame.reformat(format="gray").to_ndarray()
        return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2)), True
    rgb = frame.to_ndarray(format="rgb24")
    return np.ascontiguousarray(rgb, dtype=np.uint8), False


def read_image(path: str | os.PathLike, return_gray: bool = False):
    """Read an image file as an ``H x W x 3`` ``uint8`` RGB array.

    Grayscale files are expanded to three identical channels. With
    ``return_gray=True`` the result is ``(array, was_gray)``.
    """
    rgb, gray = read_image_info(path)
    return (rgb, gray) if return_gray else rgb


def is_gray(path: str | os.PathLike) -> bool:
    """Whether the image file is stored as grayscale."""
    return read_image_info(path)[1]


def encode_png(array: np.ndarray) -> bytes:
    """Encode a ``uint8`` ``H x W`` (grey) or ``H x W x 3`` (RGB) array as PNG bytes."""
    a = np.asarray(array)
    if a.dtype != np.uint8:
        raise TypeError(f"write_png expects uint8, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        pix_fmt = "gray"
    elif a.ndim == 3 and a.shape[2] == 3:
        pix_fmt = "rgb24"
    else:
        raise ValueError(f"write_png expects HxW or HxWx3, got shape {a.shape}")
    a = np.ascontiguousarray(a)
    ctx = av.CodecContext.create("png", "w")
    ctx.width, ctx.height = a.shape[1], a.shape[0]
    ctx.pix_fmt = pix_fmt
    frame = av.VideoFrame.from_ndarray(a, format=pix_fmt)
    packets = list(ctx.encode(frame)) + list(ctx.encode(None))
    data = b"".join(bytes(p) for p in packets)
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise RuntimeError("PNG encoder returned no PNG data")
    return data


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a ``uint8`` array to ``path`` as PNG, atomically (temp file + rename)."""
    path = Path(path)
    data = encode_png(array)
    folder = path.parent if str(path.parent) else Path(".")
    # O_EXCL + mode 0o666 (minus umask): same permissions a plain open() would give,
    # unlike tempfile.mkstemp, which creates 0600 files.
    while True:
        tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
