import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { freePort } from "../../dev/backends/processes.ts";
import { generateKeySet } from "../../services/shared/internal-auth.ts";
import { ROOT, run } from "../support/tools.ts";
import { SERVICES } from "./support.ts";

const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");

test("the Dockerfile builds a non-root Node 24 image of one service, with a health check", (t) => {
  t.regex(dockerfile, /^ARG NODE_IMAGE=node:24-/m, "Node 24 (the current LTS)");
  t.regex(dockerfile, /^FROM \$\{NODE_IMAGE\} AS dependencies$/m, "multi-stage");
  t.regex(dockerfile, /npm ci --omit=dev/, "production dependencies only");
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
  t.regex(finalStage, /^USER node$/m, "runs as the unprivileged node user");
  t.regex(finalStage, /^HEALTHCHECK .*\n.*\/healthz/m);
  t.regex(finalStage, /^CMD \["sh", "-c", "exec node .* services\/\$\{SERVICE\}\/main\.ts"\]$/m);
  for (const [, src] of finalStage.matchAll(/^COPY (?!--from)(\S+)/gm)) {
    t.true(existsSync(join(ROOT, src as string)), `${src} exists`);
  }
});

/**
 * Without a Docker daemon, build what the image would contain: package files, production
 * dependencies (npm ci --omit=dev, as the Dockerfile), gen/ and services/ minus what
 * .dockerignore leaves out, then start every service's entry point from it.
 */
test("each service starts from exactly what its image contains", async (t) => {
  const image = mkdtempSync(join(tmpdir(), "image-"));
  t.teardown(() => rmSync(image, { recursive: true, force: true }));
  for (const f of ["package.json", "package-lock.json"]) cpSync(join(ROOT, f), join(image, f));
  const install = await run(
    "npm",
    ["ci", "--omit=dev", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund"],
    {
      cwd: image,
      timeoutMs: 300_000,
    },
  );
  t.is(install.code, 0, install.stderr);
  const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8")
    .split("\n")
    .filter((l) => l.startsWith("services/"))
    .map((l) => l.replace(/\/$/, ""));
  cpSync(join(ROOT, "gen"), join(image, "gen"), { recursive: true });
  cpSync(join(ROOT, "services"), join(image, "services"), {
    recursive: true,
    filter: (src) => !ignored.some((i) => src.startsWith(join(ROOT, i))),
  });

  // Persistence runs on its own with the embedded store: it must serve.
  const keys = generateKeySet();
  const port = await freePort();
  const persistence = spawn(process.execPath, ["services/persistence/main.ts"], {
    cwd: image,
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      NODE_ENV: "production",
      INTERNAL_AUTH_PEERS: keys.peers,
    },
    stdio: "pipe",
  });
  t.teardown(() => persistence.kill("SIGKILL"));
  let healthy = false;
  for (let i = 0; i < 100 && !healthy; i++) {
    await new Promise((r) => setTimeout(r, 100));
    healthy = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
  }
  t.true(healthy, "persistence serves from the image's files");
  const stopped = new Promise<number | null>((r) => persistence.once("exit", (code) => r(code)));
  persistence.kill("SIGTERM");
  t.is(await stopped, 0, "and stops cleanly on SIGTERM");

  // The others need the region's shared backends: with none configured they load every module
  // (imports resolve before any code runs) and then refuse to start, saying why.
  for (const s of SERVICES.filter((x) => x !== "persistence")) {
    const r = await run(process.execPath, [`services/${s}/main.ts`], {
      cwd: image,
      env: {
        AUTH_JWKS_URL: "https://idp.example/jwks",
        INTERNAL_AUTH_KEY: keys.privateKeys[s as "gateway" | "messaging" | "notification"],
        INTERNAL_AUTH_PEERS: keys.peers,
      },
      timeoutMs: 30_000,
    });
    t.is(r.code, 1, s);
    t.regex(
      r.stderr,
      /CHAT_BUS: "memory" works only with every service in one process/,
      `${s}: ${r.stderr}`,
    );
  }
  // The kafka-topics job runs from the same image (SERVICE=jobs/kafka-topics): with no Kafka
  // configured it loads every module and refuses, saying why.
  const job = await run(process.execPath, ["services/jobs/kafka-topics/main.ts"], {
    cwd: image,
    env: {},
    timeoutMs: 30_000,
  });
  t.is(job.code, 1, "kafka-topics");
  t.regex(job.stdout + job.stderr, /set CHAT_BUS=kafka/);
});
