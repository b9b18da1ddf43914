import type { Logger } from "../../shared/logger.ts";
import { redact } from "./log-push.ts";
import type { PushOutcome } from "./push-provider.ts";

/**
 * RetryPolicy bounds what one notification may cost. The scheduler sends one batch at a time,
 * so a push service that is slow or throttling must not hold it up for long: a send gives up
 * ("failed") after `attempts` tries or `budgetMs`, whichever comes first, and never waits for
 * a Retry-After that would end past the budget.
 */
export interface RetryPolicy {
  /** attempts counts the first try. */
  attempts: number;
  /** baseDelayMs is the first backoff; each next one doubles, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** budgetMs bounds one send: its requests and the waits between them. */
  budgetMs: number;
  /** timeoutMs bounds each request. */
  timeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 3,
  baseDelayMs: 500,
  maxDelayMs: 4_000,
  budgetMs: 10_000,
  timeoutMs: 5_000,
};

/** Clock is time as the providers see it: injectable, so tests need not wait for real. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
  /** random is in [0, 1), for jitter. */
  random(): number;
}

export const SYSTEM_CLOCK: Clock = {
  now: Date.now,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  random: Math.random,
};

/**
 * Attempt is what one try found: an outcome, or a transient failure worth another try, after
 * retryAfterMs when the service said how long to wait (0: at once, e.g. with fresh credentials).
 */
export type Attempt =
  | { outcome: PushOutcome; reason?: string }
  | { retry: string; afterMs?: number };

/** Tried is how a send ended, with why when it did not go out. */
export interface Tried {
  outcome: PushOutcome;
  attempts: number;
  reason?: string;
}

/**
 * reported returns a send's outcome, warning first (token redacted) when it did not go out:
 * how FCM and APNs end every send.
 */
export function reported(
  tried: Tried,
  service: string,
  token: string,
  log: Pick<Logger, "warn"> | undefined,
): PushOutcome {
  if (tried.outcome !== "sent") {
    log?.warn(
      { token: redact(token), outcome: tried.outcome, attempts: tried.attempts },
      `${service}: ${tried.reason ?? tried.outcome}`,
    );
  }
  return tried.outcome;
}

/**
 * withRetries runs `attempt` until it gives an outcome or the policy is spent. Between tries it
 * waits what the service asked (Retry-After) or else an exponential backoff with jitter, so
 * that many senders throttled at once do not come back in step.
 */
export async function withRetries(
  policy: RetryPolicy,
  clock: Clock,
  attempt: (timeoutMs: number, n: number) => Promise<Attempt>,
): Promise<Tried> {
  const deadline = clock.now() + policy.budgetMs;
  let reason = "no time left";
  let tried = 0;
  for (let n = 1; n <= policy.attempts; n++) {
    const left = deadline - clock.now();
    if (left <= 0) break;
    tried = n;
    // A send never throws: whatever went wrong is a failed push, not a failed batch.
    const r = await attempt(Math.min(policy.timeoutMs, left), n).catch(
      (err: Error): Attempt => ({ outcome: "failed", reason: err.message }),
    );
    if ("outcome" in r) return { outcome: r.outcome, attempts: n, reason: r.reason };
    reason = r.retry;
    if (n === policy.attempts) return { outcome: "failed", attempts: n, reason };
    const wait = r.afterMs ?? backoffMs(n, policy, clock.random());
    if (clock.now() + wait >= deadline) {
      return { outcome: "failed", attempts: n, reason: `${reason}; next try past the budget` };
    }
    if (wait > 0) await clock.sleep(wait);
  }
  return { outcome: "failed", attempts: tried, reason };
}

/** backoffMs is the wait after try n: half the doubled delay, plus up to as much again. */
export function backoffMs(n: number, policy: RetryPolicy, random: number): number {
  const d = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
  return Math.round(d / 2 + (random * d) / 2);
}

/** parseRetryAfter reads Retry-After, in seconds or as an HTTP date, as milliseconds from nowMs. */
export function parseRetryAfter(
  value: string | string[] | undefined,
  nowMs: number,
): number | undefined {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1_000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
