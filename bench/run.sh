#!/usr/bin/env bash
# bench/run.sh — side-by-side benchmark of s3cachefs against its peers (issue 6).
#
# Usage:
#   bench/run.sh [--runs N] [--quick] [--only LIST] [--fs LIST] [--out DIR]
#                [--bin PATH] [--keep] [--no-install]
#   bench/run.sh --report DIR        # re-print the report of an earlier run from DIR/raw.csv
#
#   --runs N      runs per workload; the report shows medians (default 3)
#   --quick       smoke test: 1 run, 256 MiB instead of 1 GiB, 200 small files, 2,000 keys,
#                 256 MiB write, 5 s of fio, 32 random ranges (a few minutes in all)
#   --only LIST   comma-separated workloads and/or limits to run (default: all), e.g.
#                 --only seq_cold,find   (the limits those workloads are compared with are added)
#   --fs LIST     comma-separated filesystems (default: s3cachefs,s3fs,s3fs-tuned,rclone,rclone-tuned;
#                 also known: s3cachefs-async, s3cachefs mounted with -o write_back=async)
#   --out DIR     results directory (default: bench/results/<timestamp>/)
#   --bin PATH    the s3cachefs binary (default: /work/main/build/s3cachefs, i.e. <repo>/build/s3cachefs)
#   --keep        keep the scratch directory (s3rver data, caches) for inspection
#   --no-install  do not apt-get missing tools; fail instead
#
# What it does: starts its own s3rver (scripts/s3rver.sh) on a free loopback port, seeds it with
# awscli (scripts/awscli.sh), measures the limits of this machine (raw GET/PUT with curl, local
# disk, page cache, one-connection curl for small objects, a flat LIST), then runs every workload
# against every filesystem, each on a fresh mount with a fresh cache dir. It prints a table (median
# per filesystem, ratio of s3cachefs to the best peer and to the limit, the issue's target and
# PASS/FAIL) and writes raw.csv (every run), results.csv, targets.csv, env.txt, plot.png and the
# daemons' logs to the results directory. bench/README.md explains every workload.
#
# s3cachefs is under construction: when its binary is missing or its mount fails, its column
# reads "n/a" with the reason below the table; nothing else is affected.
#
# Must run as root (FUSE mounts of s3fs/rclone as root, and `echo 3 > /proc/sys/vm/drop_caches`).
# Everything it mounts is unmounted, and every process it started is stopped by PID, on any exit.

# Each measurement runs in a subshell that sets RUN/FS/CASE_DIR for itself (SC2030/SC2031),
# bash -c scripts are single-quoted on purpose (SC2016), and shellcheck 0.9 takes every function
# for unreachable because of the `exit` after `main` on the last line (SC2317).
# shellcheck disable=SC2030,SC2031,SC2016,SC2317
set -euo pipefail

# ------------------------------------------------------------------------------------ settings

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
readonly BUCKET=bench
readonly ALL_FS="s3cachefs,s3fs,s3fs-tuned,rclone,rclone-tuned"
# Known but not run unless asked for (--fs): s3cachefs in its other write-back mode.
readonly KNOWN_FS="$ALL_FS,s3cachefs-async"
# Workloads in the order they run; each is a function wl_<name>.
readonly ALL_WORKLOADS="seq_cold seq_cold_far seq_warm seq_hot small_cold small_cold_far small_warm find ls_lR stat write_seq write_small fio_rand rand_cold"
# Limits of this machine; each is a function limit_<name>.
readonly ALL_LIMITS="raw_get raw_put disk_read pagecache_read curl_small local_small list_flat curl_put_small local_fio"
# The tuned options from the issue (and /work/shared/peers.md).
readonly S3FS_TUNED="parallel_count=10,multipart_size=32,multireq_max=50,enable_noobj_cache,kernel_cache"
readonly RCLONE_TUNED=(--vfs-write-back 0s --use-server-modtime --no-checksum --s3-upload-concurrency 8
  --s3-chunk-size 16M --transfers 8)

RUNS=3
RUNS_SET=0
QUICK=0
ONLY=""
FS_LIST="$ALL_FS"
OUT=""
BIN="$REPO/build/s3cachefs"
KEEP=0
INSTALL=1
REPORT_ONLY=""
TMO="${BENCH_TIMEOUT:-}" # seconds any single timed step may take before it counts as failed

usage() {
  sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="${2:?--runs needs N}"; RUNS_SET=1; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --only) ONLY="${2:?--only needs a list}"; shift 2 ;;
    --fs) FS_LIST="${2:?--fs needs a list}"; shift 2 ;;
    --out) OUT="${2:?--out needs a directory}"; shift 2 ;;
    --bin) BIN="${2:?--bin needs a path}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --no-install) INSTALL=0; shift ;;
    --report) REPORT_ONLY="${2:?--report needs a directory}"; shift 2 ;;
    -h | --help) usage ;;
    *) echo "run.sh: unknown argument: $1" >&2; usage ;;
  esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --runs must be a positive integer" >&2; exit 2; }

# Sizes. --quick shrinks them so the whole matrix is a few-minute smoke test; BENCH_* environment
# variables override either set (e.g. BENCH_BIG_MIB=2048).
if ((QUICK)); then
  ((RUNS_SET)) || RUNS=1
  BIG_MIB=256 SMALL_N=200 TREE_N=2000 WRITE_MIB=256 WS_N=200 FIO_RT=5 RAND_N=32
else
  BIG_MIB=1024 SMALL_N=1000 TREE_N=10000 WRITE_MIB=512 WS_N=200 FIO_RT=15 RAND_N=100
fi
BIG_MIB="${BENCH_BIG_MIB:-$BIG_MIB}"         # the large object (cold/warm/hot/fio/random reads)
SMALL_N="${BENCH_SMALL_N:-$SMALL_N}"         # number of 64 KiB objects
TREE_N="${BENCH_TREE_N:-$TREE_N}"            # keys in the tree for find / ls -lR / stat
readonly TREE_DIRS=100                       # ... spread evenly over this many prefixes
WRITE_MIB="${BENCH_WRITE_MIB:-$WRITE_MIB}"   # the sequential write
WS_N="${BENCH_WS_N:-$WS_N}"                  # number of 4 KiB files written
TMO="${TMO:-$((QUICK ? 300 : 900))}"        # a step slower than this fails (n/a), not hangs
FIO_RT="${BENCH_FIO_RUNTIME:-$FIO_RT}"       # seconds of fio random reads
RAND_N="${BENCH_RAND_N:-$RAND_N}"            # number of random 1 MiB ranges read cold
# seq_cold_far: the large object read cold (its first FAR_MIB) through bench/farproxy.py, which
# makes the server look distant: FAR_RTT_MS round trips, FAR_RATE_MBPS MB/s per connection.
FAR_MIB=$((BIG_MIB < 512 ? BIG_MIB : 512))
FAR_RTT_MS="${BENCH_FAR_RTT_MS:-20}"
FAR_RATE_MBPS="${BENCH_FAR_RATE_MBPS:-25}"
FAR_BYTES=$((FAR_MIB << 20))
# small_cold_far: the first FAR_SMALL_N of the small objects read cold through the same proxy
# (what a filesystem keeps in flight across files; one GET after another takes a round trip each).
FAR_SMALL_N=$((SMALL_N < 200 ? SMALL_N : 200))
BIG_BYTES=$((BIG_MIB << 20))
WRITE_BYTES=$((WRITE_MIB << 20))
readonly SMALL_SIZE=65536 WS_SIZE=4096
((TREE_N % TREE_DIRS == 0)) || { echo "run.sh: the tree size must be a multiple of $TREE_DIRS" >&2; exit 2; }

# python3 for the report and random preads: Debian's is preferred because a pyenv shim takes
# over a second to start.
if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; else PY=python3; fi

# ------------------------------------------------------------------------------------ helpers

log() { echo "[$(date +%T)] $*" >&2; }
die() { echo "run.sh: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
# calc EXPR: floating-point arithmetic with awk, printed with 6 significant digits.
calc() { awk "BEGIN { printf \"%.6g\", $* }"; }
elapsed() { calc "$2 - $1"; }
# mibps BYTES SECONDS
mibps() { calc "$1 / 1048576 / $2"; }

# drop_caches: write back dirty pages, then drop the page cache, dentries and inodes, so the next
# read of a local or cached file comes from the disk.
drop_caches() {
  sync
  echo 3 >/proc/sys/vm/drop_caches
}

# running PID: true if PID exists and is not a zombie (an exited daemon stays a zombie until its
# parent reaps it, and kill -0 still succeeds on it).
running() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n "$state" && "$state" != Z ]]
}

# wait_exit PID SECONDS: waits until PID has exited; false if it is still running after SECONDS.
wait_exit() {
  local pid=$1 deadline
  deadline=$(($(date +%s) + $2))
  while running "$pid"; do
    (($(date +%s) < deadline)) || return 1
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || true # reap it when it is our child
  return 0
}

# is_mounted DIR: true if something is mounted on DIR. Reads the mount table instead of
# stat'ing DIR (as mountpoint(1) does), so a mount whose daemon died, where stat fails with
# ENOTCONN, still counts.
is_mounted() { findmnt -rn -M "$1" >/dev/null 2>&1; }

# ------------------------------------------------------------------------------------ tools

