#!/bin/sh
# ckpt.sh GALVC COMPARE MPIEXEC WORKDIR CASE — checkpoints, resume and
# safetensors of the tiny GPT (and LLaMA, BERT for the names), one case per ctest:
#   resume     10 steps, against 5 steps + checkpoint + --resume + 5 steps: losses
#              and parameters bit-identical (tolerance 0)
#   reshard    a checkpoint written under TP2 x DP2 resumed under PP2 x SDP2,
#              under one rank and under TP2; and one written under PP2 x SDP2
#              (a tied head with its own table copy) resumed under TP2 x DP2:
#              the same losses as the run that never stopped, within 1e-5
#   safetensors  export, import, export again: every tensor byte-identical, for
#              GPT-2, LLaMA, BERT, ViT and T5 names; training from the import continues
#              like the run it came from; wrong names, shapes, dtypes and headers
#              refused on every rank
#   corrupt    a flipped byte, then a truncated shard: refused by their CRC and
#              size, the next older checkpoint used; none intact: an error
#   prune      --ckpt-keep: a symlinked step-N folder is no checkpoint and what it
#              points to (outside --ckpt-dir) survives the pruning; refused-step-N
#              folders are pruned too, the newest --ckpt-keep stay
#   manifest   MANIFESTs with a valid CRC but wrong content, each refused with its
#              reason within a minute: a line after the crc32 line, numbers out of
#              range (TP 2^31 - 1, a piece at 2^63 - 1, a rank, a file size, an
#              offset past its file), version 1; and checkpoints of another model
#              with the same parameter counts (other heads, other name): stopped,
#              naming what differs
#   kill       kill -9 one rank of a 4-rank run mid-step: every rank gone, mpirun
#              non-zero, within 10 s; the newest complete checkpoint loads
#   faults     an unwritable checkpoint folder and a full disk (a small tmpfs)
#              during a checkpoint: reported, non-zero exit, the older checkpoint
#              intact; unknown flags and data shorter than one batch refused
set -eu
galvc=$1 compare=$2 mpiexec=$3 work=$4 case=$5
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work"
export OPENBLAS_NUM_THREADS=1
data=$src/README.md

fail() { echo "ckpt.sh ($case): $*" >&2; exit 1; }

# build NAME RANKS PLAN [MODEL]: train-NAME for gpt-tiny (or MODEL) under a --uniform plan
build() { "$galvc" "$src/examples/${4:-gpt-tiny}.gv" -D ranks="$2" --uniform "$3" -o "train-$1"; }

# run NAME RANKS ARGS...: train-NAME under mpirun with the tests' seed and data
# (a ViT's or a Swin's, named vit-* or swin-*, its synthetic images)
run() {
    name=$1 ranks=$2
    shift 2
    case $name in
    vit-* | swin-*) "$mpiexec" --allow-run-as-root --oversubscribe -np "$ranks" "./train-$name" --seed 7 "$@" ;;
    *) "$mpiexec" --allow-run-as-root --oversubscribe -np "$ranks" "./train-$name" --seed 7 --data "$data" "$@" ;;
    esac
}

# expect_fail WHAT PATTERN CMD...: CMD must exit non-zero and say PATTERN on stderr
expect_fail() {
    what=$1 pattern=$2
    shift 2
    if "$@" > out.txt 2> err.txt; then fail "$what: exited 0"; fi
    grep -q -- "$pattern" err.txt || { cat err.txt >&2; fail "$what: no message matching '$pattern'"; }
    echo "ok: $what -> $(grep -m1 -- "$pattern" err.txt)"
}

# remanifest FILE SED-SCRIPT: edit a MANIFEST with sed and give it a valid CRC again
remanifest() {
    sed -i -e '/^crc32 /d' -e "$2" "$1"
    python3 -c 'import sys, zlib; b = open(sys.argv[1], "rb").read(); open(sys.argv[1], "ab").write(b"crc32 %d\n" % zlib.crc32(b))' "$1"
}

# losses of steps FROM..TO of a log, as a log
tail_log() { grep '"step"' "$1" | sed -n "$2,$3p"; }

