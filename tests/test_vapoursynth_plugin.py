"""The installed `dlgsa` plugin end to end: vspipe, a real video, other processes and hosts.

Every test here uses the real plugin as pip installed it (autoloaded from its own folder,
<site-packages>/vapoursynth/plugins/dlgsa, with a manifest.vs), the real vspipe and the real bestsource.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

import dlgsa_vs
from dlgsa_vs.image.imageio import read_image
from vs_support import (PLUGIN_DIR, VS_PACKAGE, clip_from_arrays, core, light_x2, planes,  # noqa: F401
                        psnr, read_y4m, shared_data, small_model, vspipe)

SET5 = ["baby", "bird", "butterfly", "head", "woman"]


def run_python(code: str, *args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


# --- vspipe --------------------------------------------------------------------------------------

PATTERN_VPY = """\
import vapoursynth as vs
core = vs.core
# frame numbers drawn on a coloured YUV420P8 clip with non-square pixels; no import, no LoadPlugin
base = core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=5, fpsnum=30000, fpsden=1001,
                          color=[90, 100, 160])
clip = base.text.FrameNum(alignment=5).std.SetFrameProps(_Matrix=1, _SARNum=128, _SARDen=117)
core.dlgsa.Upscale(clip, model_path=model, backend="cpu").set_output()
"""


def test_vspipe_renders_the_namespace_to_y4m(vspipe, small_model, tmp_path, core):
    script = tmp_path / "pattern.vpy"
    script.write_text(PATTERN_VPY)
    info = vspipe("--info", "-a", f"model={small_model}", script, "-")
    assert info.returncode == 0, info.stderr.decode()
    assert b"Width: 128" in info.stdout and b"Height: 96" in info.stdout and b"Frames: 5" in info.stdout

    props = tmp_path / "props.json"
    res = vspipe("-c", "y4m", "-j", props, "-a", f"model={small_model}", script, "-")
    assert res.returncode == 0, res.stderr.decode()
    header, frames = read_y4m(res.stdout)  # stdout is nothing but the video
    assert (header["W"], header["H"], header["F"], header["C"][:3]) == ("128", "96", "30000:1001", "420")
    assert len(frames) == 5
    frame_props = json.loads(props.read_text())
    frame_props = frame_props["frames"] if isinstance(frame_props, dict) else frame_props
    assert len(frame_props) == 5
    assert all(p["_SARNum"] == 128 and p["_SARDen"] == 117 and p["_Matrix"] == 1 for p in frame_props)

    # the same graph in this process gives the same pictures
    namespace = {"model": str(small_model)}
    exec(compile(PATTERN_VPY.replace(".set_output()", ""), "pattern.vpy", "exec"), namespace)
    local = core.dlgsa.Upscale(namespace["clip"], model_path=str(small_model), backend="cpu")
    for n in (0, 4):
        assert all(np.array_equal(a, b) for a, b in zip(frames[n], planes(local.get_frame(n))))


QUALITY_VPY = """\
import numpy as np
import vapoursynth as vs
core = vs.core
lr = np.load(lr_path)  # N x H x W x 3 uint8: Set5 LR crops
n, h, w, _ = lr.shape
blank = core.std.BlankClip(format=vs.RGB24, width=w, height=h, length=n, fpsnum=25, fpsden=1)

def fill(n, f):
    out = f.copy()
    for p in range(3):
        np.copyto(np.asarray(out[p]), lr[n, :, :, p])
    return out

