#!/usr/bin/env bash
# Train the shipped models on a lent GPU for a fixed wall-clock budget: light x2, x3 and x4 at
# once on the one GPU (each process alone leaves it partly idle), each warm-started from the
# x2 training state and decaying its learning rate over the budget (train.py --minutes).
# Every minute the runs are packed into RESULTS_DIR/light_xN.tar (weights, logs, config), so
# a run cut short still brings back its last checkpoint.
#
#   python scripts/make_train_pack.py -o .gpu/train_pack.npz     # here: the data, ~38 MB
#   bash scripts/gpu_train.sh MINUTES [RESULTS_DIR]               # there
set -u
cd "$(dirname "$0")/.."
minutes=${1:?minutes of training}
results=${2:-out/gpu_train}
mkdir -p "$results" /tmp/runs
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
init=${INIT:-training/runs/light_x2/ema.safetensors}

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
        --data .gpu/train_pack.npz --minutes "$minutes" --warmup 200 --lr 5e-4 \
        --val-every 500 --ckpt-every 500 --threads 4 --init "$init" --out "/tmp/runs/light_x$1" \
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
