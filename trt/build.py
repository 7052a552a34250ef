#!/usr/bin/env python3
"""The engine-building entry point: build (and check) TensorRT engines on the GPU machine
that will upscale, with dlgsa-vs[trt] installed.

    python trt/build.py engine --profile 1080p               # one engine: dlgsa-build-engine
    python trt/build.py profiles 720p 1080p --dynamic        # build + verify presets: build_profiles.py
    python trt/build.py check                                # first run on a new GPU / TensorRT: first_run_check.py
    python trt/build.py engine --help                        # each command's own options

Each command gets the rest of the line unchanged and its exit status is this one's; nothing
is built here. The runtime that loads the engines is the package, ``dlgsa_vs/runtime/trt/``.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

HERE = Path(__file__).resolve().parent
COMMANDS = {
    "engine": "build one engine into the cache (= dlgsa-build-engine, dlgsa_vs/cli/build_engine.py)",
    "profiles": "build the engines of size presets and verify each against PyTorch (trt/build_profiles.py)",
    "check": "the first run of the TensorRT path on a new GPU / TensorRT (trt/first_run_check.py)",
}


def _script(name: str) -> ModuleType:
    """A sibling script of this folder as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_trt_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def command_main(command: str) -> Callable[[list[str] | None], int]:
    """The ``main(argv)`` of ``command``."""
    if command == "engine":
        from dlgsa_vs.cli.build_engine import main

        return main
    return _script({"profiles": "build_profiles", "check": "first_run_check"}[command]).main


def usage() -> str:
    lines = ["usage: python trt/build.py COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {what}" for name, what in COMMANDS.items()]
    lines += ["", "python trt/build.py COMMAND --help: that command's options; see trt/README.md"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}: use {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return command_main(command)(rest)
    except SystemExit as exc:    # argparse's --help and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


if __name__ == "__main__":
    sys.exit(main())
