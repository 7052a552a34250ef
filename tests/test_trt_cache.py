"""The engine cache (dlgsa_vs.runtime.trt.cache) with real artifacts and no TensorRT.

The cache takes the functions that write and read an engine. Here they write and read a real
torch.export program (torch.export.save / torch.export.load), which is what torch-tensorrt's
saved engines are too, so keys, reuse, corruption handling, atomic builds, list and clear are
exercised for real on a machine without a GPU.
"""
import copy
import dataclasses
import json
import shutil

import pytest
import torch
from torch import nn

from dlgsa_vs.arch import DLGSANet
from dlgsa_vs.cli import build_engine as build_cli
from dlgsa_vs.runtime.trt.cache import (EngineCache, EngineCacheError, EngineCacheWarning, EngineKey, default_cache_dir,
                                runtime_versions)
from dlgsa_vs.runtime.trt.engine import engine_key
from dlgsa_vs.runtime.weights import load_model, read_state_dict, save_safetensors, weights_digest
from conftest import randomize_, small_config

BASE = dict(weights_sha256="ab" * 32, variant="light", scale=2, tlc=True, tlc_kernel=96, batch=1, dynamic=True,
            min_hw=(16, 16), opt_hw=(540, 960), max_hw=(1088, 1920), precision="fp16",
            gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0", tensorrt_version="10.13.0.35",
            torch_tensorrt_version="2.14.0", torch_version="2.14.1+cu130", dlgsa_version="0.1.0", key_version=1)

# one different value per field, every one keeping the key valid
CHANGED = dict(weights_sha256="cd" * 32, variant="full", scale=4, tlc=False, tlc_kernel=48, batch=2,
               min_hw=(32, 16), opt_hw=(540, 961), max_hw=(1080, 1920), precision="bf16",
               gpu_name="NVIDIA H200", compute_capability="8.9", tensorrt_version="10.14.1",
               torch_tensorrt_version="2.15.0", torch_version="2.14.1+cu128", dlgsa_version="0.2.0", key_version=2)


def key(**over) -> EngineKey:
    return EngineKey(**{**BASE, **over})


# --- keys ---

def test_the_key_changes_when_any_field_changes():
    names = {f.name for f in dataclasses.fields(EngineKey)}
    assert names == set(CHANGED) | {"dynamic"}, "a new key field needs a value in CHANGED"
    base = key().digest()
    digests = {base}
    for name, value in CHANGED.items():
        d = key(**{name: value}).digest()
        assert d != base, name
        digests.add(d)
    # static vs dynamic over the same single size: different graphs, different engines
    one = dict(min_hw=(540, 960), opt_hw=(540, 960), max_hw=(540, 960))
    static, dynamic = key(dynamic=False, **one).digest(), key(dynamic=True, **one).digest()
    assert static != dynamic
    digests |= {static, dynamic}
    assert len(digests) == len(CHANGED) + 3  # all different from each other too


def test_the_key_is_stable_and_round_trips():
    k = key()
    assert k.digest() == key().digest() == EngineKey(**dict(reversed(list(BASE.items())))).digest()
    assert EngineKey.from_fields(json.loads(json.dumps(k.fields()))) == k
    assert EngineKey.from_fields(k.fields()).digest() == k.digest()
    assert k.digest() == key(min_hw=[16, 16]).digest()  # lists from JSON are pairs like tuples
    assert len(k.digest()) == 64 and k.canonical_json().startswith('{"batch":1,')


@pytest.mark.parametrize("bad,match", [
    (dict(precision="int8"), "precision"),
    (dict(batch=0), "batch"),
    (dict(dynamic=False), "static EngineKey has one size"),
    (dict(min_hw=(600, 16)), "min <= opt <= max"),
    (dict(max_hw=(0, 5)), "positive"),
])
def test_invalid_keys_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        key(**bad)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return randomize_(DLGSANet(**small_config())).eval()