# the continuous 10-step run every case compares with
reference() {
    build tp2dp2 4 tp=2,pp=1,dp=2
    run tp2dp2 4 --steps 10 --log full.jsonl --dump full.dump > /dev/null
    tail_log full.jsonl 6 10 > full-6-10.jsonl
}

case $case in
resume)
    reference
    rm -rf ck
    run tp2dp2 4 --steps 5 --ckpt-dir ck --ckpt-every 5 > /dev/null
    [ -f ck/step-00000005/MANIFEST ] || fail "no checkpoint at step 5"
    run tp2dp2 4 --steps 10 --ckpt-dir ck --resume --log resumed.jsonl --dump resumed.dump | grep resumed
    "$compare" full-6-10.jsonl resumed.jsonl full.dump resumed.dump 0 0
    # --ckpt-keep: only the newest checkpoints stay
    rm -rf keep
    run tp2dp2 4 --steps 6 --ckpt-dir keep --ckpt-every 1 --ckpt-keep 2 > /dev/null
    [ "$(ls keep)" = "step-00000005
step-00000006" ] || fail "--ckpt-keep 2 left: $(ls keep)"
    ;;
reshard)
    reference
    rm -rf ck
    run tp2dp2 4 --steps 5 --ckpt-dir ck --ckpt-every 5 > /dev/null
    build pp2sdp2 4 tp=1,pp=2,dp=2,sdp,m=2
    build one 1 tp=1,pp=1,dp=1
    build tp2 2 tp=2,pp=1,dp=1
    build zero1 4 tp=1,pp=1,dp=4,zero=1
    build tp2zero2 4 tp=2,pp=1,dp=2,zero=2
    build pp2dp2-interleaved 4 tp=1,pp=2,dp=2,vpp=2,m=2
    for t in "pp2sdp2 4" "one 1" "tp2 2" "zero1 4" "tp2zero2 4" "pp2dp2-interleaved 4"; do
        set -- $t
        rm -rf ck2 && mkdir ck2 && cp -r ck/step-00000005 ck2/
        run "$1" "$2" --steps 10 --ckpt-dir ck2 --resume --log "r-$1.jsonl" --dump "r-$1.dump" | grep resumed
        "$compare" full-6-10.jsonl "r-$1.jsonl" full.dump "r-$1.dump" 1e-5 1e-5
    done
    # the other way: written by PP2 x SDP2 (its head keeps its own copy of the table)
    rm -rf ck3
    run pp2sdp2 4 --steps 5 --ckpt-dir ck3 --ckpt-every 5 > /dev/null
    run tp2dp2 4 --steps 10 --ckpt-dir ck3 --resume --log r-back.jsonl --dump r-back.dump | grep resumed
    "$compare" full-6-10.jsonl r-back.jsonl full.dump r-back.dump 1e-5 1e-5
    # written by ZeRO-1 and TP2 x ZeRO-2 (each rank its part of m and v), and by an
    # interleaved pipeline (each stage's layers in two chunks)
    for t in "zero1 4" "tp2zero2 4" "pp2dp2-interleaved 4"; do
        set -- $t
        rm -rf ck4
        run "$1" "$2" --steps 5 --ckpt-dir ck4 --ckpt-every 5 > /dev/null
        run tp2dp2 4 --steps 10 --ckpt-dir ck4 --resume --log "r-from-$1.jsonl" --dump "r-from-$1.dump" | grep resumed
        "$compare" full-6-10.jsonl "r-from-$1.jsonl" full.dump "r-from-$1.dump" 1e-5 1e-5
    done
    ;;
safetensors)
    for model in gpt-tiny llama-tiny bert-tiny vit-tiny bert-tiny-cls swin-tiny t5-tiny; do
        build "$model-a" 4 tp=2,pp=1,dp=2 "$model"
        build "$model-b" 2 tp=1,pp=2,dp=1,m=2 "$model"
        run "$model-a" 4 --steps 3 --export-safetensors "$model.safetensors" --dump "$model-a.dump" > /dev/null
        run "$model-b" 2 --steps 0 --init-safetensors "$model.safetensors" --export-safetensors "$model-2.safetensors" \
            --dump "$model-b.dump" > /dev/null
        cmp "$model.safetensors" "$model-2.safetensors" || fail "$model: export, import, export differs"
        cmp "$model-a.dump" "$model-b.dump" || fail "$model: the imported parameters differ"
        echo "ok: $model round-trips exactly"
    done
    python3 - gpt-tiny.safetensors llama-tiny.safetensors bert-tiny.safetensors <<'EOF' || true
