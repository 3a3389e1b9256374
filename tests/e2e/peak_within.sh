#!/bin/sh
# peak_within.sh LOG RANKS NAME — each of RANKS rank records in the program's
# JSON-lines LOG has its measured peak memory within 2% of the plan's; NAME
# labels the error. A missing rank, a missing field or NaN fails.
log=$1 ranks=$2 name=$3
grep '"rank"' "$log" | sed 's/.*"peak_mem_bytes": \([0-9.eE+]*\).*"planned_mem_bytes": \([0-9.eE+]*\).*/\1 \2/' |
    awk -v want="$ranks" '{ e = ($1 - $2) / $2; if (!(e <= 0.02 && e >= -0.02)) bad = 1; n++ } END { exit bad || n != want }' ||
    { echo "$name: measured peak memory off the plan by more than 2%" >&2; exit 1; }
