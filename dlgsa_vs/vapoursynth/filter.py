"""The VapourSynth filter: ``dlgsa_vs.upscale(clip, ...)``, also reached as ``core.dlgsa.Upscale``.

Graph::

    clip -> to RGBS (per-frame colour, colour.py) -> network (one ModifyFrame node per frame,
         made by FrameEval) -> back to the clip's format -> CopyFrameProps(clip)

With the network on a CUDA GPU, integer YUV and GRAY clips skip zimg: each frame's sample
planes go to the GPU as integers, are converted there (``device_stage``, video.colour_torch:
the video front end's formulas, linear chroma resampling), upscaled, converted back and
downloaded as integers: 1.5-2 bytes per pixel each way instead of 12 bytes of RGBS.

Threads. VapourSynth runs each filter node's Python callback one at a time, so a single
``ModifyFrame`` node would serialize the model. A ``FrameEval`` that makes a fresh
``ModifyFrame`` node per frame (as vs-realesrgan does) lets VapourSynth's worker threads run
frames concurrently. What happens next depends on the device:

* CPU: one forward pass at a time per process (a lock), and PyTorch's intra-op threads use all
  cores. Running one pass per VapourSynth thread instead would multiply threads
  (VS threads x torch threads) and oversubscribe the cores; one torch thread per concurrent
  pass measured the same within noise on our 2-core machine (docs/vapoursynth.md, "Threads"),
  and the lock keeps one set of activations in memory and torch's global thread count alone.
  The other worker threads keep decoding, converting colours and writing frames meanwhile.
* CUDA: ``num_streams`` CUDA streams, each carrying one frame (or batch) at a time: that many
  forward passes are in flight and the copies of one overlap the kernels of another.

``batch > 1`` runs ``batch`` consecutive frames in one forward pass: the clip is split into
``batch`` interleaved clips, each group is computed once (whichever output frame asks first)
and its frames handed to the other members of the group.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import weakref
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np
import torch
import vapoursynth as vs

from ..backends import Backend, StreamRunner, create_backend_upscaler, select_backend
from ..packaged import VIDEO_DEFAULT_MODEL, default_for
from ..settings import Names, RunSettings, SettingsError, check_at_least
from ..weights import WeightsError
from . import colour
from .colour import PREFIX


def log(message: str) -> None:
    """Everything the filter says goes to stderr: vspipe writes the video to stdout."""
    print(f"{PREFIX}{message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# argument checking


def _text(name: str, value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return os.fsdecode(value)
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise vs.Error(f"{PREFIX}{name} must be a string, got {type(value).__name__}")


def _int(name: str, value, minimum: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise vs.Error(f"{PREFIX}{name} must be an integer, got {value!r}")
    if minimum is not None:
        try:
            check_at_least(name, int(value), minimum)  # the settings' rule, for the colour codes too
        except SettingsError as exc:
            raise _settings_error(exc) from None
    return int(value)


def _flag(name: str, value) -> bool | None:
    if value is None:
        return None
    if isinstance(value, (bool, int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    raise vs.Error(f"{PREFIX}{name} must be 0/1 (False/True), got {value!r}")


def _check_clip(clip) -> None:
    if not isinstance(clip, vs.VideoNode):
        raise vs.Error(f"{PREFIX}clip must be a video clip (vs.VideoNode), got {type(clip).__name__}")
    if clip.format is None or clip.format.color_family == vs.UNDEFINED:  # R81: an UNDEFINED format
        raise vs.Error(f"{PREFIX}the clip has a variable format: make it constant first, e.g. "
                       f"core.resize.Bicubic(clip, format=vs.YUV420P8) (or vs.RGBS), before upscaling")
    if clip.width == 0 or clip.height == 0:
        raise vs.Error(f"{PREFIX}the clip has a variable frame size: make it constant first, e.g. "
                       f"core.resize.Bicubic(clip, width=W, height=H), before upscaling")
    colour.check_format(clip.format)


def _tile_subject(hw: tuple[int, int] | None) -> str:
    if hw is None:
        return "tile_w/tile_h"
    return f"tile_w={hw[1]}" if hw[1] < 0 else f"tile_h={hw[0]}"


KEYWORDS = Names({"tile": _tile_subject}, style="keyword")
"""The filter's parameter names for the settings' fields (the rest are named alike)."""


def _settings_error(exc: SettingsError) -> vs.Error:
    return vs.Error(f"{PREFIX}{exc.render(KEYWORDS)}")


# ---------------------------------------------------------------------------------------------
# running the network from VapourSynth's threads: backends.StreamRunner (CPU: one pass at a
# time for the process; GPU: num_streams CUDA streams)

_RUNNERS: "weakref.WeakValueDictionary[tuple, StreamRunner]" = weakref.WeakValueDictionary()
_RUNNERS_LOCK = threading.Lock()


def get_runner(settings: RunSettings, backend: Backend, input_hw: tuple[int, int]) -> StreamRunner:
    """A runner for these settings, shared by every filter instance alive that uses the same ones."""
    key = (settings, backend, input_hw if backend.name == "trt" else None)
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(key)
        if runner is None:
            try:
                # anything the loaders print must not reach vspipe's stdout
                with contextlib.redirect_stdout(sys.stderr):
                    upscaler = create_backend_upscaler(settings, backend, input_hw=input_hw, log=log,
                                                       names=KEYWORDS)
            except SettingsError as exc:
                raise _settings_error(exc) from None
            except (WeightsError, ValueError) as exc:
                raise vs.Error(f"{PREFIX}{exc}") from None
            runner = _RUNNERS[key] = StreamRunner(upscaler, settings.num_streams)
    return runner


def frames_to_tensor(frames: Sequence[vs.VideoFrame]) -> torch.Tensor:
    """RGBS/RGBH frames -> (N, 3, H, W) tensor (float32/float16), clamped to [0, 1]."""
    arr = np.stack([np.stack([np.asarray(f[p]) for p in range(3)]) for f in frames])
    return torch.from_numpy(arr).clamp_(0.0, 1.0)


def tensor_to_frame(t: torch.Tensor, frame: vs.VideoFrame) -> None:
    """(3, H, W) float32 -> the planes of a writable RGBS/RGBH frame."""
    arr = t.numpy()
    for p in range(3):
        np.copyto(np.asarray(frame[p]), arr[p], casting="same_kind")


class GroupMemo:
    """Results of frame groups, shared by the ``size`` output clips of a batched graph.

    The first output frame of a group to ask computes it; the others wait for it. A group is
    forgotten once all its frames were taken, or (oldest first) when more than ``keep`` are held
    (a frame asked again later simply recomputes its group).
    """

    def __init__(self, size: int, keep: int):
        self.size, self.keep = size, keep
        self._lock = threading.Lock()
        self._groups: OrderedDict[int, dict] = OrderedDict()

    def get(self, n: int, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        with self._lock:
            entry = self._groups.get(n)
            owner = entry is None
            if owner:
                entry = self._groups[n] = {"done": threading.Event(), "result": None, "error": None, "taken": set()}
                for old in [k for k, e in self._groups.items() if e["done"].is_set()]:
                    if len(self._groups) <= self.keep:
                        break
                    del self._groups[old]
        if owner:
            try:
                entry["result"] = compute()
            except BaseException as exc:  # every waiter gets the error; a later request retries
                entry["error"] = exc
                with self._lock:
                    if self._groups.get(n) is entry:
                        del self._groups[n]
            finally:
                entry["done"].set()
        else:
            entry["done"].wait()
        if entry["error"] is not None:
            raise entry["error"]
        return entry["result"]

    def taken(self, n: int, k: int) -> None:
        with self._lock:
            entry = self._groups.get(n)
            if entry is not None:
                entry["taken"].add(k)
                if len(entry["taken"]) == self.size:
                    del self._groups[n]


Compute = Callable[[list[vs.VideoFrame], int], object]
"""Frames (in clip order, the first numbered as given) -> the network's result for all of them."""
Write = Callable[[object, int, vs.VideoFrame], None]
"""(a Compute result, index of a frame in it, the writable output frame) -> fills the frame."""


