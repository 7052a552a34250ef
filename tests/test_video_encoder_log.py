"""SVT-AV1 prints its banner (Svt[info]) and thread-priority warnings itself on stderr:
silenced by default, shown with -v (issue #25 item 6). A real encode in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

CLI = [sys.executable, "-c", "import sys; from dlgsa_vs.cli.video import main; sys.exit(main())"]


def _has(name):
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("svtlog")
    src = d / "s.mp4"
    subprocess.run(CLI + ["--make-sample", str(src)], check=True, capture_output=True, timeout=300)
    return src


def _run(sample, out, *extra, env=None):
    env = dict(os.environ if env is None else env)
    r = subprocess.run(CLI + [str(sample), "-o", str(out), "-c", "libsvtav1", "--frames", "2", *extra],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    return r.stderr


@pytest.mark.skipif(not _has("libsvtav1"), reason="PyAV's FFmpeg has no libsvtav1")
def test_svt_quiet_by_default_and_shown_with_verbose(sample, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SVT_LOG"}
    quiet = _run(sample, tmp_path / "a.mkv", env=env)
    assert "Svt[" not in quiet, quiet
    loud = _run(sample, tmp_path / "b.mkv", "-v", env=env)
    assert "Svt[" in loud, loud
    # a user's own SVT_LOG wins
    own = _run(sample, tmp_path / "c.mkv", env={**env, "SVT_LOG": "3"})
    assert "Svt[" in own


@pytest.mark.skipif(not _has("libx265"), reason="PyAV's FFmpeg has no libx265")
def test_x265_banner_quiet_by_default_and_shown_with_verbose(sample, tmp_path):
    def run(out, *extra):
        r = subprocess.run(CLI + [str(sample), "-o", str(out), "-c", "libx265", "--frames", "2", *extra],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return r.stderr

    assert "x265 [" not in run(tmp_path / "a.mkv")
    assert "x265 [" in run(tmp_path / "b.mkv", "-v")
