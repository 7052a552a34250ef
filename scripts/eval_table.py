#!/usr/bin/env python
"""A markdown table comparing two models' ``eval_sr.py --json`` results, condition by condition.

    python scripts/eval_table.py --names light light-video \\
        --pairs dlgsa_vs/models/eval/compressed_light_x2_set5.json dlgsa_vs/models/eval/compressed_light_video_x2_set5.json

Each pair is (first model's JSON, second model's JSON) of one set and scale (several files of
one model joined with '+'); conditions (clean, ENCODER:CRF) are matched by their ``--degrade`` spec and listed in the second file's order. A
condition only one file has is left out and named on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _conditions(paths: Path) -> dict[str, dict]:
    """Results by condition of one file, or of several joined with '+' (a.json+b.json)."""
    found = {}
    for path in str(paths).split("+"):
        data = json.loads(Path(path).read_text())
        for r in data.get("results", [data]):   # one --degrade writes a bare result
            found[(r.get("degradation") or {}).get("spec", "clean")] = r
    return found


def _set_name(result: dict) -> str:
    return Path(result["hr_dir"]).parent.name


def rows(first: Path, second: Path) -> list[list[str]]:
    a, b = _conditions(first), _conditions(second)
    out = []
    for spec, rb in b.items():
        ra = a.get(spec)
        if ra is None:
            print(f"{first}: no {spec} result (left out)", file=sys.stderr)
            continue
        ma, mb, bic = ra["mean"]["model"], rb["mean"]["model"], rb["mean"]["bicubic"]
        out.append([_set_name(rb), f"x{rb['scale']}", spec, f"{bic['psnr']:.3f} / {bic['ssim']:.4f}",
                    f"{ma['psnr']:.3f} / {ma['ssim']:.4f}", f"{mb['psnr']:.3f} / {mb['ssim']:.4f}",
                    f"{mb['psnr'] - ma['psnr']:+.2f} dB"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", nargs=2, default=["first", "second"], metavar=("FIRST", "SECOND"))
    ap.add_argument("--pairs", nargs="+", type=Path, required=True, help="FIRST.json SECOND.json, repeated")
    args = ap.parse_args()
    if len(args.pairs) % 2:
        ap.error("--pairs takes JSON files two by two (first model's, second model's)")
    first, second = args.names
    print(f"| set | scale | input | bicubic | {first} | {second} | {second} - {first} |")
    print("|---|---|---|---|---|---|---|")
    for i in range(0, len(args.pairs), 2):
        for row in rows(args.pairs[i], args.pairs[i + 1]):
            print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
