#!/usr/bin/env python
"""Copy a training run's EMA weights into the package as a packaged model at its scale.

    python scripts/package_weights.py training/runs/light_x2                      # -> light
    python scripts/package_weights.py training/runs/video_x2 --as light-video     # -> light-video

Writes ``dlgsa_vs/models/<file stem>_x<scale>.safetensors`` (``dlgsa_vs/runtime/packaged.py``) with
the run's metadata (iterations, data, wall time, device). Evaluate it with
``scripts/eval_sr.py`` and update ``dlgsa_vs/models/MODEL_CARD.md``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlgsa_vs.runtime.packaged import MODELS
from dlgsa_vs.runtime.weights import (default_model_path, detect_config, read_state_dict, save_safetensors,
                              variant_name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="training run folder (holds ema.safetensors)")
    ap.add_argument("--as", dest="name", choices=list(MODELS),
                    help="the packaged model it becomes (default: its architecture's name, e.g. light)")
    args = ap.parse_args()
    state, meta = read_state_dict(args.run / "ema.safetensors")
    config = detect_config(state)
    variant = variant_name(config)
    name = args.name or variant
    if name not in MODELS or MODELS[name].variant != variant:
        ap.error(f"{args.run} holds a DLGSANet-{variant}, which cannot be packaged as {name}")
    target = default_model_path(name, config["upscale"])
    meta = {k: v for k, v in meta.items() if k not in ("format", "network", "variant", "scale")}
    save_safetensors(state, target, run=args.run.name, **meta)
    print(f"{args.run / 'ema.safetensors'} -> {target} ({meta.get('iterations', '?')} iterations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
