#!/usr/bin/env bash
# The one prepared GPU check. In order of what matters most, each step within what is left of
# a 530 s budget (9 minutes on the lent machine, + its start):
#   compile_check  every kernel specialization lowered to a cubin for this card (no launch)
#   kernel sets    light x2 1080p, fp16 and bf16: eager / triton / triton+compile: fps, peak
#                  memory, PSNR vs fp32 (the first call also checks each kernel against torch)
#   kernels        per fused kernel ms, GB/s and the fraction of the card's bandwidth, fp16/bf16
#   tests          the Triton kernels' checks natively, the CUDA tests (where pytest is installed)
#   network        bench_gpu rows (kernels torch vs triton), profile; compile / CUDA graphs rows
#   video          end to end, where PyAV is installed
#   vulkan         the vulkan backend (ncnn fp16, light x2 1080p: fps), where ncnn imports; the lent
#                  machines have no network: carry the ncnn/pnnx wheels (docs/vulkan.md, "On a lent GPU")
# Needs only torch (+ triton for the kernel steps); a missing pytest, triton or PyAV skips its
# steps with a line, never stops the script. Nothing is installed.
#
#   bash scripts/gpu_check.sh [RESULTS_DIR]     # default bench/gpu_check/<UTC time>; *.json + summary.json
#   bash scripts/gpu_check.sh --dry-run [DIR]   # the same steps on the CPU: tiny shapes, Triton's
#                                               # interpreter; default DIR a new temp dir (never bench/)
set -u
cd "$(dirname "$0")/.."
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
if [ $dry = 1 ]; then
    results=${1:-$(mktemp -d /tmp/gpu_check_dry.XXXXXX)}
else
    results=${1:-bench/gpu_check/$(date -u +%Y%m%dT%H%MZ)}
fi
mkdir -p "$results"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
budget=${GPU_CHECK_BUDGET_S:-530}
stretch=1
if [ $dry = 1 ]; then  # Triton's interpreter is ~100x slower than a GPU: every step gets 8x its time, so
    stretch=8          # that the rehearsal runs each step to its end (about 25 minutes on 2 cores)
    budget=${GPU_CHECK_BUDGET_S:-$((530 * stretch))}
fi
t_start=$SECONDS

# step NAME MAX_SECONDS CMD...: run CMD with at most MAX_SECONDS and what is left of the budget
step() {
    local name=$1 max=$(($2 * stretch))
    shift 2
    local left=$((budget - (SECONDS - t_start)))
    if [ $left -lt 15 ]; then echo "== $name: skipped (budget spent)"; return 0; fi
    [ $max -gt $left ] && max=$left
    echo "== $name (at most ${max} s)"
    timeout "$max" "$@"
    local rc=$?
    [ $rc = 124 ] && echo "   ($name: stopped at ${max} s)"
    [ $rc != 0 ] && [ $rc != 124 ] && echo "   ($name: exit $rc)"
    return 0
}
has() { $py -c "import $1" >/dev/null 2>&1; }

date -u +"date: %Y-%m-%dT%H:%MZ"
echo "results: $results$([ $dry = 1 ] && echo ' (dry run)')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available())" \
    || { echo "torch does not import: nothing to check"; exit 1; }
if has triton; then $py -c "import triton; print('triton', triton.__version__)"; triton=1
else echo "triton: not importable (kernel steps skipped)"; triton=0; fi

if [ $dry = 1 ]; then
    sizes=(--sizes 16x16); tiny=(--tiny); dry_flag=(--dry-run); interp=(env TRITON_INTERPRET=1)
else
    sizes=(--sizes 1080p); tiny=(); dry_flag=(); interp=(env)
fi
arch=$($py -c "import torch; c=torch.cuda.get_device_capability() if torch.cuda.is_available() else (9, 0); print(c[0]*10+c[1])" 2>/dev/null || echo 90)

