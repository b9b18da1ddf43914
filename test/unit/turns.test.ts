import test from "ava";
import { Turns } from "../../services/gateway/turns.ts";

test("turns: at most the limit run, the rest wait in order, closing refuses the waiting", async (t) => {
  const turns = new Turns(2);
  t.true(await turns.take());
  t.true(await turns.take());
  const order: string[] = [];
  const third = turns.take().then((run) => order.push(`third ${run}`));
  const fourth = turns.take().then((run) => order.push(`fourth ${run}`));
  await Promise.resolve();
  t.deepEqual(order, [], "both wait while two run");
  turns.give();
  await third;
  t.deepEqual(order, ["third true"], "a finished turn goes to the first waiting");
  turns.close();
  await fourth;
  t.deepEqual(order, ["third true", "fourth false"]);
  t.false(await turns.take(), "nothing runs once closed");
});