import json, struct, sys
for path in sys.argv[1:]:
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        h = json.loads(f.read(n))
    names = [k for k in h if k != '__metadata__']
    print(path, len(names), 'tensors:', ', '.join(names[:6]), '...', h['__metadata__'])
EOF
    grep -q '"h.0.attn.c_attn.weight":{"dtype":"F32","shape":\[64,192\]' gpt-tiny.safetensors || fail "GPT-2 names or Conv1D shape"
    grep -q '"model.layers.1.self_attn.k_proj.weight":{"dtype":"F32","shape":\[32,64\]' llama-tiny.safetensors || fail "LLaMA names"
    grep -q '"encoder.layer.0.attention.output.LayerNorm.bias"' bert-tiny.safetensors || fail "BERT names"
    # ViTForImageClassification's and BertForSequenceClassification's names and shapes
    for t in '"vit.embeddings.patch_embeddings.projection.weight":{"dtype":"F32","shape":\[64,3,8,8\]' \
        '"vit.embeddings.cls_token":{"dtype":"F32","shape":\[1,1,64\]' \
        '"vit.embeddings.position_embeddings":{"dtype":"F32","shape":\[1,17,64\]' \
        '"vit.encoder.layer.0.attention.attention.query.weight":{"dtype":"F32","shape":\[64,64\]' \
        '"vit.encoder.layer.3.layernorm_after.bias"' '"vit.layernorm.weight"' \
        '"classifier.weight":{"dtype":"F32","shape":\[10,64\]'; do
        grep -q "$t" vit-tiny.safetensors || fail "ViT names: $t"
    done
    for t in '"bert.embeddings.token_type_embeddings.weight":{"dtype":"F32","shape":\[2,64\]' \
        '"bert.pooler.dense.weight":{"dtype":"F32","shape":\[64,64\]' '"bert.encoder.layer.1.output.dense.bias"' \
        '"classifier.weight":{"dtype":"F32","shape":\[4,64\]' '"classifier.bias"'; do
        grep -q "$t" bert-tiny-cls.safetensors || fail "BERT classifier names: $t"
    done
    # T5ForConditionalGeneration's names and shapes: the shared table, each stack's blocks and bias table
    for t in '"shared.weight":{"dtype":"F32","shape":\[256,64\]' \
        '"encoder.block.0.layer.0.SelfAttention.q.weight":{"dtype":"F32","shape":\[64,64\]' \
        '"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight":{"dtype":"F32","shape":\[32,4\]' \
        '"encoder.block.1.layer.1.DenseReluDense.wi.weight":{"dtype":"F32","shape":\[256,64\]' \
        '"encoder.final_layer_norm.weight"' \
        '"decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight":{"dtype":"F32","shape":\[32,4\]' \
        '"decoder.block.1.layer.1.EncDecAttention.k.weight":{"dtype":"F32","shape":\[64,64\]' \
        '"decoder.block.1.layer.1.layer_norm.weight"' '"decoder.block.1.layer.2.DenseReluDense.wo.weight":{"dtype":"F32","shape":\[64,256\]' \
        '"decoder.final_layer_norm.weight"'; do
        grep -q "$t" t5-tiny.safetensors || fail "T5 names: $t"
    done
    [ "$(grep -a -o 'relative_attention_bias' t5-tiny.safetensors | wc -l)" -eq 2 ] ||
        fail "T5: a bias table other than each stack's first block's"
    # SwinForImageClassification's: the bias table (entries, heads), the stage's downsample
    for t in '"swin.embeddings.patch_embeddings.projection.weight":{"dtype":"F32","shape":\[32,3,2,2\]' \
        '"swin.embeddings.norm.weight":{"dtype":"F32","shape":\[32\]' \
        '"swin.encoder.layers.0.blocks.1.attention.self.relative_position_bias_table":{"dtype":"F32","shape":\[49,2\]' \
        '"swin.encoder.layers.1.blocks.0.attention.self.relative_position_bias_table":{"dtype":"F32","shape":\[49,4\]' \
        '"swin.encoder.layers.0.blocks.0.attention.self.key.weight":{"dtype":"F32","shape":\[32,32\]' \
        '"swin.encoder.layers.0.downsample.reduction.weight":{"dtype":"F32","shape":\[64,128\]' \
        '"swin.encoder.layers.0.downsample.norm.bias":{"dtype":"F32","shape":\[128\]' \
        '"swin.encoder.layers.1.blocks.1.layernorm_after.weight"' '"swin.encoder.layers.1.blocks.1.output.dense.bias"' \
        '"swin.layernorm.weight":{"dtype":"F32","shape":\[64\]' '"classifier.weight":{"dtype":"F32","shape":\[10,64\]'; do
        grep -q "$t" swin-tiny.safetensors || fail "Swin names: $t"
    done
    # training on from the import is training on from where the export was made
    build tp2dp2 4 tp=2,pp=1,dp=2
    run tp2dp2 4 --steps 3 --export-safetensors at3.safetensors > /dev/null
    run gpt-tiny-b 2 --steps 0 --init-safetensors at3.safetensors --dump init.dump > /dev/null
    run tp2dp2 4 --steps 0 --init-safetensors at3.safetensors --dump init4.dump > /dev/null
    cmp init.dump init4.dump || fail "an import differs between plans"
    # bad files: every rank exits non-zero with the reason
    python3 - <<'EOF'
