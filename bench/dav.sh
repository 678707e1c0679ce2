#!/usr/bin/env bash
# Benchmark: davsync vs vdirsyncer 0.21 syncing a Radicale server (CalDAV +
# CardDAV on loopback) into local vdirs.
#
#   bench/dav.sh [--items N] [--tools "davsync vdirsyncer"] [--keep]
#
# Environment:
#   BENCH_DAV_ITEMS  events in the calendar and cards in the address book
#                    (default 1000 each; --items wins)
#   DAVSYNC_BIN      use this davsync binary instead of building one
#                    (cargo honours CARGO_TARGET_DIR when building)
#
# Radicale (the version tests/dav_support/venv.rs pins) and vdirsyncer 0.21.x
# are installed into bench/.venv. The server gets one calendar
# (/alice/bench-cal/, N events) and one address book (/alice/bench-book/,
# N vCard 3.0 cards), written straight into its storage before it starts and
# checked with a PROPFIND. Then, for each tool, with its own empty vdirs and
# status, against the same server:
#   first   - first download of both collections into empty vdirs
#   noop    - a sync with nothing changed
#   changes - a sync after 10 server-side edits (5 events, 5 cards, PUT with
#             If-Match between the runs; each tool gets its own 10 edits)
# Each step records wall time, peak RSS and the requests Radicale logged.
# After every step the local vdirs must hold exactly the server's items (and
# every edit); otherwise the run stops before any figure is printed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cmdline="bench/dav.sh${*:+ $*}"

items=${BENCH_DAV_ITEMS:-1000}
tools="davsync vdirsyncer"
keep=0
user=alice
password=bench-horse-42
edits_per_kind=5

usage() { sed -n '2,25s/^# \{0,1\}//p' "$0"; }
die() { echo "dav.sh: error: $*" >&2; exit 1; }

# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
parse_args "$@"
[ "$items" -ge $((2 * edits_per_kind)) ] || die "--items must be at least $((2 * edits_per_kind))"

command -v python3 >/dev/null || die "python3 is needed"
command -v curl >/dev/null || die "curl is needed"
[ -x /usr/bin/time ] || die "GNU time (/usr/bin/time) is needed for peak RSS"
py=$(python3 -c 'import sys; print(sys.executable)')

# ------------------------------------------------------------ bench venv
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    echo "== creating $venv"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
fi
vpy="$venv/bin/python"
pkg_version() { "$vpy" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null || true; }

# Radicale: the exact version the test harness pins
rad_version=$(sed -n 's/^radicale==\([0-9][0-9.]*\)$/\1/p' "$repo/tests/dav_support/venv.rs" | head -n1)
[ -n "$rad_version" ] || die "no 'radicale==X' pin found in tests/dav_support/venv.rs"
if [ "$(pkg_version radicale)" != "$rad_version" ]; then
    echo "== pip install radicale==$rad_version into $venv"
    "$vpy" -m pip install -q --disable-pip-version-check "radicale==$rad_version"
fi
[ -x "$venv/bin/radicale" ] || die "no radicale executable in $venv"
echo "== using Radicale $rad_version ($venv/bin/radicale)"

if want vdirsyncer; then
    have=$(pkg_version vdirsyncer)
    if [[ $have != 0.21.* ]]; then
        # newest 0.21.x, else the newest release there is
        avail=$("$vpy" -m pip index versions vdirsyncer 2>/dev/null \
            | sed -n 's/^Available versions: //p' | tr -d ' ' | tr ',' '\n') || avail=
        vs_version=$(grep -m1 '^0\.21\.' <<<"$avail" || true)
        if [ -z "$vs_version" ]; then
            vs_version=$(head -n1 <<<"$avail")
            [ -n "$vs_version" ] && echo "== note: no vdirsyncer 0.21.x on the index, using newest: $vs_version"
        fi
        if [ -n "$vs_version" ]; then spec="vdirsyncer==$vs_version"; else spec='vdirsyncer==0.21.*'; fi
        echo "== pip install '$spec' into $venv"
        "$vpy" -m pip install -q --disable-pip-version-check "$spec"
        have=$(pkg_version vdirsyncer)
    fi
    vdirsyncer="$venv/bin/vdirsyncer"
    [ -x "$vdirsyncer" ] || die "no vdirsyncer executable in $venv"
    vs_label="vdirsyncer $have"
    echo "== using $vs_label ($vdirsyncer)"
fi

# ------------------------------------------------------------ davsync
if want davsync; then find_davsync; fi

# ------------------------------------------------------------ scratch + server
scratch=$(mktemp -d "${TMPDIR:-/tmp}/davsync-dav-bench.XXXXXX")
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

