import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { Fanout, Push } from "../../shared/fanout.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Bus, Subscription } from "../../shared/ports/bus.ts";
import { consumeEvents, type Sources, type Topic } from "../../shared/topics.ts";

/** RelayDeps are what a relaying consumer needs. */
export interface RelayDeps {
  bus: Bus;
  mirrors: readonly string[];
  fanout: Fanout;
  log: Logger;
  metrics: Metrics;
}

/**
 * relay consumes a topic and hands each event's frame to the recipients' sockets in this
 * region. `toPush` turns an event into a push, or nothing for an event to skip.
 */
export function relay<S extends DescMessage>(
  deps: RelayDeps,
  opts: {
    topic: Topic<S>;
    groupId: string;
    sources?: Sources;
    fromBeginning?: boolean;
    toPush: (event: MessageShape<S>) => Push | undefined;
  },
): Promise<Subscription> {
  return consumeEvents({
    bus: deps.bus,
    topic: opts.topic,
    mirrors: deps.mirrors,
    sources: opts.sources,
    groupId: opts.groupId,
    fromBeginning: opts.fromBeginning,
    log: deps.log,
    metrics: deps.metrics,
    handler: (events) => deps.fanout.push(events.flatMap(({ value }) => opts.toPush(value) ?? [])),
  });
}
