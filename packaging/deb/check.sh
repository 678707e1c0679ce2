#!/usr/bin/env bash
# Builds the .deb with cargo-deb (metadata: [package.metadata.deb] in Cargo.toml) from the dist
# profile and checks it: its file list (dpkg-deb -c) is exactly the binary, every man page in
# man/, the three completions, the two systemd user units, README and copyright, with their
# modes; the copyright file is packaging/deb/copyright (the license); the maintainer is a name
# with an address; it depends on libc6; its binary runs.
#
#   packaging/deb/check.sh                  # builds with the dist profile (.ci/run does this)
#   DEB_NO_BUILD=1 packaging/deb/check.sh   # packages the dist build that is there
#
# Always the dist profile: that is the binary that ships, and cargo-deb 3.8 warns that a dev
# build "will be a hard error". A dist build from nothing takes about 5 minutes on 2 busy
# cores (thin LTO, one codegen unit), the price of checking the package that ships.
#
# The .deb is target/debian/davsync.deb. cargo-deb is installed into target/tools on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."

profile=dist
tools=target/tools
cargo_deb=$tools/bin/cargo-deb
cargo_deb_version=3.8.0
if ! "$cargo_deb" --version 2>/dev/null | grep -qF "$cargo_deb_version"; then
    # A debug build without the bundled xz installs in about 25 s instead of 4 minutes; it
    # compresses with the system's xz.
    cargo install --root "$tools" cargo-deb --version "$cargo_deb_version" --locked \
        --debug --no-default-features
fi

deb=target/debian/davsync.deb
args=(--profile "$profile" --locked --output "$deb")
if [[ -n ${DEB_NO_BUILD:-} ]]; then
    args+=(--no-build)
fi
"$cargo_deb" "${args[@]}"

fail() {
    echo "packaging/deb/check.sh: $*" >&2
    exit 1
}

# Regular files as "MODE PATH", sorted.
actual=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $1, $6 }' | sort)
expected=$(
    {
        echo "-rwxr-xr-x ./usr/bin/davsync"
        for page in man/*.1; do
            echo "-rw-r--r-- ./usr/share/man/man1/$(basename "$page").gz"
        done
        echo "-rw-r--r-- ./usr/share/man/man5/davsync.toml.5.gz"
        echo "-rw-r--r-- ./usr/share/bash-completion/completions/davsync"
        echo "-rw-r--r-- ./usr/share/zsh/vendor-completions/_davsync"
        echo "-rw-r--r-- ./usr/share/fish/vendor_completions.d/davsync.fish"
        echo "-rw-r--r-- ./usr/lib/systemd/user/davsync.service"
        echo "-rw-r--r-- ./usr/lib/systemd/user/davsync.timer"
        echo "-rw-r--r-- ./usr/lib/systemd/user/davsync-daemon.service"
        echo "-rw-r--r-- ./usr/share/doc/davsync/README.md"
        echo "-rw-r--r-- ./usr/share/doc/davsync/copyright"
    } | sort
)
if [[ "$actual" != "$expected" ]]; then
    diff <(echo "$expected") <(echo "$actual") >&2 || true
    fail "$deb: the file list differs from the expected one (< expected, > in the .deb)"
fi

depends=$(dpkg-deb --field "$deb" Depends)
[[ "$depends" == *libc6* ]] || fail "$deb: Depends is '$depends', expected libc6"

maintainer=$(dpkg-deb --field "$deb" Maintainer)
[[ "$maintainer" =~ ^[^\<]+\ \<[^\>]+@[^\>]+\>$ ]] ||
    fail "$deb: Maintainer is '$maintainer', expected a name and <address>"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
# The license: cargo-deb ships packaging/deb/copyright as it is (it is machine-readable already).
cmp "$root/usr/share/doc/davsync/copyright" packaging/deb/copyright ||
    fail "$deb: usr/share/doc/davsync/copyright is not packaging/deb/copyright"
version=$("$root/usr/bin/davsync" --version)
[[ "$version" == "davsync $(dpkg-deb --field "$deb" Version | sed 's/-[^-]*$//')" ]] ||
    fail "the packaged binary says '$version'"
# The packaged user units must find the packaged binary: /usr/bin is in the PATH they set.
for unit in davsync.service davsync-daemon.service; do
    grep -qx 'ExecStart=/usr/bin/env davsync .*' "$root/usr/lib/systemd/user/$unit" &&
        grep -q '^Environment=PATH=.*:/usr/bin:' "$root/usr/lib/systemd/user/$unit" ||
        fail "$unit does not run davsync from a PATH holding /usr/bin"
done

echo "packaging/deb/check.sh: $deb ($profile profile) is complete: $(echo "$actual" | wc -l) files"
