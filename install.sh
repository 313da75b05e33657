#!/bin/sh
# Installs vc from this checkout: the binary, the completion file for your shell and the man
# pages. Safe to run again (it replaces what it installed); --uninstall removes exactly the
# files it installed, as listed in PREFIX/share/vc/installed-files.
set -eu

usage() {
    cat <<'EOF'
Install vc from this repository.

Usage: ./install.sh [OPTIONS]

Options:
  --prefix DIR          install under DIR: DIR/bin/vc, DIR/share/man/man1 (default: ~/.local)
  --from-binary PATH    install this vc binary instead of building one with cargo
  --shell SHELL         completion file for bash, zsh, fish or none (default: from $SHELL)
  --uninstall           remove what a previous run installed under the prefix, nothing else
  -h, --help            print this help

Without --from-binary, vc is built with `cargo build --release --locked`, which needs a Rust
toolchain (1.89 or newer, from https://rustup.rs) and a C linker (cc).

Completion files go where each shell looks for them:
  bash   ${XDG_DATA_HOME:-~/.local/share}/bash-completion/completions/vc
  zsh    ${XDG_DATA_HOME:-~/.local/share}/zsh/site-functions/_vc (add that directory to fpath)
  fish   ${XDG_CONFIG_HOME:-~/.config}/fish/completions/vc.fish
EOF
}

say() { printf '%s\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

prefix="${HOME:?HOME is not set}/.local"
binary=""
shell_name=""
uninstall=false
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --from-binary) [ $# -ge 2 ] || die "--from-binary needs a path"; binary="$2"; shift 2 ;;
        --from-binary=*) binary="${1#--from-binary=}"; shift ;;
        --shell) [ $# -ge 2 ] || die "--shell needs bash, zsh, fish or none"; shell_name="$2"; shift 2 ;;
        --shell=*) shell_name="${1#--shell=}"; shift ;;
        --uninstall) uninstall=true; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; printf '\n' >&2; die "unknown option $1 (see --help)" ;;
    esac
done
[ -n "$prefix" ] || die "--prefix needs a directory"

repo="$(cd "$(dirname "$0")" && pwd)"
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
config_home="${XDG_CONFIG_HOME:-$HOME/.config}"
manifest="$prefix/share/vc/installed-files"

if [ -z "$shell_name" ]; then
    shell_name="$(basename "${SHELL:-none}")"
fi
case "$shell_name" in
    bash) completion="$data_home/bash-completion/completions/vc" ;;
    zsh) completion="$data_home/zsh/site-functions/_vc" ;;
    fish) completion="$config_home/fish/completions/vc.fish" ;;
    none|"") completion="" ;;
    *) say "no completion file for shell $shell_name (bash, zsh and fish are supported; vc completions powershell|elvish prints the others)"; completion="" ;;
esac

if $uninstall; then
    [ -f "$manifest" ] || die "nothing to uninstall: $manifest does not exist (was vc installed with --prefix $prefix?)"
    while IFS= read -r file; do
        [ -n "$file" ] || continue
        if [ -e "$file" ] || [ -L "$file" ]; then
            rm -f "$file"
            say "removed $file"
        fi
    done < "$manifest"
    rm -f "$manifest"
    rmdir "$prefix/share/vc" 2>/dev/null || true
    say "vc uninstalled from $prefix"
    exit 0
fi

if [ -z "$binary" ]; then
    if ! command -v cargo >/dev/null 2>&1; then
        die "building vc needs cargo (a Rust toolchain, 1.89 or newer): install it with rustup from https://rustup.rs and run ./install.sh again, or pass --from-binary PATH to install a vc you built elsewhere"
    fi
    [ -f "$repo/Cargo.toml" ] || die "run install.sh from a checkout of the vc repository ($repo has no Cargo.toml)"
    say "building vc (cargo build --release --locked); the first build takes a few minutes"
    (cd "$repo" && cargo build --release --locked --bin vc) || die "cargo build failed (see above)"
    binary="$repo/target/release/vc"
fi
[ -x "$binary" ] || die "$binary is not an executable file"
"$binary" --version >/dev/null 2>&1 || die "$binary does not run here (vc --version failed)"

installed=""
put() { # put SOURCE DEST MODE
    mkdir -p "$(dirname "$2")"
    tmp="$2.tmp.$$"
    cp "$1" "$tmp"
    chmod "$3" "$tmp"
    mv -f "$tmp" "$2"
    installed="$installed$2
"
    say "installed $2"
}

put "$binary" "$prefix/bin/vc" 755
for page in "$repo"/docs/man/*.1; do
    [ -f "$page" ] || continue
    put "$page" "$prefix/share/man/man1/$(basename "$page")" 644
done
if [ -n "$completion" ]; then
    script="$(mktemp)"
    "$prefix/bin/vc" completions "$shell_name" > "$script"
    put "$script" "$completion" 644
    rm -f "$script"
fi

# Keep what an earlier run installed (another shell's completion file) in the manifest.
mkdir -p "$(dirname "$manifest")"
{
    [ -f "$manifest" ] && cat "$manifest"
    printf '%s' "$installed"
} | sort -u > "$manifest.tmp.$$"
mv -f "$manifest.tmp.$$" "$manifest"

say "$("$prefix/bin/vc" --version) installed in $prefix/bin"
case ":${PATH:-}:" in
    *":$prefix/bin:"*) ;;
    *) say "note: $prefix/bin is not on PATH; add it, e.g. export PATH=\"$prefix/bin:\$PATH\"" ;;
esac
if [ "$shell_name" = zsh ]; then
    say "note: zsh reads _vc from fpath; add fpath=(\"$data_home/zsh/site-functions\" \$fpath) before compinit in ~/.zshrc"
fi
