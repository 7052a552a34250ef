"""Every invalid option value of dlgsa-build-engine and dlgsa-export-onnx is a usage error: one
line that names the option, exit code 2, nothing built or written. Through the real command
lines (main(argv)); none of these cases gets as far as TensorRT or the exporter."""
import pytest

from dlgsa_vs.cli import build_engine, export_onnx


@pytest.fixture(scope="module")
def not_a_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "notes.pth"
    path.write_bytes(b"this is not a checkpoint")
    return path


def run(main, argv, capsys) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own checks
        code = exc.code
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


def assert_usage_error(code, err, option):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert option in err, err


COMMON = [  # (argv, the option the message must name); --size added where the tool needs one
    (["--variant", "huge"], "--variant"),
    (["--scale", "5"], "--scale"),
    (["-s", "two"], "--scale"),
    (["-m", "/no/such/file.pth"], "-m/--model"),
    (["--threads", "0"], "--threads"),
    (["--threads", "-2"], "--threads"),
    (["--threads", "many"], "--threads"),
    (["--batch", "0"], "--batch"),
    (["--batch", "-1"], "--batch"),
    (["--batch", "1.5"], "--batch"),
    (["--size", "540"], "--size"),
    (["--size", "0x0"], "--size"),
    (["--size", "1x30"], "--size"),
    (["--size", "-4x8"], "--size"),
    (["--min", "64x64", "--max", "32x32"], "--min/--opt/--max"),
    (["--min", "16x16", "--opt", "8x8"], "--min/--opt/--max"),
    (["--opt", "big"], "--opt"),
    (["--max", "1x1"], "--max"),
    (["--size", "64x64", "--max", "128x128"], "--size"),
]

BUILD = COMMON + [
    (["--tile", "-8", "8"], "--tile -8 8"),
    (["--tile", "8", "-8"], "--tile 8 -8"),
    (["--tile", "8"], "--tile"),
    (["--tile", "x", "8"], "--tile"),
    (["--tile-pad", "-1"], "--tile-pad -1"),
    (["--tile-pad", "one"], "--tile-pad"),
    (["--precision", "fp8"], "--precision"),
    (["--device-index", "-1"], "--device-index -1"),
    (["--device-index", "gpu0"], "--device-index"),
    (["--workspace", "0"], "--workspace"),
    (["--workspace", "-2"], "--workspace"),
    (["--workspace", "nan"], "--workspace"),
    (["--workspace", "inf"], "--workspace"),
    (["--workspace", "lots"], "--workspace"),
    (["--opt-level", "9"], "--opt-level"),
    (["--opt-level", "-1"], "--opt-level"),
    (["--profile", "1081p"], "--profile 1081p"),
    (["--profile", "1080p", "--size", "64x64"], "--profile"),
    (["--profile", "1080p", "--min", "64x64"], "--profile"),
    (["--dynamic"], "--dynamic"),
    (["--profile", "1080p", "--dynamic", "--tile", "256", "256"], "--tile"),
    (["--min", "64x64", "--tile", "256", "256"], "--tile"),
    (["--list", "--clear"], "--list"),
    (["--list", "--list-profiles"], "--list-profiles"),
    (["--stale"], "--stale"),
    (["--bogus"], "--bogus"),
]


@pytest.mark.parametrize("argv,option", BUILD, ids=[" ".join(a) for a, _ in BUILD])
def test_build_engine_usage_errors(argv, option, capsys, tmp_path):
    needs_size = not any(a in argv for a in ("--size", "--min", "--opt", "--max", "--profile", "--list",
                                             "--clear", "--stale", "--dynamic"))
    code, err = run(build_engine.main, argv + ["--size", "64x64"] * needs_size + ["--cache-dir", tmp_path / "c"],
                    capsys)
    assert_usage_error(code, err, option)
    assert not (tmp_path / "c").exists()


def test_build_engine_cache_dir_that_is_a_file(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for extra in (["--list"], ["--clear"], ["--size", "64x64"]):
        code, err = run(build_engine.main, ["--cache-dir", blocker, *extra], capsys)
        assert_usage_error(code, err, f"--cache-dir {blocker}")
    assert blocker.read_text() == "x"


def test_build_engine_model_that_is_not_a_model(not_a_model, capsys, tmp_path):
    code, err = run(build_engine.main, ["-m", not_a_model, "--size", "64x64", "--cache-dir", tmp_path], capsys)
    assert_usage_error(code, err, str(not_a_model.name))


def test_build_engine_packaged_weights_that_do_not_exist(capsys, tmp_path):
    code, err = run(build_engine.main, ["--variant", "full", "-s", "3", "--size", "64x64", "--cache-dir", tmp_path],
                    capsys)
    assert_usage_error(code, err, "full x3")


EXPORT = COMMON + [
    ([], "--size"),
    (["--tile", "64", "64"], "--tile"),  # no tiles in an ONNX file: not an option here
    (["--opset", "11"], "--opset"),
    (["--opset", "999"], "--opset 999"),
    (["--opset", "x"], "--opset"),
    (["-o", "x.txt"], ".onnx"),
    (["--verify-size", "8"], "--verify-size"),
    (["--verify-size", "30x40"], "--verify-size 30x40"),  # a static file is verified at its own size
    (["--min", "16x16", "--max", "64x64", "--verify-size", "99x20"], "--verify-size 99x20"),
    (["--fp16", "yes"], "yes"),
    (["--bogus"], "--bogus"),
]


@pytest.mark.parametrize("argv,option", EXPORT, ids=[" ".join(a) or "no size" for a, _ in EXPORT])
def test_export_onnx_usage_errors(argv, option, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    needs_size = argv and not any(a in argv for a in ("--size", "--min", "--opt", "--max"))
    code, err = run(export_onnx.main, argv + ["--size", "24x30"] * bool(needs_size), capsys)
    assert_usage_error(code, err, option)
    assert list(tmp_path.iterdir()) == []


def test_export_onnx_model_that_is_not_a_model(not_a_model, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run(export_onnx.main, ["-m", not_a_model, "--size", "24x30"], capsys)
    assert_usage_error(code, err, str(not_a_model.name))
    assert list(tmp_path.iterdir()) == []