yuv = blank.std.ModifyFrame(blank, fill).resize.Bicubic(format=vs.YUV444P8, matrix_s="709")
core.dlgsa.Upscale(yuv).set_output(0)              # packaged DLGSANet-light x2, default settings
yuv.resize.Bicubic(w * 2, h * 2).set_output(1)      # the baseline
"""


def test_vspipe_output_is_closer_to_ground_truth_than_bicubic(vspipe, light_x2, shared_data, tmp_path, core):
    hr_dir, lr_dir = shared_data / "benchmarks/Set5/HR", shared_data / "benchmarks/Set5/LR_bicubic/X2"
    w, h = 64, 48  # LR crop, from the middle of each picture
    lr_crops, hr_crops = [], []
    for name in SET5:
        lr, hr = read_image(lr_dir / f"{name}x2.png"), read_image(hr_dir / f"{name}.png")
        y, x = (lr.shape[0] - h) // 2, (lr.shape[1] - w) // 2
        lr_crops.append(lr[y:y + h, x:x + w])
        hr_crops.append(hr[2 * y:2 * (y + h), 2 * x:2 * (x + w)])
    np.save(tmp_path / "lr.npy", np.stack(lr_crops))
    script = tmp_path / "set5.vpy"
    script.write_text(QUALITY_VPY)

    outputs = []
    for index in (0, 1):
        res = vspipe("-c", "y4m", "-o", index, "-a", f"lr_path={tmp_path / 'lr.npy'}", script, "-")
        assert res.returncode == 0, res.stderr.decode()
        header, frames = read_y4m(res.stdout)
        assert (header["W"], header["H"], len(frames)) == (str(2 * w), str(2 * h), len(SET5))
        outputs.append(frames)

    hr_clip = clip_from_arrays([[c[:, :, p] for p in range(3)] for c in hr_crops], vs.RGB24)
    hr_y = [planes(f)[0] for f in hr_clip.resize.Bicubic(format=vs.YUV444P8, matrix_s="709").frames()]
    model = np.mean([psnr(out[0], gt, shave=2) for out, gt in zip(outputs[0], hr_y)])
    bicubic = np.mean([psnr(out[0], gt, shave=2) for out, gt in zip(outputs[1], hr_y)])
    assert model > bicubic, f"Y-PSNR DLGSANet {model:.2f} dB vs bicubic {bicubic:.2f} dB"


# --- a real video through bestsource --------------------------------------------------------------

def test_real_video_through_bestsource_yuv420p8_in_and_out(core, shared_data, small_model):
    video = shared_data / "video" / "carphone_pristine.mp4"
    src = core.bs.VideoSource(str(video), cachemode=0)  # 176x144, SAR 128:117, no colour metadata
    assert src.format.id == vs.YUV420P8
    clip = src[10:13].std.CropAbs(width=64, height=48, left=56, top=48)
    with pytest.raises(vs.Error, match=r"^dlgsa\.Upscale: frame 0 of the YUV420P8 clip has _Matrix=2 \(unspecified\), "
                                       r"so its YUV cannot be converted to RGB without guessing: pass matrix=1"):
        core.dlgsa.Upscale(clip, model_path=str(small_model))
    out = core.dlgsa.Upscale(clip, model_path=str(small_model), backend="cpu", matrix=6)  # SD: BT.601
    assert (out.format.id, out.width, out.height, out.num_frames) == (vs.YUV420P8, 128, 96, 3)
    assert (out.fps_num, out.fps_den) == (src.fps_num, src.fps_den) == (30000, 1001)
    for n in range(3):
        p = out.get_frame(n).props
        assert (p["_SARNum"], p["_SARDen"], p["_Matrix"]) == (128, 117, 6)
        assert p["_DurationNum"] == 1001 and p["_DurationDen"] == 30000
    # the same as converting by hand around the filter's RGB path
    rgb = clip.resize.Bicubic(format=vs.RGBS, matrix_in=6)
    by_hand = core.dlgsa.Upscale(rgb, model_path=str(small_model), backend="cpu")
    by_hand = by_hand.resize.Bicubic(format=vs.YUV420P8, matrix=6)
    assert all(np.array_equal(a, b) for a, b in zip(planes(out.get_frame(1)), planes(by_hand.get_frame(1))))


# --- when the Python side is missing, several cores, other hosts ---------------------------------

def test_missing_python_side_gives_a_vapoursynth_error():
    res = run_python("""
        import sys
        sys.modules["torch"] = None  # as if torch were not installed in this Python
        import vapoursynth as vs
        try:
            vs.core.dlgsa.Upscale(vs.core.std.BlankClip(format=vs.RGBS))
        except vs.Error as e:
            print(e)
    """)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("dlgsa.Upscale: cannot import the Python side of the plugin "
                                 "(dlgsa_vs.vapoursynth._bridge): ModuleNotFoundError: import of torch halted")
    assert f"into the Python environment that runs VapourSynth ({sys.executable})" in res.stdout


SEVERAL_CORES = """
import gc, sys, threading
import numpy as np
import vapoursynth as vs

class Policy(vs.EnvironmentPolicy):  # several environments (cores) in one process, like vsengine
    def __init__(self):
        self.local, self.api, self.alive = threading.local(), None, []
    def on_policy_registered(self, api):
        self.api = api
    def on_policy_cleared(self):
        self.api = None
    def get_current_environment(self):
        return getattr(self.local, "env", None)
    def set_environment(self, env):
        old, self.local.env = getattr(self.local, "env", None), env
        return old
    def is_alive(self, env):
        return env in self.alive

policy = Policy()
vs.register_policy(policy)
model = sys.argv[1]

def environment():
    data = policy.api.create_environment()
    policy.alive.append(data)
    return data, policy.api.wrap_environment(data)

def destroy(data):
    gc.collect()
    policy.alive.remove(data)
    policy.api.destroy_environment(data)

def upscaled(env, value):
    with env.use():
        core = vs.core
        clip = core.std.BlankClip(format=vs.RGBS, width=32, height=24, length=2, color=[value] * 3)
        return core.dlgsa.Upscale(clip, model_path=model, backend="cpu")

