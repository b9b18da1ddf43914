import test from "ava";
import { check, percentile, type Violation } from "../../chaos/checker.ts";
import {
  type ClientId,
  type FaultKind,
  type HistoryEvent,
  type MessageRef,
  type StoredHistories,
  sendKey,
} from "../../chaos/history.ts";
import { formatReport } from "../../chaos/report.ts";

const US = "us-east-1";
const EU = "eu-west-1";
const DM = "dm-ab";
const GROUP = "g-abc";

/** An event before the recorder stamps its time (Omit over each member of the union). */
type Unstamped<E> = E extends HistoryEvent ? Omit<E, "t"> : never;
type Event = Unstamped<HistoryEvent>;

/**
 * Recorder builds a synthetic run: events at an explicit clock, and stored copies with dense seqs
 * per conversation and origin region, whose hlc follows the clock.
 */
class Recorder {
  readonly events: HistoryEvent[] = [];
  readonly copies: MessageRef[] = [];
  now = 0;
  #seqs = new Map<string, number>();
  #hlcTick = 0;

  at(t: number): this {
    this.now = t;
    return this;
  }

  record(e: Event): this {
    this.events.push({ t: this.now, ...e } as HistoryEvent);
    return this;
  }

  client(client: ClientId, conversations: string[], region: string): this {
    const user = client.split("/")[0] as string;
    this.record({ ev: "client", client, user, conversations });
    return this.record({ ev: "region", client, to: region, reason: "start" });
  }

  move(client: ClientId, from: string, to: string): this {
    return this.record({ ev: "region", client, from, to, reason: "region-lost" });
  }

  fault(fault: FaultKind, phase: "start" | "end", region?: string): this {
    return this.record(
      region === undefined ? { ev: "fault", fault, phase } : { ev: "fault", fault, region, phase },
    );
  }

