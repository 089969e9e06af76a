// MemoryStore: grant records in a Map, with compare-and-swap on the record
// version. For tests and single-process apps that can afford to lose their
// grants at exit (they cannot: refresh tokens are the installations; use a
// durable store in production).

/** The grant and version of a record's JSON. */
export function recordKey(recordJson) {
  const { grant, version } = JSON.parse(recordJson);
  if (typeof grant !== "string" || !Number.isSafeInteger(version)) {
    throw new TypeError("not a grant record: it needs a string grant and a whole version");
  }
  return { grant, version };
}

/**
 * The compare-and-swap rule every store keeps: written when the stored
 * version is `replaces` (or nothing is stored and `replaces` is null);
 * else the stored record (`conflict`), or `noRecord` when a version is
 * replaced but nothing is stored.
 */
export function decide(current, replaces) {
  if (current !== null && current !== undefined) {
    return recordKey(current).version === replaces ? null : { conflict: current };
  }
  return replaces === null ? null : { noRecord: true };
}

export class MemoryStore {
  #records = new Map();

  async compareAndSwap(recordJson, replaces) {
    const { grant } = recordKey(recordJson);
    const refused = decide(this.#records.get(grant), replaces);
    if (refused) return refused;
    this.#records.set(grant, recordJson);
    return { written: true };
  }

  async load(grant) {
    return this.#records.get(grant) ?? null;
  }

  async delete(grant) {
    return this.#records.delete(grant);
  }

  async loadAll() {
    return [...this.#records.values()];
  }

  /** Grants stored (not secret). */
  get size() {
    return this.#records.size;
  }
}
