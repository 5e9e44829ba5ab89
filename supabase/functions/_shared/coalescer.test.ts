// The coalescer's grouping: a lone operation goes out at once, operations submitted while a
// flush is in flight go out together next, results reach their callers in order, and a group
// that fails as a whole is retried one operation at a time.

import assert from "node:assert/strict";
import { Coalescer } from "./coalescer.ts";

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

Deno.test("coalescer: operations of one turn share a flush; results map back in order", async () => {
  const groups: number[][] = [];
  const c = new Coalescer<number, number>((ops) => {
    groups.push([...ops]);
    return Promise.resolve(ops.map((n) => n * 10));
  });
  const results = await Promise.all([c.submit(1), c.submit(2), c.submit(3)]);
  assert.deepEqual(results, [10, 20, 30]);
  assert.deepEqual(groups, [[1, 2, 3]]);
});

Deno.test("coalescer: while a flush is in flight, new operations wait and then go out together", async () => {
  const groups: number[][] = [];
  const gates: { resolve: (v: void) => void }[] = [];
  const c = new Coalescer<number, number>(async (ops) => {
    groups.push([...ops]);
    const gate = deferred<void>();
    gates.push(gate);
    await gate.promise;
    return ops.map((n) => -n);
  });
  const first = c.submit(1);
  await Promise.resolve(); // let the first flush start
  await Promise.resolve();
  const later = [c.submit(2), c.submit(3), c.submit(4)];
  assert.deepEqual(groups, [[1]]);
  assert.equal(c.waiting, 3);
  gates[0].resolve();
  assert.equal(await first, -1);
  while (gates.length < 2) await new Promise((r) => setTimeout(r, 1));
  assert.deepEqual(groups, [[1], [2, 3, 4]]);
  gates[1].resolve();
  assert.deepEqual(await Promise.all(later), [-2, -3, -4]);
});

Deno.test("coalescer: maxGroup caps a group", async () => {
  const groups: number[][] = [];
  const c = new Coalescer<number, number>((ops) => {
    groups.push([...ops]);
    return Promise.resolve([...ops]);
  }, { maxGroup: 2 });
  await Promise.all([1, 2, 3, 4, 5].map((n) => c.submit(n)));
  assert.deepEqual(groups, [[1, 2], [3, 4], [5]]);
});

Deno.test("coalescer: a failing group is retried per operation; only the bad one fails", async () => {
  const groups: number[][] = [];
  const c = new Coalescer<number, number>((ops) => {
    groups.push([...ops]);
    if (ops.includes(13)) return Promise.reject(new Error("unlucky 13"));
    return Promise.resolve(ops.map((n) => n + 1));
  });
  const settled = await Promise.allSettled([c.submit(12), c.submit(13), c.submit(14)]);
  assert.deepEqual(groups, [[12, 13, 14], [12], [13], [14]]);
  assert.deepEqual(settled[0], { status: "fulfilled", value: 13 });
  assert.equal(settled[1].status, "rejected");
  assert.match(String((settled[1] as PromiseRejectedResult).reason), /unlucky 13/);
  assert.deepEqual(settled[2], { status: "fulfilled", value: 15 });
});

Deno.test("coalescer: a flush returning the wrong number of results fails every operation", async () => {
  const c = new Coalescer<number, number>(() => Promise.resolve([]));
  await assert.rejects(c.submit(1), /returned 0 results for 1 operations/);
});
