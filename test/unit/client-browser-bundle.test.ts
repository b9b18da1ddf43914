import { readFile } from "node:fs/promises";
import test from "ava";
import { build } from "esbuild";
import { ChatClient } from "../../client/index.ts";

// The SDK must run in a browser as it is: bundled for the browser, it may pull in nothing but
// its own sources, the generated contracts and @bufbuild/protobuf, and must not touch Node's
// globals (Buffer, process) or modules (node:*, ws).
test("the SDK bundles for the browser without Node modules or globals", async (t) => {
  const out = await build({
    entryPoints: [new URL("../../client/index.ts", import.meta.url).pathname],
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const inputs = Object.keys(out.metafile.inputs);
  const foreign = inputs.filter(
    (p) =>
      !/(^|\/)client\/[a-z-]+\.ts$/.test(p) &&
      !/(^|\/)gen\/(chat\/v1|buf\/validate)\/[a-z_]+\.ts$/.test(p) &&
      !p.startsWith("node_modules/@bufbuild/protobuf/"),
  );
  t.deepEqual(foreign, [], "the browser bundle pulls in modules beyond the SDK and protobuf");
  t.false(inputs.includes("client/cli.ts"), "the terminal client is not part of the SDK");
  t.true((out.outputFiles?.[0]?.text.length ?? 0) > 0);
  // Node's globals, in the SDK's own sources (protobuf reads `process` only behind a typeof).
  for (const file of inputs.filter((p) => /(^|\/)client\/[a-z-]+\.ts$/.test(p))) {
    const source = await readFile(new URL(`../../${file}`, import.meta.url), "utf8");
    t.notRegex(source, /\bBuffer\.|\bprocess\.|\brequire\(/, file);
  }
});

test("a runtime without a global WebSocket is told to pass one", (t) => {
  const saved = globalThis.WebSocket;
  // @ts-expect-error: simulate a runtime without WebSocket
  delete globalThis.WebSocket;
  try {
    t.throws(() => new ChatClient({ url: "ws://x/ws", token: () => "t", deviceId: "d" }), {
      message: /pass options\.WebSocket/,
    });
  } finally {
    globalThis.WebSocket = saved;
  }
});
