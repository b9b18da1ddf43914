// `node chaos/recheck.ts <dir>`: check a recorded chaos run again from its histories and stores.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { check } from "./checker.ts";
import type { StoredHistories } from "./history.ts";
import { readHistory } from "./recorder.ts";
import { formatReport } from "./report.ts";

const dir = process.argv[2];
if (!dir) {
  process.stderr.write("usage: node chaos/recheck.ts <dir with histories.jsonl and stored.json>\n");
  process.exit(2);
}
try {
  const events = readHistory(join(dir, "histories.jsonl"));
  const stored = JSON.parse(readFileSync(join(dir, "stored.json"), "utf8")) as StoredHistories;
  const report = check(events, stored);
  process.stdout.write(`${formatReport(report)}\n`);
  process.exit(report.ok ? 0 : 1);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(2);
}
