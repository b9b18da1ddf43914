/**
 * watchEcsStop polls the ECS task metadata endpoint (v4) and calls `onStopping` once ECS has
 * decided to stop this task (its desired status turns STOPPED).
 *
 * Why: ECS first deregisters a stopping task from its load balancer, which keeps existing
 * connections open for the deregistration delay and then cuts them; only after that does the
 * task get SIGTERM. Long-lived WebSockets would all be cut at once, with no warning. Watching
 * the desired status lets the gateway drain (go_away with a jittered reconnect hint) while the
 * load balancer still holds the connections.
 */
export function watchEcsStop(opts: {
  metadataUri: string;
  intervalMs: number;
  onStopping: () => void;
  onError?: (err: unknown) => void;
}): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const poll = async () => {
    try {
      const res = await fetch(`${opts.metadataUri}/task`, { signal: AbortSignal.timeout(2_000) });
      if (res.ok) {
        const task = (await res.json()) as { DesiredStatus?: string };
        if (task.DesiredStatus === "STOPPED") {
          stopped = true;
          opts.onStopping();
          return;
        }
      } else {
        await res.body?.cancel();
      }
    } catch (err) {
      opts.onError?.(err);
    }
    if (!stopped) timer = setTimeout(poll, opts.intervalMs);
  };
  timer = setTimeout(poll, opts.intervalMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
