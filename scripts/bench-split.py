#!/usr/bin/env python3
"""The split step of a sharded day measured worker by worker (`make bench-split`).

    bench-split.py RECON DATA_DIR [--partitions N] [--range-bytes B] [--date D] [--processor P]

Runs every Lambda step of a sharded day as its own process (`recon step ...`, the same step code the functions
run) on a fresh local store holding DATA_DIR/inbox (the peer kit's generated day), as the state machine would
call them: the two fetches, the whole match (the reference), then the split's ranges, one scan per range, the
plan, one scatter per range, one partition worker per partition and the merge. Each process is timed with
GNU time (wall and peak RSS) and its object requests are counted (the local store's `recon::objects` trace:
the requests the S3 store makes for the same work). Prints a table per step kind and the ratio of the largest
partition worker's peak memory to the whole match's; exits 1 if the merged run differs from the whole one.
"""

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("recon")
    ap.add_argument("data")
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--range-bytes", type=int, default=16 << 20)
    ap.add_argument("--date", default="2025-06-02")
    ap.add_argument("--processor", default="stripe")
    ap.add_argument("--store", default=None)
    ap.add_argument("--keep-events", default=None, metavar="DIR",
                    help="write each step's event there (to run one step again with recon step)")
    args = ap.parse_args()

    store = args.store or os.path.join(tempfile.gettempdir(), "recon-bench-split")
    shutil.rmtree(store, ignore_errors=True)
    os.makedirs(store)
    inbox = os.path.join(args.data, "inbox")
    if subprocess.run(["cp", "-al", inbox, os.path.join(store, "inbox")]).returncode != 0:
        shutil.copytree(inbox, os.path.join(store, "inbox"))
    work = tempfile.mkdtemp(prefix="recon-bench-split-")
    env = dict(os.environ, GRACE_DAYS="0", RECON_LOG="warn,recon::objects=trace")
    stats = collections.defaultdict(list)

    def step(kind, function, event):
        path = os.path.join(work, "event.json")
        with open(path, "w") as f:
            json.dump(event, f)
        if args.keep_events:
            os.makedirs(args.keep_events, exist_ok=True)
            shutil.copy(path, os.path.join(args.keep_events, f"{kind.replace(' ', '-')}-{len(stats[kind])}.json"))
        timing = os.path.join(work, "time.txt")
        cmd = ["/usr/bin/time", "-v", "-o", timing, args.recon, "step", function, "--input", path,
               "--store", store]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            sys.stderr.write(p.stderr[-4000:])
            sys.exit(f"{kind}: recon step {function} failed (exit {p.returncode}); event {json.dumps(event)[:400]}")
        wall = rss = 0.0
        for line in open(timing):
            if "Elapsed (wall clock)" in line:
                for part in line.rsplit(": ", 1)[1].strip().split(":"):
                    wall = wall * 60 + float(part)
            elif "Maximum resident set size" in line:
                rss = int(line.rsplit(": ", 1)[1]) / 1024
        requests = collections.Counter()
        for line in re.sub(r"\x1b\[[0-9;]*m", "", p.stderr).splitlines():
            if "object request" in line and "op=" in line:
                op = line.split("op=", 1)[1].split()[0].strip('"')
                requests[op] += 1
        stats[kind].append((wall, rss, requests))
        return json.loads(p.stdout)

    date, proc = args.date, args.processor
    t0 = time.time()
    ledger = step("fetch", "fetch-ledger", {"date": date})
    report = step("fetch", f"fetch-{proc}", {"date": date})
    base = {"date": date, "processor": proc, "manifests": [report, ledger]}

    # executions of their own: a run of an execution already recorded would be answered from the database
    stamp = time.strftime("%Y%m%dT%H%M%S")
    whole = step("whole match", "match", dict(base, execution=f"bench-whole-{stamp}"))
    sharded = dict(base, execution=f"bench-split-{stamp}")
    ranges = step("ranges", "match", dict(sharded, split={"step": "ranges", "range_bytes": args.range_bytes}))
    scanned = [step("scan", "match", dict(sharded, split={"step": "scan", "range": r})) for r in ranges["ranges"]]
    planned = step("plan", "match", dict(sharded, split={"step": "plan", "partitions": args.partitions,
                                                         "scanned": scanned}))
    for r in planned["scatter"]:
        step("scatter", "match", dict(sharded, split={"step": "scatter", "partitions": args.partitions, "range": r}))
    receipts = [step("partition", "match", dict(sharded, partition={"index": i, "count": args.partitions,
                                                                     "split": True}))
                for i in range(args.partitions)]
    merged = step("merge", "match", dict(sharded, partitions=receipts))
    total = time.time() - t0

    print(f"{proc} {date}: {len(ranges['ranges'])} ranges of ~{args.range_bytes >> 20} MiB, "
          f"{args.partitions} partitions; every step a process of its own (sequential)")
    print(f"{'step':<12} {'calls':>5} {'wall s (sum)':>12} {'wall s (max)':>12} {'peak MiB (max)':>14}  requests")
    for kind, rows in stats.items():
        req = collections.Counter()
        for _, _, r in rows:
            req.update(r)
        print(f"{kind:<12} {len(rows):>5} {sum(w for w, _, _ in rows):>12.2f} {max(w for w, _, _ in rows):>12.2f} "
              f"{max(m for _, m, _ in rows):>14.0f}  " + " ".join(f"{k}={v}" for k, v in sorted(req.items())))
    whole_rss = max(m for _, m, _ in stats["whole match"])
    worker_rss = max(m for kind in ("scan", "scatter", "partition") for _, m, _ in stats[kind])
    part_rss = max(m for _, m, _ in stats["partition"])
    print(f"largest partition worker: {part_rss:.0f} MiB = 1/{whole_rss / part_rss:.1f} of the whole match "
          f"({whole_rss:.0f} MiB); largest scan/scatter/partition worker 1/{whole_rss / worker_rss:.1f}; "
          f"plan {max(m for _, m, _ in stats['plan']):.0f} MiB; {total:.0f} s in all")

    # the figures of the day (the item counts differ: the second run of a day finds the first one's items)
    keys = ("status", "processor_count", "ledger_count", "matched_count", "clean_count", "discrepancy_counts",
            "total_discrepancy_amount", "severity", "excluded_counts", "out_of_window_count")
    differ = [k for k in keys if whole.get(k) != merged.get(k)]
    if differ:
        sys.exit(f"the merged run differs from the whole run in {differ}: whole {whole} merged {merged}")
    print("merged run = whole run (" + ", ".join(f"{k} {whole.get(k)}" for k in keys[1:5]) + ")")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