import json, struct
def write(path, header, data=b''):
    h = json.dumps(header).encode()
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
src = open('gpt-tiny.safetensors', 'rb').read()
n = struct.unpack('<Q', src[:8])[0]
h = json.loads(src[8:8 + n]); data = src[8 + n:]
r = dict(h); r['wte.weightX'] = r.pop('wte.weight'); write('renamed.safetensors', r, data)
s = json.loads(json.dumps(h)); s['wpe.weight']['shape'] = [32, 128]; write('shape.safetensors', s, data)
d = json.loads(json.dumps(h)); d['ln_f.bias']['dtype'] = 'I32'; write('dtype.safetensors', d, data)
e = json.loads(json.dumps(h)); e['extra.weight'] = {'dtype': 'F32', 'shape': [0], 'data_offsets': [0, 0]}; write('extra.safetensors', e, data)
open('badlen.safetensors', 'wb').write(struct.pack('<Q', 1 << 40) + src[8:100])
open('badjson.safetensors', 'wb').write(struct.pack('<Q', 10) + b'{"a": [1, ' + data[:64])
o = json.loads(json.dumps(h)); o['ln_f.weight']['data_offsets'] = [len(data) - 4, len(data) + 252]; write('offsets.safetensors', o, data)
EOF
    expect_fail "renamed tensor" "no tensor 'wte.weight'" run gpt-tiny-b 2 --steps 1 --init-safetensors renamed.safetensors
    expect_fail "wrong shape" "has shape \[32, 128\], this model needs \[64, 64\]" run gpt-tiny-b 2 --steps 1 --init-safetensors shape.safetensors
    expect_fail "wrong dtype" "is I32, this model needs F32" run gpt-tiny-b 2 --steps 1 --init-safetensors dtype.safetensors
    expect_fail "unknown tensor" "'extra.weight' is not a tensor of this model" run gpt-tiny-b 2 --steps 1 --init-safetensors extra.safetensors
    expect_fail "header length" "not a safetensors file" run gpt-tiny-b 2 --steps 1 --init-safetensors badlen.safetensors
    expect_fail "header JSON" "not a JSON object" run gpt-tiny-b 2 --steps 1 --init-safetensors badjson.safetensors
    expect_fail "data offsets" "runs past the file" run gpt-tiny-b 2 --steps 1 --init-safetensors offsets.safetensors
    expect_fail "model mismatch" "no tensor 'model.embed_tokens.weight'" run llama-tiny-b 2 --steps 1 --init-safetensors gpt-tiny.safetensors
    ;;
