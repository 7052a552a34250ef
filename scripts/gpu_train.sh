#!/usr/bin/env bash
# Train the shipped models on a lent GPU for a fixed wall-clock budget. SCALES (default "4": the
# scale still short of its target, see MODEL_CARD.md) run at once on the one GPU, each
# warm-started from its packaged weights (from x2's where a scale has none) and decaying its
# learning rate over the budget (train.py --minutes). LR (default 2e-4) is the peak learning
# rate, BATCH (default 32) the batch of 48 px LR patches; COMPILE=1 adds train.py --compile
# (not yet measured on a GPU, and its compile time comes out of the budget); KERNELS (default
# auto: the fused Triton kernels, forward and backward) or KERNELS=torch for the plain forms.
# Every minute the runs are packed into RESULTS_DIR/<NAME>_xN.tar (weights, logs, config), so
# a run cut short still brings back its last checkpoint. DATA (default .gpu/train_pack.npz)
# and NAME (default light) pick the model: the compressed-video weights train with
# DATA=.gpu/degrade_pack_x2_x4.npz NAME=light_video (warm-started from dlgsanet_light_video_xN;
# package with package_weights.py <run> --as light-video). That pack, two draws per image and
# scale and small enough to be carried (41.8 MB; with the 17 MB tree under the device's 64 MiB):
# make_train_pack.py -o .gpu/degrade_pack_x2_x4.npz --degrade --scale 2 --scale 4 --seed 0
# --max-side 320 240 --draws 2
#
#   python scripts/make_train_pack.py -o .gpu/train_pack.npz     # here: the data, 44.5 MB
#   [SCALES="4 2 3"] bash scripts/gpu_train.sh MINUTES [RESULTS_DIR]   # there
#   python scripts/package_weights.py <run>  # here, after unpacking RESULTS_DIR/<NAME>_xN.tar
#
# Measured 2026-11-26 on an H200 (bench/README.md, training/runs/gpu_h200_2026-11-26): with
# three runs (x2, x3, x4) sharing the GPU, light x4 at batch 32 x 48 px made ~3.9 iterations/s.
set -u
cd "$(dirname "$0")/.."
minutes=${1:?minutes of training}
results=${2:-out/gpu_train}
mkdir -p "$results" /tmp/runs
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
lr=${LR:-2e-4}
scales=${SCALES:-4}
batch=${BATCH:-32}
compile=()
[ "${COMPILE:-0}" = 1 ] && compile=(--compile)
kernels=${KERNELS:-auto}  # auto = the fused Triton kernels on the GPU; KERNELS=torch for the plain forms
data=${DATA:-.gpu/train_pack.npz}
name=${NAME:-light}
init_for() {  # the packaged weights of that model and scale, else the paper-protocol ones, else x2's body
    local f=dlgsa_vs/models/dlgsanet_${name}_x$1.safetensors
    [ -f "$f" ] || f=dlgsa_vs/models/dlgsanet_light_x$1.safetensors
    [ -f "$f" ] || f=dlgsa_vs/models/dlgsanet_light_x2.safetensors
    echo "${INIT:-$f}"
}

pack() {
    for s in $scales; do
        n=${name}_x$s
        [ -d "/tmp/runs/$n" ] || continue
        tar -cf "$results/.$n.tar" -C /tmp/runs --exclude=last.pt "$n" "$n.log" 2>/dev/null \
            && mv "$results/.$n.tar" "$results/$n.tar"
    done
}

pids=()
for s in $scales; do
    $py scripts/train.py --variant light --scale "$s" --batch "$batch" --patch 48 \
        --data "$data" --minutes "$minutes" --warmup 200 --lr "$lr" \
        --val-every 500 --ckpt-every 500 --threads 4 --init "$(init_for "$s")" --out "/tmp/runs/${name}_x$s" --kernels "$kernels" "${compile[@]}" \
        > "/tmp/runs/${name}_x$s.log" 2>&1 &
    pids+=($!)
done
ticks=0
while kill -0 "${pids[@]}" 2>/dev/null; do
    sleep 5
    if (( ++ticks % 12 == 0 )); then
        pack
        tail -qn1 /tmp/runs/${name}_x*/val.jsonl 2>/dev/null
    fi
done
wait
pack
for n in $scales; do
    echo "== ${name} x$n"; grep -v "it/s\]" "/tmp/runs/${name}_x$n.log" | tail -4; tail -n3 "/tmp/runs/${name}_x$n/val.jsonl"
done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true
