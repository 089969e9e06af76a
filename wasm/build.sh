#!/usr/bin/env bash
# Builds the npm package in wasm/ (what CI runs, and what a user runs):
#
# 1. the module for wasm32-unknown-unknown, twice: with everything (feature
#    `full`, the default) and token-only (`--no-default-features`);
# 2. the JavaScript glue with the wasm-bindgen CLI of exactly the version in
#    Cargo.lock (`--target web`: one ES module for Node and for workerd),
#    installed under target/tools when absent;
# 3. the npm development packages from package-lock.json (`npm ci`): binaryen
#    for wasm-opt, miniflare for the workerd tests, typescript for the types;
# 4. `wasm-opt -Oz` over each module, in place: pkg/ (everything) and
#    pkg-token/ (token-only) are what the package ships;
# 5. prints the sizes, raw and gzip -9.
#
# Usage: wasm/build.sh        (from anywhere)
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never

wasm=target/wasm32-unknown-unknown/release/hoopai_oauth_wasm.wasm

# The CLI must be the version of the wasm-bindgen crate in Cargo.lock.
version=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
if [ -z "$version" ]; then
    echo "no wasm-bindgen in Cargo.lock" >&2
    exit 1
fi
bindgen=wasm-bindgen
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $version" ]; then
    tools="$PWD/target/tools/wasm-bindgen-$version"
    bindgen="$tools/bin/wasm-bindgen"
    if [ "$("$bindgen" --version 2>/dev/null || true)" != "wasm-bindgen $version" ]; then
        echo "== build: installing wasm-bindgen-cli $version"
        cargo install wasm-bindgen-cli --version "$version" --locked --root "$tools"
    fi
fi

echo "== build: npm ci (binaryen, miniflare, typescript)"
# --ignore-scripts: nothing here needs an install script (workerd's binary
# comes in its platform package), and none runs code at install.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
wasm_opt=node_modules/.bin/wasm-opt

# No path of the building machine in the module (panic locations): the
# registry, the toolchain and the repository by short names.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$cargo_home/registry/src= --remap-path-prefix=$(cd .. && pwd)=hoopai-oauth"

size() { wc -c <"$1" | tr -d ' '; }
gz() { gzip -9 -c "$1" | wc -c | tr -d ' '; }

# build OUT_DIR CARGO_FLAGS...: one module, bindgen, wasm-opt.
build() {
    local out=$1
    shift
    cargo build --locked --target wasm32-unknown-unknown --release "$@"
    rm -rf "$out"
    "$bindgen" --target web --out-dir "$out" "$wasm"
    local module="$out/hoopai_oauth_wasm_bg.wasm"
    local before
    before=$(size "$module")
    # The features the Rust toolchain's wasm32 target uses by default.
    "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
        --enable-sign-ext --enable-mutable-globals --enable-reference-types \
        --enable-multivalue "$module" -o "$module.opt"
    mv "$module.opt" "$module"
    echo "$out: after wasm-bindgen $before bytes; after wasm-opt -Oz $(size "$module") bytes, gzip -9 $(gz "$module"); glue $(size "$out/hoopai_oauth_wasm.js") bytes"
}

echo "== build: everything (pkg/)"
build pkg
echo "== build: token-only (pkg-token/)"
build pkg-token --no-default-features
echo "binaryen: $("$wasm_opt" --version)"
