#!/usr/bin/env bash
# Benchmark: many pairs in one `davsync sync`. Four Radicale servers on
# loopback, the fourth behind a proxy that holds every request 1 s before
# forwarding it (a slow server); 20 pairs, 5 per server, each a vdir calendar
# of 3 events synced to a calendar of its own (`collections = "from a"`, a
# first sync: MKCALENDAR, PUTs, listings).
#
#   bench/pairs.sh [--keep]
#
# Environment:
#   DAVSYNC_BIN      use this davsync binary instead of building one
#   MAX_CONNECTIONS  the configs' top-level max_connections (default 16, as
#                    davsync's): requests in flight at once across all servers
#
# Three runs, each a first sync into calendars of its own:
#   slow alone - only the 5 pairs of the slow server
#   fast alone - only the 15 pairs of the other servers
#   all        - all 20 pairs
# Pairs on different servers run at the same time, pairs on one server one
# after another, all under one max_connections, so "all" should take about as
# long as "slow alone" (unless max_connections is too small for the servers'
# concurrency together: the slow server's requests then hold slots). Every
# run must exit 0. Radicale comes from bench/.venv or target/dav-venv (the
# test harness's venv); run bench/dav.sh or the DAV tests once to get one.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
keep=0
user=alice
password=bench-horse-42
servers=4
pairs_per_server=5
items=3
max_connections=${MAX_CONNECTIONS:-16}

die() { echo "pairs.sh: error: $*" >&2; exit 1; }
for arg in "$@"; do
    case $arg in
        --keep) keep=1 ;;
        -h | --help) sed -n '2,23s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument $arg" ;;
    esac
done

command -v python3 >/dev/null || die "python3 is needed"
py=$(python3 -c 'import sys; print(sys.executable)')
radicale=
for candidate in "$here/.venv/bin/radicale" "$repo/target/dav-venv/bin/radicale"; do
    if [ -x "$candidate" ]; then radicale=$candidate; break; fi
done
[ -n "$radicale" ] || die "no Radicale in bench/.venv or target/dav-venv (run bench/dav.sh once)"

# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
find_davsync

scratch=$(mktemp -d "${TMPDIR:-/tmp}/davsync-pairs-bench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$keep" = 1 ]; then echo "== kept scratch dir $scratch"; else rm -rf "$scratch"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
printf '%s:%s\n' "$user" "$password" >"$scratch/users"

# wait_for LOG TEXT PID : until LOG holds TEXT, or die.
wait_for() {
    for _ in $(seq 1 200); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { cat "$1" >&2; die "$1: process exited at start-up"; }
        sleep 0.1
    done
    tail -n 20 "$1" >&2
    die "$1: not ready"
}

urls=()
for s in $(seq 1 "$servers"); do
    port=$(free_port)
    dir=$scratch/server$s
    mkdir -p "$dir"
    radicale_conf "$port" "$scratch/users" "$dir/data" >"$dir/radicale.conf"
    "$radicale" --config "$dir/radicale.conf" >"$dir/log" 2>&1 </dev/null &
    pids+=($!)
    wait_for "$dir/log" 'Radicale server ready' "$!"
    urls+=("http://127.0.0.1:$port/")
done

# The slow server: a proxy in front of the last one, 1 s per request.
proxy_port=$(free_port)
cat >"$scratch/slow_proxy.py" <<'EOF'
import http.client, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, UPSTREAM_PORT = int(sys.argv[1]), int(sys.argv[2])

class Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(1)
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM_PORT)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "accept-encoding")}
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status, answer.reason)
        for k, v in answer.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    def log_message(self, *args):
        pass

for method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PROPFIND", "PROPPATCH", "REPORT", "MKCOL", "MKCALENDAR", "POST"):
    setattr(Slow, "do_" + method, Slow.forward)

server = ThreadingHTTPServer(("127.0.0.1", PORT), Slow)
print("proxy ready", flush=True)
server.serve_forever()
EOF
last=${urls[$((servers - 1))]}
upstream_port=${last##*:}
upstream_port=${upstream_port%/}
"$py" "$scratch/slow_proxy.py" "$proxy_port" "$upstream_port" >"$scratch/proxy.log" 2>&1 </dev/null &
pids+=($!)
wait_for "$scratch/proxy.log" 'proxy ready' "$!"
urls[$((servers - 1))]="http://127.0.0.1:$proxy_port/"
echo "== servers: ${urls[*]} (the last adds 1 s per request)"

event() {
    printf 'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davsync pairs bench//EN\r\nBEGIN:VEVENT\r\nUID:%s\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240301T100000Z\r\nDTEND:20240301T110000Z\r\nSUMMARY:%s\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n' "$1" "$1"
}

# config RUN FIRST_SERVER LAST_SERVER : the config of run RUN with the pairs of servers
# FIRST_SERVER..LAST_SERVER, each pair's vdir and calendar named after RUN.
config() {
    local run=$1 first=$2 last=$3 file=$scratch/$1.toml
    printf 'status_path = "%s/%s-status"\nmax_connections = %s\n' "$scratch" "$run" "$max_connections" >"$file"
    for s in $(seq "$first" "$last"); do
        cat >>"$file" <<EOF

[storage.server$s]
type = "caldav"
url = "${urls[$((s - 1))]}"
username = "$user"
password = "$password"
EOF
        for p in $(seq 1 "$pairs_per_server"); do
            local name=$run-s$s-p$p
            mkdir -p "$scratch/$run/$name/$name"
            for i in $(seq 1 "$items"); do
                event "$name-$i" >"$scratch/$run/$name/$name/$name-$i.ics"
            done
            cat >>"$file" <<EOF

[storage.local-$name]
type = "vdir"
path = "$scratch/$run/$name"
fileext = ".ics"

[pair.$name]
a = "local-$name"
b = "server$s"
collections = "from a"
EOF
        done
    done
    echo "$file"
}

# timed NAME CONFIG : run one sync, print its wall time in seconds.
timed() {
    local t0=$EPOCHREALTIME
    if ! DAVSYNC_CONFIG=$2 "$davsync" -q sync >"$scratch/$1.out" 2>&1; then
        cat "$scratch/$1.out" >&2
        die "$1: davsync sync failed"
    fi
    "$py" -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$EPOCHREALTIME"
}

slow_alone=$(timed slow "$(config slow "$servers" "$servers")")
fast_alone=$(timed fast "$(config fast 1 $((servers - 1)))")
all=$(timed all "$(config all 1 "$servers")")
echo
echo "pairs.sh: $((servers * pairs_per_server)) pairs on $servers servers (one adds 1 s per request), $items events each, first sync, max_connections = $max_connections"
printf '  %-34s %6s s\n' "slow server's $pairs_per_server pairs alone" "$slow_alone" \
    "the other $(((servers - 1) * pairs_per_server)) pairs alone" "$fast_alone" \
    "all $((servers * pairs_per_server)) pairs" "$all"
# One pair after another, "all" would take the two runs above together; against loopback
# servers the fast pairs cost little, so the difference is small: tests/dav_pairs.rs is what
# shows that pairs on different servers overlap.
echo "  one after another would take about $("$py" -c 'import sys; print("%.1f" % (float(sys.argv[1]) + float(sys.argv[2])))' "$slow_alone" "$fast_alone") s"
