import test from "ava";
import { parseRegions, preferenceOrder, resolveRegions } from "../../client/regions.ts";

const east = { name: "us-east-1", url: "ws://127.0.0.1:8080/ws" };
const west = { name: "eu-west-1", url: "ws://127.0.0.1:9080/ws" };

test("a client is configured with url (one region) or regions, never both or neither", (t) => {
  t.deepEqual(resolveRegions({ regions: [east, west] }), [east, west]);
  t.deepEqual(resolveRegions({ url: "ws://a/ws" }), [{ name: "", url: "ws://a/ws" }]);
  t.deepEqual(
    resolveRegions({ url: ["ws://a/ws", "ws://b/ws"] }).map((r) => r.url),
    ["ws://a/ws", "ws://b/ws"],
  );
  t.throws(() => resolveRegions({ url: "ws://a/ws", regions: [east] }), {
    message: /either url .* or regions, not both/,
  });
  t.throws(() => resolveRegions({}), { message: /needs a url or a list of regions/ });
  t.throws(() => resolveRegions({ regions: [] }), { message: /regions must not be empty/ });
  t.throws(() => resolveRegions({ url: [] }), { message: /at least one url/ });
  t.throws(() => resolveRegions({ regions: [east, { ...west, name: "us-east-1" }] }), {
    message: /region us-east-1 is listed twice/,
  });
  t.throws(() => resolveRegions({ regions: [{ name: "", url: "ws://a/ws" }] }), {
    message: /has no name/,
  });
});

test("a region list from a command line is read, and a bad entry is named", (t) => {
  t.deepEqual(parseRegions(`us-east-1=${east.url}, eu-west-1=${west.url}`), [east, west]);
  t.throws(() => parseRegions(`us-east-1=${east.url},eu-west-1`), {
    message: 'bad region entry "eu-west-1": expected name=ws://host:port/ws',
  });
  t.throws(() => parseRegions("us-east-1=http://127.0.0.1:8080/ws"), {
    message: /"us-east-1=http:\/\/127.0.0.1:8080\/ws": the URL must start with ws:\/\/ or wss:\/\//,
  });
  t.throws(() => parseRegions("us-east-1=not a url"), { message: /not a URL/ });
  t.throws(() => parseRegions(`a=${east.url},a=${west.url}`), { message: /listed twice/ });
  t.throws(() => parseRegions(`US East=${east.url}`), { message: /bad region entry "US East=/ });
});

test("regions are preferred by measured round-trip time; unreachable ones come last", (t) => {
  t.deepEqual(preferenceOrder([80, 12, 40]), [1, 2, 0]);
  t.deepEqual(preferenceOrder([undefined, 300, undefined, 5]), [3, 1, 0, 2]);
  t.deepEqual(preferenceOrder([7, 7, 3]), [2, 0, 1], "equals keep the configured order");
  t.deepEqual(
    preferenceOrder([undefined, undefined]),
    [0, 1],
    "before any measurement, the configured order",
  );
});
