import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

/** ROOT is the repository root. */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** bin returns the path of a tool installed in node_modules/.bin. */
export function bin(name: string): string {
  return `${ROOT}node_modules/.bin/${name}`;
}

/** run runs a command in the repository root and reports how it ended (it never throws). */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      {
        cwd: opts.cwd ?? ROOT,
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, ...opts.env },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}
