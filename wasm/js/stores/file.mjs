// FileStore (Node): one file per grant in a folder of the app's own
// (mode 0700, files 0600), each written atomically (a new file, fsync,
// rename, fsync of the folder), with compare-and-swap under a lock file
// (created exclusively), so that several processes may share the folder.

import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, readFile, readdir, rename, stat, unlink } from "node:fs/promises";
import path from "node:path";

import { decide, recordKey } from "./memory.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class FileStore {
  #dir;
  #lockTimeoutMs;
  #staleLockMs;
  #made = null;

  /**
   * @param dir the folder (created when missing)
   * @param options `lockTimeoutMs` (5 s): how long to wait for a grant's lock;
   *   `staleLockMs` (30 s): a lock older than this is taken to be left by a
   *   process that died, and removed
   */
  constructor(dir, { lockTimeoutMs = 5_000, staleLockMs = 30_000 } = {}) {
    this.#dir = dir;
    this.#lockTimeoutMs = lockTimeoutMs;
    this.#staleLockMs = staleLockMs;
  }

  /** A grant's file: a hash of its id, so that any id is a safe name. */
  #file(grant) {
    const name = createHash("sha256").update(grant).digest("hex").slice(0, 40);
    return path.join(this.#dir, `${name}.json`);
  }

  #ensureDir() {
    this.#made ??= mkdir(this.#dir, { recursive: true, mode: 0o700 });
    return this.#made;
  }

  async compareAndSwap(recordJson, replaces) {
    const { grant } = recordKey(recordJson);
    const file = this.#file(grant);
    return this.#locked(file, async () => {
      const refused = decide(await readOrNull(file), replaces);
      if (refused) return refused;
      await this.#write(file, recordJson);
      return { written: true };
    });
  }

  async load(grant) {
    await this.#ensureDir();
    return readOrNull(this.#file(grant));
  }

  async delete(grant) {
    const file = this.#file(grant);
    return this.#locked(file, async () => {
      try {
        await unlink(file);
        return true;
      } catch (error) {
        if (error.code === "ENOENT") return false;
        throw error;
      }
    });
  }

  async loadAll() {
    await this.#ensureDir();
    const names = (await readdir(this.#dir)).filter((n) => n.endsWith(".json")).sort();
    const records = [];
    for (const name of names) {
      const json = await readOrNull(path.join(this.#dir, name));
      if (json !== null) records.push(json);
    }
    return records;
  }

  async #write(file, text) {
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
    const handle = await open(tmp, "wx", 0o600);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
    const dir = await open(this.#dir, "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  /** Runs `f` holding the grant's lock file. */
  async #locked(file, f) {
    await this.#ensureDir();
    const lock = `${file}.lock`;
    const deadline = Date.now() + this.#lockTimeoutMs;
    for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
      try {
        const handle = await open(lock, "wx", 0o600);
        await handle.close();
        break;
      } catch (error) {
        if (error.code !== "EEXIST") throw error;
        const age = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
        if (age > this.#staleLockMs) {
          await unlink(lock).catch(() => {});
          continue;
        }
        if (Date.now() >= deadline) throw new Error(`the store's lock was busy for ${this.#lockTimeoutMs} ms`);
        await sleep(wait);
      }
    }
    try {
      return await f();
    } finally {
      await unlink(lock).catch(() => {});
    }
  }
}

async function readOrNull(file) {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    if (error.code === "ENOENT") return null;
    throw error;
  }
}
