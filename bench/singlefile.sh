#!/usr/bin/env bash
# Benchmark: davsync vs vdirsyncer 0.21 syncing one big .ics file with a vdir.
#
#   bench/singlefile.sh [--items N] [--tools "davsync vdirsyncer"] [--keep]
#
# Environment:
#   BENCH_ITEMS      number of events (default 20000; --items wins)
#   BENCH_GIVE_UP    seconds after which a vdirsyncer step is given up
#                    (default 600)
#   DAVSYNC_BIN      use this davsync binary instead of building one
#   BENCH_NO_GNU_TIME=1  measure with the Python fallback even when
#                    /usr/bin/time exists
#
# Side A is one calendar file holding N events (made from bench/gen_items.py's
# items: one VCALENDAR, one VTIMEZONE, N VEVENTs), side B an empty vdir. For
# each tool, on its own copy, it times
#   first   - the first sync, file -> empty vdir
#   noop    - a sync with nothing changed (5 runs, median reported)
#   changes - a sync after 100 events changed in the file (SUMMARY) and 100
#             others in the vdir (DESCRIPTION)
#   upload  - on a fresh pair, the first sync of a full vdir into an empty
#             file (every item written into the one file)
# and checks after every step that both sides hold the same N UIDs (after
# "changes", that every change reached the other side). The floor is what one
# pass over the data costs: reading the file (cat FILE >/dev/null) plus
# hashing all its bytes once (sha256sum FILE), i.e. every item's bytes read
# and hashed once. A no-op also stats every file of the vdir, so its figure is
# given against that floor plus a stat of each vdir file too (find -printf).
# vdirsyncer's singlefile storage is quadratic (its issue
# #818); a step that has not ended after BENCH_GIVE_UP seconds is killed,
# reported as given up, and vdirsyncer's remaining steps are skipped.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
gen="$here/gen_items.py"
cmdline="bench/singlefile.sh${*:+ $*}"

items=${BENCH_ITEMS:-20000}
give_up=${BENCH_GIVE_UP:-600}
tools="davsync vdirsyncer"
keep=0

usage() { sed -n '2,30s/^# \{0,1\}//p' "$0"; }
die() { echo "singlefile.sh: error: $*" >&2; exit 1; }

# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
parse_args "$@"

command -v python3 >/dev/null || die "python3 is needed"
command -v timeout >/dev/null || die "timeout (coreutils) is needed"
py=$(python3 -c 'import sys; print(sys.executable)')

