"""vspipe out of the box (issue #36): with the venv not activated, VSScript cannot find the
Python to embed until `vapoursynth config` has written its entry; `make vs-config` (run by
`make demo` and when make creates the venv) writes it. The real vspipe of this environment, a
clean PATH and an empty configuration folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
VSPIPE = VENV / "bin" / "vspipe"

pytestmark = [
    pytest.mark.skipif(not VSPIPE.is_file(), reason=f"no vspipe in this environment ({VSPIPE}): "
                                                   f"pip install '.[vapoursynth]'"),
    pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed"),
]


def test_vspipe_runs_without_the_venv_on_path_after_make_vs_config(tmp_path):
    script = tmp_path / "tiny.vpy"
    script.write_text("import vapoursynth as vs\nvs.core.std.BlankClip(width=16, height=8, length=2).set_output()\n")
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "PATH": "/usr/bin:/bin"}

    def vspipe_info() -> subprocess.CompletedProcess:
        return subprocess.run([str(VSPIPE), "--info", str(script)], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)

    before = vspipe_info()  # what a new user met: the venv's bin not on PATH, no configuration
    assert before.returncode != 0 and "vapoursynth config" in before.stderr
    done = subprocess.run(["make", "-s", "-C", str(ROOT), "vs-config", f"VENV={VENV}"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    after = vspipe_info()
    assert after.returncode == 0, after.stderr
    assert "Width: 16" in after.stdout and "Frames: 2" in after.stdout
