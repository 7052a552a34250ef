# The README's two commands: `make demo` (environment + the main job on the CPU) and `make test`.
# Both create the same virtual environment (.venv, Python >= 3.12) when it is missing.

PYTHON ?= $(shell for p in python3.12 python3.13 $$HOME/.pyenv/versions/3.12*/bin/python3 $$HOME/.pyenv/versions/3.13*/bin/python3; do \
	"$$p" -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV := .venv
STAMP := $(VENV)/.installed
TORCH_CI := 2.14.1

.PHONY: demo test bench clean-venv vs-config

$(STAMP): setup.cfg pyproject.toml setup.py dlgsa_vs/vapoursynth/plugin.c
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.12 not found (VapourSynth's wheels need it); set PYTHON=/path/to/python3.12" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	@# setup.cfg accepts any torch >= 2.11; CI and the numbers in bench/ use this newest one
	$(VENV)/bin/python -m pip install -e '.[dev]' 'torch==$(TORCH_CI)'
	@# torch-tensorrt's Python source alone, without TensorRT, for tests/test_trt_contract.py (no wheel: they skip)
	$(VENV)/bin/python -m pip install --no-deps 'torch-tensorrt==2.14.*' || echo "note: no torch-tensorrt wheel here; the TensorRT API-contract tests will skip"
	$(MAKE) --no-print-directory vs-config VENV=$(VENV)
	touch $(STAMP)

# vspipe embeds Python through VSScript, which reads the Python to load from
# $XDG_CONFIG_HOME/vapoursynth/vapoursynth.toml (~/.config/...); without an entry for this venv it runs
# `vapoursynth config` from PATH, which fails unless the venv is activated. Write the entry once.
vs-config:
	@if [ -x $(VENV)/bin/vapoursynth ]; then $(VENV)/bin/vapoursynth config; \
	else echo "note: no VapourSynth in $(VENV) (pip install '.[vapoursynth]'): vspipe not set up"; fi

demo: $(STAMP) vs-config
	mkdir -p out
	$(VENV)/bin/dlgsa-upscale -y --make-sample out/sample.mp4
	$(VENV)/bin/dlgsa-upscale -y out/sample.mp4

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python scripts/bench_dynamic_conv.py --json bench/dynamic_conv.json
	$(VENV)/bin/python scripts/bench_cpu.py --json bench/cpu.json
	$(VENV)/bin/python scripts/bench_train.py --json bench/train.json
	$(VENV)/bin/python scripts/bench_video.py --json bench/video.json

clean-venv:
	rm -rf $(VENV)
