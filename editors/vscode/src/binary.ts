// Finding the `noctune` binary: the setting, then PATH, then the copy bundled with the
// extension. No `vscode` import (tested with node --test).

import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export type Probe = (file: string) => boolean;

export interface Resolved {
  path: string;
  source: "setting" | "PATH" | "bundled";
}

export interface Unresolved {
  error: string;
}

export const defaultProbe: Probe = (file) => {
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) {
      return false;
    }
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

function expandHome(p: string): string {
  if (p === "~") {
    return os.homedir();
  }
  if (p.startsWith("~/")) {
    return path.join(os.homedir(), p.slice(2));
  }
  return p;
}

export interface ResolveOptions {
  /** `noctune.path` (may be empty). */
  setting: string;
  /** The PATH environment variable. */
  pathEnv: string | undefined;
  /** Where a bundled binary would be (`<extension>/bin/noctune`). */
  bundled: string;
  probe?: Probe;
  exe?: string;
}

export function resolveBinary(opts: ResolveOptions): Resolved | Unresolved {
  const probe = opts.probe ?? defaultProbe;
  const exe = opts.exe ?? (process.platform === "win32" ? "noctune.exe" : "noctune");
  const setting = opts.setting.trim();
  if (setting !== "") {
    const p = expandHome(setting);
    if (probe(p)) {
      return { path: p, source: "setting" };
    }
    return {
      error:
        `Noctune: the setting noctune.path points to "${setting}", which is not an executable file. ` +
        `Fix the setting, or clear it to use \`noctune\` from PATH.`,
    };
  }
  for (const dir of (opts.pathEnv ?? "").split(path.delimiter)) {
    if (dir === "") {
      continue;
    }
    const p = path.join(dir, exe);
    if (probe(p)) {
      return { path: p, source: "PATH" };
    }
  }
  if (probe(opts.bundled)) {
    return { path: opts.bundled, source: "bundled" };
  }
  return {
    error:
      "Noctune: cannot find the `noctune` binary (not set in noctune.path, not on PATH, not bundled at " +
      `${opts.bundled}). Build it with \`cargo install --path .\` in the Noctune Studio repository, ` +
      "or set noctune.path to its full path, then run Noctune: Restart.",
  };
}

export function isResolved(r: Resolved | Unresolved): r is Resolved {
  return (r as Resolved).path !== undefined;
}
