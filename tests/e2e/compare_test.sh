#!/bin/sh
# compare_test.sh — e2e_compare fails what must not pass: a loss or a
# parameter that is NaN or infinite in either run, a tensor missing from or
# extra in either dump, runs of different numbers of steps (or none); and
# passes two equal runs; the same for the losses alone (compare REF RUN TOL). Fixtures are written here: JSON-lines logs, and
# dumps of records "layer tensor count\n" then count float32s (little-endian).
#   compare_test.sh COMPARE WORKDIR
set -u
compare=$1 work=$2
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1

one='\000\000\200\077' two='\000\000\000\100' nan='\000\000\300\177' inf='\000\000\200\177'

# log FILE LOSS...: one step per loss
log() {
    f=$1 step=0
    shift
    : >"$f"
    for x in "$@"; do
        step=$((step + 1))
        printf '{"step": %d, "loss": %s, "ms": 1.000}\n' "$step" "$x" >>"$f"
    done
}

# tensor FILE LAYER NAME FLOAT...: append one record (floats as octal escapes)
tensor() {
    f=$1 layer=$2 name=$3
    shift 3
    printf '%s %s %d\n' "$layer" "$name" $# >>"$f"
    for x in "$@"; do printf "$x" >>"$f"; done
}


failures=0
# expect CODE WHAT ARGS...: compare ARGS must exit CODE
expect() {
    want=$1 what=$2
    shift 2
    "$compare" "$@" >out.txt 2>err.txt
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL: $what: exit $got, expected $want"
        cat out.txt err.txt
        failures=$((failures + 1))
    else
        echo "ok: $what: $(cat err.txt out.txt | head -n 1)"
    fi
}

log ref.jsonl 2.5 2.25
: >ref.dump && tensor ref.dump emb wte "$one" "$two" && tensor ref.dump ln weight "$one"
cp ref.jsonl same.jsonl && cp ref.dump same.dump
expect 0 "equal runs" ref.jsonl same.jsonl ref.dump same.dump 1e-5 1e-5

log nan.jsonl nan nan
expect 1 "every loss NaN" ref.jsonl nan.jsonl ref.dump same.dump 1e-5 1e-5
expect 1 "the reference's losses NaN" nan.jsonl ref.jsonl ref.dump same.dump 1e-5 1e-5
log inf.jsonl 2.5 inf
expect 1 "a loss infinite" ref.jsonl inf.jsonl ref.dump same.dump 1e-5 1e-5
log null.jsonl 2.5 null
expect 1 "a loss not a number" ref.jsonl null.jsonl ref.dump same.dump 1e-5 1e-5

: >nan.dump && tensor nan.dump emb wte "$nan" "$nan" && tensor nan.dump ln weight "$nan"
expect 1 "every parameter NaN" ref.jsonl same.jsonl ref.dump nan.dump 1e-5 1e-5
expect 1 "the reference's parameters NaN" ref.jsonl same.jsonl nan.dump ref.dump 1e-5 1e-5
: >inf.dump && tensor inf.dump emb wte "$one" "$two" && tensor inf.dump ln weight "$inf"
expect 1 "a parameter infinite" ref.jsonl same.jsonl ref.dump inf.dump 1e-5 1e-5

: >short.dump && tensor short.dump emb wte "$one" "$two"
expect 1 "a tensor missing from the run" ref.jsonl same.jsonl ref.dump short.dump 1e-5 1e-5
expect 1 "a tensor missing from the reference" ref.jsonl same.jsonl short.dump ref.dump 1e-5 1e-5
cp ref.dump extra.dump && tensor extra.dump head weight "$one"
expect 1 "an extra tensor in the run" ref.jsonl same.jsonl ref.dump extra.dump 1e-5 1e-5
expect 1 "an extra tensor in the reference" ref.jsonl same.jsonl extra.dump ref.dump 1e-5 1e-5
: >other.dump && tensor other.dump emb wte "$one" "$two" && tensor other.dump ln bias "$one"
expect 1 "a different tensor" ref.jsonl same.jsonl ref.dump other.dump 1e-5 1e-5
: >cut.dump && tensor cut.dump emb wte "$one" "$two" && printf 'ln weight 1\n' >>cut.dump
expect 1 "a tensor cut short" ref.jsonl same.jsonl ref.dump cut.dump 1e-5 1e-5
: >empty.dump
expect 1 "no tensors at all" ref.jsonl same.jsonl empty.dump empty.dump 1e-5 1e-5

log fewer.jsonl 2.5
expect 1 "fewer steps in the run" ref.jsonl fewer.jsonl ref.dump same.dump 1e-5 1e-5
expect 1 "fewer steps in the reference" fewer.jsonl ref.jsonl ref.dump same.dump 1e-5 1e-5
log none.jsonl
expect 1 "no losses in the run" ref.jsonl none.jsonl ref.dump same.dump 1e-5 1e-5
expect 1 "no losses in the reference" none.jsonl ref.jsonl ref.dump same.dump 1e-5 1e-5
expect 1 "no losses in either" none.jsonl none.jsonl ref.dump same.dump 1e-5 1e-5

log off.jsonl 2.5 2.3
expect 1 "a loss apart" ref.jsonl off.jsonl ref.dump same.dump 1e-5 1e-5
: >off.dump && tensor off.dump emb wte "$one" "$one" && tensor off.dump ln weight "$one"
expect 1 "a parameter apart" ref.jsonl same.jsonl ref.dump off.dump 1e-5 1e-5

# the losses alone (compare REF RUN TOL: the CUDA target's runs, which cannot --dump)
expect 0 "losses alone: equal" ref.jsonl same.jsonl 1e-4
log near.jsonl 2.5001 2.25
expect 0 "losses alone: within 1e-4" ref.jsonl near.jsonl 1e-4
expect 1 "losses alone: apart" ref.jsonl off.jsonl 1e-4
expect 1 "losses alone: NaN" ref.jsonl nan.jsonl 1e-4
expect 1 "losses alone: the reference's NaN" nan.jsonl ref.jsonl 1e-4
expect 1 "losses alone: infinite" ref.jsonl inf.jsonl 1e-4
expect 1 "losses alone: not a number" ref.jsonl null.jsonl 1e-4
expect 1 "losses alone: fewer steps" ref.jsonl fewer.jsonl 1e-4
expect 1 "losses alone: none in either" none.jsonl none.jsonl 1e-4
expect 1 "losses alone: no such log" ref.jsonl missing.jsonl 1e-4

[ "$failures" -eq 0 ] || { echo "$failures cases failed"; exit 1; }
