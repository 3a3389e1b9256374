#!/usr/bin/env python3
"""runlog.py — one training log (./train --log, docs/training-log.md)
summed up for the GPU check's rows (f) and (h), on one line:

  predicted_ms P ms M peak B planned Q steps S

P the plan's predicted step time; M the median step time after the first
WARMUP steps (default 3); B the largest peak device memory of the ranks'
end-of-run lines, Q what the plan predicted for that rank's stage. Exit 1,
saying why, when the log has no plan line, no step after the warm-up, a
step whose loss is not finite, or no end-of-run line.

  runlog.py LOG.jsonl [WARMUP]
"""
import json
import math
import statistics
import sys


def main():
    path, warmup = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    plan, steps, ranks = None, [], []
    try:
        f = open(path)
    except OSError as e:
        sys.exit(f"runlog.py: {path}: {e.strerror}")
    with f:
        for text in f:
            try:
                o = json.loads(text)
            except ValueError:
                continue
            if not isinstance(o, dict):
                continue
            if "plan" in o:
                plan = o["plan"]
            elif "step" in o and "ms" in o:
                if not math.isfinite(o.get("loss", float("nan"))):
                    sys.exit(f"runlog.py: {path}: step {o['step']}: the loss is {o.get('loss')}")
                steps.append(o)
            elif "rank" in o and "peak_mem_bytes" in o:
                ranks.append(o)
    timed = [s["ms"] for s in steps if s["step"] > warmup]
    if plan is None or not timed or not ranks:
        sys.exit(f"runlog.py: {path}: no plan line, no step after {warmup}, or no end-of-run line")
    top = max(ranks, key=lambda r: r["peak_mem_bytes"])
    print(f"predicted_ms {plan['predicted_step_ms']:.3f} ms {statistics.median(timed):.3f} "
          f"peak {top['peak_mem_bytes']} planned {top['planned_mem_bytes']} steps {len(steps)}")


if __name__ == "__main__":
    main()
