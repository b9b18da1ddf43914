/**
 * The live regions view of a two-region development run (/regions on the dev web server):
 * every region's state, health, replication lag and devices, a button to kill it (every
 * process, as the chaos checker does) and one to bring it back, and the message counts the
 * chat pages report. Polls /api/regions once a second; plain DOM.
 */

import type { RegionsSnapshot as Snapshot } from "./regions-api.ts";

const el = (id: string): HTMLElement => {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing`);
  return found;
};

/** busy: regions with a kill or restore under way (their buttons stay disabled). */
const busy = new Set<string>();
let latest: Snapshot | undefined;

function cell(text: string, className = ""): HTMLTableCellElement {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function button(label: string, disabled: boolean, action: () => Promise<void>): HTMLButtonElement {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.disabled = disabled;
  b.addEventListener("click", () => {
    action().catch((err: Error) => {
      el("error").textContent = err.message;
    });
  });
  return b;
}

async function act(name: string, what: "kill" | "restore"): Promise<void> {
  busy.add(name);
  render();
  el("error").textContent = "";
  el("status").textContent = `${what === "kill" ? "Killing" : "Restoring"} ${name}…`;
  try {
    const res = await fetch(`/api/regions/${encodeURIComponent(name)}/${what}`, {
      method: "POST",
      headers: { "x-regions-view": "1" },
    });
    if (!res.ok) throw new Error(`${what} ${name}: ${res.status} ${await res.text()}`);
    el("status").textContent = `${name} ${what === "kill" ? "killed" : "restored"}`;
  } finally {
    busy.delete(name);
    await poll();
  }
}

function render(): void {
  if (!latest) return;
  const rows = latest.regions.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.region = r.name;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = r.name;
    const lag = r.paused
      ? `held: ${r.pending} waiting, oldest ${r.lagMs} ms`
      : `${r.lagMs} ms, ${r.pending} waiting`;
    const actions = document.createElement("td");
    // A chat window that prefers this region (it still fails over when the region is killed).
    const chat = document.createElement("a");
    chat.href = `/?region=${encodeURIComponent(r.name)}`;
    chat.target = "_blank";
    chat.textContent = `Chat in ${r.name}`;
    actions.append(
      button(`Kill ${r.name}`, !r.up || busy.has(r.name), () => act(r.name, "kill")),
      " ",
      button(`Restore ${r.name}`, r.up || busy.has(r.name), () => act(r.name, "restore")),
      " ",
      chat,
    );
    tr.append(
      th,
      cell(r.up ? "running" : "killed", r.up ? "col-state" : "col-state down"),
      cell(r.healthy ? "healthy" : "unhealthy", r.healthy ? "col-health" : "col-health down"),
      cell(lag, "col-lag"),
      cell(r.devices === null ? "?" : String(r.devices), "col-devices"),
      actions,
    );
    return tr;
  });
  // Keep the focused button across a refresh, for keyboard users.
  const focused = document.activeElement?.textContent;
  el("regions")
    .querySelector("tbody")
    ?.replaceChildren(...rows);
  if (focused) {
    for (const b of el("regions").querySelectorAll("button")) {
      if (b.textContent === focused && !b.disabled) b.focus();
    }
  }
  const m = latest.messages;
  el("sent").textContent = String(m.sent);
  el("acked").textContent = String(m.acked);
  el("delivered").textContent = String(m.delivered);
  el("duplicates").textContent = String(m.duplicates);
  el("pages").textContent = String(latest.pages);
}

async function poll(): Promise<void> {
  try {
    const res = await fetch("/api/regions");
    if (!res.ok) throw new Error(`/api/regions: ${res.status}`);
    latest = (await res.json()) as Snapshot;
    if (el("status").textContent === "Loading…" || el("status").textContent === "Server gone") {
      el("status").textContent = `${latest.regions.length} regions`;
    }
    render();
  } catch {
    el("status").textContent = "Server gone";
  }
}

void poll();
setInterval(() => void poll(), 1_000);
