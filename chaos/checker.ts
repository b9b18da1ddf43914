/**
 * The chaos checker: a pure function over what the clients recorded and what the regions stored
 * once everything healed, deciding whether the product kept its guarantees (G1 no loss, G2 no gap
 * or reorder, G3 nothing shown twice, G5 convergence) and measuring what is reported but not
 * judged (continuity during region outages, and G4 failover time).
 */
import {
  type ClientId,
  type FaultKind,
  type HistoryEvent,
  type MessageRef,
  type SendKey,
  type StoredHistories,
  sendKey,
} from "./history.ts";

/** Guarantee names a property the checker judges; G4 (failover time) is measured, not judged. */
export type Guarantee = "G1" | "G2" | "G3" | "G5";

/** GUARANTEES lists the judged guarantees in report order. */
export const GUARANTEES: readonly Guarantee[] = ["G1", "G2", "G3", "G5"];

/** GAPS_LISTED_PER_SEQUENCE caps the gaps listed per device and origin sequence; all are counted. */
export const GAPS_LISTED_PER_SEQUENCE = 5;

/** Violation is one broken guarantee, with what it concerns and a sentence for a person. */
export interface Violation {
  guarantee: Guarantee;
  kind: string;
  client?: ClientId;
  region?: string;
  conversationId: string;
  send?: SendKey;
  message?: MessageRef;
  detail: string;
}

/** Failover is the G4 measure of one fault: how soon its region's clients got an ack elsewhere. */
export interface Failover {
  clients: number;
  failedOver: number;
  notFailedOver: ClientId[];
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  /**
   * moved: from the fault's start until each of those clients was connected to another region
   * (welcomed there), whether or not it had a send to make: the SDK's failover alone, without
   * the wait for the client's next send that G4's ack time includes.
   */
  moved?: { clients: number; p50Ms: number; p99Ms: number; maxMs: number };
  /**
   * sendWait: for the sends those clients asked for during the fault, from the app's request
   * to its ack (wherever it came from): what a user sending during the outage waits.
   */
  sendWait?: { sends: number; unacked: number; p50Ms: number; p99Ms: number; maxMs: number };
}

/** FaultReport is one injected fault, with continuity and failover for region outages. */
export interface FaultReport {
  fault: FaultKind;
  region?: string;
  startedAt: number;
  endedAt?: number;
  /**
   * Continuity (region-kill and region-freeze only), counted per (message, device): messages
   * originated in the faulted region and acked before the fault, for each member device that was
   * connected to another region at some point during the fault and had not shown the message
   * before it. Delivered during the outage, only after it, or never.
   */
  deliveredDuringOutage?: number;
  waitedForHeal?: number;
  neverShown?: number;
  /** G4 (region-kill and region-freeze only). */
  failover?: Failover;
}

/** CheckCounts sizes the run, so a passing check can be told apart from an empty one. */
export interface CheckCounts {
  clients: number;
  users: number;
  conversations: number;
  /** sends the apps asked for (distinct send keys) */
  sends: number;
  acked: number;
  /** sends that failed for good and were never acked */
  failed: number;
  /** sends neither acked nor failed */
  unacked: number;
  attempts: number;
  /** sends attempted in more than one region */
  retriedInAnotherRegion: number;
  shown: number;
  replayed: number;
  /** region events with a `from`: moves of a connection to another region */
  regionSwitches: number;
  /** distinct stored messages (conversation, origin region, seq) across every region's log */
  storedMessages: number;
  /** sends stored as more than one message */
  multiCopySends: number;
  faults: number;
}

/** CheckReport is the checker's verdict and measures. */
export interface CheckReport {
  /** no G1, G2, G3 or G5 violation */
  ok: boolean;
  /** time of the first recorded event */
  startedAt?: number;
  /** time of the `healed` event */
  healedAt?: number;
  counts: CheckCounts;
  /** every violation found, including those left out of `violations` */
  byGuarantee: Record<Guarantee, number>;
  /** every violation found per kind, including those left out of `violations` */
  byKind: Record<string, number>;
  violations: Violation[];
  faults: FaultReport[];
}

