#!/usr/bin/env bash
# The nightly pipeline on a real Slurm (jobs/nightly.sh): refresh -> warm-started retrain ->
# evaluation of the new version and of production on held-out data -> promote only if better
# -> batch-score with production, run three times against one registry:
#   1. a retrain that improves on production: production moves to the new version;
#   2. a retrain made worse (a learning rate that wrecks the warm start): production stays;
#   3. a retrain that fails (a model shape that does not fit the warm start): the chain stops
#      there, the jobs after it are cancelled, production stays.
# The decisions are checked against the evaluations, and the evaluations against `kiln eval`
# run here on the same model and data. Chains 1 and 2 also rebuild the nearest-neighbour index
# over production's embeddings (embed, build, eval): in 1 the index is registered with
# production's lineage and its recall, and its production alias moves; in 2 the recall asked
# for is out of reach, the eval job fails and the index's alias stays.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
slurm_start

export KILN=$KILN_BIN KILN_REGISTRY=$WORK/registry
CONFIG=$KILN_SRC/configs/fmnist-mlp.yaml
RAW=/usr/share/datasets/fashion-mnist
DATA=$WORK/data/fashion-mnist.h5
SMALL=(--set model.hidden=64 --set train.log_every=10 --set train.eval_every=0)
jq_get() { jq -r "$2" "$1"; }
alias_version() { "$KILN_BIN" registry show "fm@$1" | jq -r .version; }

# production to start from: a short run registered outside Slurm
"$KILN_BIN" train "$CONFIG" --set data.path="$(fmnist_h5)" "${SMALL[@]}" --set train.steps=30 \
  --set train.out_dir="$WORK/seed" --set registry.name=fm --set registry.alias=production \
  >"$WORK/seed.log" 2>&1 || { fail "seed run: $(tail -n 3 "$WORK/seed.log")"; finish; exit 1; }
prod0=$(alias_version production)