# ensure_tools: installs what is missing, idempotently. scripts/setup.sh (the project's dependency
# step) runs first when it exists; then apt-get installs whatever is still missing. When every
# tool is present nothing is run at all.
ensure_tools() {
  # command:package pairs; gnuplot is optional (no plot without it).
  local -a need=(s3fs:s3fs rclone:rclone fio:fio curl:curl fusermount3:fuse3 node:nodejs npm:npm
    /usr/bin/python3:python3 gnuplot:gnuplot-nox)
  local -a missing=()
  local pair cmd pkg
  missing_pkgs() {
    missing=()
    for pair in "${need[@]}"; do
      cmd="${pair%%:*}" pkg="${pair#*:}"
      command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [[ -x /usr/bin/aws ]] || command -v aws >/dev/null 2>&1 || missing+=(awscli)
  }
  missing_pkgs
  ((${#missing[@]} == 0)) && return 0
  ((INSTALL)) || die "missing tools (packages: ${missing[*]}); run without --no-install"
  [[ $EUID -eq 0 ]] || die "missing tools (packages: ${missing[*]}) and not root to install them"
  if [[ -x "$REPO/scripts/setup.sh" ]]; then
    log "missing: ${missing[*]}; running scripts/setup.sh"
    "$REPO/scripts/setup.sh" >&2 || log "scripts/setup.sh failed; trying apt-get directly"
    missing_pkgs
    ((${#missing[@]} == 0)) && return 0
  fi
  log "installing with apt-get: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  missing_pkgs
  local m
  for m in "${missing[@]}"; do
    [[ "$m" == gnuplot-nox ]] || die "still missing after apt-get: $m"
  done
}

# ------------------------------------------------------------------------------------ report

# write_report DIR: prints the table and writes results.csv, targets.csv and plot.png from
# DIR/raw.csv and DIR/params.env.
write_report() {
  local dir=$1
  "$PY" - "$dir" <<'PY'
import csv, math, os, statistics, subprocess, sys, shutil

out = sys.argv[1]
params = {}
with open(os.path.join(out, "params.env")) as f:
    for line in f:
        k, _, v = line.strip().partition("=")
        if k:
            params[k] = v
fs_list = params["FS_LIST"].split(",")
# s3cachefs-async is s3cachefs in another mode: not a peer; the verdicts are the default
# mode's, and the other mode's ratios are printed below the table.
peers = [f for f in fs_list if not f.startswith("s3cachefs")]
variants = [f for f in fs_list if f.startswith("s3cachefs") and f != "s3cachefs"]
big = f"{int(params['BIG_MIB'])} MiB" if int(params["BIG_MIB"]) % 1024 else f"{int(params['BIG_MIB']) // 1024} GiB"

# key, label, unit, better (hi/lo), limit key or None, target kind
# Target kinds: ("limit", x) = at least x of the limit; ("peer", x) = at least x times the best
# peer; ("ahead", 1) = better than the best peer; ("max", x) = value at most x; ("below", x) =
# value under x; several are ANDed.
# "speed" rows also fall under "no workload slower than any peer".
ROWS = [
    ("seq_cold", f"seq read cold {big}", "MiB/s", "hi", "raw_get", [("limit", 0.9), ("peer", 1.5)], True),
    ("seq_cold_far", f"seq read cold {params['FAR_MIB']} MiB, far", "MiB/s", "hi", None, [], True),
    ("seq_warm", f"seq read warm {big}", "MiB/s", "hi", "disk_read", [("limit", 0.9)], True),
    ("seq_hot", f"seq read hot {big}", "MiB/s", "hi", "pagecache_read", [("limit", 0.8)], True),
    ("small_cold", f"read {params['SMALL_N']}x64KiB cold", "files/s", "hi", "curl_small", [("peer", 2.0)], True),
    ("small_cold_far", f"read {params['FAR_SMALL_N']}x64KiB cold, far", "files/s", "hi", None, [], True),
    ("small_warm", f"read {params['SMALL_N']}x64KiB warm", "files/s", "hi", "local_small", [], True),
    ("find", f"find {params['TREE_N']} keys", "s", "lo", "list_flat", [("peer", 2.0)], True),
    ("ls_lR", f"ls -lR {params['TREE_N']} keys", "s", "lo", "list_flat", [("peer", 2.0)], True),
    ("stat", f"stat {params['TREE_N']} files", "s", "lo", "list_flat", [], True),
    ("write_seq", f"write {params['WRITE_MIB']} MiB to S3", "MiB/s", "hi", "raw_put", [("limit", 0.9), ("ahead", 1)], True),
    ("write_small", f"write {params['WS_N']}x4KiB to S3", "files/s", "hi", "curl_put_small", [("peer", 2.0)], True),
    ("fio_rand", "fio 4KiB randread warm", "IOPS", "hi", "local_fio", [], True),
    ("rand_cold_amp", "rand 1MiB cold fetched/read", "x", "lo", None, [("max", 2.0)], False),
    ("rand_cold_lat", "rand 1MiB cold latency", "ms", "lo", None, [], True),
    ("rss", f"peak RSS reading {big}", "MiB", "lo", None, [("below", 200.0)], False),
    ("cpu_cold", "CPU per GiB, cold read", "s/GiB", "lo", None, [], False),
    ("cpu_warm", "CPU per GiB, warm read", "s/GiB", "lo", None, [], False),
    ("cpu_write", "CPU per GiB, seq write", "s/GiB", "lo", None, [], False),
    ("cpu_write_small", "CPU per small file written", "ms", "lo", None, [], False),
]

loads = []
raw = {}      # (fs, metric) -> [values]
notes = {}    # (fs, metric) -> first note
failed = {}   # (fs, metric) -> runs that gave no number
with open(os.path.join(out, "raw.csv")) as f:
    for r in csv.DictReader(f):
        key = (r["fs"], r["metric"])
        raw.setdefault(key, [])
        try:
            v = float(r["value"])
            if math.isfinite(v):
                raw[key].append(v)
        except ValueError:
            failed[key] = failed.get(key, 0) + 1
        if r.get("note") and key not in notes:
            notes[key] = r["note"]
        try:
            loads.append(float(r.get("load1") or "nan"))
        except ValueError:
            pass

def med(fs, metric):
    v = raw.get((fs, metric))
    return statistics.median(v) if v else None

def fmt(v):
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 100: return f"{v:.0f}"
    if a >= 10: return f"{v:.1f}"
    return f"{v:.2f}"

def better_ratio(ours, other, better):
    """>1 means ours is better than other."""
    if ours is None or other is None or ours <= 0 or other <= 0:
        return None
    return ours / other if better == "hi" else other / ours

results, targets = [], []
slower = []           # (row, peer) where s3cachefs is slower
speed_rows_seen = 0
for key, label, unit, better, limkey, tgt, speed in ROWS:
    vals = {fs: med(fs, key) for fs in fs_list}
    if not any((fs, key) in raw for fs in fs_list):
        continue  # workload not run
    lim = med("limit", limkey) if limkey else (1.0 if key == "rand_cold_amp" else None)
    peer_vals = [(vals[p], p) for p in peers if vals[p] is not None and vals[p] > 0]
    best = None
    if peer_vals:
        best = (max if better == "hi" else min)(peer_vals)
    ours = vals.get("s3cachefs")
    vs_best = better_ratio(ours, best[0], better) if best else None
    vs_lim = better_ratio(ours, lim, better) if lim else None
    texts, verdicts = [], []
    for kind, x in tgt:
        if kind == "limit":
            texts.append(f">={x:.0%} limit")
            verdicts.append(None if vs_lim is None else vs_lim >= x)
        elif kind == "peer":
            texts.append(f">={x:g}x peer")
            verdicts.append(None if vs_best is None else vs_best >= x)
        elif kind == "ahead":
            texts.append(">best peer")
            verdicts.append(None if vs_best is None else vs_best > 1.0)
        elif kind == "max":
            texts.append(f"<={x:g}")
            verdicts.append(None if ours is None else ours <= x)
        elif kind == "below":
            texts.append(f"<{x:g}")
            verdicts.append(None if ours is None else ours < x)
    if not tgt and speed:
        texts.append(">=best peer")
        verdicts.append(None if vs_best is None else vs_best >= 1.0)
    if speed and ours is not None:
        speed_rows_seen += 1
        for v, p in peer_vals:
            if better_ratio(ours, v, better) < 1.0:
                slower.append((key, p))
    if not verdicts:
        verdict = "-"
    elif any(v is None for v in verdicts):
        verdict = "n/a"
    else:
        verdict = "PASS" if all(verdicts) else "FAIL"
    results.append(dict(key=key, label=label, unit=unit, better=better, limit=lim, vals=vals,
                        haslimit=bool(limkey) or key == "rand_cold_amp",
                        best=best, vs_best=vs_best, vs_lim=vs_lim, target=" & ".join(texts) or "-",
                        verdict=verdict,
                        variants={v: (better_ratio(vals[v], best[0], better) if best else None,
                                      better_ratio(vals[v], lim, better) if lim else None)
                                  for v in variants if vals.get(v) is not None}))

# ---- the table
cols = ["workload", "unit", "limit"] + fs_list + ["vs best peer", "vs limit", "target", "result"]
rows = []
for r in results:
    rows.append([r["label"], r["unit"], fmt(r["limit"]) if r["haslimit"] else "-"]
                + [fmt(r["vals"][f]) for f in fs_list]
                + [fmt(r["vs_best"]) + ("x" if r["vs_best"] is not None else ""),
                   (f"{r['vs_lim']:.0%}" if r["vs_lim"] is not None else "n/a") if r["haslimit"] else "-",
                   r["target"], r["verdict"]])
widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
def line(cells):
    return "  ".join(c.ljust(w) if i in (0, 1, len(cols) - 2, len(cols) - 1) else c.rjust(w)
                     for i, (c, w) in enumerate(zip(cells, widths)))
print()
print(f"s3cachefs benchmark — medians of {params['RUNS']} run(s); {params.get('MACHINE', '')}")
print(line(cols))
print("  ".join("-" * w for w in widths))
for row in rows:
    print(line(row))
print()
print("vs best peer: s3cachefs against the best peer; >1x means s3cachefs is better (for s, ms, MiB: the")
print("  peer's value divided by ours). vs limit: the share of the machine's limit s3cachefs reaches.")
for v in variants:
    parts = []
    for r in results:
        if v in r["variants"] and (r["variants"][v][0] is not None or r["variants"][v][1] is not None):
            b, l = r["variants"][v]
            parts.append(f"{r['key']} {fmt(b) + 'x' if b is not None else 'n/a'} best peer"
                         + (f", {l:.0%} of limit" if l is not None and r["haslimit"] else ""))
    if parts:
        print(f"{v} (not judged; the verdicts are the default mode's): " + "; ".join(parts))
loads = [x for x in loads if math.isfinite(x)]
cores = os.cpu_count() or 1
if loads and statistics.median(loads) > 0.75 * cores:
    print(f"WARNING: the machine was busy (median 1-min load {statistics.median(loads):.1f}, max {max(loads):.1f},"
          f" on {cores} cores): absolute numbers are low; compare ratios, or re-run on an idle machine.")

# ---- targets from the issue
def verdict_of(key):
    for r in results:
        if r["key"] == key:
            return r["verdict"], r
    return "not run", None
T = []
def add(name, keys):
    """One target over several rows: judged on the rows that ran, saying which did not."""
    vs = {k: verdict_of(k)[0] for k in keys}
    ran = [v for v in vs.values() if v != "not run"]
    if not ran: v = "not run"
    elif any(x == "n/a" for x in ran): v = "n/a"
    else: v = "PASS" if all(x == "PASS" for x in ran) else "FAIL"
    missing = [k for k, x in vs.items() if x == "not run"]
    if ran and missing:
        v += f" ({', '.join(missing)} not run)"
    T.append((name, v))
add("warm seq read >= 90% of local-disk read", ["seq_warm"])
add("hot seq read >= 80% of page-cache read", ["seq_hot"])
add("cold seq read >= 90% of raw GET and >= 1.5x best peer", ["seq_cold"])
add("cold small-file reads, find, ls -lR, small writes >= 2x best peer", ["small_cold", "find", "ls_lR", "write_small"])
add("seq write >= 90% of raw PUT and ahead of the best peer", ["write_seq"])
add("random reads on a cold large file: bytes fetched <= 2x bytes read", ["rand_cold_amp"])
add("daemon RSS < 200 MiB while reading the large file", ["rss"])
T.append(("no workload slower than any peer",
          "n/a" if speed_rows_seen == 0 else ("FAIL" if slower else "PASS")))
print()
print("Targets (issue 6):")
w = max(len(n) for n, _ in T)
for n, v in T:
    print(f"  {n.ljust(w)}  {v}")
if slower:
    print("  slower than a peer: " + ", ".join(f"{k} (vs {p})" for k, p in slower))

# ---- runs that gave no number, and why (the first reason)
if failed:
    print()
    print("Runs without a number (n/a), with the first reason:")
    for (fs, metric), n in failed.items():
        print(f"  {fs} {metric} ({n} of {params['RUNS']}): {notes.get((fs, metric), '?')[:200]}")

# ---- CSVs
with open(os.path.join(out, "results.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["workload", "label", "unit", "better", "limit"] + fs_list
               + ["best_peer", "best_peer_value", "s3cachefs_vs_best_peer", "s3cachefs_vs_limit", "target", "result"])
    for r in results:
        w.writerow([r["key"], r["label"], r["unit"], r["better"], f"{r['limit']:.6g}" if r["limit"] else ""]
                   + [("" if r["vals"][f] is None else f"{r['vals'][f]:.6g}") for f in fs_list]
                   + [r["best"][1] if r["best"] else "", f"{r['best'][0]:.6g}" if r["best"] else "",
                      f"{r['vs_best']:.4g}" if r["vs_best"] else "", f"{r['vs_lim']:.4g}" if r["vs_lim"] else "",
                      r["target"], r["verdict"]])
with open(os.path.join(out, "targets.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["target", "result"])
    w.writerows(T)
    if slower:
        w.writerow(["slower than a peer", "; ".join(f"{k} vs {p}" for k, p in slower)])

# ---- plot: every filesystem relative to the best peer (higher is better), log scale
if shutil.which("gnuplot"):
    prow = [r for r in results if r["best"] and not r["key"].startswith("cpu_")]
    if prow:
        dat = os.path.join(out, "plot.dat")
        series = [fs for fs in fs_list if any(r["vals"][fs] for r in prow)]
        series += ["limit"] if any(r["limit"] for r in prow) else []
        with open(dat, "w") as f:
            f.write("workload " + " ".join(series) + "\n")
            for r in prow:
                cells = []
                for fs in series:
                    v = r["limit"] if fs == "limit" else r["vals"][fs]
                    x = better_ratio(v, r["best"][0], r["better"]) if v else None
                    cells.append(f"{x:.4g}" if x else "NaN")
                f.write(f"\"{r['key']}\" " + " ".join(cells) + "\n")
        n = len(series)
        gp = f"""
set terminal pngcairo size 1400,600 noenhanced
set output '{os.path.join(out, 'plot.png')}'
set title 'relative to the best peer (higher is better), medians of {params['RUNS']} run(s)'
set style data histograms
set style histogram cluster gap 1
set style fill solid 0.8 border -1
set logscale y
set yrange [0.05:*]
set grid ytics
set key outside right top
set xtics rotate by -30
plot for [i=2:{n + 1}] '{dat}' using i:xtic(1) title columnheader(i)
"""
        try:
            subprocess.run(["gnuplot"], input=gp, text=True, check=True, capture_output=True)
            print(f"\nplot: {os.path.join(out, 'plot.png')}")
        except subprocess.CalledProcessError as e:
            print(f"\n(gnuplot failed: {e.stderr.strip()[:200]})")
print(f"results: {os.path.join(out, 'results.csv')} (every run: raw.csv)")
PY
}

if [[ -n "$REPORT_ONLY" ]]; then
  [[ -f "$REPORT_ONLY/raw.csv" ]] || die "no raw.csv in $REPORT_ONLY"
  write_report "$REPORT_ONLY"
  exit 0
fi

# ------------------------------------------------------------------------------------ selection

# needed_limit WORKLOAD: the limit a workload is compared with.
needed_limit() {
  case "$1" in
    seq_cold) echo raw_get ;;
    seq_warm) echo disk_read ;;
    seq_hot) echo pagecache_read ;;
    small_cold) echo curl_small ;;
    small_warm) echo local_small ;;
    find | ls_lR | stat) echo list_flat ;;
    write_seq) echo raw_put ;;
    write_small) echo curl_put_small ;;
    fio_rand) echo local_fio ;;
    *) ;; # rand_cold: the ideal (1.0 byte fetched per byte read) needs no measurement
  esac
}

