#!/usr/bin/env python
"""Upscale a video file with DLGSANet: ``python scripts/upscale_video.py in.mp4`` -> in_x2.mp4.

The same program as the ``dlgsa-upscale`` console command; see ``--help`` and docs/video.md.
"""
import sys

from dlgsa_vs.cli.video import main

if __name__ == "__main__":
    sys.exit(main())