def frame_stage(src: vs.VideoNode, scale: int, batch: int, compute: Compute, write: Write) -> vs.VideoNode:
    """``src`` -> its format, ``scale`` times larger, each output frame written by ``write``
    from ``compute`` of its group of ``batch`` frames; frames in parallel."""
    blank = src.std.BlankClip(width=src.width * scale, height=src.height * scale, keep=True)

    if batch == 1:
        def process(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
            out = f[1].copy()
            write(compute([f[0]], n), 0, out)
            return out

        # a new ModifyFrame node per frame: VapourSynth runs one node's callback at a time.
        # (Callbacks run on worker threads: they use the nodes' methods, never vs.core.)
        return blank.std.FrameEval(lambda n: blank.std.ModifyFrame([src, blank], process))

    total = src.num_frames
    pad = -total % batch
    padded = src + src[-1] * pad if pad else src
    groups = [padded[k::batch] for k in range(batch)]
    gblank = blank.std.BlankClip(length=groups[0].num_frames, keep=True)
    core = vs.core  # the calling script's core, at graph building time
    memo = GroupMemo(batch, keep=2 * max(core.num_threads, 1) + 2)

    def member(k: int) -> vs.VideoNode:
        def process(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
            result = memo.get(n, lambda: compute(f[:batch], n * batch))
            out = f[batch].copy()
            write(result, k, out)
            memo.taken(n, k)
            return out

        return gblank.std.FrameEval(lambda n: gblank.std.ModifyFrame(groups + [gblank], process))

    out = core.std.Interleave([member(k) for k in range(batch)], modify_duration=False)
    return out[:total]


def network_stage(rgb: vs.VideoNode, runner: StreamRunner, batch: int) -> vs.VideoNode:
    """RGBS/RGBH clip -> the same format, ``runner.scale`` times larger, frames in parallel."""
    return frame_stage(rgb, runner.scale, batch, lambda frames, _n: runner(frames_to_tensor(frames)),
                       lambda result, k, out: tensor_to_frame(result[k], out))


def device_stage(clip: vs.VideoNode, runner: StreamRunner, batch: int, over: colour.Overrides,
                 layout) -> vs.VideoNode:
    """An integer YUV/GRAY clip -> the same format, upscaled, converted where the network runs
    (``video.colour_torch``): sample planes go up as integers and come back as integers, so
    float R'G'B' never crosses the bus. Each frame is converted with its own colour properties."""
    from ..video import colour_torch

    fmt = clip.format

    def compute(frames: list[vs.VideoFrame], first: int) -> list[np.ndarray]:
        colours = []
        for i, f in enumerate(frames):
            c = colour.frame_colour(f.props, fmt, over, first + i)
            colours.append(colour.device_colour(c))
            if colours[-1] is None:
                raise vs.Error(f"{PREFIX}frame {first + i}: matrix {c.matrix} ({colour.MATRIX_NAMES[c.matrix]}) "
                               f"is converted on the CPU only: convert the clip to RGBS before upscaling, e.g. "
                               f"core.resize.Bicubic(clip, format=vs.RGBS)")
        planes = [[np.array(f[p])[None] for p in range(fmt.num_planes)] for f in frames]

        def work(upscaler) -> list[np.ndarray]:
            rgb = torch.cat([colour_torch.planes_to_rgb(colour_torch.upload(ps, upscaler.device), layout, c)
                             for ps, c in zip(planes, colours)])
            up = upscaler(rgb)
            parts = [colour_torch.download(colour_torch.rgb_to_planes(up[i:i + 1], layout, c), layout)
                     for i, c in enumerate(colours)]
            return [np.concatenate([part[p] for part in parts]) for p in range(fmt.num_planes)]

        return runner.apply(work)

    def write(result: list[np.ndarray], k: int, out: vs.VideoFrame) -> None:
        for p in range(fmt.num_planes):
            np.copyto(np.asarray(out[p]), result[p][k], casting="same_kind")

    return frame_stage(clip, runner.scale, batch, compute, write)


def _first_colour_on_device(clip: vs.VideoNode, over: colour.Overrides) -> bool:
    """Whether frame 0's colour is one the device conversion does (else zimg on the CPU)."""
    return colour.device_colour(colour.frame_colour(clip.get_frame(0).props, clip.format, over, 0)) is not None


# ---------------------------------------------------------------------------------------------
# the filter


def upscale(clip: vs.VideoNode, scale: int | None = None, variant: str | None = None,
            model_path: str | os.PathLike | None = None, backend: str | None = None,
            device_index: int | None = None, fp16: bool | None = None, tile_w: int | None = None,
            tile_h: int | None = None, tile_pad: int | None = None, batch: int | None = None,
            num_streams: int | None = None, tlc: bool | None = None, kernels: str | None = None,
            precision: str | None = None, cpu_engine: str | None = None, matrix: int | None = None,
            transfer: int | None = None, primaries: int | None = None,
            range: int | None = None) -> vs.VideoNode:  # noqa: A002 - VapourSynth's name
    """Upscale a clip with DLGSANet; the same filter as ``core.dlgsa.Upscale``.

    clip: RGBS/RGBH (used directly), or YUV / GRAY / RGB of 8-16 bit integer or float samples
        (converted to RGB and back; the result has the clip's format).
    scale: 2, 3 or 4 (default 2; read from the file when ``model_path`` is given).
    variant: the packaged weights: "light-video" (default; trained on frames through H.264,
        HEVC, AV1 and VP9: compressed sources; x2 and x4, light at x3) or "light" (the paper's
        clean bicubic protocol: clean sources); "tiny" and "full" only check a model_path
        file's architecture.
    model_path: an authors' .pth or a .safetensors file (variant and scale read from it).
    backend: "trt" (TensorRT engine, built once and cached), "cuda" (PyTorch on the GPU), "vulkan"
        (ncnn on any Vulkan GPU) or "cpu"; default "auto": the first of these that works here, said
        on stderr with the reason.
    device_index: CUDA device, or the Vulkan device for "vulkan" (default 0).
    fp16: True is precision "fp16", False is "fp32" (on the CPU too); unset: precision's default.
        A frame whose fp16 result overflows is redone in bf16/fp32, which is then kept, with a warning.
    precision: "fp16", "bf16" or "fp32", overriding fp16. Default on the GPU: fp16 for RGBH
        clips, else fp32; on the CPU: bf16 where it has native bf16 (amx_bf16, avx512_bf16),
        else fp32 (said on stderr with the reason; fp16 computes in fp32 there). The clip's
        format is kept whatever the network computes in.
    cpu_engine: "torch", "openvino" or "auto" (default: OpenVINO for bf16 where it is installed;
        it exports the network once per frame size, minutes the first time, cached on disk).
    tile_w, tile_h: split frames into tiles of this many input pixels (tile_w=0, tile_h=0: whole
        frames; one given alone is used for both); both omitted (default): auto, the largest tile
        that fits the device's memory and, on the CPU, runs fastest (said on stderr); out of memory
        halves the tile and redoes the frame. tile_pad: input pixels of context around each tile
        (default 16).
    batch: frames per forward pass (default 1); num_streams: CUDA streams, i.e. frames in flight
        on the GPU (default 1).
    tlc: DLGSANet's test-time local converter (default on, as the authors evaluate).
    kernels: "triton" (the network's fused GPU kernels), "torch" (its plain PyTorch forms) or
        "auto" (default: triton on a CUDA GPU where triton imports, else torch; said on stderr).
    matrix, transfer, primaries, range: colour description of the clip (VapourSynth / H.273
        codes, e.g. matrix=1 for BT.709, range=1 for limited), overriding the frame properties.
    """
    _check_clip(clip)
    fp16 = _flag("fp16", fp16)
    tile_w, tile_h = _int("tile_w", tile_w), _int("tile_h", tile_h)
    model_path, variant, scale = _text("model_path", model_path), _text("variant", variant), _int("scale", scale)
    if variant is None and model_path is None:
        variant = default_for(VIDEO_DEFAULT_MODEL, scale)
    given = dict(model_path=model_path, variant=variant,
                 scale=scale, backend=_text("backend", backend),
                 device_index=_int("device_index", device_index), tile_pad=_int("tile_pad", tile_pad),
                 batch=_int("batch", batch), num_streams=_int("num_streams", num_streams), tlc=_flag("tlc", tlc),
                 kernels=_text("kernels", kernels),
                 # one given alone is used for both
                 tile=None if tile_w is None and tile_h is None else
                 (tile_h if tile_h is not None else tile_w, tile_w if tile_w is not None else tile_h),
                 precision=_text("precision", precision) or {True: "fp16", False: "fp32"}.get(fp16),
                 cpu_engine=_text("cpu_engine", cpu_engine))
    try:
        settings = RunSettings(**{k: v for k, v in given.items() if v is not None})
    except SettingsError as exc:
        raise _settings_error(exc) from None
    over = colour.Overrides(_int("matrix", matrix, 0), _int("transfer", transfer, 0),
                            _int("primaries", primaries, 0), _int("range", range, 0))

    colour.check_first_frame(clip, over)

    try:
        chosen = select_backend(settings)
        if settings.precision is None and chosen.name != "cpu":  # the GPU's default follows the clip
            settings = settings.replace(precision="fp16" if clip.format.id == vs.RGBH else "fp32")
    except SettingsError as exc:
        raise _settings_error(exc) from None
    if settings.backend == "auto":
        log(f"backend auto -> {chosen.name} ({chosen.reason})")
    runner = get_runner(settings, chosen, (clip.height, clip.width))
    if chosen.name == "cpu":  # what it computes in depends on the CPU: say it, and why
        log(f"cpu: {runner.upscaler.plan.compute()}")
    if runner.upscaler.tile_for(clip.height, clip.width) != (0, 0):
        log(runner.upscaler.tile_summary(clip.height, clip.width))

    layout = colour.device_layout(clip.format) if runner.device.type == "cuda" else None
    if layout is not None and _first_colour_on_device(clip, over):
        out = device_stage(clip, runner, settings.batch, over, layout)
    else:
        out = colour.from_rgb(network_stage(colour.to_rgb(clip, over), runner, settings.batch), clip, over)
    out = out.std.CopyFrameProps(clip)
    if over.props():
        out = out.std.SetFrameProps(**over.props())
    return out
