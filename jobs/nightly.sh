#!/usr/bin/env bash
# The nightly retrain-and-score pipeline: submits one chain of Slurm jobs and returns.
#
#   refresh ─▶ [features ─▶ drift] ─▶ train ─▶ eval candidate ─┐
#      │       (warm start from          ├─▶ promote ─▶ score
#      └─────▶ eval production ─────────┘   (only if    (with whatever
#                                            better)     production is then)
#                                              │
#                                              └─▶ embed ─▶ index build ─▶ index eval
#                                                  (base and      (production  (registers it; moves the
#                                                   queries, with  model's      index's alias only if
#                                                   production)    embeddings)  recall holds)
#
# Each job starts only if the ones it depends on succeeded (--dependency=afterok) and is
# cancelled if one of them failed (--kill-on-invalid-dep=yes): a failed step stops the chain,
# and since only `promote` moves the alias, production stays where it was.
#
# usage: jobs/nightly.sh --model NAME --config CONFIG.yaml --data DATA.h5 [options]
#   --import "KIND SRC..."   refresh: `kiln data import KIND SRC... DATA.h5` as the first job
#                            (without it the chain trains on DATA.h5 as it is)
#   --set key=value          training overrides (repeatable), after the pipeline's own
#   --split S                held-out split for both evaluations (default: kiln eval's, test
#                            for classifiers, val for the GPT)
#   --metric loss|accuracy   what "better" means (default loss: lower)
#   --min-delta D            the candidate must beat production by more than D (default 0)
#   --score-input IN.h5 --score-output OUT.h5
#                            the last job: kiln infer with production (use a new OUT each night)
#   --score-set key=value    kiln infer overrides (repeatable), e.g. infer.dataset=test/x
#   --index NAME             after promotion, rebuild the nearest-neighbour index NAME over the
#                            production model's embeddings (docs/index.md):
#   --index-input IN.h5      the rows to embed and index (with --index-dataset, default x)
#   --index-queries Q.h5     held-out rows to measure recall on (--index-query-dataset, default x)
#   --index-embed OUT        the model output that is the embedding (infer.embed; default gelu0,
#                            the MLP's first hidden layer)
#   --index-recall R         the index's alias moves only if recall@10 >= R at the setting
#                            eval stores (default 0.95); otherwise the eval job fails, the index
#                            stays where it was
#   --index-set key=value    kiln index overrides (repeatable), e.g. index.kind=hnsw
#   --features SPEC.yaml     start by rebuilding the features (kiln features build SPEC; docs/features.md)
#                            into RUN_DIR/features.h5, registered as --features-name (default
#                            MODEL-features) with the candidate alias; the chain trains and
#                            evaluates on it (--data is not read). When that name has a production
#                            version, a drift job compares tonight's features with it first
#                            (kiln features diff): above --drift-threshold (default 0.2) it fails
#                            and the chain stops before training. When the model is promoted, the
#                            feature set's alias moves with it.
#   --features-set key=value kiln features overrides (repeatable), e.g. tables=data/tonight.h5
#   --alias A                the alias to move (default production)
#   --candidate-alias A      the alias the retrained version gets (default staging)
#   --registry DIR           the registry (default $KILN_REGISTRY, else ./registry)
#   --run-dir DIR            where the chain keeps its run, evaluations, decision and logs
#                            (default runs/nightly-NAME-YYYYmmdd-HHMMSS)
#   --after JOB              start the chain only after that job succeeded (e.g. a site's own
#                            data refresh)
#   --sbatch "ARGS"          extra sbatch options for every job (e.g. "--account=ml --qos=low")
# Prints the job ids and writes them to RUN_DIR/chain.txt. docs/slurm.md describes it all.
set -euo pipefail
KILN_HOME=${KILN_HOME:-$(cd "$(dirname "$0")/.." && pwd)}
export KILN_HOME
if [ -z "${KILN:-}" ]; then KILN=$(command -v kiln || echo "$KILN_HOME/build/kiln"); fi
export KILN KILN_REGISTRY

