#!/usr/bin/env bash
# The JavaScript package, end to end (run by .ci/run):
#
# 1. this crate's cargo fmt, clippy (host; wasm32 with everything and
#    token-only), host tests (the shapes JavaScript receives) and docs;
# 2. build.sh: the module twice, the glue, npm ci (from package-lock.json),
#    wasm-opt -Oz, the sizes; the TypeScript declarations checked by tsc;
# 3. node --test: the module without a network, then against the fake
#    HighLevel server (the hoopai-fake binary, fake/): the driver, the README's
#    Node sample, and the Worker under workerd (miniflare);
# 4. run.mjs, the low-level walk: exchange, refresh with rotation, the spent
#    refresh token refused ("invalid grant"), counted by the fake.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never
started=$SECONDS
step() { echo "== wasm: $1 (at $((SECONDS - started)) s)"; }

step "toolchain"
if command -v rustup >/dev/null; then
    rustup target add wasm32-unknown-unknown
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt-get update && apt-get install -y nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
    echo "Node 20 or later is needed; found $(node --version)" >&2
    exit 1
fi

step "fmt, clippy, host tests, docs"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo clippy --locked --target wasm32-unknown-unknown -- -D warnings
cargo clippy --locked --target wasm32-unknown-unknown --no-default-features -- -D warnings
cargo test --locked
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps

step "build (build.sh)"
bash build.sh

step "the TypeScript declarations (tsc over tests/types.check.ts)"
node_modules/.bin/tsc -p tests/tsconfig.json

step "the module without a network (node --test)"
node --test tests/module.test.mjs

step "the fake HighLevel server (hoopai-fake)"
cargo build --locked --manifest-path ../Cargo.toml -p hoopai-fake
export HOOPAI_FAKE_BIN="$PWD/../target/debug/hoopai-fake"

step "the driver, the README sample and the Worker under workerd (node --test, Node $(node --version))"
# One file at a time: each starts fakes of its own, and the timings stay apart.
node --test --test-concurrency=1 tests/driver.test.mjs tests/readme.test.mjs tests/workerd.test.mjs

step "run.mjs against the fake"
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
"$HOOPAI_FAKE_BIN" --handoff "$tmp/fake.json" --exit-on-stdin-close --timeout-secs 300 <"$tmp/stdin" >"$tmp/fake.out" &
fake_pid=$!
exec 3>"$tmp/stdin"
for _ in $(seq 300); do
    [ -s "$tmp/fake.json" ] && break
    kill -0 "$fake_pid" 2>/dev/null || { echo "the fake server exited" >&2; exit 1; }
    sleep 0.1
done
[ -s "$tmp/fake.json" ] || { echo "the fake server wrote no handoff file" >&2; exit 1; }
cat "$tmp/fake.out"
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
step "ok"