# ------------------------------------------------------------ vdirsyncer
venv="$here/.venv"
if want vdirsyncer; then
    if [ ! -x "$venv/bin/vdirsyncer" ]; then
        echo "== installing vdirsyncer 0.21 into $venv"
        [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
        "$venv/bin/python" -m pip install -q 'vdirsyncer==0.21.*'
    fi
    vdirsyncer="$venv/bin/vdirsyncer"
    vs_label="vdirsyncer $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("vdirsyncer"))')"
    echo "== using $vs_label ($vdirsyncer)"
fi

# ------------------------------------------------------------ davsync
if want davsync; then find_davsync; fi

if [ -x /usr/bin/time ] && [ "${BENCH_NO_GNU_TIME:-0}" != 1 ]; then
    meter="GNU time (/usr/bin/time -f '%e %M'), wall time from bash EPOCHREALTIME"
else
    meter="python wrapper (time.perf_counter, resource.getrusage(RUSAGE_CHILDREN))"
fi

# run_measured OUT LOG CMD... : run CMD under timeout $give_up (stdout+stderr
# to LOG); write "<wall s> <peak RSS KiB>" to OUT. Returns 124 when given up.
run_measured() {
    local out=$1 log=$2 t0 t1 rc=0 wall rss
    shift 2
    t0=$EPOCHREALTIME
    if [[ $meter == GNU* ]]; then
        /usr/bin/time -f '%e %M' -o "$out.raw" timeout "$give_up" "$@" >"$log" 2>&1 || rc=$?
    else
        "$py" "$gen" measure "$out.raw" -- timeout "$give_up" "$@" >"$log" 2>&1 || rc=$?
    fi
    t1=$EPOCHREALTIME
    if [ "$rc" -eq 124 ] || grep -q 'Command exited with non-zero status 124' "$out.raw" 2>/dev/null; then
        return 124
    fi
    if [ "$rc" -ne 0 ]; then
        echo "---- last lines of $log:" >&2
        tail -n 20 "$log" >&2
        die "command failed with exit status $rc: $*"
    fi
    read -r wall rss < <(tail -n1 "$out.raw")
    if [[ $meter == GNU* ]]; then
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

# The helper for the one-file side: join, modify, verify.
cat >"$scratch/sf.py" <<'EOF'
import os, sys, time

def unfold(text):
    out = []
    for raw in text.split("\n"):
        raw = raw.rstrip("\r")
        if raw[:1] in (" ", "\t") and out:
            out[-1] += raw[1:]
        elif raw:
            out.append(raw)
    return out

def events(lines):
    """UID -> (SUMMARY, DESCRIPTION) of every VEVENT."""
    found, cur, depth = {}, None, 0
    for line in lines:
        if line == "BEGIN:VEVENT":
            cur, depth = {}, 1
        elif line == "END:VEVENT":
            found[cur.get("UID")] = (cur.get("SUMMARY"), cur.get("DESCRIPTION"))
            cur = None
        elif cur is not None and line.startswith("BEGIN:"):
            depth += 1
        elif cur is not None and line.startswith("END:"):
            depth -= 1
        elif cur is not None and depth == 1 and ":" in line:
            name, value = line.split(":", 1)
            cur.setdefault(name.split(";")[0], value)
    return found

def vdir(d):
    found = {}
    for name in os.listdir(d):
        if name.endswith(".ics"):
            with open(os.path.join(d, name), encoding="utf-8") as f:
                found.update(events(unfold(f.read())))
    return found

def single(path):
    with open(path, encoding="utf-8") as f:
        return events(unfold(f.read()))

def component(text):
    lines = text.replace("\r\n", "\n").split("\n")
    return "\r\n".join(lines[lines.index("BEGIN:VEVENT"):lines.index("END:VEVENT") + 1]) + "\r\n"

def join(src, out):
    names = sorted(n for n in os.listdir(src) if n.endswith(".ics"))
    tz = None
    body = []
    for n in names:
        with open(os.path.join(src, n), encoding="utf-8", newline="") as f:
            text = f.read()
        if tz is None and "BEGIN:VTIMEZONE" in text:
            tz = text[text.index("BEGIN:VTIMEZONE"):text.index("END:VTIMEZONE") + len("END:VTIMEZONE\r\n")]
        body.append(component(text))
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davsync bench//singlefile.sh//EN\r\n"
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write(head + (tz or "") + "".join(body) + "END:VCALENDAR\r\n")
    old = time.time() - 86400
    os.utime(out, (old, old))
    print("joined %d events into %s, %d bytes" % (len(names), out, os.path.getsize(out)))

def picks(uids, side):
    uids = sorted(uids)
    chosen = [uids[k * len(uids) // 200] for k in range(200)]
    return chosen[0::2] if side == "a" else chosen[1::2]

def modify_file(path):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.split("\r\n")
    chosen = set(picks(single(path), "a"))
    uid = None
    for i, line in enumerate(lines):
        if line.startswith("UID:"):
            uid = line[4:]
        elif line.startswith("SUMMARY:") and uid in chosen:
            lines[i] = "SUMMARY:changed on A " + uid
            uid = None
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\r\n".join(lines))

def modify_vdir(d):
    for uid in picks(vdir(d), "b"):
        for name in os.listdir(d):
            p = os.path.join(d, name)
            with open(p, encoding="utf-8", newline="") as f:
                text = f.read()
            if "UID:" + uid + "\r\n" not in text:
                continue
            lines = text.split("\r\n")
            start = next(i for i, l in enumerate(lines) if l.startswith("DESCRIPTION:"))
            end = start + 1
            while lines[end][:1] == " ":
                end += 1
            lines[start:end] = ["DESCRIPTION:changed on B " + uid]
            with open(p, "w", encoding="utf-8", newline="") as f:
                f.write("\r\n".join(lines))
            break

def verify(path, d, n, changed):
    a, b = single(path), vdir(d)
    if len(a) != n or set(a) != set(b):
        sys.exit("file has %d events, vdir %d, %d UIDs differ" % (len(a), len(b), len(set(a) ^ set(b))))
    if a != b:
        diff = [u for u in a if a[u] != b[u]]
        sys.exit("%d events differ between the sides, e.g. %s" % (len(diff), diff[:3]))
    if changed:
        ok_a = all(a[u][0] == "changed on A " + u for u in picks(a, "a"))
        ok_b = all(b[u][1] == "changed on B " + u for u in picks(a, "b"))
        if not (ok_a and ok_b):
            sys.exit("changes did not reach the other side")
    print("ok")

cmd = sys.argv[1]
if cmd == "join": join(sys.argv[2], sys.argv[3])
elif cmd == "modify-file": modify_file(sys.argv[2])
elif cmd == "modify-vdir": modify_vdir(sys.argv[2])
elif cmd == "verify": verify(sys.argv[2], sys.argv[3], int(sys.argv[4]), len(sys.argv) > 5)
EOF

echo "== generating $items events"
"$py" "$gen" gen "$scratch/items" "$items" >/dev/null
"$py" "$scratch/sf.py" join "$scratch/items" "$scratch/work.ics"

# ------------------------------------------------------------ floor
# best_of_5 CMD... : the shortest wall time of five runs of CMD, in seconds
best_of_5() {
    local t0 t1 best=
    for _ in 1 2 3 4 5; do
        t0=$EPOCHREALTIME
        "$@"
        t1=$EPOCHREALTIME
        best=$("$py" -c 'import sys; a=float(sys.argv[2])-float(sys.argv[1]); b=sys.argv[3]; print("%.3f" % (min(a, float(b)) if b else a))' "${t0/,/.}" "${t1/,/.}" "$best")
    done
    echo "$best"
}
read_and_hash() {
    cat "$scratch/work.ics" >/dev/null
    sha256sum "$scratch/work.ics" >/dev/null
}
floor_s=$(best_of_5 read_and_hash)
echo "== floor (cat + sha256sum of the file, best of 5): $floor_s s"

# The vdir side of a no-op: one stat of each of its files (the generated items are
# the same files the vdir holds after a sync).
stat_all() {
    find "$scratch/items" -printf '%T@ %s %i\n' >/dev/null
}
stat_floor_s=$(best_of_5 stat_all)
echo "== stat of every vdir file (find -printf, best of 5): $stat_floor_s s"

declare -A step_label=(
    [first]="first sync (file -> empty vdir)"
    [noop]="no-op sync"
    [changes]="sync after 100 + 100 changes"
    [upload]="first sync (vdir -> empty file)"
)

# prepare TOOL [upload] : fresh copy of the data (the full file and an empty vdir; with
# "upload" an empty file and the full vdir), config, status dir
prepare() {
    local tool=$1 dir=$scratch/$1
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "${2:-}" = upload ]; then
        : >"$dir/work.ics"
        cp -a "$scratch/items" "$dir/B"
    else
        mkdir -p "$dir/B"
        cp -a "$scratch/work.ics" "$dir/work.ics"
    fi
    case $tool in
        davsync)
            cat >"$dir/davsync.toml" <<EOF
status_path = "$dir/status"

[storage.a]
type = "singlefile"
path = "$dir/work.ics"

[storage.b]
type = "vdir"
path = "$dir/B"
fileext = ".ics"

[pair.bench]
a = "a"
b = "b"
EOF
            ;;
        vdirsyncer)
            cat >"$dir/vdirsyncer.conf" <<EOF
[general]
status_path = "$dir/status/"

[pair bench]
a = "bench_a"
b = "bench_b"
collections = null

[storage bench_a]
type = "singlefile"
path = "$dir/work.ics"

[storage bench_b]
type = "filesystem"
path = "$dir/B"
fileext = ".ics"
EOF
            ;;
    esac
}

sync_cmd() {
    local dir=$scratch/$1
    case $1 in
        davsync) cmd=("$davsync" -c "$dir/davsync.toml" -q sync) ;;
        vdirsyncer) cmd=("$vdirsyncer" -v WARNING -c "$dir/vdirsyncer.conf" sync) ;;
    esac
}