die() { echo "nightly: $*" >&2; exit 2; }
model="" config="" data="" import="" split="" metric=loss min_delta=0 score_in="" score_out=""
alias=production cand_alias=staging run="" sbatch_args="" after=""
index="" index_in="" index_q="" index_ds=x index_qds=x index_embed=gelu0 index_recall=0.95
sets=() score_sets=() index_sets=()
features="" features_name="" drift_threshold=0.2 features_sets=()
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || die "$1 needs a value (see the top of $0)"
  case "$1" in
    --model) model=$2 ;;
    --config) config=$2 ;;
    --data) data=$2 ;;
    --import) import=$2 ;;
    --set) sets+=(--set "$2") ;;
    --split) split=$2 ;;
    --metric) metric=$2 ;;
    --min-delta) min_delta=$2 ;;
    --score-input) score_in=$2 ;;
    --score-output) score_out=$2 ;;
    --score-set) score_sets+=(--set "$2") ;;
    --alias) alias=$2 ;;
    --candidate-alias) cand_alias=$2 ;;
    --registry) KILN_REGISTRY=$2 ;;
    --run-dir) run=$2 ;;
    --sbatch) sbatch_args=$2 ;;
    --after) after=$2 ;;
    --index) index=$2 ;;
    --index-input) index_in=$2 ;;
    --index-queries) index_q=$2 ;;
    --index-dataset) index_ds=$2 ;;
    --index-query-dataset) index_qds=$2 ;;
    --index-embed) index_embed=$2 ;;
    --index-recall) index_recall=$2 ;;
    --index-set) index_sets+=(--set "$2") ;;
    --features) features=$2 ;;
    --features-name) features_name=$2 ;;
    --drift-threshold) drift_threshold=$2 ;;
    --features-set) features_sets+=(--set "$2") ;;
    *) die "unknown option '$1' (see the top of $0)" ;;
  esac
  shift 2
done
[ -n "$model" ] && [ -n "$config" ] || die "--model and --config are required"
[ -n "$data" ] || [ -n "$features" ] || die "--data (or --features) is required"
[ -f "$config" ] || die "config '$config' does not exist"
[ -z "$features" ] || [ -f "$features" ] || die "feature spec '$features' does not exist"
[ -n "$features" ] || [ -n "$import" ] || [ -f "$data" ] || die "data '$data' does not exist (and no --import to make it)"
[ -n "$score_in" ] && [ -z "$score_out" ] && die "--score-input needs --score-output"
[ -z "$score_in" ] && [ -n "$score_out" ] && die "--score-output needs --score-input"
[ -z "$index" ] || { [ -n "$index_in" ] && [ -n "$index_q" ]; } || die "--index needs --index-input and --index-queries"
[ -x "$KILN" ] || die "no kiln binary at '$KILN' (set KILN)"
[ -z "$score_in" ] || "$KILN" infer --help >/dev/null 2>&1 || die "'$KILN' has no infer command to score with"

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
config=$(abs "$config")
[ -z "$data" ] || data=$(abs "$data")
[ -z "$features" ] || features=$(abs "$features")
[ -z "$score_in" ] || { score_in=$(abs "$score_in"); score_out=$(abs "$score_out"); }
[ -z "$index" ] || { index_in=$(abs "$index_in"); index_q=$(abs "$index_q"); }
[ -z "${KILN_REGISTRY:-}" ] || KILN_REGISTRY=$(abs "$KILN_REGISTRY")
run=$(abs "${run:-runs/nightly-$model-$(date +%Y%m%d-%H%M%S)}")
mkdir -p "$run/logs"
jobs="$KILN_HOME/jobs"

# submit NAME AFTER SCRIPT ARGS...: one job of the chain, started after the jobs AFTER (a:b)
submit() {
  local name=$1 after=$2
  shift 2
  # shellcheck disable=SC2086
  sbatch --parsable --job-name="nightly-$name" --output="$run/logs/%x-%j.out" \
    ${after:+--dependency=afterok:$after --kill-on-invalid-dep=yes} $sbatch_args "$@"
}

# a model that has never been promoted is trained from scratch and promoted if it evaluates
have_prod=0
"$KILN" registry show "$model@$alias" >/dev/null 2>&1 && have_prod=1

refresh=""
# shellcheck disable=SC2086
[ -z "$import" ] || refresh=$(submit refresh "$after" "$jobs/data.sbatch" import $import "$data")
ready=${refresh:-$after} # the data is there once this job succeeded (none: it is there now)

