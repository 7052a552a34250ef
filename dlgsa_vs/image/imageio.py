"""Small PNG (and other still image) read/write helpers built on PyAV.

No Pillow or OpenCV: PyAV (FFmpeg) decodes the file and encodes PNG.

* :func:`read_image` returns an ``H x W x 3`` ``uint8`` array. Grayscale files
  (``gray``, ``ya8``, ...) are expanded to three equal channels without going
  through swscale, so the grey values are kept exactly. Use
  :func:`read_image_info` (or ``return_gray=True``) to learn whether the file
  was grayscale.
* :func:`read_picture` returns the whole :class:`Picture`: the RGB array, the
  alpha channel (None when the file has none, or it is fully opaque) and whether
  the file was grey, for writers that keep them.
* :func:`write_png` writes an ``H x W`` / ``H x W x 1`` (grayscale) or
  ``H x W x 3`` (RGB) ``uint8`` array; :func:`write_image` writes the format
  the file name's extension names (``IMAGE_FORMATS``), with an alpha channel
  where the format holds one. The file is first written under a temporary name
  in the destination folder and renamed onto the final name only once it is
  complete, so a crash never leaves a truncated file behind.

A file FFmpeg cannot decode raises :class:`ImageError`, one line naming the file.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

__all__ = ["read_image", "read_image_info", "read_picture", "Picture", "ImageError", "is_gray", "write_png",
           "encode_png", "write_image", "encode_image", "resize_alpha", "IMAGE_FORMATS", "ALPHA_EXTENSIONS"]

# FFmpeg pixel formats that carry one luma/grey channel (optionally with alpha).
_GRAY_FORMATS = {"gray", "ya8"}
_GRAY16_FORMATS = {"gray16be", "gray16le", "ya16be", "ya16le"}


# What write_image writes for each extension: the FFmpeg encoder.
IMAGE_FORMATS = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg", ".webp": "libwebp", ".bmp": "bmp",
                 ".tif": "tiff", ".tiff": "tiff"}
ALPHA_EXTENSIONS = (".png", ".webp", ".tif", ".tiff")
"""The extensions whose files write_image gives an alpha channel (JPEG has none; BMP's is not
read by most programs)."""


class ImageError(ValueError):
    """A file that is not an image FFmpeg decodes, or a format that cannot be written: one line."""


def _decode_first_frame(path: str | os.PathLike) -> av.VideoFrame:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ImageError(f"{path}: not an image (FFmpeg finds no picture in it)")
            for frame in container.decode(video=0):
                return frame
    except av.error.FFmpegError as exc:
        reason = (exc.strerror or type(exc).__name__).rstrip(".").lower()
        raise ImageError(f"{path}: not an image FFmpeg can decode ({reason})") from None
    raise ImageError(f"{path}: not an image (FFmpeg decodes no picture from it)")


@dataclass
class Picture:
    """A decoded image: ``rgb`` (H x W x 3 uint8; grey files as three equal channels), ``alpha``
    (H x W uint8, or None: no alpha channel, or a fully opaque one) and whether it was grey."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    gray: bool


def read_picture(path: str | os.PathLike) -> Picture:
    """Read an image file with its alpha channel (see :class:`Picture`)."""
    frame = _decode_first_frame(path)
    fmt = frame.format
    has_alpha = fmt.has_palette or any(c.is_alpha for c in fmt.components)
    if not has_alpha:
        rgb, gray = _rgb_of(frame)
        return Picture(rgb, None, gray)
    if fmt.name in ("ya8", "ya16be", "ya16le"):
        ya = _ya8_pixels(frame if fmt.name == "ya8" else frame.reformat(format="ya8"))
        rgb, alpha, gray = np.repeat(ya[:, :, :1], 3, axis=2), ya[:, :, 1], True
    else:
        rgba = frame.to_ndarray(format="rgba")
        rgb, alpha = rgba[:, :, :3], rgba[:, :, 3]
        # a palette of greys is a grey picture (what BMP and GIF writers make of one)
        gray = fmt.has_palette and bool((rgb[:, :, :1] == rgb).all())
    if bool((alpha == 255).all()):
        alpha = None
    return Picture(np.ascontiguousarray(rgb, dtype=np.uint8), None if alpha is None else np.ascontiguousarray(alpha),
                   gray)


def _rgb_of(frame: av.VideoFrame) -> tuple[np.ndarray, bool]:
    fmt = frame.format.name
    if fmt in _GRAY_FORMATS:
        g = _ya8_pixels(frame)[..., 0] if fmt == "ya8" else frame.to_ndarray()  # ya8: drop the alpha
        rgb = np.repeat(g[:, :, None], 3, axis=2)
        return np.ascontiguousarray(rgb, dtype=np.uint8), True
    if fmt in _GRAY16_FORMATS:
        g = frame.reformat(format="gray").to_ndarray()
        return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2)), True
    rgb = frame.to_ndarray(format="rgb24")
    return np.ascontiguousarray(rgb, dtype=np.uint8), False


