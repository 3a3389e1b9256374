#!/bin/bash
# predict.sh — the time half of the GPU check's row (h), where galvc runs:
# each GPT-2 plan of tests/gpu/plans.sh priced with the profile row (g)
# measured on the GPU, against what its program measured there.
#
#   bash tests/gpu/predict.sh DIR [GALVC]
#
# DIR: the check's logs as they came back ($OUT/gpu-check: cuda-profile.json
# and NAME.jsonl for each plan); GALVC: default build/galvc. For each plan:
# galvc plans it again with --profile DIR/cuda-profile.json (--emit=plan-json:
# the predicted step time and each stage's peak device memory), the log gives
# the measured median step time after 3 steps and the ranks' peak memory
# (tests/gpu/runlog.py). PASS within 10% time and 2% memory; a table last;
# exit 1 on any FAIL, 2 when DIR lacks the profile.
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:?usage: bash tests/gpu/predict.sh DIR [GALVC]}
galvc=${2:-$src/build/galvc}
[ -f "$dir/cuda-profile.json" ] || { echo "predict.sh: error: no $dir/cuda-profile.json (row (g)'s profile)" >&2; exit 2; }
source "$src/tests/gpu/plans.sh"
failed=0
printf '%-12s %-4s %s\n' plan result "time (measured / predicted), memory (measured / predicted)"
for entry in "${PREDICT_PLANS[@]}"; do
    read -r name _ args <<<"$entry"
    # shellcheck disable=SC2086 # the entry's arguments are split as written
    plan=$("$galvc" "$src/examples/gpt2-small.gv" "${GPT2_ARGS[@]}" $args --profile "$dir/cuda-profile.json" \
        --emit=plan-json 2>&1) || { printf '%-12s FAIL galvc: %s\n' "$name" "$(tail -n 1 <<<"$plan")"; failed=1; continue; }
    sum=$(python3 "$src/tests/gpu/runlog.py" "$dir/$name.jsonl" 3 2>&1) ||
        { printf '%-12s FAIL %s\n' "$name" "$sum"; failed=1; continue; }
    line=$(python3 -c '
import json, sys
p = json.loads(sys.argv[1])["predicted"]
s = sys.argv[2].split()
v = dict(zip(s[0::2], map(float, s[1::2])))
dt, dm = v["ms"] / p["step_ms"] - 1, v["peak"] / max(p["peak_mem_bytes"]) - 1
ok = abs(dt) <= 0.10 and abs(dm) <= 0.02
print("PASS" if ok else "FAIL", "%.1f / %.1f ms (%+.1f%%), %.2f / %.2f GiB (%+.1f%%)" % (
    v["ms"], p["step_ms"], 100 * dt, v["peak"] / 2**30, max(p["peak_mem_bytes"]) / 2**30, 100 * dm))
' "$plan" "$sum")
    printf '%-12s %s\n' "$name" "$line"
    case $line in FAIL*) failed=1 ;; esac
done
exit $failed
