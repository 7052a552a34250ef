"""What `pip install dlgsa-vs` does to a user's environment (issue #25, item 3).

* the torch a user already has (their CUDA, ROCm or CPU build, >= 2.11) is kept: pip's
  resolver, asked for a dry run in this environment, installs only dlgsa-vs;
* VapourSynth is an extra: the CLI and the Python API run with no vapoursynth importable.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def install_report(tmp_path_factory) -> dict:
    report = tmp_path_factory.mktemp("pip") / "report.json"
    # offline and without build isolation: the resolver sees exactly this environment's packages
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation",
                          "--report", str(report), "--quiet", str(REPO)], capture_output=True, text=True, timeout=300)
    if res.returncode != 0 and "No module named" in res.stderr and "setuptools" in res.stderr:
        pytest.skip("pip's dry run without build isolation needs setuptools in this environment")
    assert res.returncode == 0, res.stderr
    return json.loads(report.read_text())


def test_pip_keeps_the_installed_torch(install_report):
    import torch

    installs = {i["metadata"]["name"]: i["metadata"]["version"] for i in install_report["install"]}
    assert list(installs) == ["dlgsa-vs"], f"pip would install {installs} next to torch {torch.__version__}"


def test_requirements_torch_floor_and_optional_vapoursynth(install_report):
    (ours,) = install_report["install"]
    requires = ours["metadata"]["requires_dist"]
    assert "torch>=2.11" in requires
    vs = [r for r in requires if r.startswith("vapoursynth")]
    assert vs and all("extra ==" in r for r in vs), vs  # only in extras (vapoursynth, dev)
    assert "vapoursynth" in ours["metadata"]["provides_extra"]


def test_cli_runs_without_vapoursynth(tmp_path, micro_model):
    """A CLI-only user (no vapoursynth installed) upscales a clip: no import of it anywhere."""
    from video_support import video_facts, write_clip

    src = write_clip(tmp_path / "in.mkv", frames=2)
    code = ("import sys\nsys.modules['vapoursynth'] = None  # as if not installed: importing it fails\n"
            "from dlgsa_vs.cli.video import main\n"
            f"rc = main([{str(src)!r}, '--model', {str(micro_model)!r}, '--backend', 'cpu', '-q'])\n"
            "assert 'vapoursynth' not in sys.modules or sys.modules['vapoursynth'] is None\n"
            "sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert video_facts(tmp_path / "in_x2.mkv")["frames"] == 2