data=$scratch/radicale-data
rlog=$scratch/radicale.log
helper=("$vpy" "$here/dav_items.py")
echo "== writing $items events and $items cards into Radicale's storage ($data)"
"${helper[@]}" fill "$data" "$user" "$items" "$items"

port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
printf '%s:%s\n' "$user" "$password" >"$scratch/users"
radicale_conf "$port" "$scratch/users" "$data" >"$scratch/radicale.conf"
"$venv/bin/radicale" --config "$scratch/radicale.conf" >"$rlog" 2>&1 </dev/null &
server_pid=$!
for _ in $(seq 1 200); do
    grep -q 'Radicale server ready' "$rlog" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$rlog" >&2; die "Radicale exited at start-up"; }
    sleep 0.1
done
grep -q 'Radicale server ready' "$rlog" || { tail -n 20 "$rlog" >&2; die "Radicale did not become ready"; }
echo "== Radicale $rad_version listening on $base (pid $server_pid, log $rlog)"

curl_dav() { curl -sS --fail-with-body -u "$user:$password" "$@"; }

# server_count COLL EXT : items the server lists in COLL (PROPFIND Depth 1).
# It asks for the collection's sync-token too: items written straight into
# the storage have no sync history yet, and Radicale's first sync-token
# computation writes (and fsyncs) one history file per item - 15 s for 2000
# items here, which a server filled by PUTs pays at upload time instead.
server_count() {
    curl_dav -X PROPFIND -H 'Depth: 1' -H 'Content-Type: application/xml; charset=utf-8' \
        --data '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/><sync-token/></prop></propfind>' \
        "$base/$user/$1/" | "${helper[@]}" count-hrefs "$2"
}
check_server() {
    local ne nc
    ne=$(server_count bench-cal .ics) nc=$(server_count bench-book .vcf)
    if [ "$ne" != "$items" ] || [ "$nc" != "$items" ]; then
        die "Radicale lists $ne events and $nc cards, expected $items each"
    fi
    echo "   server lists $ne events + $nc cards ($1)"
}
t0=$EPOCHREALTIME
check_server "first listing, builds Radicale's item cache and sync history"
warm=$("$py" -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$EPOCHREALTIME")
echo "   (took $warm s)"

# ------------------------------------------------------------ measuring
nreq() { grep -c "request for '" "$rlog" || true; }

# run_measured OUT LOG CMD... : run CMD (stdout+stderr to LOG); write
# "<wall s> <peak RSS KiB> <requests> <user CPU s> <sys CPU s> <server s>" to OUT,
# the requests Radicale logged meanwhile to OUT.req. Wall time from bash's
# EPOCHREALTIME; server s = the sum of Radicale's own per-request times
# ("response status ... in X seconds"), overlapping requests counted fully.
run_measured() {
    local out=$1 log=$2 t0 t1 rc=0 wall rss ucpu scpu srv r0 r1 l0 l1
    shift 2
    r0=$(nreq)
    l0=$(wc -l <"$rlog")
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%M %U %S' -o "$out.raw" "$@" >"$log" 2>&1 || rc=$?
    t1=$EPOCHREALTIME
    r1=$(nreq)
    l1=$(wc -l <"$rlog")
    grep "request for '" "$rlog" | sed -n "$((r0 + 1)),${r1}p" >"$out.req" || true
    srv=$(sed -n "$((l0 + 1)),${l1}p" "$rlog" \
        | sed -n 's/.* response status for .* in \([0-9.]*\) seconds.*/\1/p' \
        | awk '{ s += $1 } END { printf "%.3f", s }')
    if [ "$rc" -ne 0 ]; then
        echo "---- last lines of $log:" >&2
        tail -n 30 "$log" >&2
        echo "---- Radicale requests during the step ($((r1 - r0))), last 20:" >&2
        tail -n 20 "$out.req" >&2
        die "command failed with exit status $rc: $*"
    fi
    read -r rss ucpu scpu < <(tail -n1 "$out.raw")
    wall=$("$py" -c 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1")
    echo "$wall $rss $((r1 - r0)) $ucpu $scpu $srv" >"$out"
}

# breakdown FILE : "METHOD path xN" per request kind (item paths collapsed)
breakdown() {
    sed -n "s/.*\] \([A-Z]*\) request for '\([^']*\)'.*/\1 \2/p" "$1" \
        | sed -E 's#^([A-Z]+ /[^/]+/[^/]+/)[^/]+$#\1<item>#' \
        | sort | uniq -c | sort -rn | awk '{ printf "%s%s %s x%d", (NR > 1 ? ", " : ""), $2, $3, $1 } END { print "" }'
}

markers=$scratch/markers.tsv
: >"$markers"

# edit_server ROUND TOOL : 5 events + 5 cards changed on the server, each by
# GET + PUT with If-Match (untimed, between two syncs)
edit_server() {
    local round=$1 tool=$2 coll kind ext ctype href k=0 etag code uid marker tmp=$scratch/edit
    mkdir -p "$tmp"
    for coll in bench-cal bench-book; do
        if [ "$coll" = bench-cal ]; then kind=event ext=.ics ctype=text/calendar
        else kind=card ext=.vcf ctype=text/vcard; fi
        while read -r href; do
            k=$((k + 1))
            curl_dav -D "$tmp/h" -o "$tmp/item$ext" "$base/$user/$coll/$href" \
                || die "GET $coll/$href failed"
            etag=$(sed -n 's/^[Ee][Tt][Aa][Gg]: *\(.*\)\r$/\1/p' "$tmp/h")
            [ -n "$etag" ] || die "no ETag on GET $coll/$href"
            marker="Edited on the server round $round item $k for $tool"
            uid=$("${helper[@]}" edit "$tmp/item$ext" "$kind" "$marker")
            code=$(curl -sS -u "$user:$password" -o "$tmp/put.out" -w '%{http_code}' -X PUT \
                -H "If-Match: $etag" -H "Content-Type: $ctype; charset=utf-8" \
                --data-binary "@$tmp/item$ext" "$base/$user/$coll/$href")
            [ "$code" = 201 ] || [ "$code" = 204 ] \
                || { cat "$tmp/put.out" >&2; die "PUT $coll/$href with If-Match answered $code"; }
            printf '%s\t%s\n' "$uid" "$marker" >>"$markers"
        done < <("${helper[@]}" pick "$data" "$user" "$coll" "$round" "$edits_per_kind")
    done
    [ "$k" = $((2 * edits_per_kind)) ] || die "made $k edits, expected $((2 * edits_per_kind))"
}

declare -A step_label=(
    [first]="first download (empty vdirs)"
    [noop]="no-op sync"
    [changes]="sync after 10 server edits"
)

prepare() {
    local tool=$1 dir=$scratch/$1
    mkdir -p "$dir/cal" "$dir/book"
    case $tool in
        davsync)
            cat >"$dir/davsync.toml" <<EOF
status_path = "$dir/status"

[storage.local_cal]
type = "vdir"
path = "$dir/cal"
fileext = ".ics"

[storage.server_cal]
type = "caldav"
url = "$base/"
username = "$user"
password = { env = "BENCH_DAV_PASSWORD" }

[storage.local_book]
type = "vdir"
path = "$dir/book"
fileext = ".vcf"

[storage.server_book]
type = "carddav"
url = "$base/"
username = "$user"
password = { env = "BENCH_DAV_PASSWORD" }

[pair.cal]
a = "local_cal"
b = "server_cal"
collections = "from b"

[pair.book]
a = "local_book"
b = "server_book"
collections = "from b"
EOF
            ;;
        vdirsyncer)
            cat >"$dir/vdirsyncer.conf" <<EOF
[general]
status_path = "$dir/status/"

[pair cal]
a = "local_cal"
b = "server_cal"
collections = ["from b"]

[storage local_cal]
type = "filesystem"
path = "$dir/cal/"
fileext = ".ics"

[storage server_cal]
type = "caldav"
url = "$base/"
username = "$user"
password = "$password"

[pair book]
a = "local_book"
b = "server_book"
collections = ["from b"]

[storage local_book]
type = "filesystem"
path = "$dir/book/"
fileext = ".vcf"

[storage server_book]
type = "carddav"
url = "$base/"
username = "$user"
password = "$password"
EOF
            ;;
    esac
}
export BENCH_DAV_PASSWORD=$password

