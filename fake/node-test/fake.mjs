// Starting the hoopai-fake binary for a test file, and talking to its admin API
// (the JS package's tests import it too).
//
// HOOPAI_FAKE_BIN: the binary (default: target/debug/hoopai-fake of this
// repository, as `cargo build -p hoopai-fake` leaves it).

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const defaultBin = path.join(here, "..", "..", "target", "debug", "hoopai-fake");

/** Starts the fake with `args`; resolves once its handoff file is written. */
export async function startFake(args = []) {
  const dir = mkdtempSync(path.join(tmpdir(), "hoopai-fake-"));
  const handoffPath = path.join(dir, "fake.json");
  const bin = process.env.HOOPAI_FAKE_BIN ?? defaultBin;
  // It stops when its standard input closes: with this process, however it ends.
  const child = spawn(bin, ["--handoff", handoffPath, "--exit-on-stdin-close", "--quiet", ...args], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  let stdout = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  let handoff;
  for (;;) {
    try {
      handoff = JSON.parse(readFileSync(handoffPath, "utf8"));
      break;
    } catch {
      if (child.exitCode !== null) throw new Error(`hoopai-fake exited (${child.exitCode}) before its handoff`);
      if (Date.now() > deadline) throw new Error("no handoff file within 20 s");
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return {
    handoff,
    /** An admin call: the parsed JSON answer; throws on a status other than 200. */
    async admin(method, route, body) {
      const response = await fetch(`${handoff.adminUrl}/${route}`, {
        method,
        headers: { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const value = await response.json();
      if (response.status !== 200) throw new Error(`${method} /_fake/${route}: ${response.status} ${value.error}`);
      return value;
    },
    /** The fake's counters (`GET /_fake/stats`, its `fake` part). */
    async stats() {
      return (await this.admin("GET", "stats")).fake;
    },
    /** Stops the fake; resolves to its last line (the stats). */
    async stop() {
      child.stdin.end();
      await exited;
      rmSync(dir, { recursive: true, force: true });
      return stdout.trim().split("\n").at(-1);
    },
  };
}

/** The fingerprint the fake's log shows for a token (`fp:` and 12 hex digits). */
export function fingerprint(token) {
  const h = createHash("sha256");
  h.update(Buffer.from("hoopai-oauth refresh token fingerprint v1\0"));
  h.update(token);
  return `fp:${h.digest("hex").slice(0, 12)}`;
}

/** `GET /locations/{id}` with `token`: the status (200 for a live token, 401 for a dead one). */
export async function apiCall(baseUrl, locationId, token) {
  const response = await fetch(`${baseUrl}/locations/${locationId}`, {
    headers: { authorization: `Bearer ${token}`, version: "2021-07-28" },
  });
  await response.arrayBuffer();
  return response.status;
}
