// DurableObjectStore (Cloudflare Workers): grant records in a Durable
// Object's storage, compare-and-swap in one storage transaction.

import { decide, recordKey } from "./memory.mjs";

const PAGE = 1000;

export class DurableObjectStore {
  #storage;
  #prefix;

  /**
   * @param storage the Durable Object's `state.storage`
   * @param options `prefix` of the keys ("grant:")
   */
  constructor(storage, { prefix = "grant:" } = {}) {
    this.#storage = storage;
    this.#prefix = prefix;
  }

  async compareAndSwap(recordJson, replaces) {
    const key = this.#prefix + recordKey(recordJson).grant;
    return this.#storage.transaction(async (txn) => {
      const refused = decide((await txn.get(key)) ?? null, replaces);
      if (refused) return refused;
      await txn.put(key, recordJson);
      return { written: true };
    });
  }

  async load(grant) {
    return (await this.#storage.get(this.#prefix + grant)) ?? null;
  }

  async delete(grant) {
    return this.#storage.delete(this.#prefix + grant);
  }

  async loadAll() {
    const records = [];
    let startAfter;
    for (;;) {
      const page = await this.#storage.list({ prefix: this.#prefix, limit: PAGE, startAfter });
      for (const [key, json] of page) {
        records.push(json);
        startAfter = key;
      }
      if (page.size < PAGE) return records;
    }
  }
}
