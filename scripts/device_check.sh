#!/usr/bin/env bash
# The course's one GPU check (issue 18), in order of importance; each part prints its figures
# as it goes and runs under its own timeout, so a run cut short still reports:
#   (a) decoding (bench generate): ours fast (FastGenerator, CUDA graph) vs transformers'
#       generate, same greedy tokens, fraction of the bandwidth bound; gpt2 batch 1 and 8,
#       gpt2-xl batch 1; a profile of three decoding steps
#   (b) the T4 path: fp16 + GradScaler for training, LoRA and generation (no inf/NaN, greedy
#       ids equal to fp32's on a briefly trained model)
#   (c) training step vs karpathy/nanoGPT's own model.py (bf16 autocast; fused AdamW;
#       torch.compile), and the two train presets' wall times
#   (d) notebooks 06, 07 (stand-in checkpoint of the real gpt2 shape), 08, 09, 10 at default settings
#   (e) peak GPU memory of LoRA vs full fine-tuning at the gpt2 shape
# Run from the repository root on a CUDA machine (about 12 minutes):
#
#     bash scripts/device_check.sh [--nanogpt PATH/TO/nanoGPT/model.py]
#
# `--dry` (or DEVICE_CHECK_DRY=1) runs every part on the CPU at tiny sizes (CI runs it).
# Part (c) needs nanoGPT's model.py (not part of this repository); without it it is skipped.
set -u
cd "$(dirname "$0")/.."
DRY=${DEVICE_CHECK_DRY:-0}
NANOGPT=${NANOGPT:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry) DRY=1 ;;
    --nanogpt) NANOGPT=$2; shift ;;
    *) echo "unknown argument $1; use --dry or --nanogpt PATH" >&2; exit 2 ;;
  esac
  shift
done
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error
PY=${PYTHON:-python3}
START=$SECONDS
FAILED=""
section() { echo; echo "=== $* ($((SECONDS - START)) s) ==="; }
# run SECONDS NAME CMD...: a part under its timeout; a failure is noted and the next part runs.
run() {
  local limit=$1 name=$2
  shift 2
  timeout "$limit" "$@"
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "[$name: exit $rc$([ $rc -eq 124 ] && echo ", cut off after ${limit} s")]"
    FAILED="$FAILED $name"
  fi
}
if [ "$DRY" = 1 ]; then D=--dry; S=1; else D=; S=0; fi

section "machine"
if [ "$DRY" = 1 ]; then
  echo "dry run: every part on the CPU at tiny sizes; the figures mean nothing"
else
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv 2>&1
fi
run 60 machine $PY -c "
import torch, transformers
from gpt2course.device import has_native_bf16, pick_dtype
print(f'torch {torch.__version__}, transformers {transformers.__version__}')
if torch.cuda.is_available():
    d = torch.device('cuda')
    print(f'GPU: {torch.cuda.get_device_name(d)}, capability {torch.cuda.get_device_capability(d)}')
    print(f'native bf16: {has_native_bf16(d)}; pick_dtype -> {pick_dtype(d)} (a T4 gets torch.float16)')
"

section "(a) decoding: ours fast vs transformers' generate"
if [ "$DRY" = 1 ]; then
  run 60 decode $PY -m gpt2course bench generate --model tiny --batch-sizes 1,2 --new-tokens 8 \
    --repeats 1 --skip-no-cache --profile
else
  run 180 decode $PY -m gpt2course bench generate --device cuda --batch-sizes 1,8 \
    --skip-no-cache --profile
  run 180 decode-xl $PY -m gpt2course bench generate --device cuda --model gpt2-xl --repeats 1 \
    --skip-no-cache
fi

section "(b) the T4 path: fp16 + GradScaler for training, LoRA and generation"
run $((S ? 60 : 120)) fp16 $PY -m gpt2course bench device fp16 $D

section "(c) training step: ours vs nanoGPT's model.py"
if [ -z "$NANOGPT" ]; then
  echo "skipped: no nanoGPT model.py (pass --nanogpt PATH/TO/model.py, karpathy/nanoGPT's own)"
elif [ "$DRY" = 1 ]; then
  run 60 train-nanogpt $PY -m gpt2course bench train --nanogpt "$NANOGPT" --batch-size 2 \
    --context-length 16 --rounds 1 --steps 2
else
  for extra in "" "--fused" "--fused --compile"; do
    for preset in shakespeare-bytes shakespeare-gpt2; do
      # shellcheck disable=SC2086  # $extra is a list of flags
      run 120 "train-nanogpt $preset $extra" $PY -m gpt2course bench train --nanogpt "$NANOGPT" \
        --device cuda --autocast bf16 --preset "$preset" --rounds 2 --steps 10 $extra
    done
  done
fi
if [ "$DRY" = 1 ]; then
  run 60 train-preset $PY -m gpt2course train --preset shakespeare-bytes train.max_steps=2 \
    train.eval_interval=2 train.eval_batches=1 data.batch_size=2 data.context_length=16
else
  for preset in shakespeare-bytes shakespeare-gpt2; do
    t0=$SECONDS
    run 180 "train-preset $preset" $PY -m gpt2course train --preset "$preset" | tail -3
    echo "train --preset $preset: $((SECONDS - t0)) s wall, command included"
  done
fi

section "(d) notebooks at default settings (GPT2COURSE_QUICK unset)"
STANDIN=/tmp/gpt2course-standin-gpt2
if [ "$DRY" = 1 ]; then
  run 60 notebooks $PY -m gpt2course bench notebooks 00 --quick
else
  # The stand-in has the real gpt2 shape (random weights: its text is noise), so 07's timings
  # are those of GPT-2's compute.
  $PY -c "from gpt2course.pretrained import write_standin_checkpoint as w; w('$STANDIN', n_layer=12, n_head=12, n_embd=768)"
  GPT2COURSE_MODEL=$STANDIN run 600 notebooks env -u GPT2COURSE_QUICK \
    $PY -m gpt2course bench notebooks 06 07 08 09 10 --markdown --timeout 300
fi

section "(e) peak GPU memory: LoRA vs full fine-tuning"
run $((S ? 60 : 120)) memory $PY -m gpt2course bench device memory $D

section "done${FAILED:+; failed:$FAILED}"
[ -z "$FAILED" ]
