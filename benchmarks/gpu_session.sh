#!/usr/bin/env bash
# Every check of this repo that needs a GPU, as one prepared run (a few minutes):
#   1. torch-dtensor-patch's suite on CUDA with NCCL (one rank per GPU),
#   2. a sharded (FSDP, NCCL) attribution against the unsharded one,
#   3. benchmarks/attribution.py on the gpu preset.
# Run from the repo root on a CUDA machine whose python3 has torch; wheels in
# .whl/ (bergson, torchopt, datasets, ... for Python 3.12) are installed to
# /tmp/site first if present. Results go to $OUT (default gpu-results/).
set -u
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
SRC=packages/magic-core/src:packages/magic-datasets/src:packages/magic-unlearn/src
export PYTHONPATH=$SRC:packages/torch-dtensor-patch/src:tools/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
GPUS=$(python3 -c "import torch; print(torch.cuda.device_count())")
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  python3 -m torch_dtensor_patch status
} 2>&1 | tee "$OUT/machine.txt"

echo "== 1. torch-dtensor-patch on CUDA/NCCL, $GPUS rank(s)"
for mode in apply off; do
  env TORCH_DTENSOR_PATCH_TEST_DEVICE=cuda TORCH_DTENSOR_PATCH_TEST_WORLD="$GPUS" \
    $( [ $mode = off ] && echo TORCH_DTENSOR_PATCH=0 ) \
    timeout 240 python3 -m pytest packages/torch-dtensor-patch/tests -q -p no:cacheprovider -p no:xdist 2>&1 | tail -25 | tee "$OUT/dtensor-cuda-$mode.txt"
done

echo "== 2. FSDP attribution (NCCL) against unsharded"
if [ -f packages/magic-core/scripts/fsdp_gpu_check.py ]; then
  timeout 240 python3 packages/magic-core/scripts/fsdp_gpu_check.py --out "$OUT/fsdp-gpu.json" 2>&1 \
    | tail -30 | tee "$OUT/fsdp-gpu.txt"
fi

echo "== 3. attribution cost, gpu preset"
timeout 420 python3 benchmarks/attribution.py --preset gpu --device cuda \
  --only "${BENCH_ONLY:-bergson,magic_core,magic_core_all_memory,magic_core_gradients_memory}" \
  --json "$OUT/attribution-gpu.json" 2>&1 | grep -v -E "it/s\]|s/it\]|Warning|warn" | tee "$OUT/attribution-gpu.txt"