def test_weights_digest_follows_the_content_not_the_file(small_model, tmp_path):
    state = small_model.state_dict()
    a = save_safetensors(small_model, tmp_path / "a.safetensors")
    (tmp_path / "elsewhere").mkdir()
    b = shutil.copy(a, tmp_path / "elsewhere" / "renamed.safetensors")
    pth = tmp_path / "net_g_1000.pth"
    torch.save({"params_ema": state}, pth)  # the authors' BasicSR layout
    digests = {weights_digest(read_state_dict(p)[0]) for p in (a, b, pth)}
    assert digests == {weights_digest(state)}, "same tensors from .safetensors, a copy and a .pth"
    assert weights_digest(load_model(a)) == weights_digest(load_model(pth)) == weights_digest(small_model)

    name = sorted(state)[3]
    changed = dict(state)
    changed[name] = state[name].clone()
    changed[name].view(-1)[0] += 1e-3  # one value of one tensor
    assert weights_digest(changed) != weights_digest(state)
    assert weights_digest({**state, name: state[name].half()}) != weights_digest(state)  # dtype
    assert weights_digest({**state, name: state[name].reshape(1, -1)}) != weights_digest(state)  # shape
    renamed = {("x" + k if k == name else k): v for k, v in state.items()}
    assert weights_digest(renamed) != weights_digest(state)  # names
    assert len({weights_digest({**state, name: t}) for t in (state[name].bfloat16(), state[name].half())}) == 2


def test_engine_keys_of_models_from_different_files_agree(small_model, tmp_path):
    a = save_safetensors(small_model, tmp_path / "one.safetensors")
    pth = tmp_path / "two.pth"
    torch.save(small_model.state_dict(), pth)
    gpu = ("NVIDIA H100 80GB HBM3", "9.0")
    kw = dict(precision="fp16", height=64, width=96, gpu=gpu)
    ka, kb = engine_key(load_model(a), **kw), engine_key(load_model(pth), **kw)
    assert ka == kb and ka.digest() == kb.digest()
    assert (ka.variant, ka.scale, ka.tlc, ka.dynamic, ka.opt_hw) == ("custom", 2, True, False, (64, 96))

    other = load_model(pth)
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 0.01  # visible in fp16 too
    assert engine_key(other, **kw).digest() != ka.digest()
    assert engine_key(load_model(pth, tlc=False), **kw).digest() != ka.digest()
    assert engine_key(load_model(pth), **{**kw, "precision": "fp32"}).digest() != ka.digest()
    assert engine_key(load_model(pth), **{**kw, "gpu": ("NVIDIA H200", "9.0")}).digest() != ka.digest()


def test_an_engine_key_sees_the_weights_at_the_engine_precision(small_model):
    # a backend hands over its model already cast to fp16 on the GPU; dlgsa-build-engine loads
    # it in fp32: both must name the same fp16 engine, and fp32 engines must still differ
    half = copy.deepcopy(small_model).half()
    gpu = ("NVIDIA H100 80GB HBM3", "9.0")
    for precision, same in (("fp16", True), ("fp32", False)):
        a = engine_key(small_model, precision=precision, height=64, width=96, gpu=gpu)
        b = engine_key(half, precision=precision, height=64, width=96, gpu=gpu)
        assert (a == b) is same, precision
    state = small_model.state_dict()
    assert weights_digest(state, as_dtype=torch.float16) == weights_digest(half, as_dtype=torch.float16)
    assert weights_digest(state, as_dtype=torch.float16) != weights_digest(state)


# --- the cache, with a real torch.export artifact ---

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x)) + x


X = torch.rand(1, 3, 8, 8)


class Builder:
    """Builds by exporting and saving a real program; counts how often it had to."""

    def __init__(self):
        torch.manual_seed(1)
        self.module = Tiny().eval()
        self.builds = 0

    def build(self, path):
        self.builds += 1
        with open(path, "wb") as fh:  # (a path not named .pt2 works too, with a logged warning)
            torch.export.save(torch.export.export(self.module, (X,)), fh)

    @staticmethod
    def load(path):
        with open(path, "rb") as fh:
            return torch.export.load(fh).module()

    def expected(self):
        with torch.no_grad():
            return self.module(X)


