# shellcheck shell=bash disable=SC2154
# Shared by the benchmark scripts (sourced, not run). Expects $repo (the checkout), $py (a
# Python 3), and usage and die functions.

# parse_args "$@": the options both scripts take. Sets $items, $tools and $keep (set their
# defaults before) and checks them.
parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --items) [ $# -ge 2 ] || die "--items needs a value"; items=$2; shift 2 ;;
            --items=*) items=${1#*=}; shift ;;
            --tools) [ $# -ge 2 ] || die "--tools needs a value"; tools=$2; shift 2 ;;
            --tools=*) tools=${1#*=}; shift ;;
            --keep) keep=1; shift ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
    done
    [[ $items =~ ^[1-9][0-9]*$ ]] || die "--items must be a positive integer, got '$items'"
    local t
    for t in $tools; do
        case $t in davsync|vdirsyncer) ;; *) die "unknown tool '$t'" ;; esac
    done
}

# want TOOL: is TOOL among those to run.
want() { [[ " $tools " == *" $1 "* ]]; }

# Sets $davsync and $ds_label: the binary named by $DAVSYNC_BIN, or a release build of $repo.
find_davsync() {
    if [ -n "${DAVSYNC_BIN:-}" ]; then
        davsync=$DAVSYNC_BIN
    else
        command -v cargo >/dev/null || die "cargo is needed to build davsync (or set DAVSYNC_BIN)"
        echo "== cargo build --release${CARGO_TARGET_DIR:+ (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)}"
        cargo build --release --manifest-path "$repo/Cargo.toml"
        local target_dir
        target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" \
            | "$py" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
        davsync="$target_dir/release/davsync"
    fi
    [ -x "$davsync" ] || die "davsync binary not found at $davsync"
    ds_label=$("$davsync" --version 2>/dev/null | head -n1 || true)
    ds_label=${ds_label:-davsync}
    echo "== using $ds_label ($davsync)"
}

# radicale_conf PORT USERS DATA : a Radicale config on stdout: 127.0.0.1:PORT, plain htpasswd
# users from USERS, items under DATA, no delays, requests logged (the benches count them).
radicale_conf() {
    cat <<EOF
[server]
hosts = 127.0.0.1:$1
max_connections = 64
delay_on_error = 0
[auth]
type = htpasswd
htpasswd_filename = $2
htpasswd_encryption = plain
delay = 0
[rights]
type = owner_only
[storage]
filesystem_folder = $3
[web]
type = none
[logging]
level = info
mask_passwords = True
EOF
}
