#!/usr/bin/env bash
# LaSER vs plain contrastive on TheoremQA dev with the offline SmolLM2-135M on CPU (issue 6's study).
#
#   training/theoremqa_study.sh RUN [RUN ...]     e.g. training/theoremqa_study.sh contrastive-s42 recipe-s42
#                                                 reasoned-RUN: RUN with generated rationales for every question
#                                                 hardneg-RUN: RUN with one BM25-mined hard negative per question
#                                                 hardneg-reasoned-RUN: both
#                                                 llm-RUN: RUN with the set's LLM-written rationale of every question
#                                                 (reasoning-llm.jsonl); hardneg-llm-RUN: both, e.g. hardneg-llm-inprompt_lr5e4-s43
#   python training/study_table.py                the Markdown tables of training/RESULTS.md
#
# Every run trains with training/cpu_smollm2_theoremqa.yaml plus the overrides below, then scores its final
# checkpoint with `laser eval` on the dev split. Each run writes runs/study/RUN/{eval.json,wall.json,...}.
# One job at a time: the runs take both cores. TRAIN_EXTRA="--malloc_mmap_threshold 0" adds arguments that change
# no value (memory settings) to every training run.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${LASER_SHARED_DIR:-../shared}
DATA=${DATA:-$SHARED/data/theoremqa}
OUT=${OUT:-runs/study}
# SPLIT=test scores the held-back questions of a fold written by training/heldout_folds.py (DATA=the fold)
SPLIT=${SPLIT:-dev}
RECIPE=training/cpu_smollm2_theoremqa.yaml
# The paper's loss settings, written out so the row does not depend on the recipe's defaults.
PAPER="--objective laser --lambda_out 10 --lambda_mid 0.1 --temperature_kd 0.02 --distill_warmup_steps 0 --distill_ramp_steps 0 --explicit_weighting rationale_mean --detach_soft_tokens false"

