#!/usr/bin/env bash
# Every GPU path of the project on one CUDA GPU with the tiny model, in under 4 minutes, one line
# per step saying what it proved (docs/gpu.md):
#   hf_generation          the `leafe` app (method=base): transformers generation on the GPU
#   openrlhf_sft           OpenRLHF train_sft through the `deepspeed` launcher, ZeRO-2, bf16 (method=imitation)
#   trl_grpo               TRL's GRPOTrainer on the GPU (method=grpo method.engine=trl)
#   lm_eval_hf             lm-eval --model hf on the SFT checkpoint, HumanEval (sized down with --metadata)
#   lm_eval_leafe_agent    lm-eval --model leafe-agent on the SFT checkpoint, multi-turn Sokoban
#   openrlhf_grpo_dry_run  OpenRLHF's train_ppo_ray command built and checked by its own parser (it needs vLLM to run)
#
#   benchmarks/gpu_smoke.sh [OUT]      # default OUT: gpu_smoke_out; each step's output in OUT/<step>.log
#
# Exit status: the number of failed steps, plus one when the whole took longer than 4 minutes on a
# GPU; 2 with nothing run when no CUDA GPU is visible. No flags: attention (flash-attn or sdpa with
# the stand-in) and the CUDA architecture list are decided by leafe_recipe/gpu.py. When
# TORCH_CUDA_ARCH_LIST is unset on a GPU of compute capability 9.0 or more, the smoke sets the
# arch-specific form NVIDIA's CUDA 12.8+ images use (9.0a on Hopper), which DeepSpeed 0.19.6 cannot
# read, to check that the launch normalises it.
#
# 0. Install, on a GPU machine with no network. On a machine with network, from the repository
#    root, in the project's environment (`make setup`: it builds deepspeed's wheel with torch):
#      .venv/bin/python scripts/wheelhouse.py build wheelhouse --python-version 3.12 --glibc 2.39 \
#          --present benchmarks/h200_image_packages.txt --leave-out ray,bitsandbytes,wandb
#    (what the H200 image of docs/gpu.md lacks, about 23 MiB; for any other cluster leave out
#    --present: everything but torch). Carry wheelhouse/ over, then, in the environment that has
#    the cluster's torch:
#      python3 scripts/wheelhouse.py install wheelhouse --keep-installed --editable .
#
# GPU_SMOKE_DEVICE=cpu runs the same steps without a GPU (ZeRO-0, float32 evaluation), which
# checks the script itself: slower (minutes per step on 2 cores), no time limit.
set -u -o pipefail
OUT=${1:-gpu_smoke_out}
DEVICE=${GPU_SMOKE_DEVICE:-cuda}
BUDGET=240
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=$(command -v python3 || command -v python)
BIN=$("$PY" -c "import os, sys; print(os.path.dirname(sys.executable))")  # where pip put leafe, leafe-eval, deepspeed
failed=0
export PYTHONUNBUFFERED=1

if [ "$DEVICE" = cuda ] && ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_smoke: no CUDA GPU visible to torch; nothing run" >&2
  exit 2
