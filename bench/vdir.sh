#!/usr/bin/env bash
# Benchmark: davsync vs vdirsyncer 0.21 syncing two local vdirs.
#
#   bench/vdir.sh [--items N] [--tools "davsync vdirsyncer"] [--keep]
#
# Environment:
#   BENCH_ITEMS      number of items (default 10000; --items wins)
#   DAVSYNC_BIN      use this davsync binary instead of building one
#   BENCH_NO_GNU_TIME=1  measure with the Python fallback even when
#                    /usr/bin/time exists
#
# For each tool, on its own copy of the same generated data (side A holds
# the items in A/cal/, side B starts as an empty directory), it times
#   first   - the first sync, A -> empty B
#   noop    - a sync with nothing changed (5 runs, median reported)
#   changes - a sync after 50 items changed on A (SUMMARY) and 50 on B
#             (DESCRIPTION)
# Beside davsync's runs it times the physical floors on the same files: `cp -r` of side A
# (what a first sync must at least do) and `find -printf '%T@ %s %i'` over both sides (what a
# no-op must at least do), and prints davsync's ratio to each against issue 10's targets. Run
# it with TMPDIR=/dev/shm so the VM disk's noise is out of the figures.
# It checks after every step that both sides hold all N items (and, after
# "changes", that every change reached the other side). A broken sync stops
# the run before any figure is printed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
gen="$here/gen_items.py"
cmdline="bench/vdir.sh${*:+ $*}"

items=${BENCH_ITEMS:-10000}
tools="davsync vdirsyncer"
keep=0

usage() { sed -n '2,21s/^# \{0,1\}//p' "$0"; }
die() { echo "vdir.sh: error: $*" >&2; exit 1; }

# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
parse_args "$@"

command -v python3 >/dev/null || die "python3 is needed"
# the interpreter itself, not a wrapper such as a pyenv shim (which adds
# ~0.3 s to every call)
py=$(python3 -c 'import sys; print(sys.executable)')

# ------------------------------------------------------------ vdirsyncer
venv="$here/.venv"
if want vdirsyncer; then
    if [ ! -x "$venv/bin/python" ]; then
        echo "== creating $venv"
        "$py" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    fi
    # newest 0.21.x, else the newest release there is
    avail=$("$venv/bin/python" -m pip index versions vdirsyncer 2>/dev/null \
        | sed -n 's/^Available versions: //p' | tr -d ' ' | tr ',' '\n') || avail=
    vs_version=$(grep -m1 '^0\.21\.' <<<"$avail" || true)
    if [ -z "$vs_version" ]; then
        vs_version=$(head -n1 <<<"$avail")
        if [ -n "$vs_version" ]; then
            echo "== note: no vdirsyncer 0.21.x on the index, using newest: $vs_version"
        fi
    fi
    if [ -n "$vs_version" ]; then spec="vdirsyncer==$vs_version"; else spec='vdirsyncer==0.21.*'; fi
    have=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("vdirsyncer"))' 2>/dev/null || true)
    if [ -z "$have" ] || { [ -n "$vs_version" ] && [ "$have" != "$vs_version" ]; }; then
        echo "== pip install '$spec' into $venv"
        "$venv/bin/python" -m pip install -q "$spec"
        have=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("vdirsyncer"))')
    fi
    vdirsyncer="$venv/bin/vdirsyncer"
    [ -x "$vdirsyncer" ] || die "no vdirsyncer executable in $venv"
    vs_label="vdirsyncer $have"
    echo "== using $vs_label ($vdirsyncer)"
fi

# ------------------------------------------------------------ davsync
if want davsync; then find_davsync; fi

# ------------------------------------------------------------ measuring
if [ -x /usr/bin/time ] && [ "${BENCH_NO_GNU_TIME:-0}" != 1 ]; then
    meter="GNU time (/usr/bin/time -f '%e %M'), wall time from bash EPOCHREALTIME"
else
    meter="python wrapper (time.perf_counter, resource.getrusage(RUSAGE_CHILDREN))"
fi

# run_measured OUT LOG CMD... : run CMD (stdout+stderr to LOG); write
# "<wall s> <peak RSS KiB>" to OUT. The wall time is taken with bash's
# EPOCHREALTIME around the run (GNU time's %e has only 10 ms resolution,
# too coarse for a sync that takes a few ms); %e is the fallback.
run_measured() {
    local out=$1 log=$2 t0 t1 rc=0 wall rss
    shift 2
    t0=${EPOCHREALTIME:-}
    if [[ $meter == GNU* ]]; then
        /usr/bin/time -f '%e %M' -o "$out.raw" "$@" >"$log" 2>&1 || rc=$?
    else
        "$py" "$gen" measure "$out.raw" -- "$@" >"$log" 2>&1 || rc=$?
    fi
    t1=${EPOCHREALTIME:-}
    if [ "$rc" -ne 0 ]; then
        echo "---- last lines of $log:" >&2
        tail -n 20 "$log" >&2
        die "command failed with exit status $rc: $*"
    fi
    read -r wall rss < <(tail -n1 "$out.raw")
    # GNU time: wall from EPOCHREALTIME; python fallback: its own figure,
    # which leaves out the interpreter's start-up
    if [[ $meter == GNU* ]] && [ -n "$t0" ] && [ -n "$t1" ]; then
        wall=$("$py" -c 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "${t0/,/.}" "${t1/,/.}")
    fi
    echo "$wall $rss" >"$out"
}

