/**
 * The chaos report: a check's verdict as plain markdown, for a person reading a run's results.
 */
import type { CheckCounts, CheckReport, FaultReport, Guarantee, Violation } from "./checker.ts";

/** DEFAULT_MAX_VIOLATIONS is how many violations a report lists unless told otherwise. */
export const DEFAULT_MAX_VIOLATIONS = 50;

const NAMES_LISTED = 10;

const PROPERTIES: Record<Guarantee | "G4", string> = {
  G1: "no loss: every acked send shown on every member device and in every region's history",
  G2: "no gap and no reorder within an origin region's sequence, per device and conversation",
  G3: "nothing shown twice on a device",
  G4: "failover: clients of a killed or frozen region acked by another region (measured, not judged)",
  G5: "convergence: every region's history lists the same messages in the same order",
};

const COUNT_LABELS: Record<keyof CheckCounts, string> = {
  clients: "clients (devices)",
  users: "users",
  conversations: "conversations",
  sends: "sends asked",
  acked: "acked",
  failed: "failed for good",
  unacked: "neither acked nor failed",
  attempts: "attempts (first tries and retries)",
  retriedInAnotherRegion: "sends attempted in more than one region",
  shown: "shown events",
  replayed: "of which replayed",
  regionSwitches: "region switches",
  storedMessages: "stored messages (all copies)",
  multiCopySends: "sends with several stored copies",
  faults: "faults",
};

/** formatReport renders a check as markdown: counts, guarantees, faults, then the violations. */
export function formatReport(report: CheckReport, opts: { maxViolations?: number } = {}): string {
  const total = Object.values(report.byGuarantee).reduce((a, b) => a + b, 0);
  return [
    `# Chaos check: ${report.ok ? "passed" : "FAILED"}`,
    "",
    total === 0 ? "No violation." : `${plural(total, "violation")}.`,
    "",
    "## Counts",
    "",
    ...countsTable(report.counts),
    "",
    "## Guarantees",
    "",
    ...guaranteesTable(report),
    "",
    "## Faults",
    "",
    ...faultsTable(report),
    "",
    "## Violations",
    "",
    ...violationList(report, opts.maxViolations ?? DEFAULT_MAX_VIOLATIONS),
    "",
  ].join("\n");
}

function countsTable(counts: CheckCounts): string[] {
  return [
    "| what | count |",
    "| --- | --- |",
    ...Object.entries(COUNT_LABELS).map(
      ([k, label]) => `| ${label} | ${counts[k as keyof CheckCounts]} |`,
    ),
  ];
}

function guaranteesTable(report: CheckReport): string[] {
  const judged = (g: Guarantee) => {
    const n = report.byGuarantee[g];
    return `| ${g} | ${PROPERTIES[g]} | ${n === 0 ? "ok" : `**${plural(n, "violation")}** (${kindsOf(report, g)})`} |`;
  };
  return [
    "| guarantee | property | result |",
    "| --- | --- | --- |",
    judged("G1"),
    judged("G2"),
    judged("G3"),
    `| G4 | ${PROPERTIES.G4} | ${failoverSummary(report.faults)} |`,
    judged("G5"),
  ];
}

/** Per-kind totals come from byKind, which also counts the gaps left out of the list. */
function kindsOf(report: CheckReport, g: Guarantee): string {
  const kinds = new Set(report.violations.filter((v) => v.guarantee === g).map((v) => v.kind));
  return [...kinds].map((k) => `${k} ${report.byKind[k] ?? 0}`).join(", ");
}

function failoverSummary(faults: FaultReport[]): string {
  const measured = faults.filter((f) => f.failover !== undefined);
  if (measured.length === 0) return "no region-kill or region-freeze fault";
  let clients = 0;
  let failedOver = 0;
  const missing: string[] = [];
  const p99s: number[] = [];
  const maxes: number[] = [];
  for (const f of measured) {
    const fo = f.failover;
    if (!fo) continue;
    clients += fo.clients;
    failedOver += fo.failedOver;
    missing.push(...fo.notFailedOver);
    if (fo.p99Ms !== undefined) p99s.push(fo.p99Ms);
    if (fo.maxMs !== undefined) maxes.push(fo.maxMs);
  }
  const parts = [
    `${failedOver} of ${clients} clients failed over across ${measured.length} ${measured.length === 1 ? "fault" : "faults"}`,
  ];
  if (p99s.length > 0) parts.push(`worst p99 ${Math.max(...p99s)} ms`);
  if (maxes.length > 0) parts.push(`max ${Math.max(...maxes)} ms`);
  if (missing.length > 0) parts.push(`did not: ${names(missing)}`);
  return parts.join("; ");
}

function faultsTable(report: CheckReport): string[] {
  if (report.faults.length === 0) return ["No fault injected."];
  return [
    "| fault | region | started (since the first event) | duration | delivered during outage | waited for heal | never shown | moved to another region p50 / p99 / max | next send acked elsewhere (G4) p50 / p99 / max | did not fail over | sends asked during it: wait for the ack p50 / p99 / max |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...report.faults.map((f) => faultRow(f, report.startedAt)),
  ];
}

function faultRow(f: FaultReport, runStart: number | undefined): string {
  const started =
    runStart === undefined ? String(f.startedAt) : `+${seconds(f.startedAt - runStart)}`;
  const duration = f.endedAt === undefined ? "never ended" : seconds(f.endedAt - f.startedAt);
  const fo = f.failover;
  const times = fo?.maxMs !== undefined ? `${fo.p50Ms} / ${fo.p99Ms} / ${fo.maxMs} ms` : "";
  const wait = fo?.sendWait
    ? `${fo.sendWait.p50Ms} / ${fo.sendWait.p99Ms} / ${fo.sendWait.maxMs} ms (${fo.sendWait.sends}${fo.sendWait.unacked > 0 ? `, ${fo.sendWait.unacked} never acked` : ""})`
    : "";
  const moved = fo?.moved
    ? `${fo.moved.p50Ms} / ${fo.moved.p99Ms} / ${fo.moved.maxMs} ms (${fo.moved.clients})`
    : "";
  const missing = fo
    ? `${fo.notFailedOver.length} of ${fo.clients}${fo.notFailedOver.length > 0 ? ` (${names(fo.notFailedOver)})` : ""}`
    : "";
  const cell = (n: number | undefined) => (n === undefined ? "" : String(n));
  return `| ${f.fault} | ${f.region ?? ""} | ${started} | ${duration} | ${cell(f.deliveredDuringOutage)} | ${cell(f.waitedForHeal)} | ${cell(f.neverShown)} | ${moved} | ${times} | ${missing} | ${wait} |`;
}

function violationList(report: CheckReport, max: number): string[] {
  const total = Object.values(report.byGuarantee).reduce((a, b) => a + b, 0);
  if (total === 0) return ["None."];
  const shown = report.violations.slice(0, Math.max(0, max)).map(violationLine);
  const rest = total - shown.length;
  return rest > 0 ? [...shown, `… and ${rest} more`] : shown;
}

function violationLine(v: Violation): string {
  const about = [
    v.client && `client ${v.client}`,
    v.region && `region ${v.region}`,
    `conversation ${v.conversationId}`,
    v.send && `send ${v.send}`,
    v.message && `message ${v.message.originRegion}#${v.message.seq}`,
  ].filter(Boolean);
  return `- **${v.guarantee} ${v.kind}**: ${about.join(", ")}: ${v.detail}`;
}

function names(list: string[]): string {
  const head = list.slice(0, NAMES_LISTED).join(", ");
  return list.length > NAMES_LISTED ? `${head} and ${list.length - NAMES_LISTED} more` : head;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