def read_image_info(path: str | os.PathLike) -> tuple[np.ndarray, bool]:
    """Read an image as ``(rgb_uint8_HxWx3, was_gray)`` (an alpha channel is dropped)."""
    return _rgb_of(_decode_first_frame(path))


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


def resize_alpha(alpha: np.ndarray, width: int, height: int) -> np.ndarray:
    """An H x W uint8 alpha channel resized to ``width`` x ``height`` (bicubic, FFmpeg's swscale)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(alpha), format="gray")
    return frame.reformat(width=width, height=height, interpolation="BICUBIC").to_ndarray()


def _encode_one(codec: str, frame: av.VideoFrame, options: dict | None = None) -> bytes:
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = frame.width, frame.height, frame.format.name
    if codec == "mjpeg":
        ctx.qmin = ctx.qmax = 2  # as ffmpeg -q:v 2: a fixed, fine quantiser (the default is a 200 kb/s rate)
    if options:
        ctx.options = options
    return b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])


def _ya8_pixels(frame: av.VideoFrame) -> np.ndarray:
    """A ya8 (grey + alpha) frame's H x W x 2 pixels (PyAV's to_ndarray does not take ya8)."""
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(frame.height, plane.line_size)
    return rows[:, :2 * frame.width].reshape(frame.height, frame.width, 2).copy()


def _frame_of(pixels: np.ndarray, fmt: str) -> av.VideoFrame:
    """A frame of ``pixels``: PyAV's from_ndarray, or for grey + alpha (which it does not take) a
    copy into the frame's plane row by row (the plane's rows may be padded)."""
    if fmt != "ya8":
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format=fmt)
    h, w = pixels.shape[:2]
    frame = av.VideoFrame(w, h, fmt)
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(h, plane.line_size)
    rows[:, :2 * w] = pixels.reshape(h, 2 * w)
    return frame


def encode_image(extension: str, array: np.ndarray, alpha: np.ndarray | None = None) -> bytes:
    """A ``uint8`` ``H x W`` (grey) or ``H x W x 3`` (RGB) array, with an optional ``H x W``
    alpha channel, encoded as the format ``extension`` names (``IMAGE_FORMATS``): PNG and TIFF
    lossless, JPEG at -q:v 2, WebP lossy at quality 90. Grey stays grey where the format has a
    grey form (PNG, TIFF, BMP; JPEG and WebP store it as colour without chroma).
    Raises ImageError for an unknown extension, or alpha for a format without it."""
    ext = extension.lower()
    if ext not in IMAGE_FORMATS:
        raise ImageError(f"cannot write {extension or 'a file without an extension'}: use "
                         f"{', '.join(IMAGE_FORMATS)}")
    if alpha is not None and ext not in ALPHA_EXTENSIONS:
        raise ImageError(f"{ext} files have no alpha channel: use {', '.join(ALPHA_EXTENSIONS)} to keep it")
    a = np.asarray(array)
    if a.dtype != np.uint8 or (alpha is not None and np.asarray(alpha).dtype != np.uint8):
        raise TypeError(f"encode_image expects uint8, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or a.ndim == 3 and a.shape[2] == 3):
        raise ValueError(f"encode_image expects HxW or HxWx3, got shape {a.shape}")
    if alpha is not None and np.shape(alpha) != a.shape[:2]:
        raise ValueError(f"the alpha channel is {np.shape(alpha)}, the picture {a.shape[:2]}")
    codec = IMAGE_FORMATS[ext]
    gray = a.ndim == 2
    if codec in ("png", "tiff", "bmp"):
        if alpha is None:
            fmt, pixels = ("gray", a) if gray else ("rgb24", a)
        else:
            fmt, pixels = ("ya8", np.stack([a, alpha], axis=2)) if gray else ("rgba", np.dstack([a, alpha]))
        if codec == "bmp" and fmt == "rgb24":
            fmt, pixels = "bgr24", pixels[:, :, ::-1]
        return _encode_one(codec, _frame_of(pixels, fmt))
    rgb = np.repeat(a[:, :, None], 3, axis=2) if gray else a
    if codec == "libwebp":  # libwebp converts BGRA itself (and stores no alpha plane when opaque)
        a8 = np.full(rgb.shape[:2], 255, np.uint8) if alpha is None else alpha
        bgra = np.ascontiguousarray(np.dstack([rgb[:, :, ::-1], a8]))
        return _encode_one(codec, av.VideoFrame.from_ndarray(bgra, format="bgra"), {"quality": "90"})
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuvj444p")
    return _encode_one(codec, frame)


def write_image(path: str | os.PathLike, array: np.ndarray, alpha: np.ndarray | None = None) -> Path:
    """Write ``array`` (and ``alpha``) as the format ``path``'s extension names, atomically
    (temp file + rename). See :func:`encode_image`."""
    path = Path(path)
    return _write_atomic(path, encode_image(path.suffix, array, alpha))


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a ``uint8`` array to ``path`` as PNG, atomically (temp file + rename)."""
    return _write_atomic(Path(path), encode_png(array))


def _write_atomic(path: Path, data: bytes) -> Path:
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