# ------------------------------------------------------------ data
scratch=$(mktemp -d "${TMPDIR:-/tmp}/davsync-bench.XXXXXX")
cleanup() {
    if [ "$keep" = 1 ]; then echo "== kept scratch dir $scratch"; else rm -rf "$scratch"; fi
}
trap cleanup EXIT

echo "== generating $items items in $scratch/src/cal"
"$py" "$gen" gen "$scratch/src/cal" "$items"

declare -A step_label=(
    [first]="first sync (A -> empty B)"
    [noop]="no-op sync"
    [changes]="sync after 100 changes"
)

# prepare TOOL : fresh copy of the data, config, status dir
prepare() {
    local tool=$1 dir=$scratch/$1
    mkdir -p "$dir/A" "$dir/B"
    cp -a "$scratch/src/cal" "$dir/A/cal"
    case $tool in
        davsync)
            cat >"$dir/davsync.toml" <<EOF
status_path = "$scratch/davsync-status"

[storage.a]
type = "vdir"
path = "$dir/A"
fileext = ".ics"

[storage.b]
type = "vdir"
path = "$dir/B"
fileext = ".ics"

[pair.bench]
a = "a"
b = "b"
collections = "from a"
EOF
            ;;
        vdirsyncer)
            cat >"$dir/vdirsyncer.conf" <<EOF
[general]
status_path = "$scratch/vdirsyncer-status/"

[pair bench]
a = "bench_a"
b = "bench_b"
collections = ["from a"]

[storage bench_a]
type = "filesystem"
path = "$dir/A"
fileext = ".ics"

[storage bench_b]
type = "filesystem"
path = "$dir/B"
fileext = ".ics"
EOF
            ;;
    esac
}

# sync_cmd TOOL : the command line of one sync, into the array "cmd"
sync_cmd() {
    local dir=$scratch/$1
    case $1 in
        davsync) cmd=("$davsync" -c "$dir/davsync.toml" -q sync) ;;
        # -v WARNING: vdirsyncer logs one INFO line per item otherwise;
        # davsync runs with -q, so both stay quiet
        vdirsyncer) cmd=("$vdirsyncer" -v WARNING -c "$dir/vdirsyncer.conf" sync) ;;
    esac
}

step() {
    local tool=$1 s=$2 dir=$scratch/$1 w r
    local -a cmd
    sync_cmd "$tool"
    run_measured "$dir/$s.m" "$dir/$s.log" "${cmd[@]}"
    read -r w r <"$dir/$s.m"
    printf '%s\t%s\t%s\t%s\n' "$tool" "$s" "$w" "$r" >>"$scratch/results.tsv"
    printf '   %-28s %8s s %8.1f MB   ' "${step_label[$s]}" "$w" "$(bc_div "$r" 1024)"
    local -a changed=()
    [ "$s" = changes ] && changed=(--changed)
    "$py" "$gen" verify "$dir/A/cal" "$dir/B/cal" "$items" "${changed[@]}" \
        || die "$tool left the vdirs wrong after the '$s' step; no figures reported"
}

# floor NAME CMD... : time CMD as a physical floor (no verification), recorded as tool "floor"
floor() {
    local s=$1 w r
    shift
    run_measured "$scratch/floor-$s.m" "$scratch/floor-$s.log" "$@"
    read -r w r <"$scratch/floor-$s.m"
    printf '%s\t%s\t%s\t%s\n' floor "$s" "$w" "$r" >>"$scratch/results.tsv"
    printf '   %-28s %8s s\n' "floor: ${floor_label[$s]}" "$w"
}
declare -A floor_label=(
    [first]="cp -r of side A"
    [noop]="find -printf '%T@ %s %i' A B"
)