SEL_WL=() SEL_LIM=()
if [[ -z "$ONLY" ]]; then
  read -r -a SEL_WL <<<"$ALL_WORKLOADS"
  read -r -a SEL_LIM <<<"$ALL_LIMITS"
else
  declare -A want_lim=()
  IFS=, read -r -a only_items <<<"$ONLY"
  for item in "${only_items[@]}"; do
    if [[ " $ALL_WORKLOADS " == *" $item "* ]]; then
      SEL_WL+=("$item")
      l="$(needed_limit "$item")"
      [[ -z "$l" ]] || want_lim[$l]=1
    elif [[ " $ALL_LIMITS " == *" $item "* ]]; then
      want_lim[$item]=1
    elif [[ "$item" == limits ]]; then
      for l in $ALL_LIMITS; do want_lim[$l]=1; done
    else
      die "unknown workload or limit '$item' (workloads: $ALL_WORKLOADS; limits: $ALL_LIMITS)"
    fi
  done
  for l in $ALL_LIMITS; do [[ -z "${want_lim[$l]:-}" ]] || SEL_LIM+=("$l"); done
fi
IFS=, read -r -a SEL_FS <<<"$FS_LIST"
for fs in "${SEL_FS[@]}"; do
  [[ ",$KNOWN_FS," == *",$fs,"* ]] || die "unknown filesystem '$fs' (known: $KNOWN_FS)"
done