/** check decides whether a run kept its guarantees, from its recorded events and final stores. */
export function check(events: HistoryEvent[], stored: StoredHistories): CheckReport {
  const ix = indexEvents(events);
  const logs = indexLogs(stored);
  const order = checkOrder(ix, logs);
  const violations = [
    ...checkShown(ix),
    ...checkInHistory(ix, stored),
    ...order.violations,
    ...checkShownOnce(ix),
    ...checkConvergence(stored),
  ];
  const byGuarantee: Record<Guarantee, number> = { G1: 0, G2: 0, G3: 0, G5: 0 };
  const byKind: Record<string, number> = {};
  for (const v of violations) {
    byGuarantee[v.guarantee]++;
    byKind[v.kind] = (byKind[v.kind] ?? 0) + 1;
  }
  if (order.unlistedGaps > 0) {
    byGuarantee.G2 += order.unlistedGaps;
    byKind.gap = (byKind.gap ?? 0) + order.unlistedGaps;
  }
  const faults = pairFaults(ix.faults).map((f) => reportFault(f, ix));
  return {
    ok: GUARANTEES.every((g) => byGuarantee[g] === 0),
    startedAt: earliest(events),
    healedAt: ix.healedAt,
    counts: countRun(ix, logs, faults.length),
    byGuarantee,
    byKind,
    violations,
    faults,
  };
}

function earliest(events: HistoryEvent[]): number | undefined {
  let t: number | undefined;
  for (const e of events) if (t === undefined || e.t < t) t = e.t;
  return t;
}

/** percentile is the nearest-rank percentile of ascending `sorted` (undefined when empty). */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

/** keyOf is the send a stored copy belongs to. */
export function keyOf(m: MessageRef): SendKey {
  return sendKey(m.conversationId, m.senderId, m.clientMsgId);
}

/** describe names a stored copy for a person: `<origin>#<seq> (<send key>)`. */
export function describe(m: MessageRef): string {
  return `${m.originRegion}#${m.seq} (${keyOf(m)})`;
}

type Ev<K extends HistoryEvent["ev"]> = Extract<HistoryEvent, { ev: K }>;

interface Index {
  userOf: Map<ClientId, string>;
  devicesOf: Map<string, ClientId[]>;
  membersOf: Map<string, string[]>;
  /** conversations a client said it belongs to, for conversations with no `conversation` event */
  clientConversations: Map<ClientId, string[]>;
  sends: Map<SendKey, Ev<"send">>;
  attemptRegions: Map<SendKey, Set<string>>;
  attempts: number;
  /** acked sends, with the first ack of each */
  acked: Map<SendKey, Ev<"ack">>;
  acksByClient: Map<ClientId, Ev<"ack">[]>;
  acks: Ev<"ack">[];
  failed: Set<SendKey>;
  shownByClient: Map<ClientId, Ev<"shown">[]>;
  /** when each device first showed each send, through any copy */
  firstShown: Map<ClientId, Map<SendKey, number>>;
  regionsByClient: Map<ClientId, Ev<"region">[]>;
  faults: Ev<"fault">[];
  healedAt?: number;
}

