// Capped in-memory request log. A ring buffer, so recording is O(1) even at
// thousands of requests per second and memory stays bounded (oldest entries
// are dropped once `capacity` is reached).

import type { RecordedRequest } from "./types.ts";

export interface RequestFilter {
  provider?: string;
  path?: string;
  method?: string;
  /** Only the most recent N matching entries. */
  limit?: number;
}

export class RequestLog {
  readonly capacity: number;
  #buf: (RecordedRequest | undefined)[];
  #start = 0; // index of the oldest entry
  #size = 0;
  #nextId = 1;

  constructor(capacity = 100_000) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`request log capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.#buf = new Array(capacity);
  }

  get size(): number {
    return this.#size;
  }

  /** Ids are unique for the life of the process (not reset by clear()) so clients can dedupe. */
  nextId(): string {
    return `req_${this.#nextId++}`;
  }

  add(entry: RecordedRequest): void {
    if (this.#size < this.capacity) {
      this.#buf[(this.#start + this.#size) % this.capacity] = entry;
      this.#size++;
    } else {
      this.#buf[this.#start] = entry; // overwrite the oldest
      this.#start = (this.#start + 1) % this.capacity;
    }
  }

  /** Oldest first. */
  list(filter: RequestFilter = {}): RecordedRequest[] {
    const method = filter.method?.toUpperCase();
    const out: RecordedRequest[] = [];
    for (let i = 0; i < this.#size; i++) {
      const e = this.#buf[(this.#start + i) % this.capacity]!;
      if (filter.provider !== undefined && e.provider !== filter.provider) continue;
      if (filter.path !== undefined && e.path !== filter.path) continue;
      if (method !== undefined && e.method !== method) continue;
      out.push(e);
    }
    if (filter.limit !== undefined && out.length > filter.limit) {
      return out.slice(out.length - filter.limit);
    }
    return out;
  }

  clear(): number {
    const n = this.#size;
    this.#buf = new Array(this.capacity);
    this.#start = 0;
    this.#size = 0;
    return n;
  }
}