# Which data sets the selection reads: only those are seeded.
selected() { [[ " ${SEL_WL[*]} ${SEL_LIM[*]} " =~ $1 ]]; }
NEED_BIG=0 NEED_SMALL=0 NEED_TREE=0 NEED_WRITE=0
selected ' (seq_cold|seq_cold_far|seq_warm|seq_hot|fio_rand|rand_cold|raw_get|disk_read|pagecache_read|local_fio) ' && NEED_BIG=1
selected ' (small_cold|small_cold_far|small_warm|curl_small|local_small) ' && NEED_SMALL=1
selected ' (find|ls_lR|stat|list_flat) ' && NEED_TREE=1
selected ' (write_seq|write_small|raw_put|curl_put_small) ' && NEED_WRITE=1

# ------------------------------------------------------------------------------------ scratch space

[[ $EUID -eq 0 ]] || die "run as root (FUSE mounts and drop_caches)"
[[ -w /proc/sys/vm/drop_caches ]] || die "/proc/sys/vm/drop_caches is not writable (warm workloads need it)"
ensure_tools

OUT="${OUT:-$REPO/bench/results/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
# Scratch: s3rver's data, the local copies of the data sets, mountpoints and cache dirs, all on
# the same local disk (never tmpfs: the caches must be on disk for the warm numbers to mean
# anything). TMPDIR chooses where.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/s3cachefs-bench.XXXXXX")"
readonly WORK
if [[ "$(df --output=fstype "$WORK" | tail -n 1)" == tmpfs ]]; then
  log "WARNING: $WORK is on tmpfs: the disk caches live in RAM and warm numbers mean little (set TMPDIR)"
fi
# The s3cachefs binary is copied once, at the start, and the copy is what every case mounts: the
# binary is rebuilt often while s3cachefs is being written, and a rebuild during a run must
# neither mix two versions in one table nor catch a half-linked file.
BIN_ORIG="$BIN"
bin_id() { if [[ -f "$1" ]]; then sha256sum "$1" | cut -c1-12; else echo missing; fi; }
BIN_ID_START="$(bin_id "$BIN_ORIG")"
if [[ -x "$BIN_ORIG" ]]; then
  cp "$BIN_ORIG" "$WORK/s3cachefs"
  BIN="$WORK/s3cachefs"
fi
SRC="$WORK/src"   # local copies of what is seeded (also the local-disk limits' files)
LIVE="$WORK/live" # "PID MOUNTPOINT" of every daemon started, for the cleanup
RAW="$OUT/raw.csv"
mkdir -p "$SRC" "$WORK/logs" "$WORK/cases"
: >"$LIVE"
echo "run,fs,metric,value,note,load1" >"$RAW"
S3DIR="$WORK/s3"

# unmount_and_stop MNT PID: unmounts MNT and waits for its daemon to exit; the daemon gets
# SIGTERM, then SIGKILL, if it outlives the unmount, and a mount left behind is detached lazily.
# True when the daemon exited by itself after a clean unmount.
unmount_and_stop() {
  local mnt=$1 pid=$2 i clean=0
  if is_mounted "$mnt"; then
    for ((i = 0; i < 50; i++)); do
      fusermount3 -u "$mnt" 2>/dev/null && { clean=1; break; }
      sleep 0.2
    done
  else
    clean=1
  fi
  # rclone may flush pending uploads at exit: give it time.
  if ! wait_exit "$pid" 120; then
    clean=0
    echo "run.sh: pid $pid ($mnt) still running after unmount: SIGTERM" >&2
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_exit "$pid" 10; then
      kill -KILL "$pid" 2>/dev/null || true
      wait_exit "$pid" 10 || true
    fi
  fi
  if is_mounted "$mnt"; then
    clean=0
    fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  fi
  ((clean))
}

# cleanup: runs on every exit. Unmounts every mount and stops every daemon this script started
# (by PID, checking the PID still belongs to a daemon of that mountpoint), stops our s3rver,
# keeps the logs, and removes the scratch dir unless something is still mounted in it.
cleanup() {
  local rc=$? pid mnt
  trap - EXIT INT TERM
  set +e
  if [[ -s "$LIVE" ]]; then
    while read -r pid mnt; do
      if running "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$mnt"; then
        unmount_and_stop "$mnt" "$pid"
      elif is_mounted "$mnt"; then
        fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null
      fi
    done <"$LIVE"
  fi
  if [[ -n "${FAR_PID:-}" ]] && running "$FAR_PID"; then
    kill "$FAR_PID" 2>/dev/null
    wait "$FAR_PID" 2>/dev/null
  fi
  "$REPO/scripts/s3rver.sh" stop "$S3DIR" >/dev/null 2>&1
  mkdir -p "$OUT/logs"
  cp -r "$WORK/logs/." "$OUT/logs/" 2>/dev/null
  [[ -f "$S3DIR/s3rver.log" ]] && tail -n 2000 "$S3DIR/s3rver.log" >"$OUT/logs/s3rver.tail.log"
  if grep -qF " $WORK/" /proc/mounts; then
    echo "run.sh: something is still mounted under $WORK; not removing it" >&2
  elif ((KEEP)); then
    echo "run.sh: scratch kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------------------------ the server

EP="" # http://127.0.0.1:PORT

start_server() {
  EP="$("$REPO/scripts/s3rver.sh" start "$S3DIR" --bucket "$BUCKET")"
  eval "$("$REPO/scripts/s3rver.sh" env "$S3DIR")"
  [[ "$AWS_ENDPOINT_URL" == "$EP" ]] || die "s3rver endpoint mismatch"
  S3PID="$(cat "$S3DIR/pid")"
  S3LOG="$S3DIR/s3rver.log"
  # s3fs reads its credentials from a file.
  echo "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" >"$WORK/passwd-s3fs"
  chmod 600 "$WORK/passwd-s3fs"
  # An empty rclone config, so a config of the user's cannot change anything.
  : >"$WORK/rclone.conf"
}

# start_far_proxy: bench/farproxy.py in front of s3rver, for seq_cold_far; sets FAR_EP and FAR_PID.
start_far_proxy() {
  local out="$WORK/logs/farproxy.log" i
  mkdir -p "$WORK/logs"
  "$PY" "$REPO/bench/farproxy.py" --upstream "${EP#http://}" --rtt-ms "$FAR_RTT_MS" \
    --rate-mbps "$FAR_RATE_MBPS" >"$out" 2>&1 &
  FAR_PID=$!
  for ((i = 0; i < 100; i++)); do
    FAR_EP="$(sed -n 's/^farproxy listening on \(127\.0\.0\.1:[0-9]*\)$/http:\/\/\1/p' "$out")"
    [[ -z "$FAR_EP" ]] || return 0
    running "$FAR_PID" || break
    sleep 0.1
  done
  die "bench/farproxy.py did not start: $(cat "$out")"
}

# server_sent: bytes s3rver has written to its sockets (and its log) so far. s3rver serves
# everything with write(2), so the delta of wchar in /proc/PID/io over a workload is the number of
# bytes it sent, headers included; it is our private server, so nothing else is counted.
server_sent() { awk '/^wchar:/ { print $2 }' "/proc/$S3PID/io"; }

# server_warm PREFIX: reads s3rver's files for keys under PREFIX into the page cache, so that no
# cold workload depends on whether an earlier one dropped the server's caches. The server side is
# therefore always "hot", for the limits and for every filesystem alike.
server_warm() {
  local d="$S3DIR/data/$BUCKET"
  case "$1" in
    */) [[ -d "$d/${1%/}" ]] && find "$d/${1%/}" -type f -exec cat {} + >/dev/null ;;
    *) cat "$d/$1"._S3rver_* >/dev/null ;;
  esac
}

# head_size KEY: the object's Content-Length, or nothing when it does not exist (unsigned HEAD).
head_size() {
  curl -sS -I "$EP/$BUCKET/$1" 2>/dev/null | tr -d '\r' |
    awk 'NR == 1 && $2 != 200 { exit } tolower($1) == "content-length:" { print $2 }' || true
}

# list_count PREFIX: how many keys the server lists under PREFIX (ListObjectsV2, all pages).
list_count() {
  local prefix=$1 token="" n=0 body
  while :; do
    local -a args=(-sS -G "$EP/$BUCKET" -d list-type=2 --data-urlencode "prefix=$prefix")
    [[ -z "$token" ]] || args+=(--data-urlencode "continuation-token=$token")
    body="$(curl "${args[@]}" || true)"
    n=$((n + $(awk -F'<Key>' '{ k += NF - 1 } END { print k + 0 }' <<<"$body")))
    token="$(sed -n 's/.*<NextContinuationToken>\([^<]*\)<.*/\1/p' <<<"$body")"
    [[ -n "$token" ]] || break
  done
  echo "$n"
}

