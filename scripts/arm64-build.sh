#!/usr/bin/env bash
# arm64-build.sh: builds the `match` Lambda for Lambda's arm64 (aarch64-unknown-linux-gnu, glibc 2.34 as on
# provided.al2023), checks that the binary is an aarch64 executable carrying the allocator the CLI uses
# (mimalloc, with the batch settings `recon_app::alloc::batch_settings` applies), and runs it under
# qemu-aarch64: without configuration it must start, log those settings in effect as mimalloc reads them back
# on arm64, and stop on its first missing setting.
#
# rustup cannot fetch another target's standard library here (only the package registries are reachable), so
# the build uses Debian's own cross-capable compiler: `rustc-web` from bookworm's security archive and its
# aarch64 standard library (`libstd-rust-web-dev:arm64`), unpacked under target/tools/arm64 (nothing is
# installed system-wide), with zig (PyPI `ziglang`, pinned) as the C compiler and linker, as cargo-lambda
# does. Its own target directory (target/arm64): a different compiler must not invalidate the main build.
#
# The toolchain's version comes from the machine's apt lists (Debian replaces a superseded security upload in
# its pool, so a pinned file name would stop resolving); when it cannot be fetched the check says so and is
# skipped (exit 0): a build that fails fails the check.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T=$ROOT/target/tools/arm64
ZIG_VERSION=0.15.2
TARGET=aarch64-unknown-linux-gnu
GLIBC=2.34
POOL=pool/updates/main  # the security archive's pool: rustc-web is only there

skip() { echo "arm64-build: SKIPPED, $*" >&2; exit 0; }

# pool_file PACKAGE ARCH: the pool path of the version the apt lists name, for ARCH
pool_file() {
  local f
  f=$(apt-cache show "$1" 2>/dev/null | awk '/^Filename:/ && !f { f = $2 } END { print f }')
  [ -n "$f" ] && echo "${f%_*.deb}_$2.deb"
}
# download POOL_PATH OUT: from Debian's main archive, else (quietly: a security upload is not in the main one)
# from its security archive; a connect timeout and a limit, so that an unreachable mirror fails the fetch
# instead of holding make test
download() {
  curl -sf --connect-timeout 30 --max-time 900 -o "$2" "http://deb.debian.org/debian/$1" \
    || curl -sSf --connect-timeout 30 --max-time 900 -o "$2" "http://deb.debian.org/debian-security/$1"
}