def test_get_or_build_builds_once_then_reuses(tmp_path):
    b, k = Builder(), key()
    cache = EngineCache(tmp_path / "engines")  # created on first use
    first = cache.get_or_build(k, b.build, b.load, log=None)
    again = EngineCache(tmp_path / "engines").get_or_build(k, b.build, b.load, log=None)  # another process
    assert b.builds == 1
    assert torch.allclose(first(X), b.expected()) and torch.allclose(again(X), b.expected())
    ep, mp = cache.engine_path(k), cache.meta_path(k)
    assert ep.name == f"{k.digest()}.ep" and ep.is_file()
    meta = json.loads(mp.read_text())
    assert meta["key"] == k.fields() and meta["size_bytes"] == ep.stat().st_size and meta["build_seconds"] >= 0
    assert meta["created"].endswith("+00:00")
    cache.get_or_build(key(batch=4), b.build, b.load, log=None)  # another key: another engine
    assert b.builds == 2
    cache.get_or_build(k, b.build, b.load, force=True, log=None)
    assert b.builds == 3 and len(cache.list()) == 2
    assert not list((tmp_path / "engines").glob(".*.part*"))


def _truncate(ep, mp):
    ep.write_bytes(ep.read_bytes()[:100])


def _garbage_same_size(ep, mp):
    ep.write_bytes(b"\0" * ep.stat().st_size)  # sizes agree: only loading finds it out


def _garble_json(ep, mp):
    mp.write_text("{not json")


def _drop_json(ep, mp):
    mp.unlink()


def _drop_engine(ep, mp):
    ep.unlink()


def _other_key(ep, mp):
    meta = json.loads(mp.read_text())
    meta["key"]["batch"] = 7
    mp.write_text(json.dumps(meta))


@pytest.mark.parametrize("corrupt", [_truncate, _garbage_same_size, _garble_json, _drop_json, _drop_engine,
                                     _other_key])
def test_a_corrupt_entry_is_rebuilt_with_a_warning(tmp_path, corrupt):
    b, k = Builder(), key()
    cache = EngineCache(tmp_path)
    cache.get_or_build(k, b.build, b.load, log=None)
    corrupt(cache.engine_path(k), cache.meta_path(k))
    with pytest.warns(EngineCacheWarning, match=f"{k.digest()}.ep is unusable"):
        out = cache.get_or_build(k, b.build, b.load, log=None)
    assert b.builds == 2 and torch.allclose(out(X), b.expected())
    assert [e.problem for e in cache.list()] == [None]


@pytest.mark.parametrize("error", [RuntimeError("TensorRT ran out of memory"), KeyboardInterrupt()])
def test_an_interrupted_build_leaves_no_entry(tmp_path, error):
    b, k = Builder(), key()
    cache = EngineCache(tmp_path)

    def failing(path):
        path.write_bytes(b"half an engine")  # the build got this far
        raise error

    with pytest.raises(type(error)):
        cache.get_or_build(k, failing, b.load, log=None)
    assert cache.list() == [] and list(tmp_path.iterdir()) == [tmp_path / f".{k.digest()}.lock"]
    cache.get_or_build(k, b.build, b.load, log=None)  # and the next try builds normally
    assert b.builds == 1 and len(cache.list()) == 1


def test_a_build_that_writes_nothing_or_cannot_be_loaded_is_an_error(tmp_path):
    b, k = Builder(), key()
    cache = EngineCache(tmp_path)
    with pytest.raises(EngineCacheError, match="wrote nothing"):
        cache.get_or_build(k, lambda path: None, b.load, log=None)

    def broken_load(path):
        raise ValueError("not an engine")

    with pytest.raises(EngineCacheError, match="cannot be loaded.*not an engine"):
        cache.get_or_build(k, b.build, broken_load, log=None)
    assert cache.list() == []


def test_the_cache_folder_must_be_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(EngineCacheError, match="DLGSA_CACHE_DIR"):
        EngineCache(blocker / "engines").get_or_build(key(), Builder().build, Builder.load, log=None)