# delete_keys KEY...: deletes objects with unsigned DELETEs over one connection.
delete_keys() {
  (($# > 0)) || return 0
  local k
  for k in "$@"; do echo "url = \"$EP/$BUCKET/$k\""; done | curl -sS -X DELETE -K - >/dev/null || true
}

# ------------------------------------------------------------------------------------ seeding

# seed: makes local copies of the data sets (random bytes) and uploads them with awscli.
seed() {
  local aws="$REPO/scripts/awscli.sh"
  if ((NEED_BIG)); then
    log "seeding big.bin ($BIG_MIB MiB)"
    head -c "$BIG_BYTES" /dev/urandom >"$SRC/big.bin"
    "$aws" s3 cp --quiet "$SRC/big.bin" "s3://$BUCKET/big.bin"
  fi
  if ((NEED_SMALL)); then
    log "seeding small/ ($SMALL_N x 64 KiB)"
    mkdir -p "$SRC/small"
    head -c $((SMALL_N * SMALL_SIZE)) /dev/urandom | split -b "$SMALL_SIZE" -a 5 -d - "$SRC/small/f"
    "$aws" s3 cp --quiet --recursive "$SRC/small" "s3://$BUCKET/small/"
  fi
  if ((NEED_TREE)); then
    log "seeding tree/ ($TREE_N keys in $TREE_DIRS prefixes)"
    local d i dir rel per=$((TREE_N / TREE_DIRS))
    for ((d = 0; d < TREE_DIRS; d++)); do
      printf -v dir 'd%03d' "$d"
      mkdir -p "$SRC/tree/$dir"
      for ((i = 0; i < per; i++)); do
        printf -v rel '%s/f%05d' "$dir" "$i"
        echo "$rel" >"$SRC/tree/$rel" # printf -v and echo are builtins: no fork per file
        echo "$rel"
      done
    done >"$SRC/tree.list"
    "$aws" s3 cp --quiet --recursive "$SRC/tree" "s3://$BUCKET/tree/"
  fi
  if ((NEED_WRITE)); then
    head -c "$WRITE_BYTES" /dev/urandom >"$SRC/write.bin"
    head -c $((WS_SIZE * 3 / 4)) /dev/urandom | base64 -w0 >"$SRC/small4k.txt" # 4096 bytes of text
  fi
  # Write the seeded bytes (local copies and the server's, gigabytes) to disk now, so that the
  # first run's first cases do not share the disk and the CPU with the kernel's write-back of
  # them (in two full runs every filesystem spent 3-7x its usual CPU per cold GiB in run 1).
  sync
  # Check what the server holds before measuring anything.
  if ((NEED_BIG)); then [[ "$(head_size big.bin)" == "$BIG_BYTES" ]] || die "seeding big.bin failed"; fi
  if ((NEED_SMALL)); then [[ "$(list_count small/)" == "$SMALL_N" ]] || die "seeding small/ failed"; fi
  if ((NEED_TREE)); then [[ "$(list_count tree/)" == "$TREE_N" ]] || die "seeding tree/ failed"; fi
}

# ------------------------------------------------------------------------------------ one case

# Every measurement runs as a "case" in a subshell with set -e: a failure ends that case only, is
# recorded as n/a with its reason, and the subshell's EXIT trap unmounts what it mounted. These
# are set per case: CASE (id), RUN, FS, CASE_DIR, CASE_REASON (file holding the reason).

# record METRIC VALUE [NOTE]: one raw result of the current case.
record() {
  local note="${3:-}"
  note="${note//,/;}"
  echo "$RUN,$FS,$1,$2,${note//$'\n'/ },$CASE_LOAD" >>"$RAW"
}

# fail MESSAGE: ends the current case with this reason.
fail() {
  [[ -s "$CASE_REASON" ]] || echo "$*" >"$CASE_REASON"
  exit 1
}

# read_seq FILE BYTES [MIB]: reads FILE (or its first MIB MiB) sequentially in 1 MiB requests,
# checks that BYTES came out, prints the seconds it took (open to close).
read_seq() {
  local f=$1 expect=$2 t0 t1 got
  local -a count=()
  [[ -z "${3:-}" ]] || count=("count=$3")
  t0=$(now)
  got="$(timeout -k 10 "$TMO" dd if="$f" of=/dev/null bs=1M "${count[@]}" 2>&1 |
    awk '/bytes/ { print $1 }')"
  t1=$(now)
  [[ "$got" == "$expect" ]] || fail "read ${got:-0} bytes of $f, expected $expect"
  elapsed "$t0" "$t1"
}

# read_small DIR N [FIRST]: reads every file of DIR, or its first FIRST (one process, in name
# order), checks the bytes (N files), prints the seconds. The glob's readdir is part of the time.
read_small() {
  local dir=$1 n=$2 first=${3:-0} t0 t1 got
  t0=$(now)
  got="$(timeout -k 10 "$TMO" bash -c '
    files=("$1"/*)
    (($2 == 0)) || files=("${files[@]:0:$2}")
    cat "${files[@]}" | wc -c' _ "$dir" "$first")"
  t1=$(now)
  [[ "$got" == $((n * SMALL_SIZE)) ]] || fail "read $got bytes from $dir, expected $((n * SMALL_SIZE))"
  elapsed "$t0" "$t1"
}

# fio_randread FILE SIZE_BYTES: fio 4 KiB random reads for FIO_RT seconds, prints IOPS.
fio_randread() {
  local iops
  iops="$(timeout -k 10 $((FIO_RT + 120)) fio --name=r --filename="$1" --rw=randread --bs=4k \
    --size="$2" --runtime="$FIO_RT" --time_based --ioengine=psync --direct=0 \
    --output-format=terse --terse-version=3 | awk -F';' 'NR == 1 { print $8 }')"
  [[ "$iops" =~ ^[0-9.]+$ && "$iops" != 0 ]] || fail "fio gave no IOPS"
  echo "$iops"
}

# cpu_ticks PID: user+system CPU time of PID in clock ticks.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# peak_rss_mib PID: the peak resident set size (VmHWM) of PID in MiB.
peak_rss_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
CLK_TCK="$(getconf CLK_TCK)"

# mount_fs [same-cache]: mounts the bucket at $CASE_DIR/mnt for $FS with a fresh cache dir (or
# the previous one of this case), in the foreground of a background job; sets MNT and DPID.
MOUNT_NO=0
mount_fs() {
  local reuse="${1:-}"
  MOUNT_NO=$((MOUNT_NO + 1))
  MNT="$CASE_DIR/mnt"
  CACHE="$CASE_DIR/cache"
  if [[ -z "$reuse" ]]; then rm -rf "$CACHE"; fi
  mkdir -p "$MNT" "$CACHE"
  local dlog="$WORK/logs/$CASE.m$MOUNT_NO.log"
  case "$FS" in
    s3cachefs | s3cachefs-async)
      [[ -x "$BIN" ]] || broken "binary $BIN_ORIG not found (not built yet?)"
      local sopts="endpoint=$EP,cache_dir=$CACHE,log_file=$dlog"
      [[ "$FS" == s3cachefs ]] || sopts+=",write_back=async"
      # Credentials come from the AWS_* variables of `s3rver.sh env`.
      "$BIN" "$BUCKET" "$MNT" -f -o "$sopts" \
        </dev/null >"$dlog.stderr" 2>&1 &
      ;;
    s3fs | s3fs-tuned)
      local opts="url=$EP,use_path_request_style,passwd_file=$WORK/passwd-s3fs,use_cache=$CACHE,dbglevel=warn"
      [[ "$FS" == s3fs ]] || opts+=",$S3FS_TUNED"
      s3fs "$BUCKET" "$MNT" -f -o "$opts" </dev/null >"$dlog" 2>&1 &
      ;;
    rclone | rclone-tuned)
      local -a extra=()
      [[ "$FS" == rclone ]] || extra=("${RCLONE_TUNED[@]}")
      # rclone 1.60 refuses to start while AWS_CA_BUNDLE is set (its S3 backend cannot apply a
      # custom CA bundle to its HTTP transport), so it is unset for rclone only. The remote is
      # defined by environment variables; path-style addressing is rclone's default for
      # provider Other (force_path_style=true).
      env -u AWS_CA_BUNDLE RCLONE_CONFIG="$WORK/rclone.conf" \
        RCLONE_CONFIG_BENCHS3_TYPE=s3 RCLONE_CONFIG_BENCHS3_PROVIDER=Other \
        RCLONE_CONFIG_BENCHS3_ENDPOINT="$EP" RCLONE_CONFIG_BENCHS3_REGION="$AWS_REGION" \
        RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
        RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
        RCLONE_CONFIG_BENCHS3_FORCE_PATH_STYLE=true \
        rclone mount "BENCHS3:$BUCKET" "$MNT" --vfs-cache-mode full --cache-dir "$CACHE" \
        --log-file "$dlog" --log-level NOTICE "${extra[@]}" </dev/null >"$dlog.stderr" 2>&1 &
      ;;
  esac
  DPID=$!
  echo "$DPID $MNT" >>"$LIVE"
  echo "$DPID $MNT" >>"$CASE_DIR/live"
  local i
  for ((i = 0; i < 300; i++)); do
    is_mounted "$MNT" && mountpoint -q "$MNT" && return 0
    if ! running "$DPID"; then
      local why st=0
      wait "$DPID" 2>/dev/null || st=$?
      why="$(cat "$dlog.stderr" "$dlog" 2>/dev/null | grep -v '^\s*$' | tail -n 2 | tr '\n' ' ' || true)"
      broken "mount failed (exit status $st): ${why:-no output}"
    fi
    sleep 0.1
  done
  broken "mount did not come up within 30 s"
}

# broken REASON: the filesystem cannot be mounted; its remaining cases are skipped as n/a.
broken() {
  echo "$*" >"$WORK/broken.$FS"
  fail "$*"
}

# unmount_fs: unmounts the current mount and waits for its daemon to exit.
unmount_fs() {
  unmount_and_stop "$MNT" "$DPID" || log "$CASE: $FS did not unmount cleanly"
  if [[ "$FS" == s3cachefs* ]]; then
    local dlog="$WORK/logs/$CASE.m$MOUNT_NO.log"
    LAST_STATS="$(grep -ho 'stats: .*' "$dlog" "$dlog.stderr" 2>/dev/null | tail -n 1 || true)"
  fi
}

# stats_counter NAME: a counter from the s3cachefs stats line of the last unmount.
stats_counter() { tr ' ' '\n' <<<"${LAST_STATS:-}" | sed -n "s/^$1=//p"; }

# case_cleanup: the EXIT trap of a case subshell: unmounts what this case mounted.
case_cleanup() {
  local rc=$? pid mnt
  set +e
  if [[ -s "$CASE_DIR/live" ]]; then
    while read -r pid mnt; do
      if running "$pid" || is_mounted "$mnt"; then unmount_and_stop "$mnt" "$pid"; fi
    done <"$CASE_DIR/live"
  fi
  rm -rf "$CASE_DIR/cache" # the caches are large; the mountpoint itself is only rmdir'ed
  rmdir "$CASE_DIR/mnt" 2>/dev/null
  exit "$rc"
}

# run_case FS NAME RUN: runs wl_NAME (or limit_NAME for FS=limit) in a subshell; records n/a
# with the reason when it fails.
run_case() {
  local fs=$1 name=$2 run=$3 rc fn
  local case_id="$name.$fs.r$run"
  local case_dir="$WORK/cases/$case_id"
  mkdir -p "$case_dir"
  : >"$case_dir/reason"
  if [[ "$fs" == limit ]]; then fn="limit_$name"; else fn="wl_$name"; fi
  # The 1-minute load average when the case starts, kept with its numbers: on a shared machine
  # it tells which numbers were taken while something else was running.
  local load
  load="$(cut -d' ' -f1 /proc/loadavg)"
  if [[ -f "$WORK/broken.$fs" ]]; then
    echo "$run,$fs,$name,n/a,$(tr ',\n' '; ' <"$WORK/broken.$fs"),$load" >>"$RAW"
    return 0
  fi
  local t0 before
  t0=$(date +%s)
  before=$(wc -l <"$RAW")
  set +e
  (
    set -eE
    CASE=$case_id RUN=$run FS=$fs CASE_DIR=$case_dir CASE_REASON=$case_dir/reason CASE_LOAD=$load
    CASE_SHELL=$BASHPID
    trap case_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # The ERR trap names the command that ended the case. It is inherited by command
    # substitutions (set -E) but only writes in the case's own shell: a failure inside $(...)
    # shows up again as the failed assignment, and one that is tolerated must leave no reason.
    # shellcheck disable=SC2154 # rc_ is assigned inside the trap
    trap 'rc_=$?; [[ $BASHPID != "$CASE_SHELL" || -s "$CASE_REASON" ]] || echo "\"$BASH_COMMAND\" failed (status $rc_, line $LINENO)" >"$CASE_REASON"' ERR
    "$fn"
  ) </dev/null 2>"$case_dir/stderr"
  rc=$?
  if [[ -s "$case_dir/stderr" ]]; then
    cp "$case_dir/stderr" "$WORK/logs/$case_id.stderr"
    ((rc != 0)) || sed 's/^/    /' "$case_dir/stderr" >&2
  fi
  set -e
  # Ctrl-C reaches the case's shell too, which cleans up and exits 130; bash does not run the
  # parent's INT trap when its child exits instead of dying from the signal, so stop here.
  if ((rc == 130 || rc == 143)); then
    log "interrupted"
    exit "$rc"
  fi
  if ((rc != 0)); then
    # The reason: what the failing tool said last, then the step that failed; scratch paths
    # shortened (MNT = this case's mountpoint).
    local why said
    why="$(head -c 300 "$case_dir/reason")"
    said="$(grep -v '^\s*$' "$case_dir/stderr" 2>/dev/null | tail -n 1 | head -c 200 || true)"
    [[ -z "$said" ]] || why="$said${why:+ [$why]}"
    why="${why//$case_dir\/mnt/MNT}"
    why="${why//$WORK/SCRATCH}"
    echo "$run,$fs,$name,n/a,$(tr ',\n' '; ' <<<"${why:-failed (status $rc)}"),$load" >>"$RAW"
    log "run $run  $name  $fs: n/a — ${why:-failed (status $rc)}"
  else
    log "run $run  $name  $fs: $(tail -n +$((before + 1)) "$RAW" | awk -F, '{ printf "%s=%s ", $3, $4 }')($(($(date +%s) - t0)) s)"
  fi
}

# ------------------------------------------------------------------------------------ limits

# Raw GET: one curl GET of the large object, to /dev/null (MiB/s).
limit_raw_get() {
  server_warm big.bin
  local t0 t1 got
  t0=$(now)
  got="$(curl -sS -o /dev/null -w '%{size_download}' "$EP/$BUCKET/big.bin")"
  t1=$(now)
  [[ "$got" == "$BIG_BYTES" ]] || fail "GET returned $got bytes"
  record raw_get "$(mibps "$BIG_BYTES" "$(elapsed "$t0" "$t1")")"
}

# Raw PUT: one curl PUT of the write workload's bytes, from the page cache (MiB/s).
limit_raw_put() {
  cat "$SRC/write.bin" >/dev/null
  local key="limit-put-r$RUN.bin" t0 t1 code
  t0=$(now)
  code="$(curl -sS -o /dev/null -w '%{http_code}' -T "$SRC/write.bin" "$EP/$BUCKET/$key")"
  t1=$(now)
  [[ "$code" == 200 ]] || fail "PUT returned HTTP $code"
  record raw_put "$(mibps "$WRITE_BYTES" "$(elapsed "$t0" "$t1")")"
  delete_keys "$key"
}

# Local disk: the large object's bytes read from a local file after dropping the page cache.
limit_disk_read() {
  drop_caches
  local t
  t=$(read_seq "$SRC/big.bin" "$BIG_BYTES")
  record disk_read "$(mibps "$BIG_BYTES" "$t")"
}

# Page cache: the same local file read twice; the second read is timed.
limit_pagecache_read() {
  local t
  read_seq "$SRC/big.bin" "$BIG_BYTES" >/dev/null
  t=$(read_seq "$SRC/big.bin" "$BIG_BYTES")
  record pagecache_read "$(mibps "$BIG_BYTES" "$t")"
}

# One connection: curl fetching every small object, all URLs in one invocation (curl reuses one
# keep-alive connection and fetches them one after another) (files/s).
limit_curl_small() {
  server_warm small/
  local f cfg="$CASE_DIR/curl.cfg" t0 t1 ok
  for f in "$SRC"/small/*; do
    printf 'url = "%s"\noutput = "/dev/null"\n' "$EP/$BUCKET/small/${f##*/}"
  done >"$cfg"
  t0=$(now)
  ok="$(curl -sS -K "$cfg" -w '%{http_code}\n' | grep -c '^200$' || true)"
  t1=$(now)
  [[ "$ok" == "$SMALL_N" ]] || fail "$ok of $SMALL_N GETs succeeded"
  record curl_small "$(calc "$SMALL_N / $(elapsed "$t0" "$t1")")"
}

# Local disk, small files: the small objects' local copies read like the warm workload reads
# them, after dropping the page cache (files/s).
limit_local_small() {
  drop_caches
  local t
  t=$(read_small "$SRC/small" "$SMALL_N")
  record local_small "$(calc "$SMALL_N / $t")"
}

# Flat LIST: ListObjectsV2 of every key of the tree without a delimiter, all pages, with curl (s).
limit_list_flat() {
  server_warm tree/
  local t0 t1 n
  t0=$(now)
  n="$(list_count tree/)"
  t1=$(now)
  [[ "$n" == "$TREE_N" ]] || fail "listed $n keys, expected $TREE_N"
  record list_flat "$(elapsed "$t0" "$t1")"
}

# One connection PUTs: curl uploading WS_N objects of 4 KiB in one invocation (files/s).
limit_curl_put_small() {
  local i cfg="$CASE_DIR/curl.cfg" t0 t1 ok prefix="limit-ws-r$RUN"
  local -a keys=()
  for ((i = 0; i < WS_N; i++)); do
    keys+=("$prefix/f$(printf %04d "$i")")
    printf 'upload-file = "%s"\nurl = "%s"\noutput = "/dev/null"\n' "$SRC/small4k.txt" "$EP/$BUCKET/${keys[-1]}"
  done >"$cfg"
  t0=$(now)
  ok="$(curl -sS -K "$cfg" -w '%{http_code}\n' | grep -c '^200$' || true)"
  t1=$(now)
  [[ "$ok" == "$WS_N" ]] || fail "$ok of $WS_N PUTs succeeded"
  record curl_put_small "$(calc "$WS_N / $(elapsed "$t0" "$t1")")"
  delete_keys "${keys[@]}"
}

# Local disk, random 4 KiB reads: the same fio job as fio_rand on the local copy, page cache
# dropped first (IOPS).
limit_local_fio() {
  drop_caches
  local iops
  iops=$(fio_randread "$SRC/big.bin" "$BIG_BYTES")
  record local_fio "$iops"
}

# ------------------------------------------------------------------------------------ workloads

# Cold sequential read: fresh mount, empty cache; one read of the large file (MiB/s). Also the
# daemon's peak RSS (VmHWM) after the read and its CPU seconds per GiB read.
wl_seq_cold() {
  mount_fs
  server_warm big.bin
  local c0 c1 s0 s1 t
  c0=$(cpu_ticks "$DPID")
  s0=$(server_sent)
  t=$(read_seq "$MNT/big.bin" "$BIG_BYTES")
  s1=$(server_sent)
  c1=$(cpu_ticks "$DPID")
  record seq_cold "$(mibps "$BIG_BYTES" "$t")"
  record rss "$(peak_rss_mib "$DPID")"
  record cpu_cold "$(calc "($c1 - $c0) / $CLK_TCK / ($BIG_BYTES / 1073741824)")"
  record seq_cold_fetched_mib "$(calc "($s1 - $s0) / 1048576")"
  unmount_fs
}

# Cold sequential read from a distant server: as seq_cold, but through bench/farproxy.py (every
# connection FAR_RTT_MS away and at most FAR_RATE_MBPS MB/s), and the first FAR_MIB of the file
# (MiB/s). Shows how much a filesystem keeps in flight; s3rver is not the limit here.
wl_seq_cold_far() {
  EP="$FAR_EP"
  mount_fs
  server_warm big.bin
  local t
  t=$(read_seq "$MNT/big.bin" "$FAR_BYTES" "$FAR_MIB")
  record seq_cold_far "$(mibps "$FAR_BYTES" "$t")"
  unmount_fs
}

# Warm sequential read: the large file is read once (filling the disk cache), the filesystem is
# unmounted (its daemon exits), the page cache is dropped, and it is mounted again on the same
# cache dir; the read after that is timed (MiB/s). The same procedure for every filesystem: only
# what the daemon keeps on disk survives. The bytes the server sent during the timed read are
# recorded too (seq_warm_fetched_mib in raw.csv), to show who re-downloads.
wl_seq_warm() {
  mount_fs
  server_warm big.bin
  read_seq "$MNT/big.bin" "$BIG_BYTES" >/dev/null
  unmount_fs
  drop_caches
  mount_fs same-cache
  local c0 c1 s0 s1 t
  c0=$(cpu_ticks "$DPID")
  s0=$(server_sent)
  t=$(read_seq "$MNT/big.bin" "$BIG_BYTES")
  s1=$(server_sent)
  c1=$(cpu_ticks "$DPID")
  record seq_warm "$(mibps "$BIG_BYTES" "$t")"
  record cpu_warm "$(calc "($c1 - $c0) / $CLK_TCK / ($BIG_BYTES / 1073741824)")"
  record seq_warm_fetched_mib "$(calc "($s1 - $s0) / 1048576")"
  unmount_fs
}

# Hot sequential read: the large file read twice on the same mount, nothing dropped; the second
# read is timed (MiB/s).
wl_seq_hot() {
  mount_fs
  server_warm big.bin
  local t
  read_seq "$MNT/big.bin" "$BIG_BYTES" >/dev/null
  t=$(read_seq "$MNT/big.bin" "$BIG_BYTES")
  record seq_hot "$(mibps "$BIG_BYTES" "$t")"
  unmount_fs
}

# Cold small files: fresh mount; `cat small/*` in one process, including the directory listing
# the glob needs (files/s).
wl_small_cold() {
  mount_fs
  server_warm small/
  local t
  t=$(read_small "$MNT/small" "$SMALL_N")
  record small_cold "$(calc "$SMALL_N / $t")"
  unmount_fs
}

# Cold small files from a distant server: as small_cold, but through bench/farproxy.py, and the
# first FAR_SMALL_N files (in name order, as `cat` opens them) (files/s).
wl_small_cold_far() {
  EP="$FAR_EP"
  mount_fs
  server_warm small/
  local t
  t=$(read_small "$MNT/small" "$FAR_SMALL_N" "$FAR_SMALL_N")
  record small_cold_far "$(calc "$FAR_SMALL_N / $t")"
  unmount_fs
}

# Warm small files: as the warm sequential read: read all once, unmount, drop the page cache,
# mount on the same cache dir, read all again, timed (files/s).
wl_small_warm() {
  mount_fs
  server_warm small/
  read_small "$MNT/small" "$SMALL_N" >/dev/null
  unmount_fs
  drop_caches
  mount_fs same-cache
  local s0 s1 t
  s0=$(server_sent)
  t=$(read_small "$MNT/small" "$SMALL_N")
  s1=$(server_sent)
  record small_warm "$(calc "$SMALL_N / $t")"
  record small_warm_fetched_mib "$(calc "($s1 - $s0) / 1048576")"
  unmount_fs
}

# find over the tree on a fresh mount; the output is counted (keys + prefixes + the top) (s).
wl_find() {
  mount_fs
  server_warm tree/
  local t0 t1 n
  t0=$(now)
  n="$(timeout -k 10 "$TMO" find "$MNT/tree" | wc -l)"
  t1=$(now)
  [[ "$n" == $((TREE_N + TREE_DIRS + 1)) ]] || fail "find printed $n entries, expected $((TREE_N + TREE_DIRS + 1))"
  record find "$(elapsed "$t0" "$t1")"
  unmount_fs
}

# ls -lR over the tree on a fresh mount (every entry is stat'ed); the file lines are counted (s).
wl_ls_lR() {
  mount_fs
  server_warm tree/
  local t0 t1 n
  t0=$(now)
  n="$(timeout -k 10 "$TMO" ls -lR "$MNT/tree" | grep -c '^-' || true)"
  t1=$(now)
  [[ "$n" == "$TREE_N" ]] || fail "ls -lR showed $n files, expected $TREE_N"
  record ls_lR "$(elapsed "$t0" "$t1")"
  unmount_fs
}

# stat of every file of the tree by its path, without listing first (what a program that knows
# its file names does), on a fresh mount, in one stat process (s).
wl_stat() {
  mount_fs
  server_warm tree/
  sed "s|^|$MNT/tree/|" "$SRC/tree.list" | tr '\n' '\0' >"$CASE_DIR/paths"
  local t0 t1 n
  t0=$(now)
  n="$(timeout -k 10 "$TMO" xargs -0 -a "$CASE_DIR/paths" stat -c %s | wc -l)"
  t1=$(now)
  [[ "$n" == "$TREE_N" ]] || fail "stat answered for $n files, expected $TREE_N"
  record stat "$(elapsed "$t0" "$t1")"
  unmount_fs
}

# Sequential write: dd bs=1M of WRITE_MIB from the page cache to a new file, closed, then timed
# until the object is in S3 with the full size (MiB/s). Completion is polled with an unsigned
# HEAD every 0.1 s (awscli takes over a second to start, too coarse); awscli head-object then
# confirms the size, untimed.
wl_write_seq() {
  mount_fs
  cat "$SRC/write.bin" >/dev/null
  local key="write-$FS-r$RUN.bin" t0 t1 deadline c0 c1
  c0=$(cpu_ticks "$DPID")
  t0=$(now)
  timeout -k 10 "$TMO" dd if="$SRC/write.bin" of="$MNT/$key" bs=1M status=none
  deadline=$(($(date +%s) + TMO))
  until [[ "$(head_size "$key")" == "$WRITE_BYTES" ]]; do
    (($(date +%s) < deadline)) || fail "$key not in S3 with $WRITE_BYTES bytes after ${TMO}s"
    sleep 0.1
  done
  t1=$(now)
  c1=$(cpu_ticks "$DPID")
  local len
  len="$("$REPO/scripts/awscli.sh" s3api head-object --bucket "$BUCKET" --key "$key" \
    --query ContentLength --output text)"
  [[ "$len" == "$WRITE_BYTES" ]] || fail "awscli head-object: $len bytes"
  record write_seq "$(mibps "$WRITE_BYTES" "$(elapsed "$t0" "$t1")")"
  record cpu_write "$(calc "($c1 - $c0) / $CLK_TCK / ($WRITE_BYTES / 1073741824)")"
  unmount_fs
  delete_keys "$key"
}

# Small writes: WS_N files of 4 KiB written and closed one after another by one process (bash
# redirections, no fork per file) into a new directory, timed until all are in S3 (files/s).
# Completion is seen in s3rver's log ("Stored object" lines, free for the server) and confirmed
# with a LIST; awscli list-objects-v2 checks the count afterwards, untimed.
wl_write_small() {
  mount_fs
  local dir="ws-$FS-r$RUN" t0 t1 deadline logpos n i polls=0 c0 c1
  mkdir "$MNT/$dir"
  logpos=$(($(stat -c %s "$S3LOG") + 1))
  c0=$(cpu_ticks "$DPID")
  t0=$(now)
  timeout -k 10 "$TMO" bash -c '
    data="$(cat "$1")"
    for ((i = 0; i < $2; i++)); do printf -v f "%s/f%04d" "$3" "$i"; printf "%s" "$data" >"$f"; done
  ' _ "$SRC/small4k.txt" "$WS_N" "$MNT/$dir"
  deadline=$(($(date +%s) + TMO))
  while :; do
    n="$(tail -c +"$logpos" "$S3LOG" | { grep -o "Stored object \"$dir/f[0-9]*\"" || true; } | sort -u | wc -l)"
    # Confirm with a LIST once the log says all are stored (and every 2 s in case the log's
    # wording ever changes).
    if ((n >= WS_N || polls % 40 == 39)) && [[ "$(list_count "$dir/f")" == "$WS_N" ]]; then break; fi
    (($(date +%s) < deadline)) || fail "only $n of $WS_N files in S3 after ${TMO}s"
    polls=$((polls + 1))
    sleep 0.05
  done
  t1=$(now)
  c1=$(cpu_ticks "$DPID")
  n="$("$REPO/scripts/awscli.sh" s3api list-objects-v2 --bucket "$BUCKET" --prefix "$dir/f" \
    --query 'length(Contents)' --output text)"
  [[ "$n" == "$WS_N" ]] || fail "awscli lists $n of $WS_N files"
  record write_small "$(calc "$WS_N / $(elapsed "$t0" "$t1")")"
  record cpu_write_small "$(calc "($c1 - $c0) * 1000 / $CLK_TCK / $WS_N")"
  unmount_fs
  local -a keys=("$dir/")
  for ((i = 0; i < WS_N; i++)); do keys+=("$dir/f$(printf %04d "$i")"); done
  delete_keys "${keys[@]}"
}