# step TOOL STEP : returns 124 when the step was given up
step() {
    local tool=$1 s=$2 dir=$scratch/$1 w r rc=0
    local -a cmd
    sync_cmd "$tool"
    run_measured "$dir/$s.m" "$dir/$s.log" "${cmd[@]}" || rc=$?
    if [ "$rc" -eq 124 ]; then
        printf '%s\t%s\tgaveup\t0\n' "$tool" "$s" >>"$scratch/results.tsv"
        printf '   %-34s gave up after %s s\n' "${step_label[$s]}" "$give_up"
        return 124
    fi
    read -r w r <"$dir/$s.m"
    printf '%s\t%s\t%s\t%s\n' "$tool" "$s" "$w" "$r" >>"$scratch/results.tsv"
    printf '   %-34s %8s s %8.1f MB   ' "${step_label[$s]}" "$w" \
        "$("$py" -c 'import sys; print("%.1f" % (int(sys.argv[1]) / 1024))' "$r")"
    local -a changed=()
    [ "$s" = changes ] && changed=(changed)
    "$py" "$scratch/sf.py" verify "$dir/work.ics" "$dir/B" "$items" "${changed[@]}" \
        || die "$tool left the sides wrong after the '$s' step; no figures reported"
}

# discover TOOL : vdirsyncer needs its untimed discover run first
discover() {
    local dir=$scratch/$1
    [ "$1" = vdirsyncer ] || return 0
    timeout "$give_up" "$vdirsyncer" -c "$dir/vdirsyncer.conf" discover bench \
        < <(yes) >"$dir/discover.log" 2>&1 \
        || { tail -n 20 "$dir/discover.log" >&2; die "vdirsyncer discover failed"; }
}

