import test from "ava";
import { Liveness, type LivenessOptions } from "../../client/liveness.ts";

/** watch starts a Liveness whose pings and verdict the test observes. */
function watch(opts: Partial<LivenessOptions> = {}) {
  const pings: bigint[] = [];
  let declareDead!: () => void;
  const dead = new Promise<void>((resolve) => {
    declareDead = resolve;
  });
  let pinged!: () => void;
  const firstPing = new Promise<void>((resolve) => {
    pinged = resolve;
  });
  const liveness = new Liveness({
    heartbeatMs: 60_000,
    pongTimeoutMs: 50,
    ackTimeoutMs: 50,
    ping: (nonce) => {
      pings.push(nonce);
      pinged();
    },
    dead: () => declareDead(),
    ...opts,
  });
  return { liveness, pings, dead, firstPing };
}

test("a ping without its pong condemns the connection", async (t) => {
  const { liveness, pings, dead } = watch();
  t.teardown(() => liveness.stop());
  liveness.ping();
  t.is(pings.length, 1);
  await dead;
  t.pass();
});

test("the regular heartbeat pings, and a missed pong after it condemns the connection", async (t) => {
  const { liveness, dead, firstPing } = watch({ heartbeatMs: 20 });
  t.teardown(() => liveness.stop());
  await firstPing;
  await dead;
  t.pass();
});

test("a request waiting in silence makes the client ping at once; the pong keeps the connection", async (t) => {
  let answered!: () => void;
  const pongSent = new Promise<void>((resolve) => {
    answered = resolve;
  });
  let verdict = false;
  const { liveness, pings, dead } = watch({
    pongTimeoutMs: 60_000,
    ping: (nonce) => {
      pings.push(nonce);
      // The server is there: its pong arrives at once.
      liveness.received();
      liveness.pong(nonce);
      answered();
    },
  });
  t.teardown(() => liveness.stop());
  void dead.then(() => {
    verdict = true;
  });
  liveness.requestSent(7);
  await pongSent;
  liveness.answered(7);
  t.is(pings.length, 1, "one ping for the late request");
  t.false(verdict);
});

test("a late request in a black hole is noticed: ping, no pong, dead", async (t) => {
  const { liveness, pings, dead } = watch();
  t.teardown(() => liveness.stop());
  liveness.requestSent(1);
  await dead;
  t.is(pings.length, 1, "the late ack sent exactly one ping before the verdict");
});

test("frames that keep arriving count as an answer to a pong stuck behind them", async (t) => {
  let stop = false;
  const { liveness, dead } = watch({ pongTimeoutMs: 500 });
  t.teardown(() => {
    stop = true;
    liveness.stop();
  });
  let verdict = false;
  void dead.then(() => {
    verdict = true;
  });
  liveness.ping();
  // A long replay on a slow link: frames every 20 ms for twice the pong timeout, the pong not
  // among them.
  for (let i = 0; i < 50 && !stop; i++) {
    liveness.received();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.false(verdict, "still alive while frames arrive");
  await dead;
  t.pass("dead once they stop and the pong still has not come");
});

test("a stopped watch sends nothing", (t) => {
  const { liveness, pings } = watch({ heartbeatMs: 10 });
  liveness.stop();
  liveness.ping();
  liveness.requestSent(1);
  t.deepEqual(pings, []);
});
