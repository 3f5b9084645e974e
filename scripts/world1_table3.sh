#!/usr/bin/env bash
# Paper Table 3 on World 1 at equal short budgets: each row fine-tunes the same model
# (default: the shipped World 1 RAM model) for the same steps on the same clips, differing from
# the first row by the overrides shown, then reads its validation numbers from metrics.csv.
#   bash scripts/world1_table3.sh [INIT_WEIGHTS] [STEPS]      (inside scripts/env.sh's environment)
# Two runs at a time, one thread each. The last two rows probe the clip sampler (not in the paper). Writes runs/world1_t3_<row>/ and prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
INIT=${1:-models/world1_ram.safetensors}
STEPS=${2:-100}
BASE="--config world1_cpu_long data.sampler=occlusion data.max_stride=4 data.clip_length=32
 optim.lr=2.5e-4 optim.warmup_steps=10 train.steps=$STEPS train.val_interval=0 train.checkpoint_interval=25
 data.val_clips=16 data.val_clip_length=96 data.val_batch_size=4 train.threads=1 train.init_from=$INIT"
declare -A ROWS=(
  [frame_norm]=""
  [global_norm]="loss.walk_normalisation=global"
  [no_smoothing]="loss.label_smoothing=false"
  [global_walk]="model.walk_local=false"
  [overlap]="loss.overlap=true loss.overlap_weight=50"
  [stride2]="data.max_stride=2"
  [uniform_sampler]="data.sampler=uniform"
)
ORDER=(frame_norm global_norm no_smoothing global_walk overlap stride2 uniform_sampler)
run() {  # row
  local name=world1_t3_$1
  if [ -f "runs/$name/model.safetensors" ]; then return 0; fi
  local resume=""; [ -f "runs/$name/checkpoint.pt" ] && resume="--resume"
  # shellcheck disable=SC2086
  ram-train $BASE ${ROWS[$1]} train.name=$name $resume > "runs/$name.log" 2>&1
}
mkdir -p runs
for ((i = 0; i < ${#ORDER[@]}; i += 2)); do
  run "${ORDER[$i]}" &
  [ $((i + 1)) -lt ${#ORDER[@]} ] && run "${ORDER[$((i + 1))]}" &
  wait
done
python - "${ORDER[@]}" <<'EOF'
import csv, sys
print("| row | overrides | val walker px | val last seen px | train hm (last 20 steps) | train ram |")
print("|---|---|---|---|---|---|")
for row in sys.argv[1:]:
    rows = list(csv.DictReader(open(f"runs/world1_t3_{row}/metrics.csv")))
    val = [r for r in rows if r.get("val_occl_walker_px")][-1]
    log = [r for r in rows if r.get("hm")][-1]
    print(f"| {row} | | {float(val['val_occl_walker_px']):.2f} | {float(val['val_occl_last_seen_px']):.2f} "
          f"| {float(log['hm']):.3f} | {float(log['ram']):.3f} |")
EOF