# steps TOOL : first, no-op, changes on one pair
steps() {
    local tool=$1 dir=$scratch/$1
    step "$tool" first || return 0
    for _ in 1 2 3 4 5; do step "$tool" noop || return 0; done
    "$py" "$scratch/sf.py" modify-file "$dir/work.ics"
    "$py" "$scratch/sf.py" modify-vdir "$dir/B"
    step "$tool" changes || return 0
}

for tool in $tools; do
    echo "== $tool"
    prepare "$tool"
    discover "$tool"
    steps "$tool"
    prepare "$tool" upload
    discover "$tool"
    step "$tool" upload || true
done

# ------------------------------------------------------------ report
"$py" - "$items" "$scratch/results.tsv" "$floor_s" "$give_up" "$stat_floor_s" <<'EOF'
import statistics, sys
items, results, floor, give_up = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
stat_floor = float(sys.argv[5])
runs = {}
with open(results) as f:
    for row in f:
        tool, step, w, r = row.split()
        runs.setdefault((tool, step), []).append((w, int(r)))
def fig(tool, step):
    got = runs.get((tool, step))
    if not got:
        return "-", "-"
    if any(w == "gaveup" for w, _ in got):
        return "gave up (%s s)" % give_up, "-"
    return "%.3f" % statistics.median(float(w) for w, _ in got), "%.1f" % (max(r for _, r in got) / 1024)
head = ["step", "davsync s", "davsync MB", "vdirsyncer s", "vdirsyncer MB", "vs floor"]
rows = []
for key, label in [("first", "first sync (file -> empty vdir)"), ("noop", "no-op sync"),
                   ("changes", "sync after 100 + 100 changes"),
                   ("upload", "first sync (vdir -> empty file)")]:
    dw, dm = fig("davsync", key)
    vw, vm = fig("vdirsyncer", key)
    ratio = "-" if dw == "-" else "%.1fx" % (float(dw) / floor)
    if key == "noop" and dw != "-":
        ratio += " (target <=2x: %s; %.1fx file + vdir stat)" % (
            "ok" if float(dw) <= 2 * floor else "MISSED", float(dw) / (floor + stat_floor))
    rows.append([label, dw, dm, vw, vm, ratio])
widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
line = lambda r: "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |"
print()
print("Results: %s events in one .ics file <-> a vdir; floor %.3f s, vdir stat %.3f s"
      % (items, floor, stat_floor))
print(line(head))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in rows:
    print(line(r))
EOF
echo
echo "floor:       cat FILE >/dev/null; sha256sum FILE (best of 5): one read and one hash of every byte"
echo "vdir stat:   find ITEMS -printf '%T@ %s %i\\n' (best of 5): one stat of each of the vdir's files, which"
echo "             a no-op cannot skip (an unchanged file is one stat for davsync)"
echo "no-op:       median of 5 runs per tool; vdirsyncer steps given up after $give_up s"
echo "measured with: $meter"
echo "run:         $cmdline"
want davsync && echo "davsync:     $ds_label: davsync -c DIR/davsync.toml -q sync"
want vdirsyncer && echo "vdirsyncer:  $vs_label: vdirsyncer -v WARNING -c DIR/vdirsyncer.conf sync (after an untimed 'discover bench')"
echo "machine:     $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(uname -sr)"
