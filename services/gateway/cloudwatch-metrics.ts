/**
 * CloudWatch metrics of a gateway task, in the Embedded Metric Format: one JSON line on stdout
 * per interval, which CloudWatch Logs (the task's awslogs driver) turns into metrics without
 * an agent or API calls. The deployment scales gateways on `Connections` (a target per task,
 * copilot/gateway/addons/scaling.yml) and pages on `CanaryFailures`
 * (copilot/environments/addons/alarms.yml).
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */

/** NAMESPACE is where the gateway's metrics are, with dimensions Env and Service. */
export const NAMESPACE = "ConnectChat";

/** GatewayFigures are what one line reports. */
export interface GatewayFigures {
  /** connections are the WebSockets open now. */
  connections: number;
  /** canaryFailures are the delivery canaries that did not come back in time since the last line. */
  canaryFailures: number;
}

/** emfLine renders one interval's figures as an Embedded Metric Format log line. */
export function emfLine(env: string, figures: GatewayFigures, nowMs: number): string {
  return JSON.stringify({
    _aws: {
      Timestamp: nowMs,
      CloudWatchMetrics: [
        {
          Namespace: NAMESPACE,
          Dimensions: [["Env", "Service"]],
          Metrics: [
            { Name: "Connections", Unit: "Count" },
            { Name: "CanaryFailures", Unit: "Count" },
          ],
        },
      ],
    },
    Env: env,
    Service: "gateway",
    Connections: figures.connections,
    CanaryFailures: figures.canaryFailures,
  });
}

/**
 * startCloudWatchMetrics writes a line every `intervalMs` (and none after stop). `read` returns
 * the figures of the interval just ended.
 */
export function startCloudWatchMetrics(opts: {
  env: string;
  intervalMs?: number;
  read: () => GatewayFigures;
  write?: (line: string) => void;
  now?: () => number;
}): () => void {
  const write = opts.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const timer = setInterval(() => {
    write(emfLine(opts.env, opts.read(), (opts.now ?? Date.now)()));
  }, opts.intervalMs ?? 30_000);
  timer.unref();
  return () => clearInterval(timer);
}