function indexEvents(events: HistoryEvent[]): Index {
  const ix: Index = {
    userOf: new Map(),
    devicesOf: new Map(),
    membersOf: new Map(),
    clientConversations: new Map(),
    sends: new Map(),
    attemptRegions: new Map(),
    attempts: 0,
    acked: new Map(),
    acksByClient: new Map(),
    acks: [],
    failed: new Set(),
    shownByClient: new Map(),
    firstShown: new Map(),
    regionsByClient: new Map(),
    faults: [],
  };
  for (const e of events) {
    switch (e.ev) {
      case "client":
        if (!ix.userOf.has(e.client)) push(ix.devicesOf, e.user, e.client);
        ix.userOf.set(e.client, e.user);
        ix.clientConversations.set(e.client, e.conversations);
        break;
      case "conversation":
        ix.membersOf.set(e.conversationId, e.members);
        break;
      case "send":
        ix.sends.set(sendKey(e.conversationId, userOf(ix, e.client), e.clientMsgId), e);
        break;
      case "attempt": {
        const key = sendKey(e.conversationId, userOf(ix, e.client), e.clientMsgId);
        const regions = ix.attemptRegions.get(key) ?? new Set();
        ix.attemptRegions.set(key, regions.add(e.region));
        ix.attempts++;
        break;
      }
      case "ack": {
        const key = keyOf(e.message);
        if (!ix.acked.has(key)) ix.acked.set(key, e);
        push(ix.acksByClient, e.client, e);
        ix.acks.push(e);
        break;
      }
      case "send-failed":
        ix.failed.add(sendKey(e.conversationId, userOf(ix, e.client), e.clientMsgId));
        break;
      case "shown": {
        push(ix.shownByClient, e.client, e);
        const first = ix.firstShown.get(e.client) ?? new Map<SendKey, number>();
        const key = keyOf(e.message);
        if (!first.has(key)) first.set(key, e.t);
        ix.firstShown.set(e.client, first);
        break;
      }
      case "region":
        push(ix.regionsByClient, e.client, e);
        break;
      case "fault":
        ix.faults.push(e);
        break;
      case "healed":
        ix.healedAt ??= e.t;
        break;
    }
  }
  return ix;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** A client id is `<user>/<device>`; the `client` event is authoritative when recorded first. */
function userOf(ix: Index, client: ClientId): string {
  return ix.userOf.get(client) ?? client.slice(0, Math.max(0, client.lastIndexOf("/")));
}

/**
 * Members come from the `conversation` event; a conversation the run never announced falls back
 * to the devices that said they belong to it, so it is still checked rather than skipped.
 */
function memberDevices(ix: Index, conversationId: string): ClientId[] {
  const members = ix.membersOf.get(conversationId);
  if (members) return members.flatMap((u) => ix.devicesOf.get(u) ?? []);
  return [...ix.clientConversations]
    .filter(([, convs]) => convs.includes(conversationId))
    .map(([client]) => client);
}

interface LogEntry {
  seq: bigint;
  key: SendKey;
  message: MessageRef;
}

/** Every stored copy across every region's log, per conversation and origin, ascending by seq. */
type Logs = Map<string, Map<string, LogEntry[]>>;

function indexLogs(stored: StoredHistories): Logs {
  const byId = new Map<string, Map<string, Map<bigint, LogEntry>>>();
  for (const conversations of Object.values(stored)) {
    for (const [conversationId, { log }] of Object.entries(conversations)) {
      const origins = byId.get(conversationId) ?? new Map<string, Map<bigint, LogEntry>>();
      byId.set(conversationId, origins);
      for (const m of log) {
        const seqs = origins.get(m.originRegion) ?? new Map<bigint, LogEntry>();
        origins.set(m.originRegion, seqs);
        const seq = BigInt(m.seq);
        if (!seqs.has(seq)) seqs.set(seq, { seq, key: keyOf(m), message: m });
      }
    }
  }
  const logs: Logs = new Map();
  for (const [conversationId, origins] of byId) {
    const sorted = new Map<string, LogEntry[]>();
    for (const [origin, seqs] of origins) {
      sorted.set(
        origin,
        [...seqs.values()].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0)),
      );
    }
    logs.set(conversationId, sorted);
  }
  return logs;
}

/** G1 (a): every acked send is shown on every device of every member. */
function checkShown(ix: Index): Violation[] {
  const out: Violation[] = [];
  for (const [key, ack] of ix.acked) {
    const m = ack.message;
    for (const device of memberDevices(ix, m.conversationId)) {
      if (ix.firstShown.get(device)?.has(key)) continue;
      out.push({
        guarantee: "G1",
        kind: "not-shown",
        client: device,
        conversationId: m.conversationId,
        send: key,
        message: m,
        detail: `acked to ${ack.client} by ${ack.region} at ${ack.t} as ${m.originRegion}#${m.seq}, never shown on ${device} through any copy`,
      });
    }
  }
  return out;
}

/** G1 (b): every acked send is in every region's history of its conversation. */
function checkInHistory(ix: Index, stored: StoredHistories): Violation[] {
  const out: Violation[] = [];
  const keys = new Map<string, Set<SendKey>>();
  const keysIn = (region: string, conversationId: string) => {
    const id = `${region}\u0000${conversationId}`;
    let set = keys.get(id);
    if (!set) {
      set = new Set((stored[region]?.[conversationId]?.history ?? []).map(keyOf));
      keys.set(id, set);
    }
    return set;
  };
  for (const [key, ack] of ix.acked) {
    const m = ack.message;
    for (const region of Object.keys(stored)) {
      if (keysIn(region, m.conversationId).has(key)) continue;
      out.push({
        guarantee: "G1",
        kind: "not-in-history",
        region,
        conversationId: m.conversationId,
        send: key,
        message: m,
        detail: `acked by ${ack.region} at ${ack.t} as ${m.originRegion}#${m.seq}, in no copy in ${region}'s history`,
      });
    }
  }
  return out;
}

