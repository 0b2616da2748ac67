#!/usr/bin/env bash
# The measured CPU comparison on TheoremQA dev: untrained backbone, plain contrastive, LaSER (paper weights).
# One training job at a time (2 shared cores). Results: runs/cpu-results.jsonl; wall times: runs/cpu-recipe.log.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/theoremqa}
EPOCHS=${EPOCHS:-2}   # the recipe: 2
EXTRA=${EXTRA:-}       # extra --key value overrides for both runs (e.g. a smaller budget on busy cores)
OUT=runs/cpu-results.jsonl
LOG=runs/cpu-recipe.log
mkdir -p runs
stamp() { echo "$(date -u +%FT%TZ) $*" | tee -a "$LOG"; }
if [ -z "${SKIP_UNTRAINED:-}" ]; then
stamp "eval untrained backbone"
python training/evaluate_beir.py --model smollm2-135m-offline --data "$DATA" --split dev --name untrained-K3 --output "$OUT"
python training/evaluate_beir.py --model smollm2-135m-offline --data "$DATA" --split dev --name untrained-K1 --num_thinking_steps 1 --output "$OUT"
fi
stamp "train contrastive"
laser-train --config training/cpu_smollm2_theoremqa.yaml --objective contrastive --output_dir runs/cpu-smollm2-contrastive --overwrite_output_dir true --progress_bar false --num_epochs "$EPOCHS" $EXTRA
stamp "eval contrastive"
python training/evaluate_beir.py --model runs/cpu-smollm2-contrastive/final --data "$DATA" --split dev --name "contrastive${TAG:-}" --output "$OUT"
stamp "train laser"
laser-train --config training/cpu_smollm2_theoremqa.yaml --output_dir runs/cpu-smollm2-laser --overwrite_output_dir true --progress_bar false --num_epochs "$EPOCHS" $EXTRA
stamp "eval laser"
python training/evaluate_beir.py --model runs/cpu-smollm2-laser/final --data "$DATA" --split dev --name "laser${TAG:-}" --output "$OUT"
stamp "done"
