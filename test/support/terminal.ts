import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import type { ExecutionContext } from "ava";
import { ROOT } from "./tools.ts";

/** Terminal drives `npm run chat` (client/cli.ts), started with `args`, by stdin and stdout. */
export class Terminal {
  readonly proc: ChildProcessWithoutNullStreams;
  output = "";
  #waiters: Array<() => void> = [];

  constructor(t: ExecutionContext, args: string[]) {
    this.proc = spawn(process.execPath, ["client/cli.ts", ...args], { cwd: ROOT });
    const append = (d: Buffer) => {
      this.output += d;
      for (const w of this.#waiters.splice(0)) w();
    };
    this.proc.stdout.on("data", append);
    this.proc.stderr.on("data", append);
    t.teardown(() => {
      this.proc.kill();
    });
  }

  type(line: string) {
    this.proc.stdin.write(`${line}\n`);
  }

  /** see waits until the output contains `text` (after `from`), and returns where it ends. */
  see(text: string | RegExp, from = 0, ms = 10_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`never saw ${text} in:\n${this.output}`)),
        ms,
      );
      const check = () => {
        const rest = this.output.slice(from);
        const m = typeof text === "string" ? rest.indexOf(text) : rest.search(text);
        if (m >= 0) {
          clearTimeout(timer);
          resolve(from + m + 1);
          return;
        }
        this.#waiters.push(check);
      };
      check();
    });
  }
}
