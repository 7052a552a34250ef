"""The VapourSynth filter and interlaced clips (issue #38): a clip whose frame 0 says it holds
fields (``_FieldBased`` 1 or 2) is refused with the fix in one line, unless
``fields_as_frames=True`` says its frames are to be upscaled as they are. Real core."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

import dlgsa_vs
from vs_support import clip_from_arrays, core, planes, random_rgb, small_model  # noqa: F401 (fixtures)

PLUGIN_C = Path(dlgsa_vs.__file__).parent / "vapoursynth" / "plugin.c"


def _clip(field_based: int | None):
    clip = clip_from_arrays(random_rgb(2, 24, 16, seed=38), vs.RGBS)
    return clip if field_based is None else clip.std.SetFrameProps(_FieldBased=field_based)


@pytest.mark.parametrize("field_based,first,bwdif", [(2, "top", 3), (1, "bottom", 2)])
def test_interlaced_clip_is_refused_with_the_fix(core, small_model, field_based, first, bwdif):
    with pytest.raises(vs.Error, match=re.escape(
            f"dlgsa.Upscale: the clip is interlaced (frame 0 has _FieldBased={field_based}, {first} field "
            f"first): deinterlace it first, e.g. core.bwdif.Bwdif(clip, field={bwdif}) or QTGMC (telecined "
            f"film: core.vivtc.VFM(clip, 1).vivtc.VDecimate()), or pass fields_as_frames=True")):
        dlgsa_vs.upscale(_clip(field_based), model_path=small_model, backend="cpu")


def test_fields_as_frames_upscales_the_frames_as_they_are(core, small_model):
    told = dlgsa_vs.upscale(_clip(2), model_path=small_model, backend="cpu", fields_as_frames=True)
    plain = dlgsa_vs.upscale(_clip(None), model_path=small_model, backend="cpu")
    assert (told.width, told.height, told.num_frames) == (48, 32, 2)
    for n in range(2):
        assert all(np.array_equal(a, b) for a, b in zip(planes(told.get_frame(n)), planes(plain.get_frame(n))))
    assert told.get_frame(0).props["_FieldBased"] == 2      # the props are the clip's, as for every clip


@pytest.mark.parametrize("field_based", [None, 0])
def test_progressive_clips_need_no_keyword(core, small_model, field_based):
    out = dlgsa_vs.upscale(_clip(field_based), model_path=small_model, backend="cpu")
    assert (out.width, out.height) == (48, 32)


def test_plugin_c_lists_the_keyword():
    """plugin.c's argument list names fields_as_frames like the Python function (the built
    plugin is checked by test_vapoursynth.py once rebuilt from this source)."""
    import inspect

    block = PLUGIN_C.read_text().split("UPSCALE_ARGS[] =", 1)[1].split(";\n", 1)[0]
    listed = re.findall(r'"(\w+):[^"]*;"', block)

    assert listed == list(inspect.signature(dlgsa_vs.upscale).parameters)
