#!/usr/bin/env bash
# The one prepared GPU check: CUDA tests, the Triton kernels' tests run natively, the kernel
# benchmark (ms, bytes, GB/s per fused kernel), then the network benchmark (cuda eager with
# kernels torch vs triton, compile / CUDA-graph rows, streams, trt where TensorRT is installed)
# and the torch.profiler table of one light x2 1080p fp16 frame; where PyAV is installed, the
# video pipeline end to end with its colour conversions on the GPU and on the CPU. Hard limits
# keep it under 9 minutes (+ the machine's start). Needs only torch, triton and pytest: on a bare GPU machine
# run it from the repository root without installing (PYTHONPATH is set here).
#
#   bash scripts/gpu_check.sh [RESULTS_DIR]      # default out/gpu_check; writes *.json there
# then copy RESULTS_DIR/gpu_bench.json and kernels.json into bench/ with the card and date.
set -u
cd "$(dirname "$0")/.."
results=${1:-out/gpu_check}
mkdir -p "$results"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
date -u +"date: %Y-%m-%dT%H:%MZ"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
$py -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, 'gpu', torch.cuda.is_available())"
echo "== CUDA tests"
# the VapourSynth filter's GPU colour path too, where vapoursynth is installed
vs_tests=$($py -c "import vapoursynth" 2>/dev/null && echo tests/test_vapoursynth_device.py)
timeout 90 $py -m pytest -q -p no:cacheprovider $(ls tests/test_cuda.py tests/test_tensorrt.py 2>/dev/null) $vs_tests 2>&1 | tail -15
echo "== Triton kernels: tests (natively on the GPU)"
timeout 100 $py -m pytest -q -p no:cacheprovider tests/test_triton_kernels.py 2>&1 | tail -15
echo "== Triton kernels: benchmark"
timeout 90 $py scripts/bench_kernels.py --json "$results/kernels.json"
echo "== network benchmark (+ profile)"
timeout 130 $py scripts/bench_gpu.py --precisions fp16 --sizes 720p 1080p --profile --json "$results/gpu_bench.json"
echo "== compile / CUDA graphs (light x2 fp16)"
timeout 90 $py scripts/bench_gpu.py --scales 2 --precisions fp16 --sizes 1080p --compile-rows \
    --json "$results/gpu_bench_compile.json"
if $py -c "import av" 2>/dev/null; then   # PyAV: only where it is installed
    for where in device cpu; do
        echo "== video end to end (sample clip, cuda, colour conversions on the $where)"
        timeout 45 $py scripts/bench_video.py --device cuda --convert $where --frames 24 \
            --json "$results/video_cuda_$where.json" | tail -4
    done
else
    echo "== video end to end: skipped (PyAV is not installed here)"
fi
ls -l "$results"