if [ $triton = 1 ]; then
    # compiles for the card without launching; must run without the interpreter
    step "compile_check (cuda:$arch)" 90 env -u TRITON_INTERPRET $py -m dlgsa_vs.arch.kernels.compile_check \
        --arch "$arch" --json "$results/kernels_compile.json" | grep -v "^ok "
    step "kernel sets (eager / triton / triton+compile, fp16 bf16)" 200 "${interp[@]}" $py scripts/bench_gpu.py \
        --kernel-sets --precisions fp16 bf16 "${sizes[@]}" "${dry_flag[@]}" --json "$results/kernel_sets.json"
    step "Triton kernels: benchmark (roofline)" 80 "${interp[@]}" $py scripts/bench_kernels.py "${tiny[@]}" \
        --dtypes fp16 bf16 --no-network --json "$results/kernels.json"
fi
if [ $dry = 1 ]; then
    echo "== tests, network rows, profile, video: CUDA only (the CPU suite runs them in CI)"
else
    if has pytest; then
        [ $triton = 1 ] && step "Triton kernels: tests (natively on the GPU)" 100 \
            $py -m pytest -q -p no:cacheprovider -x tests/triton_interp/kernels_check.py
        vs_tests=$(has vapoursynth && echo tests/test_vapoursynth_device.py)
        step "CUDA tests" 60 $py -m pytest -q -p no:cacheprovider \
            $(ls tests/test_cuda.py tests/test_tensorrt.py 2>/dev/null) $vs_tests
    else
        echo "== tests: skipped (pytest is not installed here)"
    fi
    step "network benchmark (+ profile)" 100 $py scripts/bench_gpu.py --precisions fp16 --sizes 720p 1080p \
        --profile --json "$results/gpu_bench.json"
    step "compile / CUDA graphs (light x2 fp16)" 80 $py scripts/bench_gpu.py --scales 2 --precisions fp16 \
        --sizes 1080p --compile-rows --json "$results/gpu_bench_compile.json"
    if has ncnn; then
        step "vulkan (ncnn fp16, light x2 1080p; first frame converts)" 150 $py scripts/bench_vulkan.py \
            --sizes 1080p --precisions fp16 --frames 5 --no-psnr --json "$results/vulkan.json"
    else
        echo "== vulkan: skipped (ncnn is not installed here: carry the wheels, docs/vulkan.md)"
    fi
    if has av; then
        for where in device cpu; do
            step "video end to end (colour conversions on the $where)" 40 $py scripts/bench_video.py \
                --device cuda --convert $where --frames 24 --json "$results/video_cuda_$where.json"
        done
    else
        echo "== video end to end: skipped (PyAV is not installed here)"
    fi
fi

# one summary: card, fps / peak memory / PSNR per kernel set and precision, roofline per kernel
$py - "$results" <<'EOF' || echo "summary: failed"
import json, os, sys
d = sys.argv[1]
def load(name):
    p = os.path.join(d, name)
    return json.load(open(p)) if os.path.exists(p) else None
ks, kb, cc = load("kernel_sets.json"), load("kernels.json"), load("kernels_compile.json")
summary = dict(
    card=(ks or {}).get("gpu") or (kb or {}).get("device"), dry_run=bool((ks or {}).get("dry_run")),
    torch=(ks or kb or {}).get("torch"), triton=(kb or cc or {}).get("triton"),
    compiled=None if cc is None else f"{sum('error' not in r for r in cc['results'])}/{len(cc['results'])}",
    kernel_sets=[{k: r.get(k) for k in ("mode", "precision", "dtype_ran", "fps", "peak_gib", "psnr_vs_fp32_db",
                                        "first_call_s", "kernels_bad", "error")} for r in (ks or {}).get("kernel_sets", [])],
    roofline=[{k: r.get(k) for k in ("kernel", "shape", "triton_gbps", "peak_gbps", "of_peak", "speedup")}
              for r in (kb or {}).get("rows", []) if r.get("kernel") != "network"])
json.dump(summary, open(os.path.join(d, "summary.json"), "w"), indent=1)
print(json.dumps(summary, indent=1)[:3000])
EOF
echo "== done in $((SECONDS - t_start)) s"
ls -l "$results"