/** G2 over every device; gaps beyond the per-sequence cap are counted, not listed. */
function checkOrder(ix: Index, logs: Logs): { violations: Violation[]; unlistedGaps: number } {
  const violations: Violation[] = [];
  let unlistedGaps = 0;
  for (const [client, shown] of ix.shownByClient) {
    const device = checkDeviceOrder(client, shown, logs);
    violations.push(...device.violations);
    unlistedGaps += device.unlistedGaps;
  }
  return { violations, unlistedGaps };
}

/** A gap: a stored copy not yet shown (through any copy) when `at`, later in its origin, was. */
interface Gap {
  entry: LogEntry;
  at: MessageRef;
}

/**
 * G2 on one device, walking its showings in recorded order. A copy missing when a later seq of
 * its origin is shown is a gap, unless the device shows that very copy later: then it is reported
 * once, as a reorder, not also as a gap. A showing of a send already shown is G3's finding, so it
 * is not judged for order again (it still raises the highest seq seen, as the user saw it).
 */
function checkDeviceOrder(
  client: ClientId,
  shown: Ev<"shown">[],
  logs: Logs,
): { violations: Violation[]; unlistedGaps: number } {
  const violations: Violation[] = [];
  const seen = new Map<SendKey, Ev<"shown">>();
  const highest = new Map<string, MessageRef>();
  // Log entries before a stream's cursor were judged already, so each is judged once per device.
  const cursor = new Map<string, number>();
  const gaps = new Map<string, Map<bigint, Gap>>();
  for (const e of shown) {
    const m = e.message;
    const key = keyOf(m);
    const stream = `${m.conversationId}\u0000${m.originRegion}`;
    const seq = BigInt(m.seq);
    const top = highest.get(stream);
    if (!seen.has(key)) {
      const streamGaps = gaps.get(stream) ?? new Map<bigint, Gap>();
      gaps.set(stream, streamGaps);
      if (top && seq < BigInt(top.seq)) {
        violations.push(reorder(client, m, top, streamGaps.delete(seq)));
      }
      const entries = logs.get(m.conversationId)?.get(m.originRegion) ?? [];
      let i = cursor.get(stream) ?? 0;
      for (; i < entries.length && (entries[i] as LogEntry).seq < seq; i++) {
        const entry = entries[i] as LogEntry;
        if (!seen.has(entry.key)) streamGaps.set(entry.seq, { entry, at: m });
      }
      cursor.set(stream, i);
      seen.set(key, e);
    }
    if (!top || seq > BigInt(top.seq)) highest.set(stream, m);
  }
  let unlistedGaps = 0;
  for (const streamGaps of gaps.values()) {
    const listed = [...streamGaps.values()].slice(0, GAPS_LISTED_PER_SEQUENCE);
    const rest = streamGaps.size - listed.length;
    unlistedGaps += rest;
    listed.forEach((g, i) => {
      violations.push(gap(client, g, seen.get(g.entry.key), i === listed.length - 1 ? rest : 0));
    });
  }
  return { violations, unlistedGaps };
}

function reorder(client: ClientId, m: MessageRef, top: MessageRef, wasGap: boolean): Violation {
  const missing = wasGap ? ", which had been shown while this one was missing" : "";
  return {
    guarantee: "G2",
    kind: "reorder",
    client,
    conversationId: m.conversationId,
    send: keyOf(m),
    message: m,
    detail: `showed ${m.originRegion}#${m.seq} after ${top.originRegion}#${top.seq}${missing}`,
  };
}

function gap(
  client: ClientId,
  g: Gap,
  later: Ev<"shown"> | undefined,
  unlisted: number,
): Violation {
  const m = g.entry.message;
  const through = later
    ? `; its send was shown later, through ${later.message.originRegion}#${later.message.seq}`
    : "";
  const more =
    unlisted > 0
      ? ` (and ${unlisted} more gaps in this origin's sequence on this device, not listed)`
      : "";
  return {
    guarantee: "G2",
    kind: "gap",
    client,
    conversationId: m.conversationId,
    send: g.entry.key,
    message: m,
    detail: `showed ${g.at.originRegion}#${g.at.seq} while ${m.originRegion}#${m.seq} (stored) had not been shown through any copy${through}${more}`,
  };
}