def mean(clip, n=0):
    return round(float(np.asarray(clip.get_frame(n)[0]).mean()), 6)

da, a = environment()
db, b = environment()
ua, ub = upscaled(a, 0.2), upscaled(b, 0.7)
first_a, first_b = mean(ua, 1), mean(ub, 1)
print("two", ua.width, ub.width, first_a != first_b)
with b.use():
    other = vs.core.std.BlankClip(format=vs.RGBS, width=8, height=8)
with a.use():  # the clip's core is B's, the current environment is A
    try:
        other.dlgsa.Upscale(model_path=model)
        print("mismatch: no error")
    except vs.Error as e:
        print("mismatch:", e)
del other, ua
destroy(da)
print("B after A freed", mean(ub, 1) == first_b)
dc, c = environment()
uc = upscaled(c, 0.2)
print("C like A", mean(uc, 1) == first_a)
del ub, uc
destroy(db)
destroy(dc)
print("done")
"""


def test_several_cores_in_one_process(small_model):
    res = run_python(SEVERAL_CORES, small_model)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "two 64 64 True",
        "mismatch: dlgsa.Upscale: the current Python VapourSynth environment is not the one whose core made this "
        "call; call dlgsa.Upscale from a script running in that environment",
        "B after A freed True",
        "C like A True",
        "done",
    ]
    assert "Error" not in res.stderr and "leak" not in res.stderr.lower(), res.stderr


HOST_C = r"""
/* A VapourSynth host without Python: the plugins autoload, dlgsa.Upscale must fail cleanly. */
#include <stdio.h>
#include "VapourSynth4.h"
int main(void) {
    const VSAPI *vsapi = getVapourSynthAPI(VS_MAKE_VERSION(4, 0));
    VSCore *core = vsapi->createCore(0);
    VSPlugin *dlgsa = vsapi->getPluginByNamespace("dlgsa", core);
    if (!dlgsa) { puts("dlgsa not loaded"); return 3; }
    VSMap *args = vsapi->createMap();
    VSMap *ret = vsapi->invoke(dlgsa, "Version", args);
    printf("%s\n", vsapi->mapGetData(ret, "version", 0, NULL));
    vsapi->freeMap(ret);
    ret = vsapi->invoke(vsapi->getPluginByNamespace("std", core), "BlankClip", args);
    vsapi->mapConsumeNode(args, "clip", vsapi->mapGetNode(ret, "clip", 0, NULL), maReplace);
    vsapi->freeMap(ret);
    ret = vsapi->invoke(dlgsa, "Upscale", args);
    const char *err = vsapi->mapGetError(ret);
    printf("%s\n", err ? err : "(no error)");
    vsapi->freeMap(ret);
    vsapi->freeMap(args);
    vsapi->freeCore(core);
    return 0;
}
"""


def test_a_host_without_python_loads_the_plugin_and_gets_a_clear_error(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a native VapourSynth host")
    (tmp_path / "host.c").write_text(HOST_C)
    exe = tmp_path / "host"
    subprocess.run([cc, "-std=c11", f"-I{vs.get_include()}", str(tmp_path / "host.c"), "-o", str(exe),
                    f"-L{VS_PACKAGE}", "-l:libvapoursynth.so.4", f"-Wl,-rpath,{VS_PACKAGE}"], check=True)
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    version, error = res.stdout.splitlines()
    assert version == dlgsa_vs.__version__
    assert error.startswith("dlgsa.Upscale: no Python interpreter is running in this process (CPython's "
                            "Py_IsInitialized was not found), and the filter is written in Python: run the script "
                            "with vspipe or from Python's vapoursynth module")


# --- installation ----------------------------------------------------------------------------------

DLGSA_FOLDER = PLUGIN_DIR / "dlgsa"  # setup.py's PLUGIN_FOLDER: the plugin's own folder, with a manifest.vs


def test_plugin_is_installed_where_vapoursynth_autoloads_it(core):
    # VapourSynth R74+ plugin-folder layout: <plugins>/dlgsa/{libdlgsa.so, manifest.vs}, nothing in the root
    assert (DLGSA_FOLDER / "libdlgsa.so").is_file()
    assert (DLGSA_FOLDER / "manifest.vs").read_bytes() == b"[VapourSynth Manifest V1]\nlibdlgsa\n"
    assert not (PLUGIN_DIR / "libdlgsa.so").exists()
    plugin = next(p for p in core.plugins() if p.namespace == "dlgsa")
    assert Path(plugin.plugin_path).resolve() == (DLGSA_FOLDER / "libdlgsa.so").resolve()
    assert sorted(f.name for f in plugin.functions()) == ["InternalBridge", "Upscale", "Version"]


def test_the_installed_plugin_folder_loads_through_its_manifest(tmp_path):
    # The manifest is what the core reads in that folder: a copy of the folder whose manifest names
    # another library loads nothing from it, and one whose manifest names ours loads it (checked on
    # a core that autoloads only this folder, through VAPOURSYNTH_EXTRA_PLUGIN_PATH and a plugins
    # root of its own: the vapoursynth package is copied without its plugins).
    vs_copy = tmp_path / "site" / "vapoursynth"
    shutil.copytree(VS_PACKAGE, vs_copy, ignore=shutil.ignore_patterns("plugins", "__pycache__"))
    (vs_copy / "plugins").mkdir()
    for manifest, expect in [(b"[VapourSynth Manifest V1]\nsomething_else\n", "None"),
                             ((DLGSA_FOLDER / "manifest.vs").read_bytes(), dlgsa_vs.__version__)]:
        extra = tmp_path / f"extra_{len(manifest)}"
        shutil.copytree(DLGSA_FOLDER, extra / "dlgsa")
        (extra / "dlgsa" / "manifest.vs").write_bytes(manifest)
        code = ("import vapoursynth as vs\n"
                "p = next((p for p in vs.core.plugins() if p.namespace == 'dlgsa'), None)\n"
                "print(p and vs.core.dlgsa.Version()['version'])\n"
                "print(p and p.plugin_path)\n")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "VAPOURSYNTH_EXTRA_PLUGIN_PATH": str(extra),
                                  "PYTHONPATH": str(vs_copy.parent)}, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        version, path = res.stdout.splitlines()
        assert version == expect, res.stderr
        if expect != "None":
            assert Path(path).resolve() == (extra / "dlgsa" / "libdlgsa.so").resolve()


@pytest.mark.parametrize("layout", ["plugin folder", "plugins root"])
def test_a_second_copy_of_the_plugin_is_skipped_not_an_error(tmp_path, layout):
    # A core that meets the plugin twice (a leftover root copy from an older install, or another
    # folder on VAPOURSYNTH_EXTRA_PLUGIN_PATH) keeps the first one and logs the second: no error.
    extra = tmp_path / "extra"
    if layout == "plugin folder":
        shutil.copytree(DLGSA_FOLDER, extra / "dlgsa")
    else:
        extra.mkdir()
        shutil.copy(DLGSA_FOLDER / "libdlgsa.so", extra / "libdlgsa.so")
    code = ("import vapoursynth as vs\n"
            "print(vs.core.dlgsa.Version()['version'])\n"
            "print(next(p for p in vs.core.plugins() if p.namespace == 'dlgsa').plugin_path)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "VAPOURSYNTH_EXTRA_PLUGIN_PATH": str(extra)})
    assert res.returncode == 0, res.stderr
    version, path = res.stdout.splitlines()
    assert version == dlgsa_vs.__version__
    assert Path(path).resolve() == (DLGSA_FOLDER / "libdlgsa.so").resolve()
    assert "already loaded" in res.stderr


@pytest.mark.skipif(os.environ.get("DLGSA_TEST_INSTALL") != "1",
                    reason="builds and installs a wheel into a fresh venv (network or pip cache, ~1 min): "
                           "set DLGSA_TEST_INSTALL=1")
def test_pip_install_into_a_fresh_venv_places_and_removes_the_plugin(tmp_path):
    # a copy of the sources, so that the build leaves nothing in the working tree
    root = tmp_path / "src"
    shutil.copytree(Path(__file__).resolve().parents[1], root, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "runs", "out", "*.egg-info", "__pycache__", ".pytest_cache"))
    venv = tmp_path / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"vapoursynth=={importlib.metadata.version('vapoursynth')}"], check=True, timeout=600)
    # a regular (non-editable) install without torch: the plugin must load, and say what is missing
    subprocess.run([*pip, "--no-deps", str(root)], check=True, timeout=600)
    code = ("import vapoursynth as vs\nprint(vs.core.dlgsa.Version()['version'])\ntry:\n"
            "    vs.core.dlgsa.Upscale(vs.core.std.BlankClip(format=vs.RGBS))\nexcept vs.Error as e:\n    print(e)")
    res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    version, error = res.stdout.splitlines()
    assert version == dlgsa_vs.__version__
    assert "cannot import the Python side of the plugin" in error and "No module named" in error
    folder = next((venv / "lib").glob("python3*/site-packages/vapoursynth/plugins/dlgsa"))
    assert sorted(f.name for f in folder.iterdir()) == ["libdlgsa.so", "manifest.vs"]
    subprocess.run([str(py), "-m", "pip", "uninstall", "-y", "-q", "dlgsa-vs"], check=True)
    assert not folder.exists()  # pip removes the folder with its two recorded files