  /** copy stores a message of `client`'s send in `origin`, with the next seq there. */
  copy(client: ClientId, conversationId: string, clientMsgId: string, origin: string): MessageRef {
    const id = `${conversationId}/${origin}`;
    const seq = (this.#seqs.get(id) ?? 0) + 1;
    this.#seqs.set(id, seq);
    const m: MessageRef = {
      conversationId,
      senderId: client.split("/")[0] as string,
      clientMsgId,
      originRegion: origin,
      seq: String(seq),
      hlc: String(BigInt(this.now) * 65536n + BigInt(this.#hlcTick++)),
    };
    this.copies.push(m);
    return m;
  }

  ask(client: ClientId, conversationId: string, clientMsgId: string, region: string): this {
    this.record({ ev: "send", client, conversationId, clientMsgId });
    return this.record({ ev: "attempt", client, conversationId, clientMsgId, region });
  }

  ack(client: ClientId, region: string, message: MessageRef): this {
    return this.record({ ev: "ack", client, region, message });
  }

  /** sent is a send acked on its first attempt: asked, attempted, stored and acked in `region`. */
  sent(client: ClientId, conversationId: string, clientMsgId: string, region: string): MessageRef {
    this.ask(client, conversationId, clientMsgId, region);
    const m = this.copy(client, conversationId, clientMsgId, region);
    this.ack(client, region, m);
    return m;
  }

  show(clients: ClientId[], message: MessageRef, replay = false): this {
    for (const client of clients) this.record({ ev: "shown", client, replay, message });
    return this;
  }

  /**
   * stored gives every region every copy in its log, and a history in display order with each
   * send at its earliest copy, as the store collapses copies.
   */
  stored(regions = [US, EU]): StoredHistories {
    const out: StoredHistories = {};
    for (const region of regions) {
      const conversations: StoredHistories[string] = {};
      for (const m of this.copies) {
        const c = conversations[m.conversationId] ?? { history: [], log: [] };
        c.log.push(m);
        conversations[m.conversationId] = c;
      }
      for (const c of Object.values(conversations)) c.history = collapse(c.log);
      out[region] = conversations;
    }
    return out;
  }
}

function compareDisplay(a: MessageRef, b: MessageRef): number {
  const byBig = (x: bigint, y: bigint) => (x < y ? -1 : x > y ? 1 : 0);
  return (
    byBig(BigInt(a.hlc), BigInt(b.hlc)) ||
    (a.originRegion < b.originRegion ? -1 : a.originRegion > b.originRegion ? 1 : 0) ||
    byBig(BigInt(a.seq), BigInt(b.seq))
  );
}

function collapse(log: MessageRef[]): MessageRef[] {
  const seen = new Set<string>();
  return [...log].sort(compareDisplay).filter((m) => {
    const key = sendKey(m.conversationId, m.senderId, m.clientMsgId);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

const ALICE_PHONE = "alice/phone";
const ALICE_LAPTOP = "alice/laptop";
const BOB_PHONE = "bob/phone";
const BOB_TABLET = "bob/tablet";
const CAROL_PHONE = "carol/phone";
const CAROL_TABLET = "carol/tablet";
const DM_DEVICES = [ALICE_PHONE, ALICE_LAPTOP, BOB_PHONE, BOB_TABLET];
const GROUP_DEVICES = [...DM_DEVICES, CAROL_PHONE, CAROL_TABLET];

/**
 * cleanRun: a DM (alice, bob) and a group (alice, bob, carol), six devices in two regions, and
 * us-east-1 killed from 3000 to 5000. Before the kill, alice/phone's a2 was stored in us-east-1
 * but never acked; she moved to eu-west-1 and her retry was stored and acked there, so a2 has two
 * copies and every device shows it once, through the eu-west-1 copy. Of the four clients in
 * us-east-1 at the kill, three get an ack in eu-west-1 (after 400, 700 and 1000 ms) and
 * bob/tablet, which stays, never does. Bob/tablet's b3 then lands in us-east-1 as seq 3, after
 * the a2 copy at seq 2 that devices only showed through eu-west-1.
 */
function cleanRun() {
  const r = new Recorder();
  r.at(1000)
    .record({ ev: "conversation", conversationId: DM, members: ["alice", "bob"] })
    .record({ ev: "conversation", conversationId: GROUP, members: ["alice", "bob", "carol"] })
    .client(ALICE_PHONE, [DM, GROUP], US)
    .client(ALICE_LAPTOP, [DM, GROUP], EU)
    .client(BOB_PHONE, [DM, GROUP], US)
    .client(BOB_TABLET, [DM, GROUP], US)
    .client(CAROL_PHONE, [GROUP], EU)
    .client(CAROL_TABLET, [GROUP], US);

  const a1 = r.at(2000).sent(ALICE_PHONE, DM, "a1", US);
  r.show([ALICE_PHONE], a1).at(2010).show([BOB_PHONE, BOB_TABLET], a1);
  const c1 = r.at(2100).sent(CAROL_PHONE, GROUP, "c1", EU);
  r.at(2110).show(GROUP_DEVICES, c1);
  const b1 = r.at(2200).sent(BOB_PHONE, GROUP, "b1", US);
  r.show([BOB_PHONE], b1).at(2210).show([BOB_TABLET, ALICE_PHONE, ALICE_LAPTOP], b1);
  r.at(2500)
    .record({ ev: "send", client: CAROL_PHONE, conversationId: GROUP, clientMsgId: "too-big" })
    .record({
      ev: "send-failed",
      client: CAROL_PHONE,
      conversationId: GROUP,
      clientMsgId: "too-big",
      error: "message too large",
    });
  r.at(2950).ask(ALICE_PHONE, DM, "a2", US);
  const a2InUs = r.copy(ALICE_PHONE, DM, "a2", US);
  r.at(2990).ask(CAROL_PHONE, GROUP, "lost", US);

  r.at(3000).fault("region-kill", "start", US);
  r.at(3300).move(ALICE_PHONE, US, EU);
  r.at(3350).record({
    ev: "attempt",
    client: ALICE_PHONE,
    conversationId: DM,
    clientMsgId: "a2",
    region: EU,
  });
  const a2 = r.copy(ALICE_PHONE, DM, "a2", EU);
  r.at(3400).ack(ALICE_PHONE, EU, a2).show([ALICE_PHONE], a2);
  r.at(3450).show([ALICE_LAPTOP], a2);
  r.at(3500).show([CAROL_PHONE], b1);
  r.at(3600).move(CAROL_TABLET, US, EU);
  const ct1 = r.at(3700).sent(CAROL_TABLET, GROUP, "ct1", EU);
  r.show([CAROL_TABLET], b1).show([CAROL_TABLET], ct1);
  r.at(3710).show([CAROL_PHONE, ALICE_PHONE, ALICE_LAPTOP], ct1);
  r.at(3800).move(BOB_PHONE, US, EU);
  r.at(3900).show([BOB_PHONE], a2).show([BOB_PHONE], ct1);
  const b2 = r.at(4000).sent(BOB_PHONE, GROUP, "b2", EU);
  r.show([BOB_PHONE], b2).at(4010).show([ALICE_PHONE, ALICE_LAPTOP, CAROL_PHONE, CAROL_TABLET], b2);
  r.at(5000).fault("region-kill", "end", US);

  r.at(5050)
    .show([BOB_TABLET], a2, true)
    .show([BOB_TABLET], ct1, true)
    .show([BOB_TABLET], b2, true);
  const b3 = r.at(5100).sent(BOB_TABLET, DM, "b3", US);
  r.show([BOB_TABLET], b3).at(5110).show([BOB_PHONE, ALICE_PHONE], b3);
  r.at(5200).show([ALICE_LAPTOP], a1).at(5210).show([ALICE_LAPTOP], b3);
  r.at(6000).record({ ev: "healed" });
  return { r, m: { a1, a2, a2InUs, b1, b2, b3, c1, ct1 } };
}

/** without drops the shown events of `client` for `message`. */
function without(events: HistoryEvent[], client: ClientId, message: MessageRef): HistoryEvent[] {
  return events.filter((e) => !(e.ev === "shown" && e.client === client && e.message === message));
}

const brief = (vs: Violation[]) =>
  vs.map((v) => ({ guarantee: v.guarantee, kind: v.kind, client: v.client, region: v.region }));

test("a clean run passes with its counts, continuity and failover measured", (t) => {
  const { r } = cleanRun();
  const report = check(r.events, r.stored());
  t.deepEqual(report.violations, []);
  t.true(report.ok);
  t.deepEqual(report.byGuarantee, { G1: 0, G2: 0, G3: 0, G5: 0 });
  t.deepEqual(report.counts, {
    clients: 6,
    users: 3,
    conversations: 2,
    sends: 9,
    acked: 7,
    failed: 1,
    unacked: 1,
    attempts: 9,
    retriedInAnotherRegion: 1,
    shown: 36,
    replayed: 3,
    regionSwitches: 3,
    storedMessages: 8,
    multiCopySends: 1,
    faults: 1,
  });
  t.is(report.startedAt, 1000);
  t.is(report.healedAt, 6000);
  t.deepEqual(report.faults, [
    {
      fault: "region-kill",
      region: US,
      startedAt: 3000,
      endedAt: 5000,
      // b1 reached carol/phone and carol/tablet during the kill; a1 reached alice/laptop after.
      deliveredDuringOutage: 2,
      waitedForHeal: 1,
      neverShown: 0,
      failover: {
        clients: 4,
        failedOver: 3,
        notFailedOver: [BOB_TABLET],
        p50Ms: 700,
        p99Ms: 1000,
        maxMs: 1000,
        // alice/phone, carol/tablet and bob/phone moved 300, 600 and 800 ms after the kill.
        moved: { clients: 3, p50Ms: 600, p99Ms: 800, maxMs: 800 },
        // carol/tablet's ct1 and bob/phone's b2, asked during the kill, acked at once.
        sendWait: { sends: 2, unacked: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 },
      },
    },
  ]);
});

test("a fault with no end lasts until the heal, for continuity and failover alike", (t) => {
  const r = new Recorder();
  r.at(1000)
    .record({ ev: "conversation", conversationId: DM, members: ["alice", "bob"] })
    .client(ALICE_PHONE, [DM], US)
    .client(BOB_PHONE, [DM], US)
    .client(BOB_TABLET, [DM], EU);
  const m1 = r.at(1500).sent(ALICE_PHONE, DM, "m1", US);
  r.show([ALICE_PHONE], m1);
  r.at(2000).fault("region-freeze", "start", US);
  r.at(2100).move(ALICE_PHONE, US, EU);
  const m2 = r.at(2250).sent(ALICE_PHONE, DM, "m2", EU);
  r.show([ALICE_PHONE, BOB_TABLET], m2);
  r.at(4000).record({ ev: "healed" });
  // After the heal: bob/phone's first ack elsewhere and bob/tablet's m1 are too late to count.
  r.at(4100).move(BOB_PHONE, US, EU);
  const m3 = r.at(4200).sent(BOB_PHONE, DM, "m3", EU);
  r.show([BOB_PHONE], m1).show([BOB_PHONE], m2).show([BOB_PHONE, ALICE_PHONE, BOB_TABLET], m3);
  r.show([BOB_TABLET], m1);
  const report = check(r.events, r.stored());
  t.deepEqual(report.faults, [
    {
      fault: "region-freeze",
      region: US,
      startedAt: 2000,
      deliveredDuringOutage: 0,
      // bob/tablet got m1 after the heal; alice/phone had it before, bob/phone never left us-east-1.
      waitedForHeal: 1,
      neverShown: 0,
      failover: {
        clients: 2,
        failedOver: 1,
        notFailedOver: [BOB_PHONE],
        p50Ms: 250,
        p99Ms: 250,
        maxMs: 250,
        // bob/phone moved only after the heal.
        moved: { clients: 1, p50Ms: 100, p99Ms: 100, maxMs: 100 },
        sendWait: { sends: 1, unacked: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 },
      },
    },
  ]);
  // bob/tablet shows m2 before m1 and m3 after: other origins, so no G2 finding.
  t.deepEqual(report.violations, []);
});

test("a seq whose send was shown through another copy is no gap; never shown, it is", (t) => {
  const { r, m } = cleanRun();
  // bob/tablet shows us-east-1#3 having shown us-east-1#2's send (a2) only as eu-west-1#1.
  t.true(check(r.events, r.stored()).ok);

  const report = check(without(r.events, BOB_TABLET, m.a2), r.stored());
  t.deepEqual(brief(report.violations), [
    { guarantee: "G1", kind: "not-shown", client: BOB_TABLET, region: undefined },
    { guarantee: "G2", kind: "gap", client: BOB_TABLET, region: undefined },
  ]);
  const gap = report.violations[1];
  t.is(gap?.message, m.a2InUs);
  t.is(gap?.send, sendKey(DM, "alice", "a2"));
});

test("an acked send a device never showed is a G1 not-shown", (t) => {
  const { r, m } = cleanRun();
  const report = check(without(r.events, ALICE_LAPTOP, m.b3), r.stored());
  t.false(report.ok);
  t.deepEqual(brief(report.violations), [
    { guarantee: "G1", kind: "not-shown", client: ALICE_LAPTOP, region: undefined },
  ]);
  t.is(report.violations[0]?.send, sendKey(DM, "bob", "b3"));
  t.deepEqual(report.byGuarantee, { G1: 1, G2: 0, G3: 0, G5: 0 });
});

test("an acked send missing from a region's history is a G1 not-in-history", (t) => {
  const { r, m } = cleanRun();
  const inBoth = r.stored();
  for (const region of [US, EU]) {
    const dm = inBoth[region]?.[DM];
    if (dm) dm.history = dm.history.filter((x) => x !== m.b3);
  }
  t.deepEqual(brief(check(r.events, inBoth).violations), [
    { guarantee: "G1", kind: "not-in-history", client: undefined, region: US },
    { guarantee: "G1", kind: "not-in-history", client: undefined, region: EU },
  ]);

  // Missing from one region only, the histories also differ: that is G5's finding as well.
  const inOne = r.stored();
  const dm = inOne[EU]?.[DM];
  if (dm) dm.history = dm.history.filter((x) => x !== m.b3);
  const report = check(r.events, inOne);
  t.deepEqual(brief(report.violations), [
    { guarantee: "G1", kind: "not-in-history", client: undefined, region: EU },
    { guarantee: "G5", kind: "histories-differ", client: undefined, region: EU },
  ]);
  t.is(report.violations[0]?.send, sendKey(DM, "bob", "b3"));
});

test("a device showing seq 3 before seq 2 is one G2 reorder, not also a gap", (t) => {
  const { r, m } = cleanRun();
  const events = r.events.map((e): HistoryEvent => {
    if (e.ev !== "shown" || e.client !== BOB_TABLET) return e;
    if (e.message === m.ct1) return { ...e, message: m.b2 };
    if (e.message === m.b2) return { ...e, message: m.ct1 };
    return e;
  });
  const report = check(events, r.stored());
  t.deepEqual(brief(report.violations), [
    { guarantee: "G2", kind: "reorder", client: BOB_TABLET, region: undefined },
  ]);
  t.is(report.violations[0]?.message, m.ct1);
  t.regex(report.violations[0]?.detail ?? "", /showed eu-west-1#2 after eu-west-1#3/);
});

test("a device showing seq 3 while seq 2 is stored and never shown is a G2 gap", (t) => {
  const r = new Recorder();
  r.at(1000)
    .record({ ev: "conversation", conversationId: DM, members: ["alice", "bob"] })
    .client(ALICE_PHONE, [DM], US)
    .client(BOB_PHONE, [DM], US);
  const m1 = r.sent(ALICE_PHONE, DM, "m1", US);
  r.show([ALICE_PHONE, BOB_PHONE], m1);
  // Stored but never acked: G1 asks nothing of it, so only the order on bob/phone is at fault.
  r.at(1100).ask(ALICE_PHONE, DM, "m2", US);
  const m2 = r.copy(ALICE_PHONE, DM, "m2", US);
  r.show([ALICE_PHONE], m2);
  const m3 = r.at(1200).sent(ALICE_PHONE, DM, "m3", US);
  r.show([ALICE_PHONE, BOB_PHONE], m3);
  const report = check(r.events, r.stored());
  t.deepEqual(brief(report.violations), [
    { guarantee: "G2", kind: "gap", client: BOB_PHONE, region: undefined },
  ]);
  t.is(report.violations[0]?.message, m2);
});

test("gaps are listed up to a cap per device and origin, and all counted", (t) => {
  const r = new Recorder();
  r.at(1000)
    .record({ ev: "conversation", conversationId: DM, members: ["alice", "bob"] })
    .client(ALICE_PHONE, [DM], US)
    .client(BOB_PHONE, [DM], US);
  for (let i = 1; i <= 8; i++) r.copy(ALICE_PHONE, DM, `lost-${i}`, US);
  const last = r.sent(ALICE_PHONE, DM, "last", US);
  r.show([ALICE_PHONE, BOB_PHONE], last);
  const report = check(r.events, r.stored());
  t.is(report.byGuarantee.G2, 16);
  t.is(report.byKind.gap, 16);
  t.is(report.violations.length, 10);
  t.regex(report.violations[4]?.detail ?? "", /and 3 more gaps/);
});

test("a send shown twice through two copies is a G3 shown-twice", (t) => {
  const { r, m } = cleanRun();
  const events = [...r.events];
  const at = events.findIndex(
    (e) => e.ev === "shown" && e.client === BOB_TABLET && e.message === m.a2,
  );
  events.splice(at + 1, 0, {
    t: 5060,
    ev: "shown",
    client: BOB_TABLET,
    replay: true,
    message: m.a2InUs,
  });
  const report = check(events, r.stored());
  t.deepEqual(brief(report.violations), [
    { guarantee: "G3", kind: "shown-twice", client: BOB_TABLET, region: undefined },
  ]);
  t.is(report.violations[0]?.message, m.a2InUs);
});

test("two regions whose histories differ in order are a G5 histories-differ", (t) => {
  const { r } = cleanRun();
  const stored = r.stored();
  const group = stored[EU]?.[GROUP];
  if (group)
    group.history = [group.history[1], group.history[0], ...group.history.slice(2)] as MessageRef[];
  const report = check(r.events, stored);
  t.deepEqual(brief(report.violations), [
    { guarantee: "G5", kind: "histories-differ", client: undefined, region: EU },
  ]);
  t.regex(
    report.violations[0]?.detail ?? "",
    /index 0: us-east-1 has eu-west-1#1 \(g-abc\/carol\/c1\), eu-west-1 has us-east-1#1 \(g-abc\/bob\/b1\)/,
  );
});

test("percentiles are nearest-rank", (t) => {
  t.is(percentile([], 50), undefined);
  t.is(percentile([400, 700, 1000], 50), 700);
  t.is(percentile([400, 700, 1000], 99), 1000);
  t.is(percentile([10, 20, 30, 40], 50), 20);
  t.is(percentile([5], 99), 5);
});

test("formatReport prints the verdict, counts, guarantees, faults and violations", (t) => {
  const { r } = cleanRun();
  const clean = formatReport(check(r.events, r.stored()));
  t.true(clean.includes("# Chaos check: passed"));
  t.true(clean.includes("| clients (devices) | 6 |"));
  t.true(clean.includes("| sends with several stored copies | 1 |"));
  for (const g of ["G1", "G2", "G3", "G5"])
    t.regex(clean, new RegExp(`\\| ${g} \\| .* \\| ok \\|`));
  t.true(
    clean.includes(
      "3 of 4 clients failed over across 1 fault; worst p99 1000 ms; max 1000 ms; did not: bob/tablet",
    ),
  );
  t.true(
    clean.includes(
      "| region-kill | us-east-1 | +2.0 s | 2.0 s | 2 | 1 | 0 | 600 / 800 / 800 ms (3) | 700 / 1000 / 1000 ms | 1 of 4 (bob/tablet) | 0 / 0 / 0 ms (2) |",
    ),
  );
  t.true(clean.includes("None."));

  const { r: broken, m } = cleanRun();
  const events = without(without(broken.events, ALICE_LAPTOP, m.b3), BOB_PHONE, m.b3);
  const failed = formatReport(check(events, broken.stored()));
  t.true(failed.includes("# Chaos check: FAILED"));
  t.true(failed.includes("| G1 |"));
  t.true(failed.includes("**2 violations** (not-shown 2)"));
  t.true(
    failed.includes(
      "- **G1 not-shown**: client alice/laptop, conversation dm-ab, send dm-ab/bob/b3, message us-east-1#3:",
    ),
  );
});

test("formatReport lists at most maxViolations and says how many more", (t) => {
  const { r, m } = cleanRun();
  let events = r.events;
  for (const d of [ALICE_PHONE, ALICE_LAPTOP, BOB_PHONE]) events = without(events, d, m.b3);
  const report = check(events, r.stored());
  t.is(report.violations.length, 3);
  const text = formatReport(report, { maxViolations: 1 });
  t.is(text.split("\n").filter((l) => l.startsWith("- **G1 not-shown**")).length, 1);
  t.true(text.includes("… and 2 more"));
  t.false(formatReport(report).includes("… and"));
});
