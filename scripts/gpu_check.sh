#!/usr/bin/env bash
# GPU check (issue 6): the CUDA tests, then the GPU benchmark table (cuda, and trt where
# TensorRT is installed) for light x2/x4, fp16/fp32, 480p/720p/1080p input. About 3 minutes
# on an H100; hard limits keep it under 8. Needs only torch (+ pytest): on a bare GPU machine
# run it from the repository root without installing (PYTHONPATH is set here).
#
#   bash scripts/gpu_check.sh [RESULTS_DIR]      # default out/gpu_check; writes gpu_bench.json
set -u
cd "$(dirname "$0")/.."
results=${1:-out/gpu_check}
mkdir -p "$results"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
date -u +"date: %Y-%m-%dT%H:%MZ"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available())"
echo "== CUDA tests"
timeout 90 $py -m pytest -q -p no:cacheprovider $(ls tests/test_cuda.py tests/test_tensorrt.py 2>/dev/null) 2>&1 | tail -25
echo "== benchmark"
timeout 120 $py scripts/bench_gpu.py --json "$results/gpu_bench.json"