# 4 KiB random reads on the warm large file: read it once through the mount (so it is in the
# daemon's disk cache), drop the page cache, then fio (IOPS). The page cache is dropped for the
# same reason as for the local-disk limit (also dropped): the number then measures the
# filesystem serving from its disk cache, not how much of the file the kernel kept from the
# priming read (which differs with kernel_cache/direct-io choices). fio's page-cache use during
# the run is left as each filesystem configures it.
wl_fio_rand() {
  mount_fs
  server_warm big.bin
  read_seq "$MNT/big.bin" "$BIG_BYTES" >/dev/null
  drop_caches
  local iops
  iops=$(fio_randread "$MNT/big.bin" "$BIG_BYTES")
  record fio_rand "$iops"
  unmount_fs
}

# Random 1 MiB reads on the cold large file: RAND_N ranges at random 4 KiB-aligned offsets (the
# same offsets for every filesystem within a run) read with pread on one open file descriptor.
# Records bytes fetched from the server / bytes read (s3rver's wchar delta from before the first
# read until the daemon has exited, so read-ahead still in flight counts) and the mean latency.
# For s3cachefs its own bytes_received counter is recorded as well (rand_cold_stats_amp).
wl_rand_cold() {
  mount_fs
  server_warm big.bin
  local s0 s1 res
  awk -v n="$RAND_N" -v blocks=$(((BIG_BYTES - (1 << 20)) / 4096)) -v seed="$RUN" \
    'BEGIN { srand(seed); for (i = 0; i < n; i++) print int(rand() * blocks) * 4096 }' >"$CASE_DIR/offsets"
  s0=$(server_sent)
  res="$(timeout -k 10 "$TMO" "$PY" -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
offsets = [int(x) for x in open(sys.argv[2])]
total = 0
t0 = time.monotonic()
for off in offsets:
    got = 0
    while got < 1 << 20:
        b = os.pread(fd, (1 << 20) - got, off + got)
        if not b:
            break
        got += len(b)
    total += got
print(total, time.monotonic() - t0)
' "$MNT/big.bin" "$CASE_DIR/offsets")"
  unmount_fs
  s1=$(server_sent)
  local total secs
  read -r total secs <<<"$res"
  [[ "$total" == $((RAND_N << 20)) ]] || fail "read $total bytes, expected $((RAND_N << 20))"
  record rand_cold_amp "$(calc "($s1 - $s0) / $total")"
  record rand_cold_lat "$(calc "$secs * 1000 / $RAND_N")"
  if [[ "$FS" == s3cachefs* ]]; then
    local br
    br="$(stats_counter bytes_received)"
    [[ -z "$br" ]] || record rand_cold_stats_amp "$(calc "$br / $total")" "s3cachefs stats line"
  fi
}

