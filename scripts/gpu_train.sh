#!/usr/bin/env bash
# Train the shipped models on a lent GPU for a fixed wall-clock budget: light x2, x3 and x4 at
# once on the one GPU (each process alone leaves it partly idle), each warm-started from its
# packaged weights (from x2's where a scale has none) and decaying its learning rate over the
# budget (train.py --minutes). LR (default 2e-4) is the peak learning rate.
# Every minute the runs are packed into RESULTS_DIR/light_xN.tar (weights, logs, config), so
# a run cut short still brings back its last checkpoint.
#
#   python scripts/make_train_pack.py -o .gpu/train_pack.npz     # here: the data, ~38 MB
#   bash scripts/gpu_train.sh MINUTES [RESULTS_DIR]               # there
#   python scripts/package_weights.py <run>  # here, after unpacking RESULTS_DIR/light_xN.tar
#
# Measured 2026-11-26 on an H200 (bench/README.md, training/runs/gpu_2026-11-26): with the three
# runs sharing the GPU, light x4 at batch 32 x 48 px made ~3.9 iterations/s.
set -u
cd "$(dirname "$0")/.."
minutes=${1:?minutes of training}
results=${2:-out/gpu_train}
mkdir -p "$results" /tmp/runs
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
lr=${LR:-2e-4}
init_for() {  # the packaged weights of that scale, else x2's body
    local f=dlgsa_vs/models/dlgsanet_light_x$1.safetensors
    [ -f "$f" ] || f=dlgsa_vs/models/dlgsanet_light_x2.safetensors
    echo "${INIT:-$f}"
}

pack() {
    for d in /tmp/runs/light_x*/; do
        n=$(basename "$d")
        tar -cf "$results/.$n.tar" -C /tmp/runs --exclude=last.pt "$n" "$n.log" 2>/dev/null \
            && mv "$results/.$n.tar" "$results/$n.tar"
    done
}

pids=()
for spec in "2 32" "4 32" "3 16"; do
    set -- $spec
    $py scripts/train.py --variant light --scale "$1" --batch "$2" --patch 48 \
        --data .gpu/train_pack.npz --minutes "$minutes" --warmup 200 --lr "$lr" \
        --val-every 500 --ckpt-every 500 --threads 4 --init "$(init_for "$1")" --out "/tmp/runs/light_x$1" \
        > "/tmp/runs/light_x$1.log" 2>&1 &
    pids+=($!)
done
ticks=0
while kill -0 "${pids[@]}" 2>/dev/null; do
    sleep 5
    if (( ++ticks % 12 == 0 )); then
        pack
        tail -qn1 /tmp/runs/light_x*/val.jsonl 2>/dev/null
    fi
done
wait
pack
for n in 2 3 4; do
    echo "== light x$n"; grep -v "it/s\]" "/tmp/runs/light_x$n.log" | tail -4; tail -n3 "/tmp/runs/light_x$n/val.jsonl"
done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true
