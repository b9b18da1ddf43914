import test from "ava";
import { Backoff } from "../../client/backoff.ts";
import { FailoverPlan, type Loss } from "../../client/failover.ts";

// Regions are indices: 0 = us-east-1, 1 = eu-west-1, 2 = ap-south-1. Backoff and jitter use
// random() = 0.999, so a backoff delay is just under its ceiling (100, 200, 400 … ms).

const A = 0;
const B = 1;
const C = 2;

function plan(regions = 3) {
  return new FailoverPlan({
    regions,
    backoff: new Backoff({ initialMs: 100, maxMs: 1_000, random: () => 0.999 }),
    random: () => 0.999,
  });
}

/**
 * attempts runs `n` attempts that all fail, starting with the delay the loss (or begin)
 * returned, and lists each as [region, delay before it].
 */
function attempts(p: FailoverPlan, first: number, order: number[], n: number) {
  const out: Array<[number, number]> = [];
  let delay = first;
  for (let i = 0; i < n; i++) {
    out.push([p.next(order), delay]);
    delay = p.failed();
  }
  return out;
}

test("the first connection tries the preferred region, the next at once, then backs off", (t) => {
  const p = plan();
  t.deepEqual(attempts(p, p.begin(), [B, A, C], 5), [
    [B, 0],
    [A, 0],
    [C, 99],
    [B, 199],
    [A, 399],
  ]);
});

test("a dropped connection is retried once in its region at once, then the next region at once", (t) => {
  const p = plan();
  p.begin();
  p.next([A, B, C]);
  p.connected();
  const drop: Loss = { kind: "dropped" };
  t.deepEqual(attempts(p, p.lost(A, drop), [A, B, C], 6), [
    [A, 0],
    [B, 0],
    [C, 99],
    [A, 199],
    [B, 399],
    [C, 799],
  ]);
});

test("a client connected to a region that is not the preferred one returns to the preferred one only when it loses the connection", (t) => {
  const p = plan();
  p.begin();
  t.is(p.next([A, B]), A);
  t.is(p.failed(), 0);
  t.is(p.next([A, B]), B);
  p.connected();
  // Connected to B while A is preferred: the plan is not consulted until B is lost. Then B is
  // retried once (a blip should not cost a move), and the pass goes on from the preferred A.
  t.deepEqual(attempts(p, p.lost(B, { kind: "dropped" }), [A, B], 4), [
    [B, 0],
    [A, 0],
    [A, 99],
    [B, 199],
  ]);
});

test("a drain reconnects to the same region after the server's hint plus jitter, then moves on at once", (t) => {
  const p = plan(2);
  p.begin();
  p.next([A, B]);
  p.connected();
  t.deepEqual(attempts(p, p.lost(A, { kind: "drain", afterMs: 1_500 }), [A, B], 3), [
    [A, 1_749],
    [B, 0],
    [A, 99],
  ]);
});

test("go_away with leave_region moves to the next region at once, skipping the region for a pass", (t) => {
  const p = plan();
  p.begin();
  p.next([A, B, C]);
  p.connected();
  t.deepEqual(attempts(p, p.lost(A, { kind: "leave" }), [A, B, C], 5), [
    [B, 0],
    [C, 99],
    // Every other region failed too: the one that asked to be left is tried again rather
    // than never (its trouble may be over).
    [A, 199],
    [B, 399],
    [C, 799],
  ]);
});

test("go_away with leave_region from the only region waits for the backoff and comes back", (t) => {
  const p = plan(1);
  p.begin();
  p.next([A]);
  p.connected();
  t.deepEqual(attempts(p, p.lost(A, { kind: "leave" }), [A], 2), [
    [A, 99],
    [A, 199],
  ]);
});

test("a refused token is retried in the same region after the server's hint or the backoff", (t) => {
  const p = plan(2);
  p.begin();
  p.next([A, B]);
  p.connected();
  t.deepEqual(attempts(p, p.lost(A, { kind: "unauthenticated", afterMs: 0 }), [A, B], 2), [
    [A, 249],
    [B, 0],
  ]);
  p.connected();
  t.deepEqual(attempts(p, p.lost(B, { kind: "unauthenticated" }), [A, B], 1), [[B, 99]]);
});

test("one region (url mode) reconnects at once after a drop, then backs off without switching", (t) => {
  const p = plan(1);
  p.begin();
  p.next([A]);
  p.connected();
  t.deepEqual(attempts(p, p.lost(A, { kind: "dropped" }), [A], 3), [
    [A, 0],
    [A, 99],
    [A, 199],
  ]);
});

test("a new measurement between attempts reorders the rest of the pass", (t) => {
  const p = plan();
  p.begin();
  p.next([A, B, C]);
  p.connected();
  t.is(p.lost(A, { kind: "dropped" }), 0);
  t.false(p.ranked, "the retry of the lost region does not wait for a probe");
  t.is(p.next([A, B, C]), A);
  p.failed();
  t.true(p.ranked);
  // The probe that ran meanwhile found C nearer than B.
  t.is(p.next([C, A, B]), C);
  p.failed();
  t.is(p.next([C, A, B]), B);
});

test("a connection resets the backoff", (t) => {
  const p = plan(2);
  p.begin();
  t.deepEqual(
    attempts(p, 0, [A, B], 4).map(([, d]) => d),
    [0, 0, 99, 199],
  );
  p.connected();
  t.deepEqual(
    attempts(p, p.lost(B, { kind: "dropped" }), [A, B], 4).map(([, d]) => d),
    [0, 0, 99, 199],
  );
});