sync_cmd() {
    local dir=$scratch/$1
    case $1 in
        davsync) cmd=("$davsync" -c "$dir/davsync.toml" -q sync) ;;
        vdirsyncer) cmd=("$vdirsyncer" -v WARNING -c "$dir/vdirsyncer.conf" sync) ;;
    esac
}

mb() { "$py" -c 'import sys; print("%.1f" % (float(sys.argv[1]) / 1024))' "$1"; }

step() {
    local tool=$1 s=$2 dir=$scratch/$1 w r n ucpu scpu srv
    local -a cmd
    sync_cmd "$tool"
    run_measured "$dir/$s.m" "$dir/$s.log" "${cmd[@]}"
    read -r w r n ucpu scpu srv <"$dir/$s.m"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$s" "$w" "$r" "$n" "$ucpu" "$scpu" "$srv" >>"$scratch/results.tsv"
    printf '   %-30s %8s s %6s req %7s MB   ' "${step_label[$s]}" "$w" "$n" "$(mb "$r")"
    "${helper[@]}" verify "$dir/cal/bench-cal" "$dir/book/bench-book" "$data" "$user" \
        "$items" "$items" "$markers" \
        || { echo "---- output of the sync ($dir/$s.log):" >&2; tail -n 30 "$dir/$s.log" >&2
             die "$tool left the vdirs wrong after the '$s' step; no figures reported"; }
    printf '%s\t%s\t%s\n' "$tool" "$s" "$(breakdown "$dir/$s.m.req")" >>"$scratch/breakdown.tsv"
}

