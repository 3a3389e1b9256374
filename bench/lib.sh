# lib.sh — what the benchmarks share: reading JSON-lines logs, medians, and
# turning galvc --baselines rows into --uniform plans. Sourced, not run.

# the median of stdin's numbers
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# a JSON number field of the lines on stdin
field() { sed -n "s/.*\"$1\": \([-0-9.eE+]*\).*/\1/p"; }

# galvc --baselines output on stdin -> "NAME UNIFORM" lines for galvc's plan
# and every baseline that fits (NAME with underscores for spaces)
plans_of_baselines() {
    awk 'NR > 2 && !/does not fit/ && NF > 3 {
            name = ""; u = ""; done = 0
            for (i = 1; i <= NF; i++) {
                f = $i
                if (f ~ /^[0-9.]+$/ && name != "") done = 1
                if (!done) name = name (name == "" ? "" : "_") f
                if (f ~ /^(pp|tp|dp|m)=/) u = u (u == "" ? "" : ",") f
                else if (f ~ /^sdp=/) { sub(/^sdp=/, "dp=", f); u = u "," f ",sdp" }
                else if (f ~ /^zero[12]=/) { z = substr(f, 5, 1); sub(/^zero[12]=/, "dp=", f); u = u "," f ",zero=" z }
                else if (f == "accumulate-once") u = u ",zero3-accum=once"
                else if (f == "ckpt" || f == "tp-strided") u = u "," f
            }
            if (name ~ /GPipe/) u = u ",schedule=gpipe"
            print name, u
        }'
}

# run_plan GALVC MODEL RANKS PROFILE NAME UNIFORM PROG STEPS DATA [galvc args...]:
# build the plan (NAME galvc: the search's) and train; false when it does not build
run_plan() {
    _galvc=$1 _model=$2 _ranks=$3 _prof=$4 _name=$5 _uniform=$6 _prog=$7 _steps=$8 _data=$9
    shift 9
    if [ "$_name" = galvc ]; then set -- "$@"; else set -- "$@" --uniform "$_uniform"; fi
    "$_galvc" "$_model" -D ranks="$_ranks" --profile "$_prof" "$@" -o "$_prog" 2>"$_prog.err" || return 1
    mpirun --oversubscribe -np "$_ranks" "$_prog" --steps "$_steps" --data "$_data" --log "$_prog.jsonl" \
        < /dev/null > "$_prog.out" 2>&1
}
