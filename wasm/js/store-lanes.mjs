// Store calls off the engine's path: every write, read and delete the engine
// asks for runs as a call of its own, in order per grant (a lane), each with
// a deadline.
//
// - Per grant, one call at a time, in the order asked: a delete never
//   overtakes the write before it, and a grant's writes reach the store in
//   version order.
// - Grants do not wait for each other: one grant's stuck call holds up only
//   that grant's lane.
// - Every call has a deadline (`timeoutMs`) counted from when it was asked.
//   Past it, the call is reported as failed; a call still waiting its turn is
//   dropped (the engine writes again on its own backoff; a delete still
//   runs), one that was running keeps its lane until it returns, and what it
//   returns late is reported too if it says something new (a write that went
//   through after all, or lost to a newer record). Every write is a
//   compare-and-swap, so a late write never replaces a newer record.

/** The three answers of a compare-and-swap, as the engine takes them. */
function writeOutcome(value) {
  if (value && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1) {
      if (value.written === true) return { written: true };
      if (value.noRecord === true) return { noRecord: true };
      if (typeof value.conflict === "string") return { conflict: value.conflict };
    }
  }
  return { failed: "the store answered a compare-and-swap with neither written, conflict nor noRecord" };
}

/** A thrown value as a message (the engine sanitizes and caps it). */
function message(error) {
  if (error && typeof error.message === "string" && error.message !== "") return error.message;
  return String(error ?? "the store failed");
}

export class StoreLanes {
  #store;
  #timeoutMs;
  #report;
  /** grant -> { running: job | null, waiting: job[] } */
  #lanes = new Map();
  /** Jobs asked and not finished (running, waiting, or running late). */
  #pending = new Set();

  /**
   * @param store the grant store
   * @param timeoutMs each call's deadline, from when it was asked
   * @param report called with `{ grant, op, version, outcome, late }` for
   *   every result to hand to the engine
   */
  constructor(store, timeoutMs, report) {
    this.#store = store;
    this.#timeoutMs = timeoutMs;
    this.#report = report;
  }

  /** Whether no call is running or waiting. */
  get idle() {
    return this.#pending.size === 0;
  }

  /** Whether a call of `grant` is running or waiting. */
  busy(grant) {
    return this.#lanes.has(grant);
  }

  /**
   * Asks for `op` on `grant`: `{ op: "write", recordJson, replaces, version }`,
   * `{ op: "load" }` or `{ op: "delete" }`. Starts now if the lane is free,
   * else after the calls asked before it.
   */
  ask(grant, op) {
    const job = { grant, op, reported: false, timer: null };
    job.timer = setTimeout(() => this.#deadline(job), this.#timeoutMs);
    this.#pending.add(job);
    let lane = this.#lanes.get(grant);
    if (!lane) {
      lane = { running: null, waiting: [] };
      this.#lanes.set(grant, lane);
    }
    if (lane.running === null) this.#start(lane, job);
    else lane.waiting.push(job);
  }

  /** Stops the deadlines (shutdown): what still runs is abandoned. */
  abort() {
    for (const job of this.#pending) clearTimeout(job.timer);
    this.#pending.clear();
    this.#lanes.clear();
  }

  #start(lane, job) {
    lane.running = job;
    this.#call(job).then((outcome) => this.#done(job, outcome));
  }

  /** Runs the store call; never rejects. */
  async #call({ grant, op }) {
    const store = this.#store;
    switch (op.op) {
      case "write":
        try {
          return writeOutcome(await store.compareAndSwap(op.recordJson, op.replaces));
        } catch (error) {
          return { failed: message(error) };
        }
      case "load":
        try {
          const json = await store.load(grant);
          if (json === null || typeof json === "string") return json;
          return { failed: "the store's load returned neither a record's JSON nor null" };
        } catch (error) {
          return { failed: message(error) };
        }
      default:
        try {
          return { deleted: Boolean(await store.delete(grant)) };
        } catch (error) {
          return { failed: message(error) };
        }
    }
  }

  #done(job, outcome) {
    clearTimeout(job.timer);
    if (!this.#pending.has(job)) return; // aborted
    this.#pending.delete(job);
    this.#next(job);
    if (job.reported) {
      // Reported failed at its deadline: only news is worth a report.
      const failed = outcome !== null && typeof outcome === "object" && "failed" in outcome;
      if (failed && job.op.op !== "delete") return;
    }
    this.#report({ grant: job.grant, op: job.op, outcome, late: job.reported });
  }

  #next(finished) {
    const lane = this.#lanes.get(finished.grant);
    if (!lane) return;
    if (lane.running === finished) lane.running = null;
    if (lane.running !== null) return;
    const job = lane.waiting.shift();
    if (job) this.#start(lane, job);
    else this.#lanes.delete(finished.grant);
  }

  #deadline(job) {
    if (!this.#pending.has(job) || job.reported) return;
    job.reported = true;
    const kind = job.op.op === "load" ? "read" : job.op.op;
    const failed = { failed: `the store did not complete a ${kind} within ${this.#timeoutMs} ms` };
    const lane = this.#lanes.get(job.grant);
    if (lane && lane.running !== job && job.op.op !== "delete") {
      // Still waiting its turn: dropped. The engine writes (or reads) again.
      lane.waiting = lane.waiting.filter((w) => w !== job);
      this.#pending.delete(job);
      if (lane.running === null && lane.waiting.length === 0) this.#lanes.delete(job.grant);
    }
    this.#report({ grant: job.grant, op: job.op, outcome: failed, late: true });
  }
}
