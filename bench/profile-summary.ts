// `node bench/profile-summary.ts FILE.cpuprofile [--top N]`: where a V8 CPU profile (from
// `node --cpu-prof`) spends its time, by function (self time) and by package or source folder.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  options: { top: { type: "string", default: "25" } },
  allowPositionals: true,
});
const file = positionals[0];
if (!file) {
  process.stderr.write("usage: node bench/profile-summary.ts FILE.cpuprofile [--top N]\n");
  process.exit(2);
}
const top = Number(values.top);
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => {
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

/** where names the package (node_modules/<pkg>), project folder, or node internal of a frame. */
function where(url: string): string {
  if (url === "") return "(native/V8)";
  if (url.startsWith("node:")) return url.split("/")[0] as string;
  const m = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (m) return m[1] as string;
  const local = url.replace(/^file:\/\//, "").replace(`${process.cwd()}/`, "");
  return local.split("/").slice(0, 2).join("/");
}

const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const fn = new Map<string, number>();
const pkg = new Map<string, number>();
for (const [id, us] of selfUs) {
  const n = byId.get(id);
  if (!n) continue;
  const f = n.callFrame;
  const name = frameName(n);
  fn.set(name, (fn.get(name) ?? 0) + us);
  const w = where(f.url);
  pkg.set(w, (pkg.get(w) ?? 0) + us);
}

// Inclusive time of the project's own functions (not node_modules, not Node's): each sample
// counts once for every distinct project function on its stack. Work resumed after an await
// starts a new stack, so this shows synchronous costs, not whole requests.
const own = new Map<string, number>();
for (const [id, us] of selfUs) {
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const n = byId.get(at);
    if (!n || !isOwn(n.callFrame.url)) continue;
    const name = frameName(n);
    if (seen.has(name)) continue;
    seen.add(name);
    own.set(name, (own.get(name) ?? 0) + us);
  }
}

function isOwn(url: string): boolean {
  return url.startsWith("file://") && !url.includes("/node_modules/");
}

function frameName(n: ProfileNode): string {
  const f = n.callFrame;
  return `${f.functionName || "(anonymous)"} ${f.url ? `${f.url.replace(/^.*node_modules\//, "").replace(`file://${process.cwd()}/`, "")}:${f.lineNumber + 1}` : ""}`;
}
const print = (title: string, m: Map<string, number>) => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(
      `${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}\n`,
    );
  }
};
process.stdout.write(`${file}: ${(total / 1000).toFixed(0)} ms sampled\n`);
print("by package or folder (self time)", pkg);
print("by function (self time)", fn);
print("project functions (inclusive, synchronous)", own);
