#!/usr/bin/env bash
# Issue 5's figures in one go, on an otherwise idle machine: mask AP of both shipped models,
# eager vs onnxruntime in-process, and each served over REST at concurrency 8.
# Logs go to docs/bench_logs/. Usage: benchmarks/run_backends.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-80}
logs=docs/bench_logs
repo=$(mktemp -d)
trap 'rm -rf "$repo"' EXIT
py=.venv/bin/python
for model in yolact_shapes maskrcnn_shapes; do
    .venv/bin/maskserve evaluate --model "$model" --num 500 --json "docs/eval_$model.json" \
        > "$logs/eval_$model.log"
    ln -s "$PWD/models/zoo/$model" "$repo/$model"
    .venv/bin/maskserve export --model "$model" --model-folder "$repo/${model}_onnx" \
        > "$logs/export_$model.log" 2>&1
done
$py benchmarks/bench_backends.py --reps 10 | tee "$logs/bench_backends.log"
for model in yolact_shapes yolact_shapes_onnx maskrcnn_shapes maskrcnn_shapes_onnx; do
    $py benchmarks/bench_serving.py --model-repository "$repo" --model "$model" \
        --protocols rest --concurrency 8 --batching on --requests "$requests" --reps 20 \
        | tee "$logs/serving_rest8_$model.log"
done
