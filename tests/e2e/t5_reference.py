"""t5_reference.py MODEL.safetensors DATA TE TD B -- the mean loss of T5's first
step, computed from the exported safetensors by an independent, plain-Python
reading of Hugging Face's T5ForConditionalGeneration (modeling_t5.py: T5LayerNorm,
T5Attention with _relative_position_bucket and no 1/sqrt(d) scale, the causal
decoder, EncDecAttention, DenseReluDense, the tied head scaled by d_model^-0.5),
on the records the program reads (README: T5 records): sequence k of step 0 is
the TE + TD bytes from k (TE + TD) of DATA, the decoder reading 0 then the
target shifted right. Prints the loss."""
import json
import math
import struct
import sys


def load(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in head.items():
        if name == '__metadata__':
            continue
        a, b = t['data_offsets']
        flat = struct.unpack('<%df' % ((b - a) // 4), data[a:b])
        shape = t['shape']
        out[name] = [list(flat[i * shape[1]:(i + 1) * shape[1]]) for i in range(shape[0])] if len(shape) == 2 else list(flat)
    return out


def linear(x, w):  # x (n, c) @ w (o, c)^T
    return [[sum(a * b for a, b in zip(row, wr)) for wr in w] for row in x]


def rms(x, w, eps=1e-6):
    out = []
    for row in x:
        r = 1.0 / math.sqrt(sum(v * v for v in row) / len(row) + eps)
        out.append([v * r * g for v, g in zip(row, w)])
    return out


def bucket(rel, n, bidirectional, max_distance=128):
    ret = 0
    if bidirectional:
        n //= 2
        ret += n if rel > 0 else 0
        rel = abs(rel)
    else:
        rel = -min(rel, 0)
    exact = n // 2
    if rel < exact:
        return ret + rel
    large = exact + int(math.log(rel / exact) / math.log(max_distance / exact) * (n - exact))
    return ret + min(large, n - 1)


def attention(xq, xkv, p, heads, bias=None, causal=False):
    q, k, v = linear(xq, p['q']), linear(xkv, p['k']), linear(xkv, p['v'])
    d = len(q[0]) // heads
    out = [[0.0] * len(q[0]) for _ in q]
    for h in range(heads):
        for t in range(len(q)):
            keys = range(t + 1) if causal else range(len(k))
            s = [sum(q[t][h * d + i] * k[u][h * d + i] for i in range(d)) + (bias(h, t, u) if bias else 0.0) for u in keys]
            m = max(s)
            e = [math.exp(x - m) for x in s]
            z = sum(e)
            for j, u in enumerate(keys):
                for i in range(d):
                    out[t][h * d + i] += e[j] / z * v[u][h * d + i]
    return linear(out, p['o'])


def add(a, b):
    return [[x + y for x, y in zip(r, s)] for r, s in zip(a, b)]


def stack(W, name, x, heads, enc=None):
    blocks = sorted({int(k.split('.')[2]) for k in W if k.startswith(name + '.block.')})
    table = W[name + '.block.0.layer.0.SelfAttention.relative_attention_bias.weight']
    n = len(table)
    causal = enc is not None
    bias = lambda h, t, u: table[bucket(u - t, n, not causal)][h]
    for j in blocks:
        at = '%s.block.%d.layer.' % (name, j)
        att = lambda layer, kind: {c: W['%s%d.%s.%s.weight' % (at, layer, kind, c)] for c in 'qkvo'}
        x = add(x, attention(rms(x, W[at + '0.layer_norm.weight']), rms(x, W[at + '0.layer_norm.weight']),
                             att(0, 'SelfAttention'), heads, bias, causal))
        mlp = 1
        if enc is not None:
            n1 = rms(x, W[at + '1.layer_norm.weight'])
            x = add(x, attention(n1, enc, att(1, 'EncDecAttention'), heads))
            mlp = 2
        hdn = [[max(v, 0.0) for v in r] for r in linear(rms(x, W[at + '%d.layer_norm.weight' % mlp]),
                                                           W[at + '%d.DenseReluDense.wi.weight' % mlp])]
        x = add(x, linear(hdn, W[at + '%d.DenseReluDense.wo.weight' % mlp]))
    return rms(x, W[name + '.final_layer_norm.weight'])


def main():
    path, data, te, td, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    W = load(path)
    emb = W['shared.weight']
    heads = len(W['encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'][0])
    raw = open(data, 'rb').read()
    total, count = 0.0, 0
    for k in range(batch):
        start = (k * (te + td)) % (len(raw) - (te + td) + 1)
        src, tgt = raw[start:start + te], raw[start + te:start + te + td]
        enc = stack(W, 'encoder', [list(emb[t]) for t in src], heads)
        dec = stack(W, 'decoder', [list(emb[t]) for t in [0] + list(tgt[:-1])], heads, enc)
        scale = len(emb[0]) ** -0.5
        for row, y in zip(linear([[v * scale for v in r] for r in dec], emb), tgt):
            m = max(row)
            total += m + math.log(sum(math.exp(v - m) for v in row)) - row[y]
            count += 1
    print('%.6f' % (total / count))


main()
