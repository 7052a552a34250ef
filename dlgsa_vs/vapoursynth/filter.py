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
import inspect
import os
import sys
import textwrap
import threading
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np
import torch
import vapoursynth as vs

from ..runtime.backends import StreamRunner, open_runner
from ..runtime.packaged import VIDEO_DEFAULT_MODEL, default_for
from ..runtime.settings import Names, RunSettings, SettingsError, check_at_least, help_text, keywords, options
from ..runtime.weights import WeightsError
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


def _check_fields(clip: vs.VideoNode) -> None:
    """Refuse an interlaced clip (frame 0's ``_FieldBased``: 1 bottom, 2 top field first): the
    network would take the comb of two fields for detail and magnify it."""
    field_based = clip.get_frame(0).props.get("_FieldBased", 0)
    if field_based in (1, 2):
        first, field = ("top", 3) if field_based == 2 else ("bottom", 2)
        raise vs.Error(f"{PREFIX}the clip is interlaced (frame 0 has _FieldBased={field_based}, {first} field "
                       f"first): deinterlace it first, e.g. core.bwdif.Bwdif(clip, field={field}) or QTGMC "
                       f"(telecined film: core.vivtc.VFM(clip, 1).vivtc.VDecimate()), or pass "
                       f"fields_as_frames=True if its frames are whole pictures")


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

def sample_dtype(fmt: vs.VideoFormat) -> torch.dtype | None:
    """The frames' sample type as the run plan takes it (RGBS/float32 clips compute in fp32 on a
    GPU by default, the rest in fp16): float32, float16, or None for integer samples."""
    if fmt.sample_type == vs.FLOAT:
        return torch.float32 if fmt.bits_per_sample == 32 else torch.float16
    return None


def get_runner(settings: RunSettings, input_hw: tuple[int, int], fmt: vs.VideoFormat) -> StreamRunner:
    """``backends.open_runner`` for a clip, its errors as one-line ``vs.Error``\\ s."""
    try:
        # anything the loaders print must not reach vspipe's stdout
        with contextlib.redirect_stdout(sys.stderr):
            return open_runner(settings, input_hw, sample_dtype(fmt), log=log, names=KEYWORDS)
    except SettingsError as exc:
        raise _settings_error(exc) from None
    except (WeightsError, ValueError) as exc:
        raise vs.Error(f"{PREFIX}{exc}") from None


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
# the filter: its parameters come from the option table (settings.options()), plus the clip,
# the fp16 switch and the colour description


def _keyword_parameters() -> list[inspect.Parameter]:
    out = []
    for f, option in options():
        for name in keywords(f, option):
            out.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None))
        if f.name == "device_index":  # where it always was: positional calls keep working
            out.append(inspect.Parameter("fp16", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None))
    return out


COLOUR_KEYWORDS = ("matrix", "transfer", "primaries", "range")
SIGNATURE = inspect.Signature(
    [inspect.Parameter("clip", inspect.Parameter.POSITIONAL_OR_KEYWORD), *_keyword_parameters(),
     *[inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
       for k in (*COLOUR_KEYWORDS, "fields_as_frames")]],
    return_annotation=vs.VideoNode)
"""``upscale``'s parameters, in the order of ``plugin.c``'s registration string (a test holds
the two equal): every keyword defaults to None, the settings' default."""


def vs_types() -> dict[str, str]:
    """Each keyword's VapourSynth type ("vnode", "int", "data"), for ``plugin.c``'s string."""
    types = {"clip": "vnode", "fp16": "int", "fields_as_frames": "int", **{k: "int" for k in COLOUR_KEYWORDS}}
    for f, option in options():
        types.update({name: option.vs_type for name in keywords(f, option)})
    return {name: types[name] for name in SIGNATURE.parameters}


def _docstring() -> str:
    rows = ["clip: RGBS/RGBH (used directly), or YUV / GRAY / RGB of 8-16 bit integer or float samples\n"
            "    (converted to RGB and back; the result has the clip's format)."]
    for f, option in options():
        rows.append(textwrap.fill(f"{', '.join(keywords(f, option))}: {help_text(f, option, KEYWORDS)}.", 96,
                                  subsequent_indent="    "))
        if f.name == "device_index":
            rows.append("fp16: True is precision \"fp16\", False \"fp32\"; precision overrides it.")
    rows.append("matrix, transfer, primaries, range: colour description of the clip (VapourSynth / H.273\n"
                "    codes, e.g. matrix=1 for BT.709, range=1 for limited), overriding the frame properties.")
    rows.append("fields_as_frames: upscale a clip flagged interlaced (_FieldBased 1 or 2 on frame 0) as it\n"
                "    is, each frame as one picture (default: such a clip is refused; deinterlace first).")
    return ("Upscale a clip with DLGSANet; the same filter as ``core.dlgsa.Upscale``.\n\n"
            "Every parameter but clip is optional (None: the default). The video default weights are\n"
            "light-video; tile_w or tile_h given alone is used for both.\n\n" + "\n".join(rows))


def _setting(f, option, values: dict):
    """A field's value from the filter's keywords (None: not given), type-checked as VapourSynth
    passes them (ints for flags, bytes or str for data)."""
    if option.kind == "size":
        tile_w, tile_h = (_int(k, values[k]) for k in keywords(f, option))
        if tile_w is None and tile_h is None:
            return None
        return (tile_h if tile_h is not None else tile_w, tile_w if tile_w is not None else tile_h)
    name = keywords(f, option)[0]
    if option.kind in ("true", "false"):
        return _flag(name, values[name])
    return _int(name, values[name]) if option.vs_type == "int" else _text(name, values[name])


def upscale(*args, **kwargs) -> vs.VideoNode:
    values = SIGNATURE.bind(*args, **kwargs)
    values.apply_defaults()
    values = values.arguments
    clip = values["clip"]
    _check_clip(clip)
    if not _flag("fields_as_frames", values["fields_as_frames"]):
        _check_fields(clip)
    given = {f.name: _setting(f, option, values) for f, option in options()}
    given["precision"] = given["precision"] or {True: "fp16", False: "fp32"}.get(_flag("fp16", values["fp16"]))
    if given["variant"] is None and given["model_path"] is None:
        given["variant"] = default_for(VIDEO_DEFAULT_MODEL, given["scale"])
    try:
        settings = RunSettings(**{k: v for k, v in given.items() if v is not None})
    except SettingsError as exc:
        raise _settings_error(exc) from None
    over = colour.Overrides(*(_int(k, values[k], 0) for k in COLOUR_KEYWORDS))

    colour.check_first_frame(clip, over)

    runner = get_runner(settings, (clip.height, clip.width), clip.format)
    if settings.backend == "auto":
        backend = runner.upscaler.plan.backend
        log(f"backend auto -> {backend.name} ({backend.reason})")
    if runner.device.type == "cpu":  # what it computes in depends on the CPU: say it, and why
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


upscale.__signature__ = SIGNATURE
upscale.__doc__ = _docstring()
