#!/usr/bin/env bash
# The course's one GPU check (part 7): loading exactness on the GPU, the fp16/bf16 choice,
# and generation speed (ours, ours fast, transformers) at batch 1 and 8. Under 6 minutes;
# everything goes to stdout. Run from the repository root on a CUDA machine:
#
#     bash scripts/device_check.sh
#
# Needs torch, transformers and safetensors (a bare GPU image has them). The CLI smoke test
# at the end also needs GPT-2's tokenizer files in .cache/gpt2course (copied there from
# ~/.cache/gpt2course: vocab.bpe, encoder.json, r50k_base.tiktoken); it is skipped without.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error
if [ -f .cache/gpt2course/vocab.bpe ]; then export GPT2COURSE_CACHE="$PWD/.cache/gpt2course"; fi
PY=${PYTHON:-python3}
START=$SECONDS
section() { echo; echo "=== $* ($((SECONDS - START)) s) ==="; }

section "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv 2>&1
timeout 60 $PY - <<'EOF'
import torch, transformers, safetensors
from gpt2course.device import has_native_bf16, pick_dtype
d = torch.device("cuda")
print(f"torch {torch.__version__}, transformers {transformers.__version__}, safetensors {safetensors.__version__}")
print(f"GPU: {torch.cuda.get_device_name(d)}, capability {torch.cuda.get_device_capability(d)}")
print(f"native bf16: {has_native_bf16(d)}; pick_dtype -> {pick_dtype(d)} (a T4 would get torch.float16)")
EOF

section "loading: gpt2-shaped random checkpoint, our GPT vs transformers, on the GPU"
timeout 90 $PY - <<'EOF'
import tempfile, time, warnings
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from gpt2course.pretrained import load_pretrained
from gpt2course.device import pick_dtype
from gpt2course.fastgen import FastGenerator

warnings.simplefilter("ignore")
torch.backends.cuda.matmul.allow_tf32 = False  # exactness check: plain fp32 matmuls
d = torch.device("cuda")
torch.manual_seed(0)
hf = GPT2LMHeadModel(GPT2Config(attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0)).eval()
with tempfile.TemporaryDirectory() as tmp:
    hf.save_pretrained(tmp)
    hf = hf.to(d)
    idx = torch.randint(0, 50257, (2, 64), device=d)
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    ours = load_pretrained(tmp, device=d)
    torch.cuda.synchronize()
    size = sum(p.numel() * p.element_size() for p in ours.parameters())
    peak = torch.cuda.max_memory_allocated() - base
    print(f"fp32 load: {time.perf_counter() - t0:.2f} s, model {size / 2**30:.3f} GiB, peak added GPU memory {peak / 2**30:.3f} GiB ({peak / size:.2f}x)")
    with torch.no_grad():
        ref = hf(idx).logits
        diff = (ours(idx) - ref).abs().max().item()
    print(f"fp32 max |logit difference| vs transformers: {diff:.2e} -> {'PASS' if diff < 1e-4 else 'FAIL'} (goal < 1e-4)")
    dt = pick_dtype(d)
    half = load_pretrained(tmp, device=d, dtype=dt)
    hf_half = hf.to(dt)
    with torch.no_grad():
        a, b = half(idx).float(), hf_half(idx).logits.float()
    print(f"{dt}: max |ours - transformers| {(a - b).abs().max().item():.3f}, max |ours - fp32| {(a - ref).abs().max().item():.3f} (logit scale {ref.abs().max().item():.1f})")
    hf = hf.float()
    x = idx[:1, :16]
    with torch.no_grad():
        want = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=40, do_sample=False, pad_token_id=0)
    for name, gen in (("fast, CUDA graph", FastGenerator(ours)), ("fast, eager", FastGenerator(ours, use_cuda_graph=False))):
        got = gen.generate(x, 40, temperature=0)
        same = (got == want)[0].tolist()
        first = same.index(False) if False in same else None
        print(f"greedy fp32, {name}: {'same 40 tokens as transformers' if first is None else f'differs from token {first - 16}'}")
EOF

GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
case "$GPU_NAME" in
  *H200*) BW=4800 ;;  # GB/s, H200 SXM
  *H100*PCIe*) BW=2000 ;;
  *H100*) BW=3350 ;;  # H100 SXM
  *A100*) BW=2039 ;;
  *T4*) BW=320 ;;
  *) BW=1000 ;;
esac

section "bench generate: gpt2, batch 1 and 8 (bandwidth bound at ${BW} GB/s)"
timeout 150 $PY -m gpt2course bench generate --device cuda --model gpt2 --batch-sizes 1,8 --skip-no-cache --bandwidth-gbs "$BW" 2>&1

section "bench generate: gpt2-xl, batch 1"
timeout 100 $PY -m gpt2course bench generate --device cuda --model gpt2-xl --batch-sizes 1 --new-tokens 100 --skip-no-cache --bandwidth-gbs "$BW" 2>&1

section "generate command, streamed (stand-in checkpoint: random weights, the text is noise)"
if [ -n "${GPT2COURSE_CACHE:-}" ]; then
  timeout 40 $PY -c "from gpt2course.pretrained import write_standin_checkpoint as w; w('/tmp/standin-gpt2')" &&
    timeout 40 $PY -m gpt2course generate "The GPU says" --model /tmp/standin-gpt2 --device cuda --max-new-tokens 30 --seed 0
else
  echo "skipped: no tokenizer files in .cache/gpt2course"
fi

section "extra: the fast decoder with torch.compile on top of the CUDA graph (gpt2, batch 1)"
timeout 120 $PY - <<'PYEOF'
import time, warnings
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from gpt2course.device import pick_dtype
from gpt2course.fastgen import FastGenerator
from gpt2course.pretrained import from_transformers

warnings.simplefilter("ignore")
d = torch.device("cuda")
torch.manual_seed(0)
with d:
    ours = from_transformers(GPT2LMHeadModel(GPT2Config()).to(pick_dtype(d)).eval())
idx = torch.randint(0, 50257, (1, 20), device=d)
for name, kw in (("graph", {}), ("graph + compile", {"compile": True})):
    gen = FastGenerator(ours, max_len=220, **kw)
    t0 = time.perf_counter()
    gen.generate(idx, 5, temperature=0)  # warm-up (and compilation)
    torch.cuda.synchronize()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen.generate(idx, 200, temperature=0)
    torch.cuda.synchronize()
    print(f"{name:<16} {200 / (time.perf_counter() - t0):8.1f} tokens/s (warm-up {warm:.1f} s)")
PYEOF

section "done"