fetch_toolchain() {
  command -v apt-cache >/dev/null || skip "no apt-cache to find Debian's rustc-web"
  local v llvm f
  v=$(apt-cache show rustc-web 2>/dev/null | awk '/^Version: 1\.9[0-9]/ && !v { v = $2 } END { print v }')
  [ -n "$v" ] || skip "Debian's rustc-web (1.9x) is not in this machine's apt lists"
  local minor=${v%%+*}; minor=${minor%.*}
  llvm=$(apt-cache show "libstd-rust-web-$minor" 2>/dev/null | grep -o 'libllvm[0-9]*' | sort -u | tail -n 1)
  rm -rf "$T.tmp" && mkdir -p "$T.tmp/debs"
  for f in "rustc-web_${v}_amd64" "libstd-rust-web-dev_${v}_amd64" "libstd-rust-web-${minor}_${v}_amd64" \
           "libstd-rust-web-dev_${v}_arm64" "libstd-rust-web-${minor}_${v}_arm64"; do
    download "$POOL/r/rustc-web/$f.deb" "$T.tmp/debs/$f.deb" || skip "cannot download $f.deb from Debian's $POOL"
  done
  [ -n "$llvm" ] || skip "cannot tell which libllvm rustc-web $v needs"
  f=$(pool_file "$llvm" amd64) || skip "$llvm is not in this machine's apt lists"
  download "$f" "$T.tmp/debs/$llvm.deb" || skip "cannot download $f"
  for f in "$T.tmp"/debs/*.deb; do dpkg-deb -x "$f" "$T.tmp/root"; done
  python3 -m venv "$T.tmp/zig" && "$T.tmp/zig/bin/pip" install -q "ziglang==$ZIG_VERSION" || skip "cannot install ziglang==$ZIG_VERSION"
  rm -rf "$T.tmp/debs" "$T" && mv "$T.tmp" "$T"
}
[ -x "$T/zig/bin/python" ] && [ -x "$T/root/usr/bin/rustc" ] || { echo "arm64-build: fetching Debian's rustc-web and zig into $T" >&2; fetch_toolchain; }

# wrappers: the compiler with its own libraries, zig as C compiler / archiver / linker for the target
mkdir -p "$T/bin"
cat >"$T/bin/rustc" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$T/root/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$T/root/usr/bin/rustc" "\$@"
EOF
cat >"$T/bin/cc" <<EOF
#!/bin/sh
# the cc crate and rustc pass a Rust target triple zig does not take (\`--target=T\` or \`-target T\`): dropped,
# zig is told the target itself
drop=
for a in "\$@"; do
  shift
  if [ -n "\$drop" ]; then drop=; continue; fi
  case \$a in --target=*) ;; -target) drop=1 ;; *) set -- "\$@" "\$a" ;; esac
done
exec "$T/zig/bin/python" -m ziglang cc -target aarch64-linux-gnu.$GLIBC "\$@"
EOF
cat >"$T/bin/ar" <<EOF
#!/bin/sh
exec "$T/zig/bin/python" -m ziglang ar "\$@"
EOF
chmod +x "$T/bin/rustc" "$T/bin/cc" "$T/bin/ar"
"$T/bin/rustc" --version >&2

cd "$ROOT"
export RUSTC=$T/bin/rustc CARGO_TARGET_DIR=$ROOT/target/arm64
export CC_aarch64_unknown_linux_gnu=$T/bin/cc AR_aarch64_unknown_linux_gnu=$T/bin/ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=$T/bin/cc
cargo build -q --locked -p match --target "$TARGET"
BIN=$CARGO_TARGET_DIR/$TARGET/debug/match
file "$BIN" | grep -q 'ELF 64-bit LSB .*ARM aarch64' || { echo "arm64-build: $BIN is not an aarch64 executable: $(file "$BIN")" >&2; exit 1; }
# the allocator the CLI uses, and the settings it applies, linked into the arm64 Lambda
# (mimalloc's GlobalAlloc, the option call and recon's batch settings: symbols the linker keeps only when used)
syms=$(nm "$BIN")
for sym in 'MiMalloc.*GlobalAlloc' ' mi_option_set$' 'alloc14batch_settings'; do
  grep -q -- "$sym" <<<"$syms" || { echo "arm64-build: $BIN lacks $sym: not the CLI's allocator settings" >&2; exit 1; }
done
echo "arm64-build: match built for $TARGET with mimalloc and the batch settings ($(du -h "$BIN" | cut -f1))"

# and it runs: under qemu-aarch64 (Debian's qemu-user-static, with bookworm's arm64 libc6 and libgcc-s1 as its
# root), without configuration, it applies the allocator settings, then stops on its first missing setting
fetch_deb() {  # fetch_deb PACKAGE ARCH DIR: the .deb of the version the apt lists name, unpacked into DIR
  local f
  f=$(pool_file "$1" "$2") && mkdir -p "$3" && download "$f" "$3.deb" && dpkg-deb -x "$3.deb" "$3" && rm -f "$3.deb"
}
if [ ! -x "$T/qemu/usr/bin/qemu-aarch64-static" ]; then
  rm -rf "$T/qemu" "$T/sysroot"
  fetch_deb qemu-user-static amd64 "$T/qemu" && fetch_deb libc6 arm64 "$T/sysroot" && fetch_deb libgcc-s1 arm64 "$T/sysroot" \
    || { rm -rf "$T/qemu"; skip "running it: cannot download qemu-user-static and the arm64 libc6/libgcc-s1"; }
fi
set +e
out=$(env -i PATH=/usr/bin:/bin AWS_REGION=us-east-1 AWS_LAMBDA_LOG_FORMAT=JSON "$T/qemu/usr/bin/qemu-aarch64-static" -L "$T/sysroot" "$BIN" 2>&1)
rc=$?
set -e
if [ "$rc" != 1 ] || ! grep -q 'is not set' <<<"$out"; then
  echo "arm64-build: $BIN did not start and stop on a missing setting under qemu-aarch64 (exit $rc): $out" >&2
  exit 1
fi
# the settings in effect, as mimalloc reads them back on arm64 (the function logs them at start): the CLI's
# (alloc.rs: purge 10 ms after a free, large OS pages asked for)
for want in '"purge_delay_ms":10[,}]' '"large_os_pages":true'; do
  grep -q -- "$want" <<<"$out" || { echo "arm64-build: the allocator settings in effect on arm64 are not the CLI's ($want): $out" >&2; exit 1; }
done
echo "arm64-build: it runs under qemu-aarch64 with the CLI's allocator settings in effect (purge delay 10 ms, large OS pages), and stops on $(grep -o '[A-Z0-9_]* is not set' <<<"$out" | head -n 1), as expected without configuration"
