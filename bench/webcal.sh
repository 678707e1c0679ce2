#!/usr/bin/env bash
# Benchmark: davsync's webcal storage vs vdirsyncer 0.21's http storage, each
# reading one feed of N events served on loopback into an empty vdir.
#
#   bench/webcal.sh [--items N] [--tools "davsync vdirsyncer"] [--keep]
#
# Environment:
#   BENCH_WEBCAL_ITEMS  events in the feed (default 5000; --items wins)
#   DAVSYNC_BIN         use this davsync binary instead of building one
#
# The feed server (bench/webcal_feed.py serve) answers with an ETag and a 304
# to a matching If-None-Match, logs every request, and can re-stamp DTSTAMP,
# LAST-MODIFIED and SEQUENCE of every event on every request. For each tool,
# with its own empty vdir and status:
#   first     - first download into an empty vdir
#   unchanged - a sync with the feed unchanged
#   restamped - a sync while the feed re-stamps every event on every request
#   changed   - a sync after one event's SUMMARY changed (no re-stamping)
# Each step records wall time, peak RSS, the requests the server answered
# (with their statuses) and the files written, created or removed in the vdir
# (name, mtime, inode). Floor: one curl of the whole feed, and one curl
# answered 304.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cmdline="bench/webcal.sh${*:+ $*}"

items=${BENCH_WEBCAL_ITEMS:-5000}
tools="davsync vdirsyncer"
keep=0

usage() { sed -n '2,23s/^# \{0,1\}//p' "$0"; }
die() { echo "webcal.sh: error: $*" >&2; exit 1; }

# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
parse_args "$@"

command -v python3 >/dev/null || die "python3 is needed"
command -v curl >/dev/null || die "curl is needed"
[ -x /usr/bin/time ] || die "GNU time (/usr/bin/time) is needed for peak RSS"
py=$(python3 -c 'import sys; print(sys.executable)')
helper=("$py" "$here/webcal_feed.py")

# ------------------------------------------------------------ vdirsyncer (bench/.venv)
if want vdirsyncer; then
    venv="$here/.venv"
    if [ ! -x "$venv/bin/python" ]; then
        echo "== creating $venv"
        "$py" -m venv "$venv"
    fi
    vpy="$venv/bin/python"
    have=$("$vpy" -c 'import importlib.metadata as m; print(m.version("vdirsyncer"))' 2>/dev/null || true)
    if [[ $have != 0.21.* ]]; then
        echo "== pip install 'vdirsyncer==0.21.*' into $venv"
        "$vpy" -m pip install -q --disable-pip-version-check 'vdirsyncer==0.21.*'
        have=$("$vpy" -c 'import importlib.metadata as m; print(m.version("vdirsyncer"))')
    fi
    vdirsyncer="$venv/bin/vdirsyncer"
    vs_label="vdirsyncer $have"
    echo "== using $vs_label ($vdirsyncer)"
fi
if want davsync; then find_davsync; fi

# ------------------------------------------------------------ feed server
scratch=$(mktemp -d "${TMPDIR:-/tmp}/davsync-webcal-bench.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$keep" = 1 ]; then echo "== kept scratch dir $scratch"; else rm -rf "$scratch"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

site=$scratch/site
mkdir -p "$site"
"${helper[@]}" gen "$site/feed.ics.orig" "$items"
rlog=$site/requests.log
: >"$rlog"
"${helper[@]}" serve "$site" "$scratch/port" 2>"$scratch/server.err" &
server_pid=$!
for _ in $(seq 1 100); do [ -f "$scratch/port" ] && break; sleep 0.05; done
[ -f "$scratch/port" ] || die "the feed server did not start: $(cat "$scratch/server.err")"
url="http://127.0.0.1:$(cat "$scratch/port")/feed.ics"
echo "== feed of $items events at $url ($(wc -c <"$site/feed.ics.orig") bytes)"

# ------------------------------------------------------------ measuring
# floor NAME CURL-ARGS... : wall time of one curl, median of 5
floor() {
    local name=$1 t0 t1 k
    shift
    for k in 1 2 3 4 5; do
        t0=$EPOCHREALTIME
        curl -sS -o /dev/null "$@" "$url"
        t1=$EPOCHREALTIME
        "$py" -c 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1"
    done | sort -n | sed -n 3p >"$scratch/floor.$name"
}
cp "$site/feed.ics.orig" "$site/feed.ics"
floor full
etag=$(curl -sS -o /dev/null -D - "$url" | sed -n 's/^[Ee][Tt][Aa][Gg]: *\(.*\)\r$/\1/p')
floor 304 -H "If-None-Match: $etag"
: >"$rlog"

results=$scratch/results.tsv
: >"$results"