/** G3: a device shows each send at most once, whichever copy it arrives through. */
function checkShownOnce(ix: Index): Violation[] {
  const out: Violation[] = [];
  for (const [client, shown] of ix.shownByClient) {
    const first = new Map<SendKey, Ev<"shown">>();
    for (const e of shown) {
      const key = keyOf(e.message);
      const earlier = first.get(key);
      if (!earlier) {
        first.set(key, e);
        continue;
      }
      out.push({
        guarantee: "G3",
        kind: "shown-twice",
        client,
        conversationId: e.message.conversationId,
        send: key,
        message: e.message,
        detail: `shown as ${e.message.originRegion}#${e.message.seq} at ${e.t}${e.replay ? " (replay)" : ""}, already shown as ${earlier.message.originRegion}#${earlier.message.seq} at ${earlier.t}`,
      });
    }
  }
  return out;
}

/**
 * G5: every region's history of every conversation lists the same copies in the same order. Each
 * region is compared with the first region of the stores, one violation per differing region.
 */
function checkConvergence(stored: StoredHistories): Violation[] {
  const regions = Object.keys(stored);
  const [reference] = regions;
  if (reference === undefined) return [];
  const conversations = new Set(regions.flatMap((r) => Object.keys(stored[r] ?? {})));
  const out: Violation[] = [];
  for (const conversationId of conversations) {
    const expected = stored[reference]?.[conversationId]?.history ?? [];
    for (const region of regions.slice(1)) {
      const actual = stored[region]?.[conversationId]?.history ?? [];
      const i = firstDifference(expected, actual);
      if (i < 0) continue;
      const theirs = actual[i];
      out.push({
        guarantee: "G5",
        kind: "histories-differ",
        region,
        conversationId,
        send: theirs && keyOf(theirs),
        message: theirs,
        detail: `first difference at index ${i}: ${reference} has ${entryAt(expected, i)}, ${region} has ${entryAt(actual, i)} (${expected.length} and ${actual.length} messages)`,
      });
    }
  }
  return out;
}

function sameCopy(a: MessageRef, b: MessageRef): boolean {
  return a.originRegion === b.originRegion && BigInt(a.seq) === BigInt(b.seq);
}

function firstDifference(a: MessageRef[], b: MessageRef[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (!x || !y || !sameCopy(x, y)) return i;
  }
  return -1;
}

function entryAt(list: MessageRef[], i: number): string {
  const m = list[i];
  return m ? describe(m) : "nothing (its history ends before)";
}

interface Fault {
  fault: FaultKind;
  region?: string;
  startedAt: number;
  endedAt?: number;
}

/** Each end closes the earliest open fault of the same kind and region. */
function pairFaults(events: Ev<"fault">[]): Fault[] {
  const faults: Fault[] = [];
  for (const e of events) {
    if (e.phase === "start") {
      const where = e.region === undefined ? {} : { region: e.region };
      faults.push({ fault: e.fault, ...where, startedAt: e.t });
      continue;
    }
    const open = faults.find(
      (f) => f.endedAt === undefined && f.fault === e.fault && f.region === e.region,
    );
    if (open) open.endedAt = e.t;
  }
  return faults;
}

function reportFault(f: Fault, ix: Index): FaultReport {
  const report: FaultReport = { ...f };
  if ((f.fault !== "region-kill" && f.fault !== "region-freeze") || f.region === undefined) {
    return report;
  }
  const window = {
    region: f.region,
    start: f.startedAt,
    end: f.endedAt ?? ix.healedAt ?? Infinity,
  };
  return { ...report, ...continuity(window, ix), failover: failover(window, ix) };
}

interface Outage {
  region: string;
  start: number;
  /** the fault's end, else the heal, else never */
  end: number;
}

/** regionAt is where a client was connected at `t`: the last region event recorded by then. */
function regionAt(moves: Ev<"region">[] | undefined, t: number): string | undefined {
  let at: string | undefined;
  for (const e of moves ?? []) if (e.t <= t) at = e.to;
  return at;
}

function connectedElsewhere(moves: Ev<"region">[] | undefined, o: Outage): boolean {
  const atStart = regionAt(moves, o.start);
  if (atStart !== undefined && atStart !== o.region) return true;
  return (moves ?? []).some((e) => e.t > o.start && e.t < o.end && e.to !== o.region);
}

