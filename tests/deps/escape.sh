#!/bin/sh
# escape.sh GALVC WORK — galvc -M's rule for included files whose names make
# would misread: `$`, `:`, `#` and spaces must come out escaped, so that make
# reads back the very files; a newline or a tab (which make cannot express,
# and which could add a recipe) must be refused with a located error.
set -u
galvc=$1
work=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
cd "$work" || exit 1

# 1. odd but expressible names: make must find every prerequisite
weird='we$ird: na#me x.gv'
echo 'x = 1' >"$weird"
printf 'include "%s"\nmodel m { embedding(256, 64); layernorm(64); lm_head(tied) }\n' "$weird" >main.gv
printf 'cluster c { devices_per_node = 1; device = cpu; memory = 1 GiB }\ntrain { global_batch = 8; seq = 16 }\n' >>main.gv
"$galvc" main.gv -M -MT train >main.d 2>err.txt || fail "galvc -M: $(cat err.txt)"
grep -qF 'we$$ird\:\ na\#me\ x.gv' main.d || fail "not escaped: $(cat main.d)"
printf 'include main.d\ntrain:\n\t@echo up to date\n' >check.mk
make -s -f check.mk train >make.txt 2>&1 || fail "make cannot read the rule: $(cat make.txt)"
grep -q 'up to date' make.txt || fail "make: $(cat make.txt)"

# 2. a newline and a tab: refused, located at the include, and no rule written
nl='a
	echo RECIPE-RAN'
echo 'x = 1' >"$nl"
printf 'include "a\\n\\techo RECIPE-RAN"\nmodel m { embedding(256, 64); layernorm(64); lm_head(tied) }\n' >bad.gv
printf 'cluster c { devices_per_node = 1; device = cpu; memory = 1 GiB }\ntrain { global_batch = 8; seq = 16 }\n' >>bad.gv
"$galvc" bad.gv -M -MT train >bad.d 2>err.txt
rc=$?
[ $rc -eq 1 ] || fail "a newline in an included name: exit $rc, rule: $(cat bad.d)"
grep -Eq '^bad.gv:1:9: error: .*newline' err.txt || fail "no located error: $(cat err.txt)"
[ -s bad.d ] && fail "a rule was written: $(cat bad.d)"
"$galvc" bad.gv -MD -MF bad2.d -MT train >/dev/null 2>err.txt && fail "-MD: accepted"
[ -e bad2.d ] && fail "-MD wrote bad2.d"
echo ok