# ------------------------------------------------------------------------------------ main

machine() {
  local cpu mem disk
  cpu="$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
  mem="$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
  disk="$(df -h --output=source,fstype "$WORK" | tail -n 1 | tr -s ' ')"
  echo "$(nproc) cores ($cpu), $mem RAM, scratch on $disk, $(uname -sr)"
}

write_env() {
  {
    echo "date: $(date -Is)"
    echo "machine: $(machine)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "repo: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?') ($(git -C "$REPO" status --porcelain 2>/dev/null | wc -l) uncommitted paths)"
    echo "s3cachefs: $BIN_ORIG $([[ -x "$BIN_ORIG" ]] && stat -c '(built %y)' "$BIN_ORIG" || echo '(missing)') sha256 $BIN_ID_START"
    echo "s3fs: $(s3fs --version 2>&1 | head -n 1)"
    echo "rclone: $(rclone version 2>/dev/null | head -n 1)"
    echo "fio: $(fio --version)  curl: $(curl --version | head -n 1 | cut -d' ' -f1-2)  node: $(node --version)"
    echo "awscli: $("$REPO/scripts/awscli.sh" --version 2>&1)"
    echo "s3rver: $(node -p 'require(process.argv[1]).version' "$REPO/scripts/s3rver/node_modules/s3rver/package.json" 2>/dev/null)"
    echo "sizes: big=${BIG_MIB}MiB small=${SMALL_N}x64KiB tree=${TREE_N} write=${WRITE_MIB}MiB ws=${WS_N}x4KiB fio=${FIO_RT}s rand=${RAND_N}x1MiB runs=$RUNS"
    echo "workloads: ${SEL_WL[*]}"
    echo "limits: ${SEL_LIM[*]}"
    echo "filesystems: ${SEL_FS[*]}"
    echo "s3fs tuned: $S3FS_TUNED"
    echo "rclone tuned: ${RCLONE_TUNED[*]}"
  } >"$OUT/env.txt"
  {
    echo "RUNS=$RUNS"
    echo "FS_LIST=$(IFS=,; echo "${SEL_FS[*]}")"
    echo "BIG_MIB=$BIG_MIB"
    echo "SMALL_N=$SMALL_N"
    echo "TREE_N=$TREE_N"
    echo "WRITE_MIB=$WRITE_MIB"
    echo "WS_N=$WS_N"
    echo "FAR_MIB=$FAR_MIB"
    echo "FAR_RTT_MS=$FAR_RTT_MS"
    echo "FAR_RATE_MBPS=$FAR_RATE_MBPS"
    echo "FAR_SMALL_N=$FAR_SMALL_N"
    echo "MACHINE=$(machine)"
  } >"$OUT/params.env"
}

