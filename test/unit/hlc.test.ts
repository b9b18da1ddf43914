import test from "ava";
import {
  ClockDriftError,
  createHybridClock,
  hlcFromMillis,
  hlcMillis,
} from "../../services/shared/hlc.ts";

test("an HLC never runs backwards, even when the wall clock does", (t) => {
  let wall = 1_000_000;
  const clock = createHybridClock(() => wall);
  const a = clock.now();
  wall -= 500;
  const b = clock.now();
  const c = clock.now();
  t.true(b > a && c > b);
  t.is(hlcMillis(a), 1_000_000);
});

test("an HLC orders an event after the floor it was given, even one from a faster clock", (t) => {
  const clock = createHybridClock(() => 1_000_000);
  const remote = hlcFromMillis(1_000_050) + 7n;
  t.true(clock.after(remote) > remote);
  t.true(clock.now() > remote, "and everything after it");
});

test("a floor far ahead of this clock is refused", (t) => {
  const clock = createHybridClock(() => 1_000_000, 60_000);
  const err = t.throws(() => clock.after(hlcFromMillis(1_000_000 + 61_000)), {
    instanceOf: ClockDriftError,
  });
  t.regex(err.message, /61000 ms ahead/);
  t.notThrows(() => clock.after(hlcFromMillis(1_000_000 + 59_000)));
});

test("a burst within one millisecond borrows the next one instead of overflowing", (t) => {
  const clock = createHybridClock(() => 5);
  let prev = 0n;
  for (let i = 0; i < 70_000; i++) {
    const h = clock.now();
    t.true(h > prev);
    prev = h;
  }
  t.true(hlcMillis(prev) > 5);
});
