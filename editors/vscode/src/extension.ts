// Noctune Studio for VS Code: starts `noctune lsp` for the workspace and adds the Chat, Start
// Run, Show Approvals, Open Studio and Restart commands. Diagnostics, code actions (Approve /
// Reject / Show diff), permission prompts, chat edits and run progress are standard LSP
// features the language client handles by itself.

import * as path from "path";
import * as vscode from "vscode";
import { LanguageClient, LanguageClientOptions, ServerOptions, TransportKind } from "vscode-languageclient/node";
import { isResolved, resolveBinary } from "./binary";
import { ChatPanel } from "./chatView";
import {
  ApprovalItem,
  ApprovalsResult,
  Commands,
  DecideArgs,
  Methods,
  Notifications,
  PacksResult,
  RunRecord,
  StudioUrlResult,
  type ChatDelta,
} from "./protocol";
import { profileParam, serverLaunch } from "./settings";

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel | undefined;

function config() {
  return vscode.workspace.getConfiguration("noctune");
}

function profile(): string | undefined {
  return profileParam(config().get<string>("profile", ""));
}

async function start(context: vscode.ExtensionContext): Promise<void> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  const binName = process.platform === "win32" ? "noctune.exe" : "noctune";
  const resolved = resolveBinary({
    setting: config().get<string>("path", ""),
    pathEnv: process.env.PATH,
    bundled: path.join(context.extensionPath, "bin", binName),
  });
  if (!isResolved(resolved)) {
    const pick = await vscode.window.showErrorMessage(resolved.error, "Open Settings");
    if (pick === "Open Settings") {
      void vscode.commands.executeCommand("workbench.action.openSettings", "noctune.path");
    }
    return;
  }
  const launch = serverLaunch(
    { repo: folder?.uri.fsPath, http: config().get<boolean>("http", true), allowedRoots: config().get<string[]>("allowedRoots", []) },
    process.env,
  );
  const serverOptions: ServerOptions = {
    command: resolved.path,
    args: launch.args,
    transport: TransportKind.stdio,
    options: { cwd: folder?.uri.fsPath, env: launch.env },
  };
  output ??= vscode.window.createOutputChannel("Noctune", { log: true });
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    outputChannel: output,
    workspaceFolder: folder,
  };
  client = new LanguageClient("noctune", "Noctune", serverOptions, clientOptions);
  client.onNotification(Notifications.chatDelta, (d: ChatDelta) => ChatPanel.onDelta(d));
  try {
    await client.start();
  } catch (e) {
    void vscode.window.showErrorMessage(`Noctune: the language server did not start (${resolved.path}): ${String(e)}`);
    client = undefined;
  }
}

async function stop(): Promise<void> {
  const c = client;
  client = undefined;
  if (c) {
    await c.stop();
  }
}

function requireClient(): LanguageClient | undefined {
  if (!client) {
    void vscode.window.showErrorMessage("Noctune: the language server is not running. Run Noctune: Restart.");
  }
  return client;
}

async function startRun(): Promise<void> {
  const c = requireClient();
  if (!c) {
    return;
  }
  const packs = await c.sendRequest<PacksResult>(Methods.packs, {});
  const pack = await vscode.window.showQuickPick(packs.packs, { placeHolder: "Policy pack to run on this repository" });
  if (!pack) {
    return;
  }
  try {
    const rec = await c.sendRequest<RunRecord>(Methods.runsStart, { pack, profile: profile() });
    void vscode.window.showInformationMessage(`Noctune: run ${rec.run_id} (${rec.pack}) started on branch ${rec.branch}.`);
  } catch (e) {
    void vscode.window.showErrorMessage(`Noctune: ${e instanceof Error ? e.message : String(e)}`);
  }
}

async function showApprovals(): Promise<void> {
  const c = requireClient();
  if (!c) {
    return;
  }
  const r = await c.sendRequest<ApprovalsResult>(Methods.approvals, {});
  if (r.approvals.length === 0) {
    void vscode.window.showInformationMessage("Noctune: no approvals are waiting.");
    return;
  }
  const picked = await vscode.window.showQuickPick(
    r.approvals.map((a) => ({
      label: `${a.file_path}:${a.line + 1}`,
      description: `${a.pack} · risk ${a.risk_score} · ${a.lines_changed} lines`,
      detail: a.reason,
      item: a,
    })),
    { placeHolder: "Pending approvals (pick one to review it)" },
  );
  if (!picked) {
    return;
  }
  await review(c, picked.item);
}

async function review(c: LanguageClient, a: ApprovalItem): Promise<void> {
  const doc = await vscode.workspace.openTextDocument(vscode.Uri.parse(a.uri));
  const ed = await vscode.window.showTextDocument(doc);
  const pos = new vscode.Position(a.line, 0);
  ed.selection = new vscode.Selection(pos, pos);
  ed.revealRange(new vscode.Range(pos, pos), vscode.TextEditorRevealType.InCenter);
  const action = await vscode.window.showQuickPick(["Approve", "Reject", "Show diff"], { placeHolder: `${a.file_path}: ${a.reason}` });
  const args: DecideArgs = { run_id: a.run_id, approval_id: a.approval_id };
  const command = action === "Approve" ? Commands.approve : action === "Reject" ? Commands.reject : action === "Show diff" ? Commands.showDiff : undefined;
  if (command) {
    await c.sendRequest("workspace/executeCommand", { command, arguments: [args] });
  }
}

async function openStudio(): Promise<void> {
  const c = requireClient();
  if (!c) {
    return;
  }
  const r = await c.sendRequest<StudioUrlResult>(Methods.studioUrl, { open: false });
  if (!r.url) {
    void vscode.window.showErrorMessage(`Noctune: /studio is not available: ${r.error ?? "unknown reason"}`);
    return;
  }
  await vscode.env.openExternal(vscode.Uri.parse(r.url));
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  context.subscriptions.push(
    vscode.commands.registerCommand("noctune.chat", () => ChatPanel.show(() => client, profile)),
    vscode.commands.registerCommand("noctune.startRun", startRun),
    vscode.commands.registerCommand("noctune.showApprovals", showApprovals),
    vscode.commands.registerCommand("noctune.openStudio", openStudio),
    vscode.commands.registerCommand("noctune.restart", async () => {
      await stop();
      await start(context);
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("noctune.path") || e.affectsConfiguration("noctune.allowedRoots") || e.affectsConfiguration("noctune.http")) {
        await stop();
        await start(context);
      }
    }),
  );
  await start(context);
}

export async function deactivate(): Promise<void> {
  await stop();
}