round=0
for tool in $tools; do
    echo "== $tool"
    prepare "$tool"
    dir=$scratch/$tool
    if [ "$tool" = vdirsyncer ]; then
        # not timed; answers "create collection ... on local_*?" with yes
        "$vdirsyncer" -c "$dir/vdirsyncer.conf" discover \
            < <(yes) >"$dir/discover.log" 2>&1 \
            || { tail -n 20 "$dir/discover.log" >&2; die "vdirsyncer discover failed"; }
    fi
    step "$tool" first
    step "$tool" noop
    round=$((round + 1))
    edit_server "$round" "$tool"
    check_server "after $tool's 10 edits"
    step "$tool" changes
done

# ------------------------------------------------------------ report
"$py" - "$items" "$scratch/results.tsv" "$scratch/breakdown.tsv" <<'EOF'
import sys
items, results, breakdown = sys.argv[1], sys.argv[2], sys.argv[3]
vals = {}
with open(results) as f:
    for row in f:
        tool, step, w, r, n, ucpu, scpu, srv = row.split()
        vals[(tool, step)] = (float(w), int(r) / 1024, int(n), float(ucpu), float(scpu), float(srv))
steps = [("first", "first download (empty vdirs)", 3.0, None),
         ("noop", "no-op sync", 20.0, 2),
         ("changes", "sync after 10 server edits", None, None)]
head = ["step", "davsync s", "requests", "MB", "vdirsyncer s", "requests", "MB",
        "speed-up", "server-bound", "target"]
rows = []
for key, label, target, max_req in steps:
    d = vals.get(("davsync", key)); v = vals.get(("vdirsyncer", key))
    sp, tg, bound = "-", "-", "-"
    if d and v:
        up = v[0] / max(d[0], 0.001)
        sp = "%.1fx" % up
        bound = "%.1fx" % (v[0] / max(d[5], 0.001))
    if target is not None:
        want = ">=%gx" % target + ("" if max_req is None else ", <=%d req" % max_req)
        if d and v:
            ok = up >= target and (max_req is None or d[2] <= max_req)
            tg = ("ok " if ok else "MISSED ") + want
        else:
            tg = want
    cell = lambda t, i, fmt: "-" if t is None else fmt % t[i]
    rows.append([label, cell(d, 0, "%.3f"), cell(d, 2, "%d"), cell(d, 1, "%.1f"),
                 cell(v, 0, "%.3f"), cell(v, 2, "%d"), cell(v, 1, "%.1f"), sp, bound, tg])
widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
def line(r):
    return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths))) + " |"
print()
print("Results: Radicale on loopback, 1 calendar of %s events + 1 address book of %s cards"
      % (items, items))
print(line(head))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in rows:
    print(line(r))
print()
print("Per step: the tool's CPU time, Radicale's summed request times, the requests")
print("(from Radicale's log; <item> = one item path):")
with open(breakdown) as f:
    for row in f:
        tool, step, text = row.rstrip("\n").split("\t", 2)
        v = vals[(tool, step)]
        print("  %-10s %-8s cpu user %4.2f sys %4.2f s, server %5.3f s: %s"
              % (tool, step, v[3], v[4], v[5], text))
EOF
echo
echo "speed-up = vdirsyncer s / davsync s. server-bound = vdirsyncer s / the time Radicale"
echo "itself logged for davsync's requests: the speed-up a client sending the same requests"
echo "could reach if it took no time at all. Targets: first download >=3x faster;"
echo "no-op sync >=20x faster with at most one request per collection (2)."
echo "requests = lines 'METHOD request for ...' Radicale logged during the step."
echo "measured with: wall time from bash EPOCHREALTIME, peak RSS from /usr/bin/time -f %M"
echo "run:         $cmdline"
want davsync && echo "davsync:     $ds_label: davsync -c DIR/davsync.toml -q sync (pairs cal, book; collections = \"from b\")"
want vdirsyncer && echo "vdirsyncer:  $vs_label: vdirsyncer -v WARNING -c DIR/vdirsyncer.conf sync (after an untimed 'discover')"
echo "server:      Radicale $rad_version, Basic auth (plain htpasswd), first listing took $warm s (untimed)"
echo "machine:     $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(uname -sr)"
