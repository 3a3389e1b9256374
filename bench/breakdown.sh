#!/usr/bin/env bash
# bench/breakdown.sh MODEL.gv RANKS UNIFORM|search [STEPS] [-D NAME=VALUE...] — one
# plan's step, part by part, measured beside the cost model's term for the
# part, with a fresh profile and no calibration (docs/cost-model.md):
#   1. galvc profile MODEL -np RANKS (at the model's shape);
#   2. the plan (--uniform UNIFORM) costed with it: --emit=plan-json
#      --explain gives each layer's predicted forward and backward a
#      micro-batch, and the step's compute and communication;
#   3. the program trained STEPS steps (default 15) with GALVRT_BREAKDOWN=1:
#      each rank's mean milliseconds a step by part, after 5 warm-up steps.
# Prints a markdown table: the layers' forward and backward by kind
# (predicted: micro-batches x the kind's layers; measured: the slowest rank),
# the collectives, the optimizer's share (zeroing, gradient norm, update),
# the rest, and the step.
#   bench/breakdown.sh examples/gpt-tiny.gv 2 tp=1,pp=1,dp=2
#   CLUSTER=examples/clusters/cpu-box.gv bench/breakdown.sh examples/gpt2-small.gv 1 tp=1,pp=1,dp=1 10 \
#       -D seq=64 -D global_batch=4 -D precision=fp32
# (CLUSTER: a cluster file taking -D ranks=N, for a model whose own cluster is not this machine.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
galvc=${GALVC:-$root/build/galvc}
model=$1 ranks=$2 uniform=$3
steps=${4:-15}
shift 3
[ $# -gt 0 ] && shift
defines=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

"$galvc" profile "$model" "${defines[@]}" -np "$ranks" -o "$work/profile.json" 2> "$work/profile.log"
plan=("$model" "${defines[@]}" -D ranks="$ranks" --profile "$work/profile.json")
[ "$uniform" != search ] && plan+=(--uniform "$uniform") # "search": galvc's own plan
[ -n "${CLUSTER:-}" ] && plan+=(--cluster "$CLUSTER")
"$galvc" "${plan[@]}" --emit=plan-json --explain > "$work/plan.json"
"$galvc" "${plan[@]}" -o "$work/train"
GALVRT_BREAKDOWN=1 mpirun --oversubscribe -np "$ranks" "$work/train" --steps "$steps" --data "$root/README.md" \
    > "$work/train.log" 2> "$work/breakdown.log"

python3 - "$work/plan.json" "$work/breakdown.log" "$model" "$ranks" "$uniform" <<'EOF'
import json, re, sys
plan = json.load(open(sys.argv[1]))
m = plan["micro_batches"]
kinds = {"embedding": "embedding", "decoder": "block", "encoder": "block", "layernorm": "norm", "rmsnorm": "norm",
         "lm_head": "head"}
pred = {}
for l in plan["layers"]:
    kind = kinds.get(l["name"].split(".")[0], "block")
    for d in ("fwd", "bwd"):
        pred[f"{d}-{kind}"] = pred.get(f"{d}-{kind}", 0) + m * l["explain"][f"{d}_ms"]
ranks = []
for line in open(sys.argv[2]):
    if line.startswith("breakdown rank"):
        body = line.split(":", 1)[1].split(";")[0].split()
        ranks.append({body[i]: float(body[i + 1]) for i in range(0, len(body), 2)})
if not ranks:
    sys.exit("breakdown.sh: the program printed no breakdown")
def measured(*parts):
    return max(sum(r.get(p, 0) for p in parts) for r in ranks)
p = plan["predicted"]
rows = [(f"{d} {k}", pred.get(f"{d}-{k}", 0), measured(f"{d}-{k}"))
        for d in ("fwd", "bwd") for k in ("embedding", "block", "norm", "head")]
rows = [r for r in rows if r[1] > 0 or r[2] > 0]
coll = ("allreduce", "allgather", "reduce-scatter", "broadcast", "p2p", "barrier")
opt = ("zero-grads", "grad-norm", "optimizer")
rows.append(("collectives and optimizer (comm_ms)", p["comm_ms"], measured(*coll, *opt)))
rows.append(("  of which collectives", None, measured(*coll)))
rows.append(("  of which zeroing, norm, update", None, measured(*opt)))
rows.append(("bubble", p["bubble_ms"], None))
rows.append(("other (copies, TP phases, data, log)", None, measured("other", "data", "log")))
step = max(sum(r.values()) for r in ranks)
rows.append(("step", p["step_ms"], step))
print(f"{sys.argv[3]} on {sys.argv[4]} rank(s), {sys.argv[5]}, {m} micro-batch(es)")
print("| part | predicted ms | measured ms | error |")
print("|---|---|---|---|")
for name, a, b in rows:
    err = f"{100 * (a - b) / b:+.0f}%" if a is not None and b else ""
    fa = f"{a:.2f}" if a is not None else "-"
    fb = f"{b:.2f}" if b is not None else "-"
    print(f"| {name} | {fa} | {fb} | {err} |")
EOF
