import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** startWebhook starts a local endpoint that records the pushes POSTed to it. */
export async function startWebhook(t: { teardown: (f: () => void) => void }) {
  const received: Array<Record<string, unknown>> = [];
  let notify: (() => void) | undefined;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      received.push(JSON.parse(body));
      res.writeHead(200);
      res.end();
      notify?.();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.teardown(() => server.close());
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/push`,
    received,
    next: () =>
      new Promise<void>((r) => {
        notify = r;
      }),
  };
}
