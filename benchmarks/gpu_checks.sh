#!/usr/bin/env bash
# The benchmarks' GPU modes in one go (what docs/benchmarks.md records): SD 1.5 face-LoRA training
# it/s and peak VRAM at 512 px, seconds per portrait (LoRA and FACT recipes), SDXL training and
# portraits at 1024 px. Needs a CUDA GPU, torch, transformers, peft, accelerate, diffusers
# (+ bitsandbytes for 8-bit AdamW). Writes each table to $OUT (default ./gpu-results).
#     bash benchmarks/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, diffusers, transformers, peft; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
} 2>&1 | tee "$OUT/env.txt"
timeout 200 python3 benchmarks/bench_train.py --resolution 512 --device cuda --steps 20 --warmup 3 --no-breakdown 2>&1 | grep -v -i warn | tee "$OUT/train_sd15.txt"
timeout 150 python3 benchmarks/bench_portrait_gpu.py --device cuda --dtype fp16 --images 4 2>&1 | grep -v -i warn | tee "$OUT/portrait_sd15.txt"
timeout 200 python3 benchmarks/bench_sdxl.py --device cuda --steps 10 --warmup 2 --portraits 2 --denoise-steps 30 2>&1 | grep -v -i warn | tee "$OUT/sdxl.txt"
