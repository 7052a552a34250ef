"""The shape-profile presets (dlgsa_vs/runtime/trt/profiles.toml): parsing, what dlgsa-build-engine
--profile makes of them and the cache keys they give; trt/build_profiles.py as far as it runs
without TensorRT. All on the CPU."""
import configparser
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.cli import build_engine as build_cli
from dlgsa_vs.runtime.export import ShapeRange
from dlgsa_vs.runtime.inference import network_input_hw
from dlgsa_vs.runtime.trt.engine import engine_key
from dlgsa_vs.runtime.trt.profiles import ProfileError, get_profile, load_profiles, parse_profiles
from conftest import small_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "trt" / "build_profiles.py"
GPU = ("NVIDIA H100 80GB HBM3", "9.0")
EXPECTED = {"480p": (480, 854), "720p": (720, 1280), "1080p": (1080, 1920), "1440p": (1440, 2560),
            "2160p": (2160, 3840), "portrait": (1920, 1080), "4:3-480p": (480, 640), "4:3-1080p": (1080, 1440)}


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return DLGSANet(**small_config()).eval()


def test_the_packaged_presets_parse_and_hold_the_common_sizes():
    profiles = load_profiles()
    for name, hw in EXPECTED.items():
        p = profiles[name]
        assert p.static == hw == p.opt_hw and p.description
        assert all(a <= b <= c for a, b, c in zip(p.min_hw, p.opt_hw, p.max_hw))
        assert p.shape_range() == ShapeRange(p.min_hw, p.opt_hw, p.max_hw)
    assert profiles["1080p"].max_hw == (1088, 1920)  # the coded height of 1080p video
    with pytest.raises(ProfileError, match="not a known profile: use one of 480p, 720p"):
        get_profile("1081p")


def test_the_presets_file_is_package_data_and_trt_readme_points_to_it():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert "profiles.toml" in cfg["options.package_data"]["dlgsa_vs.runtime.trt"]
    assert (ROOT / "dlgsa_vs" / "runtime" / "trt" / "profiles.toml").is_file()
    readme = (ROOT / "trt" / "README.md").read_text()
    assert "dlgsa_vs/runtime/trt/profiles.toml" in readme
    for name, (h, w) in EXPECTED.items():
        assert f"| {name} | {w}x{h} |" in readme  # the README's table follows the file (WxH)