# the features, rebuilt; with a production feature set, a drift check before anything trains
features_job="" drift_job="" follow=()
if [ -n "$features" ]; then
  features_name=${features_name:-$model-features}
  data=$run/features.h5
  features_job=$(submit features "$ready" "$jobs/features.sbatch" build "$features" --output "$data" \
    --set registry.name="$features_name" --set registry.alias="$cand_alias" "${features_sets[@]}")
  ready=$features_job
  if "$KILN" registry show "$features_name@$alias" >/dev/null 2>&1; then
    drift_job=$(submit drift "$features_job" "$jobs/features.sbatch" diff "registry:$features_name@$alias" "$data" \
      --threshold "$drift_threshold" --json "$run/drift.json")
    ready=$drift_job
  fi
  follow=(--follow "$features_name@$cand_alias")
fi

train_sets=(--set data.path="$data" --set train.out_dir="$run/train" --set registry.name="$model"
  --set registry.alias="$cand_alias")
[ "$have_prod" = 0 ] || train_sets+=(--set train.init_from="registry:$model@$alias")
train=$(submit train "$ready" "$jobs/train.sbatch" "$config" "${train_sets[@]}" "${sets[@]}")

eval_args=(--input "$data")
[ -z "$split" ] || eval_args+=(--split "$split")
eval_cand=$(submit eval-candidate "$train" "$jobs/eval.sbatch" --model "registry:$model@$cand_alias" \
  "${eval_args[@]}" --output "$run/eval-candidate.json")
evals=$eval_cand prod_json=none eval_prod=""
if [ "$have_prod" = 1 ]; then
  # production is scored on the refreshed data while the candidate trains
  eval_prod=$(submit eval-production "$ready" "$jobs/eval.sbatch" --model "registry:$model@$alias" \
    "${eval_args[@]}" --output "$run/eval-production.json")
  evals=$eval_cand:$eval_prod prod_json=$run/eval-production.json
fi

promote=$(submit promote "$evals" "$jobs/promote.sbatch" "$model" "$run/eval-candidate.json" "$prod_json" \
  --alias "$alias" --metric "$metric" --min-delta "$min_delta" --decision "$run/promote.json" "${follow[@]}")

score=""
[ -z "$score_in" ] || score=$(submit score "$promote" "$jobs/infer.sbatch" --model "registry:$model@$alias" \
  --input "$score_in" --output "$score_out" "${score_sets[@]}")

# the index over production's embeddings: rows and queries embedded by the model production
# names once promote has run, built, then measured; eval registers it and moves its alias
# only if recall@10 at the cheapest setting reaching --index-recall holds (else it fails)
embed="" embed_q="" index_build="" index_eval=""
if [ -n "$index" ]; then
  embed_sets=(--set infer.embed="$index_embed" --set infer.probs=false --set infer.top_k=0)
  embed=$(submit embed "$promote" "$jobs/infer.sbatch" --model "registry:$model@$alias" --input "$index_in" \
    --output "$run/embeddings.h5" --set infer.dataset="$index_ds" "${embed_sets[@]}")
  embed_q=$(submit embed-queries "$promote" "$jobs/infer.sbatch" --model "registry:$model@$alias" \
    --input "$index_q" --output "$run/embeddings-queries.h5" --set infer.dataset="$index_qds" "${embed_sets[@]}")
  index_build=$(submit index-build "$embed" "$jobs/index.sbatch" build --input "$run/embeddings.h5:/embedding" \
    --output "$run/index.h5" "${index_sets[@]}")
  index_eval=$(submit index-eval "$index_build:$embed_q" "$jobs/index.sbatch" eval --index "$run/index.h5" \
    --queries "$run/embeddings-queries.h5:/embedding" --output "$run/index-eval.json" \
    --set eval.target_recall="$index_recall" --set registry.name="$index" --set registry.alias="$alias" \
    "${index_sets[@]}")
fi

{
  echo "refresh $refresh"
  echo "features $features_job"
  echo "drift $drift_job"
  echo "train $train"
  echo "eval-candidate $eval_cand"
  echo "eval-production $eval_prod"
  echo "promote $promote"
  echo "score $score"
  echo "embed $embed"
  echo "embed-queries $embed_q"
  echo "index-build $index_build"
  echo "index-eval $index_eval"
} > "$run/chain.txt"
echo "nightly $model: submitted to Slurm, run directory $run"
sed 's/^/  /' "$run/chain.txt"
