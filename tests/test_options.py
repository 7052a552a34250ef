"""The option table: every ``RunSettings`` field reaches every front end under its own name, with
the settings' default, and the front ends agree on the GPU's default precision.

The front ends: the command lines (``dlgsa-upscale``'s parser), the VapourSynth filter's
signature, ``plugin.c``'s registration string (read from the source: what the plugin is built
from) and ``vsscale.DLGSA``. A field added to ``RunSettings`` without its row, or a front end
that drops one, fails here."""
from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from dlgsa_vs.cli import video as video_cli
from dlgsa_vs.cli.common import OPTION_NAMES, settings_from_args
from dlgsa_vs.runtime.packaged import VIDEO_DEFAULT_MODEL, default_for
from dlgsa_vs.runtime.run_plan import Backend, resolve_precision
from dlgsa_vs.runtime.settings import Option, RunSettings, keywords, options

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = RunSettings()


def test_every_field_has_its_row():
    assert [f.name for f, _ in options()] == [f.name for f in fields(RunSettings)]
    for f, option in options():
        assert isinstance(option, Option) and option.flags and option.help, f.name
        assert option.kind in ("value", "choice", "true", "false", "size"), f.name
        if option.kind == "choice":
            assert f.default is None or f.default in option.choices, f.name


def test_the_command_line_reaches_every_field_with_its_default():
    parser = video_cli.build_parser()
    flags = {flag for action in parser._actions for flag in action.option_strings}
    for f, option in options():
        assert set(option.flags) <= flags, f"dlgsa-upscale lacks {option.flags} ({f.name})"
    parsed = settings_from_args(parser.parse_args(["in.mp4"]))
    for f in fields(RunSettings):
        expected = default_for(VIDEO_DEFAULT_MODEL, None) if f.name == "variant" else f.default
        assert getattr(parsed, f.name) == expected, f.name
    # and a value given reaches the field (tile typed W H, held (H, W); --no-tlc turns it off)
    given = settings_from_args(parser.parse_args(["in.mp4", "--tile", "64", "32", "--no-tlc", "--batch", "3",
                                                  "--precision", "bf16", "--compile"]))
    assert (given.tile, given.tlc, given.batch, given.precision, given.compile) == ((32, 64), False, 3, "bf16", True)
    assert OPTION_NAMES.name("model_path") == "-m/--model" and OPTION_NAMES.subject("tile", (32, 64)) == "--tile 64 32"


def _plugin_args() -> list[tuple[str, str]]:
    source = (ROOT / "dlgsa_vs" / "vapoursynth" / "plugin.c").read_text()
    block = re.search(r"UPSCALE_ARGS\[\] =\s*((?:\s*\"[^\"]*\")+);", source).group(1)
    text = "".join(re.findall(r"\"([^\"]*)\"", block))
    return [(a.split(":")[0], a.split(":")[1]) for a in text.split(";") if a]


def test_the_vapoursynth_signature_and_plugin_c_follow_the_table():
    vs = pytest.importorskip("vapoursynth", reason="vapoursynth is not installed")  # noqa: F841
    from dlgsa_vs.vapoursynth.filter import SIGNATURE, vs_types

    params = SIGNATURE.parameters
    for f, option in options():
        for name in keywords(f, option):
            assert name in params and params[name].default is None, f"the filter lacks {name} ({f.name})"
    assert _plugin_args() == list(vs_types().items()), "plugin.c's UPSCALE_ARGS differs from the filter's SIGNATURE"


def test_vsscale_takes_every_keyword_of_the_filter():
    pytest.importorskip("vsscale", reason="vsjetpack is not installed (vsscale, vskernels)")
    from dlgsa_vs.vapoursynth.filter import SIGNATURE
    from dlgsa_vs.integrations.vsscale import DLGSA, FILTER_OPTIONS

    assert FILTER_OPTIONS == tuple(name for name in SIGNATURE.parameters if name != "clip")
    values = {name: f"value-of-{name}" for name in FILTER_OPTIONS}
    assert DLGSA(**values).filter_options() == values
    assert DLGSA().filter_options() == {}  # every default is the filter's


def test_dlgsa_takes_precision_bf16():
    pytest.importorskip("vsscale", reason="vsjetpack is not installed (vsscale, vskernels)")
    import numpy as np
    import vapoursynth as vs
    from vs_support import clip_from_arrays

    from dlgsa_vs import upscale
    from dlgsa_vs.integrations.vsscale import DLGSA

    rng = np.random.default_rng(5)
    clip = clip_from_arrays([[rng.random((12, 16), dtype=np.float32) for _ in range(3)]], vs.RGBS)
    out = DLGSA(variant="light", precision="bf16", backend="cpu", tlc=False).scale(clip, 32, 24)
    ref = upscale(clip, variant="light", precision="bf16", backend="cpu", tlc=False)
    a, b = out.get_frame(0), ref.get_frame(0)
    assert all(np.array_equal(np.asarray(a[p]), np.asarray(b[p])) for p in range(3))


GPU = Backend("cuda", torch.device("cuda", 0), "a stand-in: resolve_precision reads only its name")


def test_the_gpu_default_precision_follows_the_input_sample_type():
    """One rule for every front end: fp16 for integer (YUV, GRAY, RGB24) and fp16 frames, fp32 for
    float32 frames (VapourSynth's RGBS); what was asked wins; the CPU has its own rule."""
    assert resolve_precision(GPU, RunSettings())[0] == "fp16"                    # the CLI: integer video
    assert resolve_precision(GPU, RunSettings(), torch.float16)[0] == "fp16"     # RGBH
    assert resolve_precision(GPU, RunSettings(), torch.float32) == ("fp32", "float32 input (RGBS): fp32")
    assert resolve_precision(GPU, RunSettings(precision="fp16"), torch.float32)[0] == "fp16"
    vulkan = Backend("vulkan", torch.device("cpu"), "a stand-in")  # the same rule on every GPU backend
    assert resolve_precision(vulkan, RunSettings(), torch.float32) == ("fp32", "float32 input (RGBS): fp32")


def test_a_yuv_clip_and_the_video_command_line_get_the_same_gpu_precision():
    vs = pytest.importorskip("vapoursynth", reason="vapoursynth is not installed")
    from dlgsa_vs.vapoursynth.filter import sample_dtype

    core = vs.core
    yuv = sample_dtype(core.get_video_format(vs.YUV420P10))
    assert yuv is None and resolve_precision(GPU, RunSettings(), yuv) == resolve_precision(GPU, RunSettings())
    assert sample_dtype(core.get_video_format(vs.RGBS)) == torch.float32
    assert sample_dtype(core.get_video_format(vs.RGBH)) == torch.float16