corrupt)
    build tp2dp2 4 tp=2,pp=1,dp=2
    rm -rf ck
    run tp2dp2 4 --steps 6 --ckpt-dir ck --ckpt-every 2 > /dev/null
    # flip one byte in the middle of the newest checkpoint's rank-1 shard
    f=ck/step-00000006/rank-00001.bin
    size=$(wc -c < "$f")
    printf '\377' | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc 2> /dev/null
    run tp2dp2 4 --steps 6 --ckpt-dir ck --resume > out.txt 2> err.txt || fail "resume after a flipped byte failed"
    grep -q "rank-00001.bin: CRC-32 .* (corrupted)" err.txt || fail "the flipped byte was not reported"
    grep -q "resumed from ck/step-00000004" out.txt || fail "did not fall back to step 4"
    echo "ok: flipped byte -> $(grep -m1 corrupted err.txt)"
    [ -d ck/refused-step-00000006 ] || fail "the refused checkpoint was not set aside"
    # truncate a shard of the newest (step 6, rewritten by that run)
    f=ck/step-00000006/rank-00000.bin
    truncate -s 1000 "$f"
    run tp2dp2 4 --steps 6 --ckpt-dir ck --resume > out.txt 2> err.txt || fail "resume after a truncation failed"
    grep -q "rank-00000.bin: 1000 bytes, the MANIFEST says .* (truncated?)" err.txt || fail "the truncation was not reported"
    grep -q "resumed from ck/step-00000004" out.txt || fail "did not fall back to step 4"
    echo "ok: truncated shard -> $(grep -m1 truncated err.txt)"
    # a damaged MANIFEST, and no intact checkpoint at all
    rm -rf ck4 && run tp2dp2 4 --steps 2 --ckpt-dir ck4 > /dev/null
    sed -i 's/^step 2$/step 3/' ck4/step-00000002/MANIFEST
    expect_fail "damaged MANIFEST, nothing else" "no intact checkpoint in ck4 (1 refused)" run tp2dp2 4 --steps 4 --ckpt-dir ck4 --resume
    grep -q "MANIFEST: damaged" err.txt || fail "the damaged MANIFEST was not named"
    # an incomplete checkpoint (no MANIFEST: killed while writing) is skipped
    rm -rf ck5 && run tp2dp2 4 --steps 2 --ckpt-dir ck5 --ckpt-every 1 > /dev/null
    rm ck5/step-00000002/MANIFEST
    run tp2dp2 4 --steps 2 --ckpt-dir ck5 --resume > out.txt 2> err.txt
    grep -q "resumed from ck5/step-00000001" out.txt || fail "an incomplete checkpoint was not skipped"
    echo "ok: incomplete checkpoint -> $(grep -m1 incomplete err.txt)"
    ;;