@pytest.mark.parametrize("text,message", [
    ("profiles = [", "not valid TOML"),
    ("[other]\na = 1", "no [profiles.NAME] tables"),
    ('[profiles.x]\nstatic = "8x8"\nmin = "8x8"\nopt = "8x8"', "missing max"),
    ('[profiles.x]\nstatic = "8x8"\nmin = "8x8"\nopt = "8x8"\nmax = "8x8"\nmaxx = "9x9"', "unknown key(s) maxx"),
    ('[profiles.x]\nstatic = "8 by 8"\nmin = "8x8"\nopt = "8x8"\nmax = "8x8"', "static must be a size"),
    ('[profiles.x]\nstatic = "1x8"\nmin = "8x8"\nopt = "8x8"\nmax = "8x8"', "at least 2x2"),
    ('[profiles.x]\nstatic = "8x8"\nmin = "16x16"\nopt = "8x8"\nmax = "32x32"', "min <= opt <= max"),
])
def test_a_broken_presets_file_is_named_with_what_is_wrong(text, message):
    with pytest.raises(ProfileError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        parse_profiles(text, "mine.toml")


def test_a_presets_file_of_ones_own(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[profiles."cif"]\ndescription = "CIF"\nstatic = "352x288"\nmin = "176x144"\n'
                    'opt = "352x288"\nmax = "352x288"\n')
    assert load_profiles(path)["cif"].static == (288, 352)  # written WxH, held (H, W)


def _request(argv):
    args = build_cli.build_parser().parse_args(argv)
    settings = build_cli.run_settings(args)
    return settings, build_cli.engine_size(args, settings)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_profile_builds_the_static_and_dynamic_engines_of_the_preset(name):
    p = get_profile(name)
    assert _request(["--profile", name])[1] == _request(["--size", "%dx%d" % p.static[::-1]])[1] == (*p.static, None)
    _, (h, w, shapes) = _request(["--profile", name, "--dynamic"])
    assert (h, w) == (None, None) and shapes == ShapeRange(p.min_hw, p.opt_hw, p.max_hw)
    settings, tiled = _request(["--profile", name, "--tile", "512", "384", "--tile-pad", "8"])
    assert tiled == (*network_input_hw(*p.static, (384, 512), 8), None) and settings.tile == (384, 512)


def test_the_cache_keys_of_the_presets(small):
    profiles = load_profiles()
    keys = {}
    for name, p in profiles.items():
        static = engine_key(small, precision="fp16", height=p.static[0], width=p.static[1], gpu=GPU)
        dynamic = engine_key(small, precision="fp16", shapes=p.shape_range(), gpu=GPU)
        assert not static.dynamic and static.min_hw == static.opt_hw == static.max_hw == p.static
        assert dynamic.dynamic and (dynamic.min_hw, dynamic.opt_hw, dynamic.max_hw) == (p.min_hw, p.opt_hw, p.max_hw)
        assert (static.gpu_name, static.compute_capability) == GPU and static.precision == "fp16"
        keys[name, "static"], keys[name, "dynamic"] = static.digest(), dynamic.digest()
    assert len(set(keys.values())) == len(keys)  # every preset engine is its own cache entry
    # the key is the engine's, not the preset's: the same size asked with --size is the same entry
    p = profiles["720p"]
    assert engine_key(small, precision="fp16", height=720, width=1280, gpu=GPU).digest() == keys["720p", "static"]
    assert engine_key(small, precision="bf16", height=720, width=1280, gpu=GPU).digest() != keys["720p", "static"]
    assert engine_key(small, precision="fp16", height=720, width=1280, gpu=("NVIDIA L4", "8.9")).digest() != \
        keys["720p", "static"]
    assert p.static == (720, 1280)


def test_list_profiles_prints_every_preset(capsys):
    assert build_cli.main(["--list-profiles"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in EXPECTED) and "1920x1088" in out
    # WxH, once (was "480x854 ... 16:9 480p (854x480) frames", issue #36)
    line = next(ln for ln in out.splitlines() if ln.startswith("480p "))
    assert "854x480" in line and "480x854" not in line and line.count("854x480") == 2  # static and opt


def load_script():
    spec = importlib.util.spec_from_file_location("build_profiles", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_profiles_help_runs_without_tensorrt():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Build and verify the TensorRT engines" in done.stdout
    assert "--all" in done.stdout and "--dynamic" in done.stdout and "--precision" in done.stdout


def test_build_profiles_without_tensorrt_says_so_and_exits_2(capsys):
    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("TensorRT and a GPU are here: the script would build")
    assert load_script().main(["720p", "1080p", "--dynamic"]) == 2
    assert "TensorRT cannot run here" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    ([], "name the profiles to build"),
    (["999p"], "unknown profile(s) 999p"),
    (["1080p", "--tile", "-1", "8"], "--tile -1 8 is invalid"),
    (["1080p", "--dynamic", "--tile", "64", "64"], "--tile goes with --size or a static --profile"),
    (["1080p", "--batch", "0"], "--batch 0 is invalid"),
    (["1080p", "--workspace", "0"], "--workspace 0 is invalid"),
])
def test_build_profiles_usage_errors_are_one_line_exit_2(argv, message, capsys):
    assert load_script().main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_build_profiles_passes_the_options_on_to_dlgsa_build_engine(tmp_path):
    script = load_script()
    weights = tmp_path / "x.pth"
    weights.write_bytes(b"")
    args = script.build_parser().parse_args(["1080p", "-m", str(weights), "--tile", "512", "256", "--no-tlc",
                                             "--precision", "bf16", "--batch", "2", "--force"])
    argv = script.engine_argv(args, "1080p", dynamic=False)
    parsed = build_cli.build_parser().parse_args(argv)
    assert parsed.profile == "1080p" and parsed.model == str(weights) and build_cli.run_settings(parsed).tile == (256, 512)
    assert parsed.no_tlc and parsed.precision == "bf16" and parsed.batch == 2 and parsed.force
    assert "--dynamic" in script.engine_argv(args, "1080p", dynamic=True)


def test_the_size_options_defaults_are_shape_ranges():
    from dlgsa_vs.cli import shapes

    assert ShapeRange() == ShapeRange(shapes.DEFAULT_MIN, shapes.DEFAULT_OPT, shapes.DEFAULT_MAX)
