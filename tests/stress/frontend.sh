#!/bin/sh
# frontend.sh GALVC WORK CASE — inputs too large to commit, generated here,
# that the frontend must answer quickly (within $STRESS_SECONDS, 2 by default)
# with the right value or a located error, never a crash:
#   flat-expr       a 30,000-term `1+1+...` gives its sum; a 4 MB one-line
#                   expression gives its sum or a located error
#   flat-define     the same 30,000 terms as a -D value
#   deep-nesting    9,000 nested `-`; 4 MB of `- - - ...`, of `((((...` and
#                   of `1-(1-(...`; 2,400 nested repeat blocks
#   many-constants  100,000 constants (1.5 MB), each using the one before
#   many-layers     99,000 labelled layers
set -u
galvc=$1
work=$2
case=$3
limit=${STRESS_SECONDS:-2}
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work" || exit 1

fail() { echo "FAIL: $*" >&2; exit 1; }

# run NAME ARGS...: galvc with a time limit, output in NAME.out, status in $rc
run() {
    name=$1
    shift
    timeout "$limit" "$galvc" "$@" >"$name.out" 2>&1
    rc=$?
    [ $rc -eq 124 ] && fail "$name: no answer within $limit s"
    [ $rc -gt 1 ] && fail "$name: exit status $rc (a crash?): $(head -c 300 "$name.out")"
    return 0
}

# terms N: "1+1+...+1", N terms
terms() { awk -v n="$1" 'BEGIN { printf "1"; for (i = 1; i < n; i++) printf "+1"; printf "\n" }'; }

# a model around a train block whose global_batch is $1
model() {
    cat <<GV
include "$src/examples/clusters/cpu-box.gv"
model m { embedding(256, 64); layernorm(64); lm_head(tied) }
train { seq = 16; global_batch = $1 }
GV
}

# located NAME: the output is a located error, file:line:col: error:
located() { grep -Eq "^$1.gv:[0-9]+:[0-9]+: error: " "$1.out" || fail "$1: no located error: $(head -c 300 "$1.out")"; }

case $case in
flat-expr)
    model "$(terms 30000)" >flat30k.gv
    run flat30k flat30k.gv --emit=ir-json
    [ $rc -eq 0 ] && grep -q '"global_batch": 30000' flat30k.out || fail "flat30k: $(head -c 300 flat30k.out)"
    model "$(terms 2097152)" >flat4m.gv # 4 MiB on one line
    run flat4m flat4m.gv --emit=ir-json
    [ $rc -eq 0 ] && { grep -q '"global_batch": 2097152' flat4m.out || fail "flat4m: wrong sum"; }
    [ $rc -eq 1 ] && located flat4m
    ;;
flat-define)
    model 8 >define.gv
    run define define.gv --emit=ir-json -D "global_batch=$(terms 30000)"
    [ $rc -eq 0 ] && grep -q '"global_batch": 30000' define.out || fail "define: $(head -c 300 define.out)"
    ;;
deep-nesting)
    model "$(awk 'BEGIN { for (i = 0; i < 2097152; i++) printf "- "; print "1" }')" >neg.gv
    run neg neg.gv --emit=ir-json
    [ $rc -eq 1 ] && located neg
    model "$(awk 'BEGIN { for (i = 0; i < 9000; i++) printf "- "; print "1" }')" >neg9k.gv # as deep as the parser takes
    run neg9k neg9k.gv --emit=ir-json
    [ $rc -eq 0 ] && { grep -q '"global_batch": 1,' neg9k.out || fail "neg9k: wrong value"; }
    [ $rc -eq 1 ] && located neg9k
    model "$(awk 'BEGIN { for (i = 0; i < 2097152; i++) printf "("; printf "1"; for (i = 0; i < 2097152; i++) printf ")"; print "" }')" >paren.gv
    run paren paren.gv --emit=ir-json
    [ $rc -eq 1 ] && located paren
    model "$(awk 'BEGIN { for (i = 0; i < 1398101; i++) printf "1-("; printf "1"; for (i = 0; i < 1398101; i++) printf ")"; print "" }')" >right.gv
    run right right.gv --emit=ir-json
    [ $rc -eq 1 ] && located right
    { echo 'model m {'; awk 'BEGIN { for (i = 0; i < 2400; i++) printf "repeat 1 {"; printf "layernorm(64)"; for (i = 0; i < 2400; i++) printf "}"; print "" }'; echo '}'; } >repeat.gv
    run repeat repeat.gv
    [ $rc -eq 1 ] && located repeat
    ;;
many-constants)
    { echo "c0 = 1"; awk 'BEGIN { for (i = 1; i < 100000; i++) printf "c%d = c%d + 1\n", i, i - 1 }'; } >many.gv
    model c99999 >>many.gv
    [ "$(wc -c <many.gv)" -gt 1400000 ] || fail "many.gv is smaller than meant"
    run many many.gv --emit=ir-json
    [ $rc -eq 0 ] && grep -q '"global_batch": 100000' many.out || fail "many: $(head -c 300 many.out)"
    ;;
many-layers)
    { echo 'model m { embedding(256, 64)'; awk 'BEGIN { for (i = 0; i < 99000; i++) printf "l%d: layernorm(64)\n", i }'
      echo 'lm_head(tied) }'; } >layers.gv
    model 8 | sed '/^model/d' >>layers.gv
    run layers layers.gv
    [ $rc -eq 0 ] && grep -q 'l98999' layers.out || fail "layers: $(head -c 300 layers.out)"
    ;;
*) fail "unknown case '$case'" ;;
esac
echo "ok: $case"
