# shellcheck shell=bash disable=SC2154
# Shared by the benchmark scripts (sourced, not run). Expects $repo (the checkout), $py (a
# Python 3) and a die function.

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
