"""A run killed with SIGKILL cannot remove its hidden temporary output; the next run for the
same output does (and leaves alone the one of a run that is still going)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from video_support import SCRIPT, leftovers, run_cli, video_facts, write_clip

ONE = ("--threads", "1")


def test_sigkill_leftover_is_removed_by_the_next_run(tmp_path, capsys, micro_model):
    src = write_clip(tmp_path / "long.mkv", frames=400, codec="ffv1")
    out = tmp_path / "long_x2.mkv"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(src), "-o", str(out), "-m", str(micro_model),
                             "-c", "ffv1", *ONE], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)      # some frames written
        assert proc.poll() is None, "the run ended before it could be killed: make the clip longer"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = leftovers(tmp_path)
    assert len(left) == 1 and f"part-{proc.pid}-" in left[0] and not out.exists()

    # the temporary file of a process that is alive (this test's parent) is not touched
    live = tmp_path / f".long_x2.part-{os.getppid()}-abc123.mkv"
    live.write_bytes(b"in progress")
    short = tmp_path / "short.mkv"
    write_clip(short, frames=3, codec="ffv1")
    rc, err = run_cli(capsys, short, "-o", out, "-m", micro_model, "-c", "ffv1", *ONE)
    assert rc == 0, err
    assert "removed what an interrupted run left" in err and left[0] in err, err
    assert leftovers(tmp_path) == [live.name]
    assert video_facts(out)["frames"] == 3
