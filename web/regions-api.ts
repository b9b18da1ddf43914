// What the dev web server's regions API answers (dev/web-client.ts serves it, regions.ts reads
// it): types only, shared by the server and the page.

/** RegionInfo is one row of the regions view. */
export interface RegionInfo {
  name: string;
  /** up is false between kill and restore. */
  up: boolean;
  /** healthy: the region's gateway answered /healthz with 200 within a second. */
  healthy: boolean;
  /**
   * lagMs is the replication lag into this region: the age of the oldest item written in
   * another region and not yet applied here (0 when nothing is waiting), as the replication
   * stand-ins measure it; pending counts those items; paused says replication into it is held
   * (an end is down, or the regions are partitioned).
   */
  lagMs: number;
  pending: number;
  paused: boolean;
  /** devices are the WebSockets its gateway holds open now (null when it cannot tell). */
  devices: number | null;
}

/** PageStats are one chat page's counts, as it reports them. */
export interface PageStats {
  sent: number;
  acked: number;
  delivered: number;
  duplicates: number;
}

/** RegionsSnapshot is GET /api/regions: every region, and the chat pages' counts summed. */
export interface RegionsSnapshot {
  regions: RegionInfo[];
  messages: PageStats;
  pages: number;
}
