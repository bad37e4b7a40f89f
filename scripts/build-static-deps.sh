#!/usr/bin/env bash
# Builds the native dependencies of a release wheel into PREFIX, as static PIC archives:
# a minimal libcurl (HTTP/HTTPS only) on OpenSSL 3. setup.py links them into the ABI's
# extension with their symbols hidden when P11FAST_STATIC_DEPS=PREFIX (see "Packaging" in
# README.md), so a host that already has its own libcurl or OpenSSL loaded can never bind our
# calls to them.
#
#   scripts/build-static-deps.sh PREFIX
#
# Sources, in this order (P11FAST_DEPS_FROM_SOURCE=1 skips the first):
#   - Debian (apt-get source works, deb-src added privately below): the distribution's patched
#     curl, and its static OpenSSL archives (libssl-dev ships them, built as PIC);
#   - anywhere else (cibuildwheel's manylinux images): the pinned upstream tarballs below,
#     checked against their SHA-256, and OpenSSL built from source.
# PREFIX/.stamp records what was built; a second run with the same inputs does nothing.
set -euo pipefail

PREFIX="$(mkdir -p "$1" && cd "$1" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
JOBS="$(nproc 2>/dev/null || echo 2)"

# The upstream tarballs that Debian 13's source archive carries (the same bytes: their upstream
# signatures, by OpenSSL's and curl's release keys, check against them). OpenSSL 3.5 is the
# long-term-support series (to April 2030); 3.0's support ended in September 2026.
CURL_VERSION=8.14.1
CURL_SHA256=6766ada7101d292b42b8b15681120acd68effa4a9660935853cf6d61f0d984d4
OPENSSL_VERSION=3.5.7
OPENSSL_SHA256=a8c0d28a529ca480f9f36cf5792e2cd21984552a3c8e4aa11a24aa31aeac98e8

STAMP="$PREFIX/.stamp"
WANT="$(sha256sum "$0" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi

WORK="$PREFIX/src"
rm -rf "$WORK" && mkdir -p "$WORK" "$PREFIX/lib"
cd "$WORK"

# apt-get with a private deb-src list: nothing of the machine's apt configuration changes.
apt_source() {
  local apt="$WORK/apt"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/parts"
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/*.sources > "$apt/parts/src.sources"
  local opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt/parts"
              -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache")
  apt-get -qq "${opts[@]}" update && apt-get -qq "${opts[@]}" source "$1" >/dev/null 2>&1
}

# P11FAST_DEPS_TARBALLS: a directory already holding NAME-VERSION.tar.gz (offline builds).
fetch() { # name version sha256 url
  local tarball="$1-$2.tar.gz"
  if [ -f "${P11FAST_DEPS_TARBALLS:-/nonexistent}/$tarball" ]; then
    cp "$P11FAST_DEPS_TARBALLS/$tarball" .
  else
    curl -fsSL -o "$tarball" "$4"
  fi
  echo "$3  $tarball" | sha256sum -c --quiet -
  tar xzf "$tarball"
}

multiarch="$(gcc -print-multiarch 2>/dev/null || true)"
system_openssl="/usr/lib/$multiarch"
if [ -z "${P11FAST_DEPS_FROM_SOURCE:-}" ] && command -v apt-get >/dev/null && ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1 &&
   [ -f "$system_openssl/libssl.a" ] && [ -f "$system_openssl/libcrypto.a" ] &&
   apt_source curl; then
  CURL_SRC="$(ls -d "$WORK"/curl-*/ | head -1)"
  ln -sf "$system_openssl/libssl.a" "$system_openssl/libcrypto.a" "$PREFIX/lib/"
  OPENSSL_FLAGS=(--with-openssl)
else
  fetch openssl "$OPENSSL_VERSION" "$OPENSSL_SHA256" \
    "https://github.com/openssl/openssl/releases/download/openssl-$OPENSSL_VERSION/openssl-$OPENSSL_VERSION.tar.gz"
  (
    cd "openssl-$OPENSSL_VERSION"
    # No engines or dynamic modules: everything the transport needs is in the default provider,
    # and a static build must not try to dlopen modules from a path of the build machine.
    ./Configure --prefix="$PREFIX" --libdir=lib --openssldir=/etc/ssl \
      no-shared no-module no-engine no-tests -fPIC >/dev/null
    make -s -j"$JOBS" build_libs >/dev/null
    make -s install_dev >/dev/null
  )
  fetch curl "$CURL_VERSION" "$CURL_SHA256" \
    "https://curl.se/download/curl-$CURL_VERSION.tar.gz"
  CURL_SRC="$WORK/curl-$CURL_VERSION"
  OPENSSL_FLAGS=(--with-openssl="$PREFIX")
fi

# HTTP and HTTPS are all the transport speaks; every other feature is left out so the archive
# pulls in no further library (the link line stays: libcurl.a libssl.a libcrypto.a).
# --with-ca-fallback: without a configured CA file, OpenSSL's own default paths are used.
cd "$CURL_SRC"
./configure --prefix="$PREFIX" --disable-shared --enable-static --with-pic \
  "${OPENSSL_FLAGS[@]}" --enable-threaded-resolver \
  --without-libpsl --without-libidn2 --without-nghttp2 --without-brotli --without-zstd \
  --without-zlib --without-libssh2 --without-librtmp --without-gssapi \
  --disable-ldap --disable-ldaps --disable-rtsp --disable-dict --disable-telnet --disable-tftp \
  --disable-pop3 --disable-imap --disable-smb --disable-smtp --disable-gopher --disable-mqtt \
  --disable-ftp --disable-file --disable-manual --disable-ntlm --disable-alt-svc \
  --disable-hsts --disable-netrc --disable-progress-meter --disable-websockets \
  --without-ca-bundle --without-ca-path --with-ca-fallback >"$WORK/curl-configure.log" 2>&1 ||
  { tail -30 "$WORK/curl-configure.log"; exit 1; }
make -s -j"$JOBS" -C lib >/dev/null
make -s -C lib install >/dev/null
make -s -C include install >/dev/null
install -D -m 755 curl-config "$PREFIX/bin/curl-config"
# Which libcurl symbol appeared in which version: the build-time minimum check uses it.
install -D -m 644 docs/libcurl/symbols-in-versions "$PREFIX/share/curl/symbols-in-versions"

cd "$PREFIX" && rm -rf "$WORK"
echo "$WANT" > "$STAMP"
echo "static libcurl $("$PREFIX/bin/curl-config" --version | cut -d' ' -f2)" \
  "($("$PREFIX/bin/curl-config" --ssl-backends)) in $PREFIX"
