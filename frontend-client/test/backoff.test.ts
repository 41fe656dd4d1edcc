import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Backoff } from "../src/backoff.js";

describe("Backoff", () => {
  it("doubles the window per attempt up to the cap", () => {
    const backoff = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.999999 });
    const delays = Array.from({ length: 6 }, () => backoff.next());
    assert.deepEqual(delays, [99, 199, 399, 799, 999, 999]);
    assert.equal(backoff.attempts, 6);
  });

  it("draws each delay uniformly from [0, window): full jitter", () => {
    const draws = [0, 0.5, 0.25];
    const backoff = new Backoff({ baseMs: 100, capMs: 10_000, random: () => draws.shift() ?? 0 });
    assert.deepEqual([backoff.next(), backoff.next(), backoff.next()], [0, 100, 100]);
  });

  it("starts from the base window again after a reset", () => {
    const backoff = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.999999 });
    backoff.next();
    backoff.next();
    backoff.reset();
    assert.equal(backoff.window(), 100);
    assert.equal(backoff.next(), 99);
  });

  it("never exceeds the cap, however many attempts", () => {
    const backoff = new Backoff({ baseMs: 1, capMs: 500, random: () => 0.999999 });
    for (let i = 0; i < 2000; i++) assert.ok(backoff.next() < 500);
  });

  it("rejects a cap below the base", () => {
    assert.throws(() => new Backoff({ baseMs: 100, capMs: 50 }), RangeError);
  });
});
