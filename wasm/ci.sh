#!/usr/bin/env bash
# The WASM module under Node, end to end: checks and tests this package on the
# host, builds it for wasm32-unknown-unknown, generates its JavaScript glue with
# the wasm-bindgen CLI of exactly the version in Cargo.lock (installed when
# absent), tests the JavaScript layer (test.mjs), starts the fake HighLevel
# server (the hoopai-fake binary, fake/) on loopback, and runs run.mjs against it. Fails unless the script saw a rotated refresh token and then the kind
# "invalid grant" for the spent one, and the fake counted the same.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never

echo "== wasm: toolchain"
if command -v rustup >/dev/null; then
    rustup target add wasm32-unknown-unknown
fi
if ! command -v node >/dev/null; then
    apt-get update && apt-get install -y nodejs
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
    echo "Node 18 or later is needed (global fetch); found $(node --version)" >&2
    exit 1
fi

echo "== wasm: fmt, clippy, host tests, docs"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo clippy --locked --target wasm32-unknown-unknown -- -D warnings
cargo test --locked
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps

echo "== wasm: build"
cargo build --locked --target wasm32-unknown-unknown --release
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
        echo "== wasm: installing wasm-bindgen-cli $version"
        cargo install wasm-bindgen-cli --version "$version" --locked --root "$tools"
    fi
fi
rm -rf pkg
"$bindgen" --target nodejs --out-dir pkg "$wasm"

echo "== wasm: the JavaScript layer (node --test)"
node --test test.mjs

echo "== wasm: sizes"
size() { wc -c <"$1" | tr -d ' '; }
gz() { gzip -9 -c "$1" | wc -c | tr -d ' '; }
echo "cargo build output:      $(size "$wasm") bytes"
echo "after wasm-bindgen:      $(size pkg/hoopai_oauth_wasm_bg.wasm) bytes, gzip -9 $(gz pkg/hoopai_oauth_wasm_bg.wasm)"
echo "JavaScript glue:         $(size pkg/hoopai_oauth_wasm.js) bytes"
if command -v wasm-opt >/dev/null; then
    # Only measured: run.mjs loads the module as wasm-bindgen wrote it.
    wasm-opt -Oz --all-features pkg/hoopai_oauth_wasm_bg.wasm -o target/opt.wasm
    echo "after wasm-opt -Oz:      $(size target/opt.wasm) bytes, gzip -9 $(gz target/opt.wasm) ($(wasm-opt --version))"
fi

echo "== wasm: the fake server on loopback (hoopai-fake)"
cargo build --locked --manifest-path ../Cargo.toml -p hoopai-fake
tmp=$(mktemp -d)
fake_pid=""
cleanup() {
    exec 3>&- 2>/dev/null || true
    if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
mkfifo "$tmp/stdin"
# The fake stops when its standard input closes: when fd 3 is closed below, or
# when this script ends, however it ends.
cargo run --quiet --locked --manifest-path ../Cargo.toml -p hoopai-fake -- \
    --handoff "$tmp/fake.json" --exit-on-stdin-close --timeout-secs 300 <"$tmp/stdin" >"$tmp/fake.out" &
fake_pid=$!
exec 3>"$tmp/stdin"
for _ in $(seq 300); do
    [ -s "$tmp/fake.json" ] && break
    kill -0 "$fake_pid" 2>/dev/null || { echo "the fake server exited" >&2; exit 1; }
    sleep 0.1
done
[ -s "$tmp/fake.json" ] || { echo "the fake server wrote no handoff file" >&2; exit 1; }
cat "$tmp/fake.out"

echo "== wasm: run.mjs under Node $(node --version)"
node run.mjs "$tmp/fake.json" | tee "$tmp/node.out"
# The secrets of the handoff file must not appear in the output.
node -e '
  const fs = require("fs");
  const h = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  const out = fs.readFileSync(process.argv[2], "utf8");
  for (const k of ["clientSecret", "code"]) if (out.includes(h[k])) { console.error(k + " printed in full"); process.exit(1); }
' "$tmp/fake.json" "$tmp/node.out"
exec 3>&-
wait "$fake_pid"
fake_pid=""
tail -n 1 "$tmp/fake.out"

grep -qx 'RESULT rotated=true reuse_kind=invalid grant' "$tmp/node.out" || {
    echo "run.mjs did not see a rotation followed by the kind \"invalid grant\"" >&2
    exit 1
}
grep -q ' code_exchanges=1 refreshes=1 spent_refresh_token_reuses=1 ' "$tmp/fake.out" || {
    echo "the fake did not count one exchange, one refresh and one reuse of a spent token" >&2
    exit 1
}
echo "== wasm: ok"
