/** RegionEndpoint is one region's gateway: its name and WebSocket URL. */
export interface RegionEndpoint {
  name: string;
  url: string;
}

/** RegionLatency is a region with its latest measured round-trip time, if it answered. */
export interface RegionLatency extends RegionEndpoint {
  rttMs?: number;
}

/**
 * resolveRegions turns the client's `url` or `regions` option into the list of endpoints it
 * dials. Exactly one must be given. The URLs of `url` all belong to one region, so they carry
 * no name (the welcome says which region they are).
 */
export function resolveRegions(opts: {
  url?: string | string[];
  regions?: RegionEndpoint[];
}): RegionEndpoint[] {
  if (opts.url !== undefined && opts.regions !== undefined) {
    throw new Error("ChatClient takes either url (one region) or regions, not both");
  }
  if (opts.regions !== undefined) {
    if (opts.regions.length === 0) throw new Error("ChatClient regions must not be empty");
    const names = new Set<string>();
    for (const r of opts.regions) {
      if (!r.name) throw new Error(`ChatClient region with url ${r.url} has no name`);
      if (!r.url) throw new Error(`ChatClient region ${r.name} has no url`);
      if (names.has(r.name)) throw new Error(`ChatClient region ${r.name} is listed twice`);
      names.add(r.name);
    }
    return opts.regions.map(({ name, url }) => ({ name, url }));
  }
  if (opts.url === undefined) throw new Error("ChatClient needs a url or a list of regions");
  const urls = Array.isArray(opts.url) ? opts.url : [opts.url];
  if (urls.length === 0) throw new Error("ChatClient needs at least one url");
  return urls.map((url) => ({ name: "", url }));
}

/**
 * parseRegions reads a `name=url,name=url` list (as a command line or app config carries it)
 * and throws an Error naming the first entry that is not a named ws:// or wss:// URL.
 */
export function parseRegions(list: string): RegionEndpoint[] {
  const regions: RegionEndpoint[] = [];
  for (const entry of list.split(",").map((e) => e.trim())) {
    const eq = entry.indexOf("=");
    const name = entry.slice(0, eq).trim();
    const url = entry.slice(eq + 1).trim();
    if (eq < 0 || !/^[a-z0-9][a-z0-9-]*$/.test(name)) {
      throw new Error(`bad region entry "${entry}": expected name=ws://host:port/ws`);
    }
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`bad region entry "${entry}": ${url || "(empty)"} is not a URL`);
    }
    if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
      throw new Error(`bad region entry "${entry}": the URL must start with ws:// or wss://`);
    }
    if (regions.some((r) => r.name === name)) {
      throw new Error(`bad region entry "${entry}": region ${name} is listed twice`);
    }
    regions.push({ name, url });
  }
  return regions;
}

/**
 * preferenceOrder ranks regions by round-trip time, lowest first, given as indices into
 * `rtts`. Regions that did not answer (undefined) come last; equals keep the configured order,
 * so a client without measurements dials regions as listed.
 */
export function preferenceOrder(rtts: ReadonlyArray<number | undefined>): number[] {
  const key = (i: number) => rtts[i] ?? Number.POSITIVE_INFINITY;
  return rtts.map((_, i) => i).sort((a, b) => key(a) - key(b) || a - b);
}
