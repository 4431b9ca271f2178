// How the server is started from the settings. No `vscode` import.

export interface ServerSettings {
  /** The repository (workspace folder) the server is for. */
  repo: string | undefined;
  http: boolean;
  allowedRoots: string[];
}

export interface ServerLaunch {
  args: string[];
  env: Record<string, string>;
}

export function serverLaunch(s: ServerSettings, baseEnv: Record<string, string | undefined>): ServerLaunch {
  const args = ["lsp"];
  if (s.repo) {
    args.push("--repo", s.repo);
  }
  if (!s.http) {
    args.push("--no-http");
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(baseEnv)) {
    if (v !== undefined) {
      env[k] = v;
    }
  }
  const roots = s.allowedRoots.map((r) => r.trim()).filter((r) => r !== "");
  if (roots.length > 0) {
    env.NOCTUNE_STUDIO_ALLOWED_ROOTS = roots.join(":");
  }
  return { args, env };
}

/** The profile to send, or undefined for the configured default. */
export function profileParam(setting: string): string | undefined {
  const p = setting.trim();
  return p === "" ? undefined : p;
}