def test_list_and_clear(tmp_path):
    b = Builder()
    cache = EngineCache(tmp_path)
    now = {k: v for k, v in runtime_versions().items()}
    current = key(**{k: v for k, v in now.items()})
    old = key(**{**now, "torch_version": "2.11.0", "variant": "tiny"})
    for k in (current, old):
        cache.get_or_build(k, b.build, b.load, log=None)
    (tmp_path / ("0" * 64 + ".json")).write_text("garbage")  # an unreadable entry
    (tmp_path / ".deadbeef.999999999.0.part.ep").write_bytes(b"left by a crash")
    entries = cache.list()
    assert len(entries) == 3
    assert {e.key.digest() for e in entries if e.key} == {current.digest(), old.digest()}
    assert [e.problem is not None for e in entries].count(True) == 1

    removed = cache.clear(stale_only=True)
    assert {e.digest for e in removed} == {old.digest(), "0" * 64}
    assert [e.key for e in cache.list()] == [current]
    assert not (tmp_path / ".deadbeef.999999999.0.part.ep").exists()
    assert len(cache.clear()) == 1 and cache.list() == []


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DLGSA_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("DLGSA_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "dlgsa-vs" / "engines"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "dlgsa-vs" / "engines"
    assert EngineCache().root == default_cache_dir()


# --- the command's --list / --clear (they need no GPU) ---

def test_build_command_lists_and_clears(tmp_path, capsys):
    b = Builder()
    cache = EngineCache(tmp_path)
    cache.get_or_build(key(), b.build, b.load, log=None)
    cache.get_or_build(key(dynamic=False, min_hw=(540, 960), max_hw=(540, 960), precision="fp32"), b.build,
                       b.load, log=None)
    assert build_cli.main(["--list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "light x2" in out and "dyn 16x16..1920x1088 (opt 960x540)" in out and " 960x540 " in out
    assert "fp32" in out and "NVIDIA H100 80GB HBM3 (9.0)" in out and "2 engine(s)" in out

    assert build_cli.main(["--clear", "--stale", "--cache-dir", str(tmp_path)]) == 0  # built by other versions
    assert "removed 2 stale engine(s)" in capsys.readouterr().out
    assert build_cli.main(["--list", "--cache-dir", str(tmp_path)]) == 0
    assert "no cached engines" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--size", "540"], "is not a size WxH"),
    (["--size", "960x540", "--max", "1920x1080"], "not both"),
    (["--min", "64x64", "--max", "32x32"], "min <= opt <= max"),
    (["--list", "--clear"], "do not go together"),
    (["--stale"], "--stale goes with --clear"),
    (["--batch", "0", "--size", "64x64"], "--batch 0 is invalid: it must be >= 1"),
    (["--variant", "full", "--scale", "3", "--size", "64x64"], "no packaged weights for full x3"),
])
def test_build_command_usage_errors_are_one_line(argv, message, capsys):
    try:
        code = build_cli.main(argv)
    except SystemExit as exc:  # argparse's own checks
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


@pytest.mark.parametrize("argv,expected", [
    ([], ((16, 16), (540, 960), (1088, 1920))),                       # the default range (Python's ShapeRange())
    (["--max", "256x256"], ((16, 16), (256, 256), (256, 256))),       # opt kept inside the range
    (["--min", "600x600"], ((600, 600), (600, 960), (1088, 1920))),
    (["--min", "8x8", "--opt", "64x64", "--max", "3840x2160"], ((8, 8), (64, 64), (2160, 3840))),
])
def test_partial_size_ranges_are_completed_within_the_given_bounds(argv, expected):
    from dlgsa_vs.cli.shapes import shape_from_args

    h, w, shapes = shape_from_args(build_cli.build_parser().parse_args(argv), default_dynamic=True)
    assert (h, w) == (None, None) and (shapes.min_hw, shapes.opt_hw, shapes.max_hw) == expected
    assert shape_from_args(build_cli.build_parser().parse_args(["--size", "30x20"]), True) == (20, 30, None)  # WxH in, (H, W) out