function continuity(
  o: Outage,
  ix: Index,
): { deliveredDuringOutage: number; waitedForHeal: number; neverShown: number } {
  const counts = { deliveredDuringOutage: 0, waitedForHeal: 0, neverShown: 0 };
  const sends = new Map<SendKey, string>();
  for (const a of ix.acks) {
    if (a.message.originRegion === o.region && a.t < o.start) {
      sends.set(keyOf(a.message), a.message.conversationId);
    }
  }
  for (const [key, conversationId] of sends) {
    for (const device of memberDevices(ix, conversationId)) {
      if (!connectedElsewhere(ix.regionsByClient.get(device), o)) continue;
      const at = ix.firstShown.get(device)?.get(key);
      if (at === undefined) counts.neverShown++;
      else if (at < o.start) continue;
      else if (at < o.end) counts.deliveredDuringOutage++;
      else counts.waitedForHeal++;
    }
  }
  return counts;
}

function failover(o: Outage, ix: Index): Failover {
  const clients = [...ix.regionsByClient]
    .filter(([, moves]) => regionAt(moves, o.start) === o.region)
    .map(([client]) => client);
  const durations: number[] = [];
  const notFailedOver: ClientId[] = [];
  for (const client of clients) {
    const elsewhere = (ix.acksByClient.get(client) ?? []).filter(
      (a) => a.region !== o.region && a.t >= o.start && a.t < o.end,
    );
    const first = elsewhere.reduce((t, a) => Math.min(t, a.t), Infinity);
    if (first === Infinity) notFailedOver.push(client);
    else durations.push(first - o.start);
  }
  durations.sort((a, b) => a - b);
  const moves = clients
    .map((client) =>
      (ix.regionsByClient.get(client) ?? []).find(
        (e) => e.t >= o.start && e.t < o.end && e.to !== o.region,
      ),
    )
    .flatMap((e) => (e ? [e.t - o.start] : []))
    .sort((a, b) => a - b);
  const waits: number[] = [];
  let unacked = 0;
  const affected = new Set(clients);
  for (const [key, send] of ix.sends) {
    if (!affected.has(send.client) || send.t < o.start || send.t >= o.end) continue;
    const ack = ix.acked.get(key);
    if (ack) waits.push(ack.t - send.t);
    else unacked++;
  }
  waits.sort((a, b) => a - b);
  const out: Failover = {
    clients: clients.length,
    failedOver: durations.length,
    notFailedOver,
    ...(waits.length + unacked > 0
      ? {
          sendWait: {
            sends: waits.length + unacked,
            unacked,
            p50Ms: percentile(waits, 50) ?? 0,
            p99Ms: percentile(waits, 99) ?? 0,
            maxMs: waits.at(-1) ?? 0,
          },
        }
      : {}),
    ...(moves.length > 0
      ? {
          moved: {
            clients: moves.length,
            p50Ms: percentile(moves, 50) ?? 0,
            p99Ms: percentile(moves, 99) ?? 0,
            maxMs: moves[moves.length - 1] as number,
          },
        }
      : {}),
  };
  if (durations.length === 0) return out;
  return {
    ...out,
    p50Ms: percentile(durations, 50),
    p99Ms: percentile(durations, 99),
    maxMs: durations[durations.length - 1],
  };
}

function countRun(ix: Index, logs: Logs, faults: number): CheckCounts {
  const copies = new Map<SendKey, number>();
  let storedMessages = 0;
  for (const origins of logs.values()) {
    for (const entries of origins.values()) {
      storedMessages += entries.length;
      for (const e of entries) copies.set(e.key, (copies.get(e.key) ?? 0) + 1);
    }
  }
  const conversations = new Set([...ix.membersOf.keys(), ...logs.keys()]);
  const failed = [...ix.failed].filter((k) => !ix.acked.has(k)).length;
  const shown = [...ix.shownByClient.values()].flat();
  return {
    clients: ix.userOf.size,
    users: ix.devicesOf.size,
    conversations: conversations.size,
    sends: ix.sends.size,
    acked: ix.acked.size,
    failed,
    unacked: [...ix.sends.keys()].filter((k) => !ix.acked.has(k) && !ix.failed.has(k)).length,
    attempts: ix.attempts,
    retriedInAnotherRegion: [...ix.attemptRegions.values()].filter((r) => r.size > 1).length,
    shown: shown.length,
    replayed: shown.filter((e) => e.replay).length,
    regionSwitches: [...ix.regionsByClient.values()].flat().filter((e) => e.from !== undefined)
      .length,
    storedMessages,
    multiCopySends: [...copies.values()].filter((n) => n > 1).length,
    faults,
  };
}