main() {
  local started
  started=$(date +%s)
  log "results in $OUT; scratch in $WORK"
  start_server
  log "s3rver at $EP (pid $S3PID)"
  if selected ' (seq_cold_far|small_cold_far) '; then
    start_far_proxy
    log "farproxy at $FAR_EP (pid $FAR_PID): ${FAR_RTT_MS} ms round trips, ${FAR_RATE_MBPS} MB/s per connection"
  fi
  write_env
  seed
  local run name fs lim
  for ((run = 1; run <= RUNS; run++)); do
    # Each limit is measured right before the first workload compared with it, so that both see
    # the same state of the (shared) machine; limits no chosen workload needs run first.
    local -A done_lim=()
    for lim in "${SEL_LIM[@]}"; do
      if ! printf '%s\n' "${SEL_WL[@]}" | while read -r name; do needed_limit "$name"; done | grep -qx "$lim"; then
        run_case limit "$lim" "$run"
        done_lim[$lim]=1
      fi
    done
    # Within a run the filesystems take turns on each workload, so slow drifts of the machine
    # spread over all of them. Who goes first rotates (by workload and by run): the first
    # case after seeding or a limit pays for the machine's state (on this VM, memory freed a
    # while ago costs more to allocate again than memory freed a moment ago), so a fixed order
    # would charge it to the same filesystem every time.
    local turn=$((run - 1))
    for name in "${SEL_WL[@]}"; do
      lim="$(needed_limit "$name")"
      if [[ -n "$lim" && -z "${done_lim[$lim]:-}" && " ${SEL_LIM[*]} " == *" $lim "* ]]; then
        run_case limit "$lim" "$run"
        done_lim[$lim]=1
      fi
      local n=${#SEL_FS[@]} k
      for ((k = 0; k < n; k++)); do run_case "${SEL_FS[(turn + k) % n]}" "$name" "$run"; done
      turn=$((turn + 1))
    done
    unset done_lim
  done
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"
  local id_end
  id_end="$(bin_id "$BIN_ORIG")"
  if [[ "$id_end" != "$BIN_ID_START" ]]; then
    echo "s3cachefs binary changed during the run: $BIN_ID_START -> $id_end (the run used $BIN_ID_START)" |
      tee -a "$OUT/env.txt" >&2
  fi
  echo "duration: $(($(date +%s) - started)) s" >>"$OUT/env.txt"
  write_report "$OUT" | tee "$OUT/report.txt"
  log "done in $(($(date +%s) - started)) s"
}

# On one line: bash reads a script as it runs it, so an edit of this file during a run must not
# be able to add commands after main returns.
main; exit