# Every row pins the learning rate, the explicit layout and the negatives (in-batch only unless hardneg-), so a
# change to the recipe's YAML changes no row.
V1="--learning_rate 1e-4 --explicit_layout paper"    # the recipe of 2026-11-29 (RESULTS.md: recipe-s42)
V2="--learning_rate 5e-4 --explicit_layout in_prompt" # the recipe of 2026-11-30: the YAML's values
# The recipe's laser_config with documents at 512 tokens (merged into the YAML's mapping; the seed-42 runs, from
# before that merge, wrote the whole mapping out: the same values, as their train_config.yaml shows)
DOC512='{"document_max_length":512}'
ABLATIONS="no_explicit_view no_latent_view no_trajectory no_output_kd frozen_teacher"
unknown_run() {  # the valid names, read from train_args' own case labels so the list cannot fall behind them
  local names
  names=$(declare -f train_args | grep -oE '^ +[a-z0-9_]+\)' | tr -d ' )' | paste -sd'|')
  echo "unknown run $1: expected [hardneg-][llm-|reasoned-]NAME-s<seed> with NAME one of $names, or" \
    "recipe-ABLATION or inprompt_lr5e4-ABLATION with ABLATION one of ${ABLATIONS// /, }; or untrained, minilm, bm25" >&2
}
train_args() {  # RUN -> laser-train overrides on top of the recipe
  local seed=${1##*-s} name=${1%-s*}
  case "$name" in
    contrastive)      echo "--objective contrastive --learning_rate 1e-4" ;;
    contrastive_lr3e4) echo "--objective contrastive --learning_rate 3e-4" ;;
    paper)            echo "$PAPER --learning_rate 1e-4 --explicit_layout paper" ;;
    recipe)           echo "--objective laser $V1" ;;
    schedule)         echo "--objective laser --detach_soft_tokens false $V1" ;;  # the recipe's loss schedule only
    inprompt)         echo "--objective laser --learning_rate 1e-4 --explicit_layout in_prompt" ;;
    inprompt_lr3e4)   echo "--objective laser --learning_rate 3e-4 --explicit_layout in_prompt" ;;
    inprompt_lr5e4)   echo "--objective laser $V2" ;;
    contrastive_lr5e4) echo "--objective contrastive --learning_rate 5e-4" ;;
    inprompt_lr5e4_k2) echo "--objective laser $V2 --num_thinking_steps 2" ;;  # K=2 at training and test
    inprompt_lr5e4_kd05) echo "--objective laser $V2 --temperature_kd 0.05" ;;  # softer distillation targets
    # l2 = 1 instead of the paper's 10: the gradient spikes of hardneg-inprompt_lr5e4-s44 came once l2 reached full weight
    inprompt_lr5e4_lout1) echo "--objective laser $V2 --lambda_out 1" ;;
    inprompt_lr5e4_lout3) echo "--objective laser $V2 --lambda_out 3" ;;  # between the steadier 1 and the paper's 10
    # l3 = 10 instead of the paper's 0.1: at 0.1 the trajectory term was 0.4% of the loss on the LLM rationales (l3 *
    # kl_mid 0.014 of 3.3 at full weight, seed 42) against 60% for l2 * kl_out; at 10 the two weigh about the same
    inprompt_lr5e4_lmid10) echo "--objective laser $V2 --lambda_mid 10" ;;
    # No contrastive warm-up or ramp: both KL terms at full weight from step 1, so all 56 steps carry the teacher
    # (the warm-up was set when few questions had a rationale; with one for every question the teacher is there)
    inprompt_lr5e4_nowarm) echo "--objective laser $V2 --distill_warmup_steps 0 --distill_ramp_steps 0" ;;
    # Each loss term's gradient clipped to 1.0 on its own, then added (instead of clipping their sum)
    inprompt_lr5e4_clipterm) echo "--objective laser $V2 --clip_grad_per_term true" ;;
    # The same, but each term clipped to 1.0 / (terms that step), so the summed step stays within 1.0: balance alone
    inprompt_lr5e4_clipsplit) echo "--objective laser $V2 --clip_grad_per_term true --clip_grad_per_term_split true" ;;
    # The official code's trajectory targets (standalone "\n\n" tokens + the last token, linspace) instead of the
    # recipe's text segments (docs/fidelity.md)
    inprompt_lr5e4_nltargets) echo "--objective laser $V2 --trajectory_targets newline_token --downsample linspace" ;;
    # The recipe on half the training questions (a held-back fold, training/heldout_folds.py): 28 steps, so its
    # contrastive warm-up and ramp keep their quarters of the run (7 steps each instead of 14)
    inprompt_lr5e4_half) echo "--objective laser $V2 --distill_warmup_steps 7 --distill_ramp_steps 7" ;;
    contrastive_lr1e3) echo "--objective contrastive --learning_rate 1e-3" ;;
    inprompt_lr1e3)   echo "--objective laser --learning_rate 1e-3 --explicit_layout in_prompt" ;;
    inprompt_lr2e3)   echo "--objective laser --learning_rate 2e-3 --explicit_layout in_prompt" ;;
    # LoRA rank 64 (the paper's) instead of the recipe's 16, alpha 128 so alpha / r stays 2: only the rank changes
    inprompt_lr5e4_r64) echo "--objective laser $V2 --lora_r 64 --lora_alpha 128" ;;
    contrastive_lr5e4_r64) echo "--objective contrastive --learning_rate 5e-4 --lora_r 64 --lora_alpha 128" ;;
    # V2 with the paper's explicit layout (query, rationale, EOS; the teacher's vector at EOS) instead of in_prompt
    paperlayout_lr5e4) echo "--objective laser --learning_rate 5e-4 --explicit_layout paper" ;;
    # Two epochs (112 steps) for both objectives: does K=3 catch up with K=1 given more steps?
    inprompt_lr5e4_2ep) echo "--objective laser $V2 --num_epochs 2" ;;
    contrastive_lr5e4_2ep) echo "--objective contrastive --learning_rate 5e-4 --num_epochs 2" ;;
    # Documents trained at 512 tokens instead of the recipe's 128, which cut every theorem (queries stay at 128)
    inprompt_lr5e4_doc512) echo "--objective laser $V2 --laser_config $DOC512" ;;
    contrastive_lr5e4_doc512) echo "--objective contrastive --learning_rate 5e-4 --laser_config $DOC512" ;;
    recipe-*|inprompt_lr5e4-*)  # the paper's Table 5 ablations of either recipe
      local base=${name%%-*} ablation=${name#*-}
      [[ " $ABLATIONS " == *" $ablation "* ]] || { unknown_run "$1"; exit 2; }
      if [ "$base" = recipe ]; then echo "--objective $ablation $V1"; else echo "--objective $ablation $V2"; fi ;;
    *) unknown_run "$1"; exit 2 ;;
  esac
  echo "--seed $seed"
}
seconds_since() { echo $(( $(date +%s) - $1 )); }
# Peak resident memory in MB from `/usr/bin/time -v`'s report (the trainer's own process).
peak_rss_mb() { awk -F': ' '/Maximum resident set size/ {printf "%d", $2 / 1024}' "$1"; }