prune)
    build tp2dp2 4 tp=2,pp=1,dp=2
    rm -rf ck outside && mkdir -p ck outside && echo data > outside/precious
    ln -s ../outside ck/step-00000001
    run tp2dp2 4 --steps 4 --ckpt-dir ck --ckpt-every 1 --ckpt-keep 2 > /dev/null
    [ -f outside/precious ] || fail "pruning followed the link ck/step-00000001 and removed outside/precious"
    [ "$(ls ck)" = "step-00000001
step-00000003
step-00000004" ] || fail "--ckpt-keep 2 with a link left: $(ls ck)"
    echo "ok: a symlinked step folder is left alone"
    # refused checkpoints: the newest --ckpt-keep stay, older ones go (a link is none: it stays)
    rm -rf ck && mkdir -p ck/refused-step-00000002 ck/refused-step-00000005 ck/refused-step-00000009
    touch ck/refused-step-00000002/rank-00000.bin ck/refused-step-00000005/MANIFEST
    ln -s ../outside ck/refused-step-00000001
    run tp2dp2 4 --steps 2 --ckpt-dir ck --ckpt-every 1 --ckpt-keep 2 > /dev/null
    [ "$(ls ck)" = "refused-step-00000001
refused-step-00000005
refused-step-00000009
step-00000001
step-00000002" ] || fail "refused folders not pruned to the newest 2: $(ls ck)"
    [ -f outside/precious ] || fail "pruning followed the link ck/refused-step-00000001"
    echo "ok: refused-step-N pruned to the newest 2"
    ;;
manifest)
    build tp2dp2 4 tp=2,pp=1,dp=2
    rm -rf good && run tp2dp2 4 --steps 2 --ckpt-dir good > /dev/null
    # bad WHAT PATTERN SED-SCRIPT: a copy of the checkpoint so edited is refused, saying PATTERN
    bad() {
        rm -rf ck && mkdir ck && cp -r good/step-00000002 ck/
        remanifest ck/step-00000002/MANIFEST "$3"
        expect_fail "$1" "$2" timeout 60 sh -c "$mpiexec --allow-run-as-root --oversubscribe -np 4 ./train-tp2dp2 \
            --seed 7 --data $data --steps 3 --ckpt-dir ck --resume"
    }
    rm -rf ck && mkdir ck && cp -r good/step-00000002 ck/
    echo "seed 99" >> ck/step-00000002/MANIFEST
    expect_fail "a line after crc32" "MANIFEST: a line after its crc32 line" run tp2dp2 4 --steps 3 --ckpt-dir ck --resume
    bad "TP 2^31 - 1" "layer 1: TP 2147483647 out of range" 's/^layer 1 1 \([0-9]*\) 2 /layer 1 1 \1 2147483647 /'
    bad "TP 3 (heads do not divide)" "layer 1: TP 3 out of range" 's/^layer 1 1 \([0-9]*\) 2 /layer 1 1 \1 3 /'
    bad "a piece at 2^63 - 1" "piece .* out of range" 's/^piece 0 1 0 0 25184 0 /piece 0 1 0 0 25184 9223372036854775807 /'
    bad "a piece of another length" "piece .* out of range" 's/^piece 0 1 0 0 25184 /piece 0 1 0 0 25185 /'
    bad "a piece past its file" "piece .* out of range" 's/^\(piece 0 1 0 0 25184 0 25184\) [0-9]*/\1 1357000/'
    bad "a piece of rank 4" "malformed line 'piece 4" 's/^piece 0 1 /piece 4 1 /'
    bad "a file of 2^63 bytes" "malformed line 'file 0" 's/^file 0 [0-9]*/file 0 9223372036854775808/'
    bad "no layer line" "no line for layer 3" '/^layer 3 /d'
    bad "pp 0" "malformed line 'plan 4 0'" 's/^plan 4 1$/plan 4 0/'
    bad "DP 2^31 - 1" "layer 2: TP 2 x DP 2147483647 out of range" 's/^layer 2 1 \([0-9]*\) 2 2 /layer 2 1 \1 2 2147483647 /'
    # version 1 (written before the model's shapes were recorded): refused with a word on why
    rm -rf ck && mkdir ck && cp -r good/step-00000002 ck/
    remanifest ck/step-00000002/MANIFEST 's/^galvc-checkpoint 2$/galvc-checkpoint 1/'
    expect_fail "version 1" "MANIFEST version 1" run tp2dp2 4 --steps 3 --ckpt-dir ck --resume
    [ -d ck/step-00000002 ] || fail "a version-1 checkpoint was set aside"
    # another model with the same parameter counts: 2 heads instead of 4, another name
    sed 's/heads = 4/heads = 2/' "$src/examples/gpt-tiny.gv" > heads2.gv
    sed 's/model gpt_tiny/model gpt_other/' "$src/examples/gpt-tiny.gv" > other.gv
    for m in heads2 other; do "$galvc" "$m.gv" -I "$src/examples" -D ranks=4 --uniform tp=2,pp=1,dp=2 -o "train-$m"; done
    rm -rf ck && cp -r good ck
    expect_fail "2 heads, not 4" "layer 1 .* differs: H = 4 in the checkpoint, 2 in this program" \
        run heads2 4 --steps 3 --ckpt-dir ck --resume
    expect_fail "another model name" "model 'gpt_tiny' in the checkpoint, 'gpt_other' in this program" \
        run other 4 --steps 3 --ckpt-dir ck --resume
    [ -f ck/step-00000002/MANIFEST ] || fail "another model's checkpoint was set aside"
    ;;
kill)
    build kill 4 tp=2,pp=1,dp=2
    rm -rf ck
    run kill 4 --steps 100000 --ckpt-dir ck --ckpt-every 20 > out.txt 2> err.txt &
    launcher=$!
    # wait for two checkpoints, then kill rank 2 mid-step
    for i in $(seq 1 600); do
        [ -f ck/step-00000040/MANIFEST ] && break
        sleep 0.1
    done
    [ -f ck/step-00000040/MANIFEST ] || { kill $launcher; fail "no checkpoint at step 40"; }
    pids=$(pgrep -f "train-kill --seed 7" | while read p; do
        [ "$(cat /proc/$p/comm 2> /dev/null)" = train-kill ] && echo $p; done)
    [ "$(echo $pids | wc -w)" = 4 ] || fail "expected 4 ranks, found: $pids"
    victim=$(echo $pids | cut -d' ' -f3)
    start=$(date +%s.%N)
    kill -9 "$victim"
    rc=0
    wait $launcher || rc=$?
    for p in $pids; do
        while kill -0 "$p" 2> /dev/null; do sleep 0.05; done
    done
    end=$(date +%s.%N)
    took=$(echo "$end - $start" | bc)
    cat err.txt >&2
    echo "killed pid $victim; mpirun exited $rc; every rank gone after $took s"
    [ "$rc" -ne 0 ] || fail "mpirun exited 0 after a rank was killed"
    [ "$(echo "$took < 10" | bc)" = 1 ] || fail "ranks lived $took s after the kill"
    grep -q "rank [0-9]" err.txt || fail "no message naming the lost rank"
    newest=$(ls ck | grep '^step-' | sort | tail -1)
    run kill 4 --steps $((${newest#step-} + 0)) --ckpt-dir ck --resume > out.txt 2> err.txt || true
    grep -q "resumed from ck/step-" out.txt || { cat out.txt err.txt >&2; fail "no checkpoint loads after the kill"; }
    echo "ok: after the kill, $(grep resumed out.txt)"
    ;;
faults)
    build tp2dp2 4 tp=2,pp=1,dp=2
    expect_fail "unknown flag" "unknown or incomplete option '--frobnicate'" run tp2dp2 4 --frobnicate
    expect_fail "missing value" "unknown or incomplete option '--ckpt-every'" run tp2dp2 4 --ckpt-every
    expect_fail "bad value" "bad value 'x' for --ckpt-every" run tp2dp2 4 --ckpt-every x --ckpt-dir ck
    expect_fail "--resume without a folder" "need --ckpt-dir" run tp2dp2 4 --resume
    head -c 400 "$data" > short.txt
    expect_fail "data too short" "400 tokens, too few for one batch" run tp2dp2 4 --steps 1 --data short.txt
    [ "$(grep -c 'too few' err.txt)" = 1 ] || fail "the short-data message should come once (rank 0)"
    if [ "$(id -u)" != 0 ]; then
        mkdir -p ro && chmod 555 ro
        expect_fail "unwritable folder" "cannot" run tp2dp2 4 --steps 1 --ckpt-dir ro/ck
    fi
    : > afile
    expect_fail "folder is a file" "ckpt-dir: cannot create folder afile" run tp2dp2 4 --steps 1 --ckpt-dir afile/ck
    # a full disk: a 4 MiB tmpfs (where one can be mounted: root) holds the
    # step-2 checkpoint (2.7 MB) but not a second one beside it
    mkdir -p small
    if mount -t tmpfs -o size=4m tmpfs small 2> /dev/null; then
        trap 'umount "$work/small"' EXIT
        run tp2dp2 4 --steps 2 --ckpt-dir small/ck > /dev/null
        cp small/ck/step-00000002/rank-00000.bin before.bin
        expect_fail "disk full" "No space left on device" run tp2dp2 4 --steps 4 --ckpt-dir small/ck --resume
        grep -q "earlier checkpoints are intact" err.txt || fail "no word on the earlier checkpoints"
        [ ! -f small/ck/step-00000004/MANIFEST ] || fail "a failed checkpoint has a MANIFEST"
        if ls small/ck/step-00000004 | grep -q tmp; then fail "a temporary file was left behind"; fi
        cmp before.bin small/ck/step-00000002/rank-00000.bin
        run tp2dp2 4 --steps 2 --ckpt-dir small/ck --resume | grep -q "resumed from small/ck/step-00000002" ||
            fail "step 2 no longer loads"
        echo "ok: the previous checkpoint loads after the failed one"
    else
        echo "skipped: full disk (no tmpfs can be mounted here; needs root)"
    fi
    ;;
*) fail "unknown case" ;;
esac