bc_div() { "$py" -c 'import sys; print("%.1f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }

for tool in $tools; do
    echo "== $tool"
    prepare "$tool"
    dir=$scratch/$tool
    if [ "$tool" = vdirsyncer ]; then
        # not timed; answers "create collection cal on bench_b?" with yes
        "$vdirsyncer" -c "$dir/vdirsyncer.conf" discover bench \
            < <(yes) >"$dir/discover.log" 2>&1 \
            || { tail -n 20 "$dir/discover.log" >&2; die "vdirsyncer discover failed"; }
    fi
    if [ "$tool" = davsync ]; then
        # The floors, on the same files and the same page cache as davsync's own runs: copying
        # side A is what a first sync must at least do, stat'ing both sides what a no-op must.
        # Five first syncs, each beside its floor (the machine's other load moves both by 15%
        # from run to run), with side B and the status emptied between them; medians reported.
        for run in 1 2 3 4 5; do
            floor first cp -r "$dir/A/cal" "$scratch/cp-floor"
            rm -rf "$scratch/cp-floor"
            if [ "$run" -gt 1 ]; then
                rm -rf "$dir/B" "$scratch/davsync-status"
                mkdir "$dir/B"
            fi
            step "$tool" first
        done
    else
        step "$tool" first
    fi
    # A single no-op run is at the mercy of the machine's other load: five, median reported.
    for _ in 1 2 3 4 5; do
        [ "$tool" = davsync ] && floor noop find "$dir/A" "$dir/B" -printf '%T@ %s %i\n'
        step "$tool" noop
    done
    "$py" "$gen" modify "$dir/A/cal" a >/dev/null
    "$py" "$gen" modify "$dir/B/cal" b >/dev/null
    step "$tool" changes
done

# ------------------------------------------------------------ report
ds_cmd="davsync -c DIR/davsync.toml -q sync"
vs_cmd="vdirsyncer -v WARNING -c DIR/vdirsyncer.conf sync"
"$py" - "$items" "$scratch/results.tsv" <<'EOF'
import sys
items, results = sys.argv[1], sys.argv[2]
import statistics
runs = {}
with open(results) as f:
    for row in f:
        tool, step, w, r = row.split()
        runs.setdefault((tool, step), []).append((float(w), int(r)))
vals = {}
for (tool, step), measured in runs.items():
    vals[("wall", tool, step)] = statistics.median(w for w, _ in measured)
    vals[("rss", tool, step)] = max(r for _, r in measured)
steps = [("first", "first sync (A -> empty B)", 5.0),
         ("noop", "no-op sync", 20.0),
         ("changes", "sync after 100 changes", None)]
def fig(tool, step):
    w = vals.get(("wall", tool, step)); r = vals.get(("rss", tool, step))
    if w is None:
        return None, None
    return w, r / 1024
head = ["step", "davsync s", "davsync MB", "vdirsyncer s", "vdirsyncer MB",
        "speed-up", "target"]
rows = []
for key, label, target in steps:
    dw, dm = fig("davsync", key); vw, vm = fig("vdirsyncer", key)
    if dw is not None and vw is not None:
        up = vw / max(dw, 0.001)
        sp = "%.1fx" % up
        tg = "-" if target is None else ("%s >=%gx" % ("ok" if up >= target else "MISSED", target))
    else:
        sp = "-"; tg = "-" if target is None else ">=%gx" % target
    rows.append([label,
                 "-" if dw is None else "%.3f" % dw, "-" if dm is None else "%.1f" % dm,
                 "-" if vw is None else "%.3f" % vw, "-" if vm is None else "%.1f" % vm,
                 sp, tg])
def table(head, rows):
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    def line(r):
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(r, widths))) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
print()
print("Results: %s items, one collection, local vdir <-> vdir" % items)
table(head, rows)
# davsync against the physical floors (issue 10's scale targets): time ratio, and peak memory
# at 100,000 items.
n = int(items)
big = n >= 100000
floor_targets = {"first": (None if big else 2.0, 100.0 if big else None),
                 "noop": (1.5 if big else 1.1, 60.0 if big else None)}
frows = []
for key, label, _ in steps:
    if key not in floor_targets:
        continue
    dw, dm = fig("davsync", key); fw = vals.get(("wall", "floor", key))
    if dw is None or fw is None:
        continue
    ratio = dw / max(fw, 0.001)
    t_ratio, t_mem = floor_targets[key]
    verdicts = []
    if t_ratio is not None:
        verdicts.append("%s <=%gx" % ("ok" if ratio <= t_ratio else "MISSED", t_ratio))
    if t_mem is not None:
        verdicts.append("%s <=%g MB" % ("ok" if dm <= t_mem else "MISSED", t_mem))
    verdict = ", ".join(verdicts)
    frows.append([label, "%.3f" % dw, "%.1f" % dm, "%.3f" % fw, "%.2fx" % ratio, verdict])
if frows:
    print()
    print("davsync against the floor (first: cp -r of side A; no-op: find -printf '%T@ %s %i' over both sides)")
    table(["step", "davsync s", "davsync MB", "floor s", "ratio", "target"], frows)
EOF
echo
echo "speed-up = vdirsyncer s / davsync s. Targets: first sync >=5x faster, no-op sync >=20x faster."
echo "no-op: median of 5 runs per tool (and of the stat floor); davsync's first sync: median of 5 (and of cp -r)."
echo "floor targets: first <=2x cp -r; no-op <=1.1x the stat floor (at 100,000 items: no-op <=1.5x and 60 MB, first sync 100 MB)."
[ "${TMPDIR:-}" = /dev/shm ] || echo "note: TMPDIR is not /dev/shm: the disk's noise is in these figures"
echo "measured with: $meter"
echo "run:         $cmdline"
want davsync && echo "davsync:     $ds_label: $ds_cmd"
want vdirsyncer && echo "vdirsyncer:  $vs_label: $vs_cmd (after an untimed 'discover bench')"
echo "machine:     $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(uname -sr)"