fi
if [ "$DEVICE" = cuda ] && [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
  arch=$("$PY" -c "import torch; m, n = torch.cuda.get_device_capability(0); print(f'{m}.{n}a' if m >= 9 else '')")
  [ -n "$arch" ] && export TORCH_CUDA_ARCH_LIST=$arch
fi
"$PY" -W ignore - <<'EOF'
import importlib.metadata as md, os, torch
from leafe_recipe.gpu import flash_attn
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
versions = ", ".join(f"{p} {md.version(p)}" for p in ("transformers", "deepspeed", "openrlhf", "trl", "lm_eval"))
print(f"gpu_smoke: {gpu}; torch {torch.__version__}, {versions}; {flash_attn().why}; "
      f"TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', '(unset)')}")
EOF

# step NAME LIMIT_SECONDS PROOF_FUNCTION COMMAND...: run, time, and print one line; the proof
# function reads the step's output and says what it showed (its failure fails the step).
step() {
  local name=$1 limit=$2 proof=$3
  shift 3
  local start end tenths status said
  start=$(date +%s%N)
  if timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1 && said=$($proof 2>>"$OUT/$name.log"); then
    status=ok
  else
    status=failed
    said="see $OUT/$name.log: $(grep -E 'error|Error' "$OUT/$name.log" | tail -1 | cut -c1-160)"
    failed=$((failed + 1))
  fi
  end=$(date +%s%N)
  tenths=$(((end - start) / 100000000))
  printf '%-22s %-6s %4d.%d s  %s\n' "$name" "$status" $((tenths / 10)) $((tenths % 10)) "$said"
}

# The line of a step's log that names its attention choice: "sdpa (flash_attn is not installed)".
attention() { grep -m1 "^\[attention\] $2" "$OUT/$1.log" | sed 's/^[^:]*: //'; }
# json FILE EXPR [ARG...]: print the Python expression EXPR of the file's JSON `d` and the strings `a`.
json() { "$PY" -c "import json, sys; d = json.load(open(sys.argv[1])); a = sys.argv[2:]; print($2)" "$1" "${@:3}"; }

proof_generation() {
  local a
  a=$(attention hf_generation "hf backend on $DEVICE") || return 1
  json "$OUT/base/results.json" "f\"the leafe app evaluated the tiny model with transformers on $DEVICE, attention {a[0]}: {d['runs']['base']['n_tasks']} Sokoban tasks x {d['runs']['base']['n_samples']} samples\"" "$a"
}
proof_sft() {
  local log=$OUT/sft/checkpoint/train.log launcher arch fused data
  test -f "$OUT/sft/checkpoint/.complete.json" || return 1
  data=$(grep -m1 -o -E '^\[train\] [0-9]+ examples x [0-9]+ epochs' "$OUT/openrlhf_sft.log" | sed 's/^\[train\] //')
  launcher=$(grep -m1 -o -E '^\$ [^ ]*(deepspeed --num_gpus [0-9]+|python[0-9.]* -m leafe_recipe.train)' "$log" | sed 's/^\$ .*\///') || return 1
  arch=$(grep -m1 '^\[deepspeed\] TORCH_CUDA_ARCH_LIST' "$OUT/openrlhf_sft.log" | sed 's/^\[deepspeed\] //; s/ for DeepSpeed.*//')
  fused=$(grep -q -i 'fused_adam' "$log" && echo "FusedAdam built, " || echo "")
  echo "OpenRLHF train_sft via \`$launcher\`, ZeRO-$ZERO bf16, attention $(attention openrlhf_sft 'OpenRLHF SFT')$(grep -q 'stand-in is on its PYTHONPATH' "$OUT/openrlhf_sft.log" && echo ' with the flash_attn stand-in'); ${fused}${arch:+$arch; }$data; checkpoint evaluated"
}
proof_trl() {
  local a
  a=$(attention trl_grpo "TRL GRPO") || return 1
  json "$OUT/grpo/grpo/checkpoint/trainer_log.json" "f\"TRL GRPOTrainer on $DEVICE, attention {a[0]}: {sum('loss' in r for r in d)} logged training step(s); checkpoint evaluated\"" "$a"
}
results_json() { find "$1" -name 'results_*.json' | head -1; }
proof_lm_eval_hf() {
  local f
  f=$(results_json "$OUT/lm_eval_hf") && [ -n "$f" ] || return 1
  json "$f" "f\"lm-eval hf on the SFT checkpoint, attention {a[0]}: {d['n-samples']['leafe_humaneval']['effective']} HumanEval problems x {d['configs']['leafe_humaneval']['repeats']} samples of <= {d['configs']['leafe_humaneval']['generation_kwargs']['max_gen_toks']} tokens judged in the sandbox, pass@1 {d['results']['leafe_humaneval']['pass@1,none']:.2f}\"" "$(attention lm_eval_hf 'lm-eval hf')"
}
proof_lm_eval_agent() {
  local f
  f=$(results_json "$OUT/lm_eval_agent") && [ -n "$f" ] || return 1
  json "$f" "f\"lm-eval leafe-agent on the SFT checkpoint, attention {a[0]}: {d['n-samples']['leafe_sokoban']['effective']} Sokoban tasks x {d['configs']['leafe_sokoban']['repeats']} episodes, {d['results']['leafe_sokoban']['mean_turns,none']:.1f} turns each, success {d['results']['leafe_sokoban']['correct,none']:.2f}\"" "$(attention lm_eval_leafe_agent 'hf backend')"
}
proof_grpo_dry_run() {
  local sh=$OUT/grpo_openrlhf/grpo/command.sh
  grep -q 'openrlhf.cli.train_ppo_ray' "$sh" || return 1
  echo "train_ppo_ray command accepted by OpenRLHF 0.11.2's parser ($(grep -o -E -- '--ds.attn_implementation [a-z_0-9]+' "$sh" | head -1)$(grep -q '^export PYTHONPATH' "$sh" && echo ', stand-in exported')); not run: it needs vLLM"
}

if [ "$DEVICE" = cuda ]; then ZERO=2 LONG=200 SHORT=120 EVAL_DTYPE=bfloat16; else ZERO=0 LONG=1800 SHORT=900 EVAL_DTYPE=float32; fi
SMALL=(experiment=smoke env.history_window=null env.n_train=8 env.n_test=4 n_samples=4 backend.device=$DEVICE "eval_cache_dir=$OUT/eval_cache")
CKPT=$OUT/sft/checkpoint
total_start=$(date +%s)

step hf_generation "$SHORT" proof_generation "$BIN/leafe" "${SMALL[@]}" "hydra.run.dir=$OUT/base"
step openrlhf_sft "$LONG" proof_sft "$BIN/leafe" method=imitation "${SMALL[@]}" method.sft.zero_stage=$ZERO \
  method.sft.bf16=true "hydra.run.dir=$OUT/sft"
step trl_grpo "$SHORT" proof_trl "$BIN/leafe" method=grpo method.engine=trl "${SMALL[@]}" env.n_train=4 method.group_size=4 \
  "hydra.run.dir=$OUT/grpo"
step lm_eval_hf "$SHORT" proof_lm_eval_hf "$BIN/leafe-eval" run --model hf --model_args "pretrained=$CKPT,dtype=$EVAL_DTYPE" \
  --device "$DEVICE" --tasks leafe_humaneval --limit 2 --metadata '{"humaneval": {"repeats": 4, "max_new_tokens": 64}}' \
  --confirm_run_unsafe_code --output_path "$OUT/lm_eval_hf" --log_samples
step lm_eval_leafe_agent "$SHORT" proof_lm_eval_agent "$BIN/leafe-eval" run --model leafe-agent \
  --model_args "pretrained=$CKPT,backend=hf" --device "$DEVICE" --tasks leafe_sokoban --limit 2 \
  --metadata '{"sokoban": {"kwargs": {"max_steps": 4}, "repeats": 4, "max_new_tokens": 64}}' \
  --output_path "$OUT/lm_eval_agent" --log_samples
step openrlhf_grpo_dry_run "$SHORT" proof_grpo_dry_run "$BIN/leafe" method=grpo method.engine=openrlhf method.dry_run=true \
  "${SMALL[@]}" env.n_train=4 method.group_size=4 "hydra.run.dir=$OUT/grpo_openrlhf"

seconds=$(($(date +%s) - total_start))
over=0
if [ "$DEVICE" = cuda ] && [ "$seconds" -gt "$BUDGET" ]; then over=1; fi
echo "gpu_smoke: $((6 - failed)) of 6 steps ok in $seconds s on $DEVICE$([ "$DEVICE" = cuda ] && echo " (limit $BUDGET s: $([ $over = 0 ] && echo within || echo OVER))"); logs in $OUT"
exit $((failed + over))
