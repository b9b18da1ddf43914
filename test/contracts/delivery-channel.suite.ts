import test from "ava";
import type { DeliveryChannel } from "../../services/shared/ports/delivery-channel.ts";

/** DeliveryChannelFactory makes a fresh channel. */
export type DeliveryChannelFactory = () => Promise<{
  channel: DeliveryChannel;
  dispose?: () => Promise<void>;
}>;

let counter = 0;
const uid = (p: string) => `${p}-${process.pid}-${++counter}`;

/** deliveryChannelContract registers the DeliveryChannel contract tests for one implementation. */
export function deliveryChannelContract(name: string, factory: DeliveryChannelFactory): void {
  test(`${name}: payloads reach the addressed instance only, in order, until it stops`, async (t) => {
    const { channel, dispose } = await factory();
    t.teardown(async () => {
      await channel.close();
      await dispose?.();
    });
    const [a, b] = [uid("gw"), uid("gw")];
    const gotA: number[] = [];
    const gotB: number[] = [];
    let done!: () => void;
    const all = new Promise<void>((r) => {
      done = r;
    });
    const stopA = await channel.listen(a, (p) => {
      gotA.push(p[0] as number);
      if (gotA.length === 50) done();
    });
    await channel.listen(b, (p) => gotB.push(p[0] as number));
    for (let i = 0; i < 50; i++) await channel.send(a, new Uint8Array([i]));
    await channel.send(uid("nobody"), new Uint8Array([1]));
    await all;
    t.deepEqual(
      gotA,
      Array.from({ length: 50 }, (_, i) => i),
    );
    await stopA();
    await channel.send(a, new Uint8Array([99]));
    await channel.send(b, new Uint8Array([7]));
    await new Promise((r) => setTimeout(r, 200));
    t.deepEqual(gotB, [7]);
    t.is(gotA.length, 50, "nothing after stop");
  });
}
