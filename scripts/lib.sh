# Shared by scripts/run, scripts/test and scripts/bench: install what is missing,
# then configure and build out of tree. Sourced, not run.

FC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FC_PACKAGES="build-essential autoconf automake pkg-config libev-dev libxxhash-dev
  libcriterion-dev libsodium-dev memcached libmemcached-tools python3-pymemcache
  nftables iproute2 debhelper dpkg-dev fakeroot lintian php-cli php-memcached php-memcache
  nodejs"
# Debian packages npm apart from nodejs; nodesource's nodejs brings its own.
command -v npm >/dev/null 2>&1 || FC_PACKAGES="$FC_PACKAGES npm"

fc_install_missing() {
    local missing="" p
    for p in $FC_PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "installing:$missing" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >&2
}

# fc_build DIR [configure args...]: (re)configures when needed, then makes.
fc_build() {
    local dir=$1; shift
    if [ ! -x "$FC_ROOT/configure" ] || [ "$FC_ROOT/configure.ac" -nt "$FC_ROOT/configure" ]; then
        (cd "$FC_ROOT" && autoreconf -fi >/dev/null)
    fi
    mkdir -p "$FC_ROOT/$dir"
    local want="$*"
    if [ ! -f "$FC_ROOT/$dir/Makefile" ] || [ "$(cat "$FC_ROOT/$dir/.fc-configure-args" 2>/dev/null)" != "$want" ]; then
        (cd "$FC_ROOT/$dir" && "$FC_ROOT/configure" -q "$@" && echo "$want" > .fc-configure-args)
    fi
    make -s -C "$FC_ROOT/$dir" -j"$(nproc)"
}
