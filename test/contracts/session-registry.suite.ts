import { setTimeout as sleep } from "node:timers/promises";
import test from "ava";
import type { Session, SessionRegistry } from "../../services/shared/ports/session-registry.ts";

/** SessionRegistryFactory makes a fresh registry. */
export type SessionRegistryFactory = () => Promise<{
  registry: SessionRegistry;
  dispose?: () => Promise<void>;
}>;

let counter = 0;
const uid = (p: string) => `${p}_${process.pid}_${++counter}`;

function session(userId: string, deviceId: string, instanceId = "gw-1"): Session {
  return { userId, deviceId, sessionId: uid("s"), instanceId, connectedAtMs: Date.now() };
}

/**
 * sessionRegistryContract registers the SessionRegistry contract tests for one implementation;
 * `restartBackend`, for real backends, restarts the server (losing its data) mid-test.
 */
export function sessionRegistryContract(
  name: string,
  factory: SessionRegistryFactory,
  opts: { restartBackend?: () => Promise<void> } = {},
): void {
  const withRegistry = async (t: { teardown: (f: () => Promise<void>) => void }) => {
    const { registry, dispose } = await factory();
    t.teardown(async () => {
      await registry.close();
      await dispose?.();
    });
    return registry;
  };

  test(`${name}: sessions are found per user; first and last sessions are reported`, async (t) => {
    const registry = await withRegistry(t);
    const user = uid("u");
    const phone = session(user, "phone", uid("gw"));
    const laptop = session(user, "laptop", uid("gw"));
    t.deepEqual(await registry.register(phone, 10_000), { firstOfUser: true });
    t.deepEqual(await registry.register(laptop, 10_000), { firstOfUser: false });
    const found = await registry.lookup([user, uid("nobody")]);
    t.deepEqual((found.get(user) ?? []).map((s) => s.deviceId).sort(), ["laptop", "phone"]);
    t.is(found.size, 1, "users without sessions are absent");
    t.deepEqual(await registry.unregister(phone), { lastOfUser: false });
    t.deepEqual(await registry.unregister(laptop), { lastOfUser: true });
    t.is((await registry.lookup([user])).size, 0);
  });

  test(`${name}: many users are looked up at once`, async (t) => {
    const registry = await withRegistry(t);
    const users = Array.from({ length: 200 }, () => uid("u"));
    await Promise.all(users.map((u) => registry.register(session(u, "d"), 10_000)));
    const found = await registry.lookup(users);
    t.is(found.size, 200);
    for (const u of users) t.is(found.get(u)?.[0]?.userId, u);
  });

  test(`${name}: sessions expire unless refreshed`, async (t) => {
    const registry = await withRegistry(t);
    const instance = uid("gw");
    const kept = session(uid("u"), "d", instance);
    const dropped = session(uid("u"), "d", uid("gw"));
    await registry.register(kept, 300);
    await registry.register(dropped, 300);
    await sleep(150);
    await registry.refresh(instance, [kept], 600);
    await sleep(300);
    const found = await registry.lookup([kept.userId, dropped.userId]);
    t.true(found.has(kept.userId), "refreshed");
    t.false(found.has(dropped.userId), "expired");
  });

  test(`${name}: an instance whose lease lapses takes its sessions with it`, async (t) => {
    const registry = await withRegistry(t);
    const instance = uid("gw");
    const s = session(uid("u"), "d", instance);
    await registry.refresh(instance, [], 200);
    await registry.register(s, 60_000);
    t.true((await registry.lookup([s.userId])).has(s.userId));
    await sleep(350);
    t.false((await registry.lookup([s.userId])).has(s.userId), "the lease lapsed");
    await registry.refresh(instance, [s], 60_000);
    t.true((await registry.lookup([s.userId])).has(s.userId), "a refresh restores them");
  });

  test(`${name}: other regions' users are online while their region keeps reporting them`, async (t) => {
    const registry = await withRegistry(t);
    const [ann, ben, cy] = [uid("ann"), uid("ben"), uid("cy")];
    await registry.setRemotePresence("eu-west-1", [{ userId: ann, online: true }], 300);
    await registry.setRemotePresence(
      "ap-south-1",
      [
        { userId: ann, online: true },
        { userId: ben, online: true },
      ],
      300,
    );
    const regions = ["eu-west-1", "ap-south-1"];
    const first = await registry.remotePresence([ann, ben, cy], regions);
    t.deepEqual(first.get(ann)?.sort(), ["ap-south-1", "eu-west-1"]);
    t.deepEqual(first.get(ben), ["ap-south-1"]);
    t.false(first.has(cy));
    t.deepEqual(
      (await registry.remotePresence([ann], ["eu-west-1"])).get(ann),
      ["eu-west-1"],
      "only the regions asked about",
    );
    await registry.setRemotePresence("ap-south-1", [{ userId: ben, online: false }], 300);
    t.false((await registry.remotePresence([ben], regions)).has(ben), "offline at once");
    // eu-west-1 renews ann's lease; ap-south-1 falls silent (it died).
    await sleep(150);
    await registry.setRemotePresence("eu-west-1", [{ userId: ann, online: true }], 600);
    await sleep(250);
    t.deepEqual(
      (await registry.remotePresence([ann], regions)).get(ann),
      ["eu-west-1"],
      "a silent region's users expire",
    );
  });

  const restart = opts.restartBackend;
  if (restart) {
    test.serial(
      `${name}: after the backend restarts empty, the gateways' refresh restores every session`,
      async (t) => {
        const registry = await withRegistry(t);
        const instance = uid("gw");
        const sessions = [
          session(uid("u"), "phone", instance),
          session(uid("u"), "laptop", instance),
        ];
        await registry.refresh(instance, [], 60_000);
        for (const s of sessions) await registry.register(s, 60_000);
        await restart();
        // The first calls after the restart may fail while the client reconnects; a gateway's
        // refresh loop simply tries again at its next tick.
        for (let attempt = 0; ; attempt++) {
          try {
            await registry.refresh(instance, sessions, 60_000);
            break;
          } catch (err) {
            if (attempt > 50) throw err;
            await sleep(100);
          }
        }
        const found = await registry.lookup(sessions.map((s) => s.userId));
        t.deepEqual(
          sessions.map((s) => found.get(s.userId)?.[0]?.sessionId),
          sessions.map((s) => s.sessionId),
        );
      },
    );

    test.serial(
      `${name}: a connection that comes back is reported, so gateways register again at once`,
      async (t) => {
        const registry = await withRegistry(t);
        // The first connection is not a comeback.
        await registry.lookup([uid("u")]);
        let comebacks = 0;
        const stop = registry.onReconnect(() => comebacks++);
        await sleep(200);
        t.is(comebacks, 0);
        await restart();
        for (let i = 0; i < 100 && comebacks === 0; i++) await sleep(50);
        t.is(comebacks, 1, "one comeback per restart");
        stop();
        await restart();
        await registry.lookup([uid("u")]).catch(() => registry.lookup([uid("u")]));
        t.is(comebacks, 1, "no report once the listener stopped");
      },
    );
  }
}
