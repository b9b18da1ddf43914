/**
 * lock-platform-packages adds lockfile entries for the platform-specific optional packages
 * (e.g. @biomejs/cli-darwin-arm64) that the npm registry reachable from CI does not carry.
 * Without them `npm ci` refuses the lockfile as out of sync; with them it skips the packages
 * on platforms they are not for, as it always does. npm fills in their integrity on a machine
 * that installs them (a developer's Mac). Run it after `npm install` changes the lockfile.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const PLATFORM = /(android|darwin|linux|win32|freebsd)-(arm64|x64|armv7|arm|ia32)(-musl)?$/;

interface LockEntry {
  version?: string;
  optionalDependencies?: Record<string, string>;
  dev?: boolean;
  [key: string]: unknown;
}

/** missingPlatformPackages lists optional platform packages that have no lockfile entry. */
export function missingPlatformPackages(lock: { packages: Record<string, LockEntry> }) {
  const missing: Array<{ name: string; version: string; entry: LockEntry }> = [];
  for (const meta of Object.values(lock.packages)) {
    for (const [name, version] of Object.entries(meta.optionalDependencies ?? {})) {
      if (lock.packages[`node_modules/${name}`]) continue;
      const m = PLATFORM.exec(name);
      if (!m) continue;
      const entry: LockEntry = {
        version,
        cpu: [m[2] === "armv7" ? "arm" : m[2]],
        dev: meta.dev ?? false,
        optional: true,
        os: [m[1]],
      };
      if (m[3]) entry.libc = ["musl"];
      missing.push({ name, version, entry });
    }
  }
  return missing;
}

if (import.meta.main) {
  const path = fileURLToPath(new URL("../package-lock.json", import.meta.url));
  const lock = JSON.parse(readFileSync(path, "utf8"));
  const missing = missingPlatformPackages(lock);
  for (const m of missing) lock.packages[`node_modules/${m.name}`] = m.entry;
  writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
  console.log(
    missing.length === 0 ? "nothing to add" : `added ${missing.map((m) => m.name).join(", ")}`,
  );
}
