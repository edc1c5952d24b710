#!/bin/sh
# Installs xenify (`install`) or removes exactly what an earlier install added
# (`uninstall`). `make install` and `make uninstall` run this; tests/install.rs
# runs it directly with XENIFY_BIN set, so that no cargo build runs inside
# `cargo test`.
#
# Everything comes from the environment: DESTDIR, PREFIX (default /usr),
# BINDIR, MANDIR, BASHCOMPDIR, ZSHCOMPDIR, FISHCOMPDIR, SYSCONFDIR (default
# /etc), DOCDIR (default PREFIX/share/doc/xenify), VDSM_HOOKS_DIR (default
# /usr/libexec/vdsm/hooks), MANIFEST, and for install XENIFY_BIN (the built
# binary) and HOOK_POINTS (space-separated).
#
# Install writes a manifest of what it created: every file and link, the
# directories that did not exist, and the configuration file only if there
# was none (with its checksum). Uninstall removes the files and links, the
# configuration only if it is unchanged, then the directories that are empty,
# deepest first. A directory that existed before install, such as a hook
# directory Vdsm made, is not in the manifest and so is never removed.

set -eu

PREFIX=${PREFIX:-/usr}
BINDIR=${BINDIR:-$PREFIX/bin}
MANDIR=${MANDIR:-$PREFIX/share/man}
BASHCOMPDIR=${BASHCOMPDIR:-$PREFIX/share/bash-completion/completions}
ZSHCOMPDIR=${ZSHCOMPDIR:-$PREFIX/share/zsh/site-functions}
FISHCOMPDIR=${FISHCOMPDIR:-$PREFIX/share/fish/vendor_completions.d}
SYSCONFDIR=${SYSCONFDIR:-/etc}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/xenify}
VDSM_HOOKS_DIR=${VDSM_HOOKS_DIR:-/usr/libexec/vdsm/hooks}
MANIFEST=${MANIFEST:-$PREFIX/share/xenify/installed}
DESTDIR=${DESTDIR:-}
CONFIG=$SYSCONFDIR/xenify/xenify.toml
# The default policy file sits beside this script in the source tree.
CONFIG_SRC=${CONFIG_SRC:-$(dirname "$0")/../hooks/xenify.toml}
# The Vdsm patches and the sudoers rule sit beside this script.
PACKAGING=$(dirname "$0")
SUDOERS=$SYSCONFDIR/sudoers.d/50_vdsm_hook_xenify

die() {
    echo "install.sh: $*" >&2
    exit 1
}