# step TOOL NAME : one timed sync; records wall, RSS, requests, files written
step() {
    local tool=$1 name=$2 dir=$scratch/$1 t0 t1 rc=0 rss wall req statuses wrote
    local -a cmd
    case $tool in
        davsync) cmd=("$davsync" -c "$dir/davsync.toml" -q sync) ;;
        vdirsyncer) cmd=("$vdirsyncer" -v WARNING -c "$dir/vdirsyncer.conf" sync) ;;
    esac
    "${helper[@]}" snapshot "$dir/cal" >"$dir/$name.before"
    local r0
    r0=$(wc -l <"$rlog")
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%M' -o "$dir/$name.rss" "${cmd[@]}" >"$dir/$name.log" 2>&1 || rc=$?
    t1=$EPOCHREALTIME
    [ "$rc" -eq 0 ] || { tail -n 20 "$dir/$name.log" >&2; die "$tool $name: exit status $rc"; }
    "${helper[@]}" snapshot "$dir/cal" >"$dir/$name.after"
    "${helper[@]}" count "$dir/cal" "$items" || die "$tool $name: wrong vdir"
    wall=$("$py" -c 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1")
    rss=$(tail -n1 "$dir/$name.rss")
    req=$(($(wc -l <"$rlog") - r0))
    statuses=$(tail -n "$req" "$rlog" | awk '{ print $3 }' | sort | uniq -c | awk '{ printf "%s%sx%s", (NR > 1 ? "+" : ""), $1, $2 }')
    wrote=$("${helper[@]}" written "$dir/$name.before" "$dir/$name.after")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$name" "$wall" "$rss" "$req" "${statuses:--}" "$wrote" >>"$results"
    printf '   %-10s %8s s %3s req (%s) %6s files written\n' "$name" "$wall" "$req" "${statuses:--}" "$wrote"
}

for tool in $tools; do
    echo "== $tool"
    dir=$scratch/$tool
    mkdir -p "$dir/cal" "$dir/status"
    rm -f "$site/restamp"
    cp "$site/feed.ics.orig" "$site/feed.ics"
    case $tool in
        davsync)
            cat >"$dir/davsync.toml" <<EOF
status_path = "$dir/status"

[storage.feed]
type = "webcal"
url = "$url"

[storage.local]
type = "vdir"
path = "$dir/cal"
fileext = ".ics"

[pair.subscription]
a = "feed"
b = "local"
EOF
            ;;
        vdirsyncer)
            cat >"$dir/vdirsyncer.conf" <<EOF
[general]
status_path = "$dir/status/"

[pair subscription]
a = "feed"
b = "local"
collections = null

[storage feed]
type = "http"
url = "$url"

[storage local]
type = "filesystem"
path = "$dir/cal/"
fileext = ".ics"
EOF
            "$vdirsyncer" -c "$dir/vdirsyncer.conf" discover < <(yes) >"$dir/discover.log" 2>&1 \
                || { tail -n 20 "$dir/discover.log" >&2; die "vdirsyncer discover failed"; }
            ;;
    esac
    step "$tool" first
    step "$tool" unchanged
    touch "$site/restamp"
    step "$tool" restamped
    rm -f "$site/restamp"
    "${helper[@]}" change "$site/feed.ics" 7
    step "$tool" changed
done

# ------------------------------------------------------------ report
"$py" - "$items" "$results" "$(cat "$scratch/floor.full")" "$(cat "$scratch/floor.304")" <<'EOF'
import sys
items, results, floor_full, floor_304 = sys.argv[1:5]
vals = {}
with open(results) as f:
    for row in f:
        tool, step, wall, rss, req, statuses, wrote = row.rstrip("\n").split("\t")
        vals[(tool, step)] = (float(wall), int(rss) / 1024, req, statuses, wrote)
steps = [("first", "first download"), ("unchanged", "feed unchanged"),
         ("restamped", "feed re-stamped"), ("changed", "one event changed")]
head = ["step", "davsync s", "req", "written", "MB", "vdirsyncer s", "req", "written", "MB"]
rows = []
for key, label in steps:
    row = [label]
    for tool in ("davsync", "vdirsyncer"):
        v = vals.get((tool, key))
        row += ["-"] * 4 if v is None else [
            "%.3f" % v[0], "%s (%s)" % (v[2], v[3]), v[4], "%.1f" % v[1]]
    rows.append(row)
widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
line = lambda r: "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths))) + " |"
print()
print("Results: one feed of %s events on loopback into an empty vdir" % items)
print(line(head))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in rows:
    print(line(r))
print()
print("floor: one curl of the whole feed %s s; one curl answered 304 %s s (median of 5)"
      % (floor_full, floor_304))
EOF
echo "req = requests the feed server answered (statuses); written = vdir files written,"
echo "created or removed (name, mtime, inode); MB = peak RSS (/usr/bin/time -f %M)."
echo "run:         $cmdline"
want davsync && echo "davsync:     $ds_label: davsync -c DIR/davsync.toml -q sync"
want vdirsyncer && echo "vdirsyncer:  $vs_label: vdirsyncer -v WARNING -c DIR/vdirsyncer.conf sync (after an untimed 'discover')"
echo "machine:     $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(uname -sr)"
