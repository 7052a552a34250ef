"""trt/build.py, the engine-building entry point: it hands the rest of its line to
dlgsa-build-engine, trt/build_profiles.py or trt/first_run_check.py and returns their exit
status (here without TensorRT: listing, help and usage errors)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "trt" / "build.py"


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("trt_build", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_trt_readme_names_the_entry_point_first():
    first = (ROOT / "trt" / "README.md").read_text().splitlines()[0]
    assert "engine-building entry point" in first and "trt/build.py" in first


def test_without_a_command_it_lists_them_and_exits_2(build, capsys):
    assert build.main([]) == 2
    out = capsys.readouterr().out
    assert all(name in out for name in ("engine", "profiles", "check"))


def test_engine_is_dlgsa_build_engine(build, capsys):
    from dlgsa_vs.cli.build_engine import main

    assert build.command_main("engine") is main
    assert build.main(["engine", "--list-profiles"]) == 0
    assert "1080p" in capsys.readouterr().out


def test_profiles_and_check_run_the_scripts(build, capsys):
    assert build.main(["profiles"]) == 2          # build_profiles.py's own usage error
    assert "name the profiles to build" in capsys.readouterr().err
    assert build.main(["check", "--help"]) == 0
    assert "first_run_check.py" in capsys.readouterr().out


def test_an_unknown_command_is_one_line_exit_2():
    r = subprocess.run([sys.executable, str(SCRIPT), "compile"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: unknown command 'compile': use engine, profiles, check"]