# chain NAME ARGS...: run jobs/nightly.sh with the run in $WORK/NAME and wait for every job of
# the chain to leave the queue; sets JOB_<step> (job ids) and STATE_<step> (final states)
chain() {
  local name=$1
  shift
  mkdir -p "$WORK/data"
  (cd "$WORK" && "$KILN_SRC/jobs/nightly.sh" --model fm --config "$CONFIG" --data "$DATA" \
    --split test --run-dir "$WORK/$name" "${SMALL[@]}" --score-input "$(fmnist_h5)" \
    --score-output "$WORK/$name/scores.h5" --score-set infer.dataset=test/x "$@") >"$WORK/$name.submit" 2>&1 ||
    { fail "$name: nightly.sh failed: $(cat "$WORK/$name.submit")"; return 1; }
  local step job
  while read -r step job; do
    step=${step//-/_}
    printf -v "JOB_$step" %s "$job"
    [ -n "$job" ] || { printf -v "STATE_$step" none; continue; }
    slurm_wait "$job" 300 || true
    printf -v "STATE_$step" %s "$(slurm_field "$job" JobState)"
  done <"$WORK/$name/chain.txt"
}

# job_log NAME STEP: the log of one job of chain NAME
job_log() { ls "$WORK/$1/logs/nightly-$2-"*.out 2>/dev/null | head -n 1; }

# same_eval NAME WHICH: the chain's evaluation equals kiln eval run here on the version it
# names, with the one thread the job had (the loss sum's order depends on the threads)
same_eval() {
  local json=$WORK/$1/eval-$2.json here=$WORK/$1-$2-here.json version
  version=$(jq_get "$json" .version)
  "$KILN_BIN" eval --model "registry:fm/$version" --input "$DATA" --split test --threads 1 \
    --output "$here" >/dev/null 2>&1 || { echo "kiln eval of fm/$version failed" >&2; return 1; }
  [ "$(jq -c '[.version, .loss, .accuracy, .targets]' "$json")" = "$(jq -c '[.version, .loss, .accuracy, .targets]' "$here")" ] ||
    { echo "$2: job $(jq -c '[.version, .loss, .accuracy, .targets]' "$json"), here $(jq -c '[.version, .loss, .accuracy, .targets]' "$here")" >&2; return 1; }
}

check_scores() { # NAME VERSION: the batch scores were made by that version
  if [ -f "$WORK/$1/scores.h5" ]; then
    local made
    made=$("$PY" -c 'import h5py, sys
f = h5py.File(sys.argv[1], "r")
print(int(f.attrs["model_version"]), int(f.attrs["complete"]), f["probs"].shape[0])' "$WORK/$1/scores.h5")
    [ "$made" = "$2 1 10000" ] && pass "$1: batch scores of the 10000 rows, complete, made with production (version $2)" ||
      fail "$1: scores (model version, complete, rows) = '$made', expected '$2 1 10000'"
  else
    fail "$1: score job $STATE_score"
  fi
}

INDEX=(--index fmi --index-input "$(fmnist_h5)" --index-dataset train/x --index-queries "$(fmnist_h5)"
  --index-query-dataset test/x --index-set index.nlist=64 --index-set eval.rounds=1)

# 1: better -------------------------------------------------------------------------------
chain better --import "fashion-mnist $RAW" --set train.steps=300 "${INDEX[@]}" --index-recall 0.9
all=$STATE_refresh/$STATE_train/$STATE_eval_candidate/$STATE_eval_production/$STATE_promote/$STATE_score
[ "$all" = COMPLETED/COMPLETED/COMPLETED/COMPLETED/COMPLETED/COMPLETED ] &&
  pass "better: refresh, train, both evaluations, promote and score completed" ||
  fail "better: states refresh/train/eval-candidate/eval-production/promote = $all"
h5diff -q "$DATA" "$(fmnist_h5)" && pass "better: the refresh job imported the raw data" ||
  fail "better: the refreshed dataset differs from an import of the same files"
cand=$(jq_get "$WORK/better/eval-candidate.json" .version)
version_json=$("$KILN_BIN" registry show "fm/$cand")
[ "$(jq -r .parent <<<"$version_json")" = "registry:fm/$prod0" ] &&
  [ "$(jq -r .slurm_job_id <<<"$version_json")" = "$JOB_train" ] &&
  pass "better: candidate fm/$cand warm-started from fm/$prod0, its lineage names train job $JOB_train" ||
  fail "better: candidate lineage: parent $(jq -r .parent <<<"$version_json"), job $(jq -r .slurm_job_id <<<"$version_json") (train job $JOB_train)"
same_eval better candidate && same_eval better production &&
  pass "better: both evaluations equal kiln eval run outside Slurm" || fail "better: evaluations differ from kiln eval"
c_loss=$(jq_get "$WORK/better/eval-candidate.json" .loss) p_loss=$(jq_get "$WORK/better/eval-production.json" .loss)
if awk -v c="$c_loss" -v p="$p_loss" 'BEGIN { exit !(c < p) }' && [ "$(alias_version production)" = "$cand" ] &&
  [ "$(jq_get "$WORK/better/promote.json" .promoted)" = true ]; then
  pass "better: candidate loss $c_loss < production's $p_loss: production moved fm/$prod0 -> fm/$cand"
else
  fail "better: loss $c_loss vs $p_loss, production is fm/$(alias_version production), decision $(cat "$WORK/better/promote.json" 2>/dev/null)"
fi
"$KILN_BIN" registry history fm | grep -q "production" && pass "better: the alias move is in the history" ||
  fail "better: no production move in: $("$KILN_BIN" registry history fm)"
check_scores better "$cand"
prod1=$(alias_version production)
idx=$STATE_embed/$STATE_embed_queries/$STATE_index_build/$STATE_index_eval
[ "$idx" = COMPLETED/COMPLETED/COMPLETED/COMPLETED ] && pass "better: embed, index build and index eval completed" ||
  fail "better: states embed/embed-queries/index-build/index-eval = $idx: $(tail -n 3 "$(job_log better index-eval)")"
if iv=$("$KILN_BIN" registry show fmi@production 2>/dev/null); then
  r=$(jq -r .metrics.recall_at_k <<<"$iv") mv=$(jq -r .lineage.model.version <<<"$iv") kind=$(jq -r .kind <<<"$iv")
  [ "$kind" = index ] && [ "$mv" = "$prod1" ] && awk -v r="$r" 'BEGIN { exit !(r >= 0.9) }' &&
    pass "better: index fmi@production registered (kind $kind) from fm/$mv's embeddings, recall@10 $r >= 0.9" ||
    fail "better: index version: kind $kind, model version $mv (production fm/$prod1), recall $r"
  "$KILN_BIN" index search --index registry:fmi@production --queries "$WORK/better/embeddings-queries.h5:/embedding" \
    --k 10 --output "$WORK/nn.h5" >/dev/null 2>"$WORK/nn.err" && pass "better: registry:fmi@production searches" ||
    fail "better: search of registry:fmi@production: $(tail -2 "$WORK/nn.err")"
else
  fail "better: no fmi@production in the registry"
fi
index1=$("$KILN_BIN" registry show fmi@production 2>/dev/null | jq -r .version)

# 2: worse --------------------------------------------------------------------------------
chain worse --import "fashion-mnist $RAW" --set train.steps=60 --set optim.lr=0.2 "${INDEX[@]}" \
  --index-set eval.nprobes=1 --index-recall 0.999
all=$STATE_refresh/$STATE_train/$STATE_eval_candidate/$STATE_eval_production/$STATE_promote/$STATE_score
[ "$all" = COMPLETED/COMPLETED/COMPLETED/COMPLETED/COMPLETED/COMPLETED ] && pass "worse: every job completed" ||
  fail "worse: states = $all"
c_loss=$(jq_get "$WORK/worse/eval-candidate.json" .loss) p_loss=$(jq_get "$WORK/worse/eval-production.json" .loss)
cand=$(jq_get "$WORK/worse/eval-candidate.json" .version)
if awk -v c="$c_loss" -v p="$p_loss" 'BEGIN { exit !(c > p) }' && [ "$(alias_version production)" = "$prod1" ] &&
  [ "$(jq_get "$WORK/worse/promote.json" .promoted)" = false ] && [ "$(alias_version staging)" = "$cand" ]; then
  pass "worse: candidate fm/$cand loss $c_loss > production's $p_loss: production stays fm/$prod1"
else
  fail "worse: loss $c_loss vs $p_loss, production fm/$(alias_version production) (was $prod1), decision $(cat "$WORK/worse/promote.json" 2>/dev/null)"
fi
grep -q "kept: fm@production stays at $prod1" "$(job_log worse promote)" && pass "worse: the promote log says why" ||
  fail "worse: promote log: $(cat "$(job_log worse promote)")"
check_scores worse "$prod1"
[ "$STATE_index_build" = COMPLETED ] && [ "$STATE_index_eval" = FAILED ] &&
  [ "$("$KILN_BIN" registry show fmi@production | jq -r .version)" = "$index1" ] &&
  grep -q "reaches recall@10 0.9990" "$(job_log worse index-eval)" &&
  pass "worse: recall 0.999 out of reach at nprobe 1: the index eval failed saying so, fmi@production stays $index1" ||
  fail "worse: index build $STATE_index_build, eval $STATE_index_eval, fmi@production $("$KILN_BIN" registry show fmi@production | jq -r .version) (was $index1)"

# 3: failure ------------------------------------------------------------------------------
staging=$(alias_version staging)
chain failed --set train.steps=60 --set model.hidden=32
got=$STATE_eval_candidate/$STATE_promote/$STATE_score
if [ "$STATE_refresh" = none ] && [ "$STATE_train" = FAILED ] && [ "$got" = CANCELLED/CANCELLED/CANCELLED ]; then
  pass "failed: the train job failed, the jobs after it were cancelled ($got)"
else
  fail "failed: refresh $STATE_refresh, train $STATE_train, after it $got"
fi
grep -q "model/fc0.weight.*expected float32 \[32,784\], found float32 \[64,784\]" "$(job_log failed train)" &&
  pass "failed: the train log names the mismatch" || fail "failed: train log: $(tail -n 3 "$(job_log failed train)")"
[ "$(alias_version production)" = "$prod1" ] && [ "$(alias_version staging)" = "$staging" ] &&
  pass "failed: production (fm/$prod1) and staging (fm/$staging) are where they were" ||
  fail "failed: production fm/$(alias_version production), staging fm/$(alias_version staging)"
finish