for p in "$BINDIR" "$MANDIR" "$BASHCOMPDIR" "$ZSHCOMPDIR" "$FISHCOMPDIR" "$SYSCONFDIR" "$DOCDIR" "$VDSM_HOOKS_DIR" "$MANIFEST"; do
    case $p in
    /*) ;;
    *) die "$p: installation paths must be absolute (DESTDIR is the only prefix that may be relative)" ;;
    esac
done

# Checksum and size of a file, as one word: enough to tell whether an
# administrator has edited the configuration since install wrote it.
sum_of() {
    cksum <"$1" | tr ' ' ':'
}

# Appends a manifest line unless it is there already, so that installing
# twice records each path once.
record() {
    grep -qxF "$1" "$NEW" || printf '%s\n' "$1" >>"$NEW"
}

# Creates the directory $1 (a path without DESTDIR) and its missing parents,
# recording each one created.
make_dir() {
    [ -n "$1" ] || return 0
    [ -d "$DESTDIR$1" ] && return 0
    make_dir "${1%/*}"
    mkdir "$DESTDIR$1"
    record "dir $1"
}

# Copies $1 to $2 (without DESTDIR) with mode $3. The copy is renamed into
# place, so a hook that runs during a reinstall sees the old binary or the
# new one, never half of one.
put() {
    make_dir "${2%/*}"
    cp "$1" "$DESTDIR$2.new"
    chmod "$3" "$DESTDIR$2.new"
    mv -f "$DESTDIR$2.new" "$DESTDIR$2"
    record "file $2"
    echo "installed $2"
}

# The manifest is written on exit, even after a failure, so that uninstall
# can remove what a partial install left.
finish() {
    status=$?
    if [ -d "$DESTDIR${MANIFEST%/*}" ] && [ -s "$NEW" ]; then
        cp "$NEW" "$DESTDIR$MANIFEST"
    fi
    rm -rf "$TMP"
    exit $status
}

install_all() {
    [ -n "${XENIFY_BIN:-}" ] || die "XENIFY_BIN is not set: the path of the built xenify"
    [ -x "$XENIFY_BIN" ] || die "$XENIFY_BIN: no executable there (run make build)"
    [ -n "${HOOK_POINTS:-}" ] || die "HOOK_POINTS is not set: the Vdsm hook points, space-separated"
    [ -f "$CONFIG_SRC" ] || die "$CONFIG_SRC: no default policy file there"

    TMP=$(mktemp -d)
    NEW=$TMP/manifest
    : >"$NEW"
    trap finish EXIT
    trap 'exit 1' HUP INT TERM
    # A second install adds to what the first one recorded.
    if [ -f "$DESTDIR$MANIFEST" ]; then
        cp "$DESTDIR$MANIFEST" "$NEW"
    fi
    if [ -n "$DESTDIR" ]; then
        mkdir -p "$DESTDIR"
    fi
    make_dir "${MANIFEST%/*}"

    put "$XENIFY_BIN" "$BINDIR/xenify" 0755

    # Vdsm runs every executable in a hook directory; the link's directory
    # tells xenify which hook point it runs for (hooks/README.md).
    for point in $HOOK_POINTS; do
        link=$VDSM_HOOKS_DIR/$point/50_xenify
        make_dir "${link%/*}"
        rm -f "$DESTDIR$link"
        ln -s "$BINDIR/xenify" "$DESTDIR$link"
        record "link $link"
        echo "installed $link -> $BINDIR/xenify"
    done

    # The administrator's policy is never overwritten, whoever wrote it.
    make_dir "${CONFIG%/*}"
    if [ -e "$DESTDIR$CONFIG" ] || [ -L "$DESTDIR$CONFIG" ]; then
        echo "kept $CONFIG: it exists (xenify generate config prints the default)"
    else
        cp "$CONFIG_SRC" "$DESTDIR$CONFIG"
        chmod 0644 "$DESTDIR$CONFIG"
        # A config line from an earlier install is stale: the file was removed since.
        awk -v path="$CONFIG" '!($1 == "config" && $3 == path)' "$NEW" >"$TMP/kept"
        cp "$TMP/kept" "$NEW"
        record "config $(sum_of "$DESTDIR$CONFIG") $CONFIG"
        echo "installed $CONFIG"
    fi

    # The after_get_caps hook runs `xl info` through sudo as the vdsm user;
    # sudo ignores a rule file that others may write, hence 0440.
    put "$PACKAGING/sudoers/50_vdsm_hook_xenify" "$SUDOERS" 0440

    # The Vdsm patches, to apply to the installed Vdsm (README.md says how).
    found=
    for patch in "$PACKAGING"/vdsm/*.patch; do
        [ -f "$patch" ] || continue
        found=1
        put "$patch" "$DOCDIR/vdsm/${patch##*/}" 0644
    done
    [ -n "$found" ] || die "$PACKAGING/vdsm: no Vdsm patches there"

    # Gzipped, as distributions ship them: rpmbuild compresses man pages in
    # the package anyway, and `make install` installs what the package holds.
    mkdir "$TMP/man"
    "$XENIFY_BIN" generate man "$TMP/man"
    found=
    for page in "$TMP"/man/*.[1-9]; do
        [ -f "$page" ] || continue
        found=1
        name=${page##*/}
        gzip -9 -n -c "$page" >"$page.gz"
        put "$page.gz" "$MANDIR/man${name##*.}/$name.gz" 0644
    done
    [ -n "$found" ] || die "xenify generate man wrote no pages"

    mkdir "$TMP/completions"
    "$XENIFY_BIN" generate completions "$TMP/completions"
    put "$TMP/completions/xenify.bash" "$BASHCOMPDIR/xenify" 0644
    put "$TMP/completions/_xenify" "$ZSHCOMPDIR/_xenify" 0644
    put "$TMP/completions/xenify.fish" "$FISHCOMPDIR/xenify.fish" 0644

    echo "recorded what was installed in $MANIFEST"
}

uninstall_all() {
    manifest=$DESTDIR$MANIFEST
    [ -f "$manifest" ] || die "$manifest: no manifest, so nothing to uninstall (were DESTDIR and PREFIX the same for install?)"
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    cp "$manifest" "$TMP/manifest"

    while read -r kind path; do
        case $kind in
        file)
            if [ -f "$DESTDIR$path" ]; then
                rm -f "$DESTDIR$path"
                echo "removed $path"
            fi
            ;;
        link)
            if [ -L "$DESTDIR$path" ]; then
                rm -f "$DESTDIR$path"
                echo "removed $path"
            fi
            ;;
        config)
            sum=${path%% *}
            path=${path#* }
            if [ ! -f "$DESTDIR$path" ]; then
                :
            elif [ "$(sum_of "$DESTDIR$path")" = "$sum" ]; then
                rm -f "$DESTDIR$path"
                echo "removed $path"
            else
                echo "kept $path: changed since install"
            fi
            ;;
        dir) echo "$path" >>"$TMP/dirs" ;;
        *) die "$manifest: unknown line: $kind $path" ;;
        esac
    done <"$TMP/manifest"

    rm -f "$manifest"
    # A path sorts before everything below it, so the reverse order removes
    # children before their parents. A directory that is not empty (holding
    # a kept configuration, or files of someone else's) stays.
    if [ -f "$TMP/dirs" ]; then
        LC_ALL=C sort -r -u "$TMP/dirs" | while read -r dir; do
            if rmdir "$DESTDIR$dir" 2>/dev/null; then
                :
            elif [ -d "$DESTDIR$dir" ]; then
                echo "kept $dir: not empty"
            fi
        done
    fi
}

case ${1:-} in
install) install_all ;;
uninstall) uninstall_all ;;
*) die "usage: install.sh install|uninstall (settings from the environment)" ;;
esac
