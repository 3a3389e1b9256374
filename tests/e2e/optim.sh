#!/bin/sh
# optim.sh GALVC COMPARE MPIEXEC WORKDIR CASE — the training configuration the
# model file gives is the one that trains (the tiny GPT on 2 ranks):
#   memory     SGD (with and without momentum), Adam and AdamW each train, and
#              each rank's peak memory is within 2% of the plan's (SGD keeps
#              fewer states: the plan and the program agree on which)
#   schedule   warm-up then cosine decay: the log's lr column follows the
#              schedule; 3 steps + checkpoint + --resume + 3 steps equal 6
#              straight steps exactly (SGD with momentum: its one state kept)
#   nonfinite  a learning rate that blows the model up stops every rank at the
#              first non-finite loss, non-zero, with the reason
set -eu
galvc=$1 compare=$2 mpiexec=$3 work=$4 case=$5
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work"
export OPENBLAS_NUM_THREADS=1

fail() { echo "optim.sh ($case): $*" >&2; exit 1; }

# model.gv: the tiny GPT whose train block takes the lines given
model() {
    sed '/^train {/,$d' "$src/examples/gpt-tiny.gv" > model.gv
    printf 'train {\n    global_batch = 8\n    seq = 64\n    precision = fp32\n    steps = 200\n%s\n}\n' "$1" >> model.gv
}

# train NAME ARGS...: build train-NAME from model.gv on 2 ranks (DP 2) and run it
train() {
    name=$1
    shift
    "$galvc" model.gv -I "$src/examples" -D ranks=2 --uniform tp=1,pp=1,dp=2 -o "train-$name"
    "$mpiexec" --allow-run-as-root --oversubscribe -np 2 "./train-$name" --seed 7 --data "$src/README.md" "$@"
}

field() { sed -n "s/.*\"$1\": \([-0-9.eE+na]*\).*/\1/p"; }

case $case in
memory)
    : > planned.txt
    for opt in "sgd(lr = 0.05)" "sgd(lr = 0.05, momentum = 0.9, nesterov)" "adam(lr = 1e-3, weight_decay = 0.1)" \
               "adamw(lr = 1e-3)"; do
        model "    optimizer = $opt"
        train mem --steps 3 --log mem.jsonl > mem.out
        grep -q '"step": 3' mem.jsonl || fail "$opt: did not train 3 steps"
        grep '"rank"' mem.jsonl | while read -r line; do
            peak=$(echo "$line" | field peak_mem_bytes) planned=$(echo "$line" | field planned_mem_bytes)
            awk -v m="$peak" -v p="$planned" -v o="$opt" 'BEGIN { e = (m - p) / p; if (e < 0) e = -e
                printf "%s: peak %.0f, planned %.0f (%.2f%%)\n", o, m, p, 100 * e; exit e > 0.02 }' ||
                fail "$opt: memory off the plan by more than 2%"
        done
        grep '"rank": 0' mem.jsonl | field planned_mem_bytes >> planned.txt
    done
    # SGD without momentum keeps no state, with momentum one, Adam(W) two: the plans say so
    awk 'NR == 1 { a = $1 } NR == 2 { b = $1 } NR == 3 { c = $1 } NR == 4 { d = $1 }
         END { exit !(a < b && b < c && c == d) }' planned.txt || fail "the plans do not count the optimizers' states" ;;
schedule)
    model "    optimizer = sgd(lr = 0.1, momentum = 0.9)
    warmup = 2
    decay = cosine
    min_lr = 0.01
    decay_steps = 6"
    train straight --steps 6 --log straight.jsonl --dump straight.dump > straight.out
    # lr per step: 0.05, 0.1, then 0.01 + 0.045 (1 + cos(pi (s - 2) / 4)) for s = 2..5
    grep '"step"' straight.jsonl | field lr | awk '
        { s = NR - 1; want = s < 2 ? 0.1 * (s + 1) / 2 : 0.01 + 0.045 * (1 + cos(3.141592653589793 * (s - 2) / 4))
          d = $1 - want; if (d < 0) d = -d
          if (d > 1e-7 * want) { printf "step %d: lr %s, want %.9g\n", s + 1, $1, want; bad = 1 } }
        END { if (NR != 6) { print "not 6 steps"; bad = 1 }; exit bad }' || fail "the lr column does not follow the schedule"
    rm -rf ck
    "$mpiexec" --allow-run-as-root --oversubscribe -np 2 ./train-straight --seed 7 --data "$src/README.md" --steps 3 \
        --ckpt-dir ck > part1.out
    "$mpiexec" --allow-run-as-root --oversubscribe -np 2 ./train-straight --seed 7 --data "$src/README.md" --steps 6 \
        --ckpt-dir ck --resume --log resumed.jsonl --dump resumed.dump > part2.out
    head -n 4 straight.jsonl | grep '"step"' > first.jsonl
    cat first.jsonl resumed.jsonl > joined.jsonl
    "$compare" straight.jsonl joined.jsonl straight.dump resumed.dump 0 0 || fail "the resumed run differs" ;;
nonfinite)
    model "    optimizer = adamw(lr = 1e30)"
    if train blowup --steps 20 > blowup.out 2> blowup.err; then fail "a run to NaN exited 0"; fi
    grep -q "stopping" blowup.err || { cat blowup.err; fail "no reason given"; }
    grep -c '^step' blowup.out | awk '{ exit $1 >= 20 }' || fail "it ran every step" ;;
*) fail "unknown case" ;;
esac
echo "optim.sh ($case): ok"