# reasoned-RUN: RUN trained on DATA plus rationales that `laser-train reason` writes, with the offline
# SmolLM2-135M-Instruct, for the training questions that have none (resumable: it skips those already written).
reasoned_data() {
  local dir=$OUT/theoremqa-reasoned
  mkdir -p "$dir/qrels"
  for f in corpus.jsonl queries.jsonl qrels/train.tsv qrels/dev.tsv; do ln -sfn "$(realpath "$DATA/$f")" "$dir/$f"; done
  if [ ! -f "$dir/reasoning.jsonl" ]; then cp "$DATA/reasoning.jsonl" "$dir/reasoning.jsonl"; chmod u+w "$dir/reasoning.jsonl"; fi
  laser-train reason --data "$dir" --split train --model smollm2-135m-offline --batch_size 16 --max_new_tokens 192 >&2
  echo "$dir"
}

# llm-RUN: RUN trained with the LLM-written rationale of every question (reasoning-llm.jsonl of the shared set,
# written from the question alone) as the training set's reasoning.jsonl: a folder of links to the set's files.
llm_data() {
  local dir=$OUT/theoremqa-llm f
  mkdir -p "$dir/qrels"
  for f in corpus.jsonl queries.jsonl "$DATA"/qrels/*.tsv; do f=${f#"$DATA"/}; ln -sfn "$(realpath "$DATA/$f")" "$dir/$f"; done
  ln -sfn "$(realpath "$DATA/reasoning-llm.jsonl")" "$dir/reasoning.jsonl"
  echo "$dir"
}

# hardneg-RUN: RUN trained with one hard negative per question (the paper's group of 2 documents), drawn each
# epoch from the 4 documents BM25 ranks highest after the positive. BM25 mines them, so neither objective's
# own model picks them; the file keeps the set's rationales.
# The negatives depend on the questions and corpus only; mined from reasoned data, the file carries its rationales.
hardneg_data() {  # DATA dir -> mined file
  local file=$OUT/theoremqa-bm25-negatives.jsonl
  [ "$1" = "$DATA" ] || file=$OUT/$(basename "$1")-bm25-negatives.jsonl
  [ -f "$file" ] || laser-train mine --data "$1" --split train --model bm25 --output "$file" --num_negatives 4 >&2
  echo "$file"
}

for run in "$@"; do
  dir=$OUT/$run
  mkdir -p "$dir"
  eval_len=""
  case "$run" in
    untrained) model=smollm2-135m-offline; ks="1 3" ;;
    minilm|bm25) model=$run; ks="" ;;
    *)
      # A trained run is scored at 128 tokens a text (eval.json) whatever lengths it trained at, so the column
      # compares like with like: without --max-length, laser eval takes the checkpoint's own lengths, and the
      # _doc512 runs would be scored with documents at 512 (as the eleventh session's were, in eval_own_lengths.json)
      eval_len=128
      train_data=$DATA; name=$run; hardneg=""
      if [[ $name == hardneg-* ]]; then hardneg=1; name=${name#hardneg-}; fi
      if [[ $name == llm-* ]]; then train_data=$(llm_data); name=${name#llm-}; fi
      if [[ $name == reasoned-* ]]; then
        t0=$(date +%s); train_data=$(reasoned_data); echo "rationales: $(seconds_since "$t0") s"
        name=${name#reasoned-}
      fi
      args=$(train_args "$name")
      if [ -n "$hardneg" ]; then train_data=$(hardneg_data "$train_data"); args="$args --negatives_per_query 1"; fi
      if [ -f "$dir/final/laser_config.json" ] && [ -z "${RETRAIN:-}" ]; then
        echo "$run: reusing $dir/final (RETRAIN=1 trains again)"
        model=$dir/final; ks=""; train_s=$(python -c "import json; print(json.load(open('$dir/wall.json'))['train_seconds'])" 2>/dev/null || echo 0)
        peak_mb=$(python -c "import json; print(json.load(open('$dir/wall.json')).get('train_peak_rss_mb', 0))" 2>/dev/null || echo 0)
      else
      echo "$(date -u +%FT%TZ) train $run: $args"
      t0=$(date +%s)
      # shellcheck disable=SC2086
      /usr/bin/time -v -o "$dir/train.time" \
      laser-train --config "$RECIPE" --train_data "$train_data" --output_dir "$dir" --overwrite_output_dir true \
        --progress_bar false --negatives_per_query 0 --hard_negatives none $args ${TRAIN_EXTRA:-}
      train_s=$(seconds_since "$t0")
      peak_mb=$(peak_rss_mb "$dir/train.time")
      echo "{\"train_seconds\": $train_s, \"train_peak_rss_mb\": $peak_mb}" > "$dir/wall.json"
      model=$dir/final; ks=""
      fi ;;
  esac
  [ -n "${KSWEEP:-}" ] && ks="1 2 3 4 5 6"  # KSWEEP=1: the inference-scaling curve (K = 1..6 at test time)
  echo "$(date -u +%FT%TZ) eval $run"
  t0=$(date +%s)
  modes="query"; eval_data=$DATA
  # REASONING=1: also the rationale as the query: the LLM-written rationale of every dev question
  # (reasoning-llm.jsonl; rows before 2026-12-04 used the set's reasoning.jsonl, 34 of 149 dev questions)
  if [ -n "${REASONING:-}" ]; then modes="query reasoning"; eval_data=$(llm_data); fi
  # shellcheck disable=SC2086
  laser eval --model "$model" --data "$eval_data" --split "$SPLIT" --no-progress --output "$dir/eval.json" \
    --query-mode $modes ${ks:+--num-thinking-steps $ks} ${eval_len:+--max-length $eval_len}
  eval_s=$(seconds_since "$t0")
  # EVAL512=1: the same scoring with 512 tokens a text (eval_512.json). The recipe's 128 cut every theorem; 512
  # cut 48 of them and scored within 0.006 of 8192 (docs/fidelity.md)
  if [ -n "${EVAL512:-}" ]; then
    # shellcheck disable=SC2086
    laser eval --model "$model" --data "$eval_data" --split "$SPLIT" --no-progress --output "$dir/eval_512.json" \
      --max-length 512 --query-mode $modes ${ks:+--num-thinking-steps $ks}
  fi
  echo "{\"train_seconds\": ${train_s:-0}, \"train_peak_rss_mb\": ${peak_mb:-0}, \"eval_seconds\": $eval_s}" > "$dir/wall.json"
  unset train_s peak_mb
done
