// Noctune: Chat — a webview panel that sends noctune/chat and streams noctune/chatDelta into a
// rendered Markdown transcript.

import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";
import { ChatModel } from "./chatModel";
import { ChatCancelParams, ChatDelta, ChatParams, ChatResult, Methods } from "./protocol";

export class ChatPanel {
  private static current: ChatPanel | undefined;
  private readonly model = new ChatModel();
  private pending: string | undefined;
  private renderQueued = false;

  static show(getClient: () => LanguageClient | undefined, profile: () => string | undefined): ChatPanel {
    if (ChatPanel.current) {
      ChatPanel.current.panel.reveal(vscode.ViewColumn.Beside);
      return ChatPanel.current;
    }
    const panel = vscode.window.createWebviewPanel("noctuneChat", "Noctune Chat", vscode.ViewColumn.Beside, {
      enableScripts: true,
      retainContextWhenHidden: true,
    });
    ChatPanel.current = new ChatPanel(panel, getClient, profile);
    return ChatPanel.current;
  }

  /** Routes a delta to the open panel (deltas of other clients' requests are ignored). */
  static onDelta(d: ChatDelta): void {
    ChatPanel.current?.delta(d);
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly getClient: () => LanguageClient | undefined,
    private readonly profile: () => string | undefined,
  ) {
    panel.webview.html = this.html();
    panel.onDidDispose(() => {
      if (ChatPanel.current === this) {
        ChatPanel.current = undefined;
      }
    });
    panel.webview.onDidReceiveMessage((m: { type: string; text?: string }) => {
      if (m.type === "send" && m.text && m.text.trim() !== "") {
        void this.send(m.text);
      } else if (m.type === "cancel") {
        void this.cancel();
      } else if (m.type === "new") {
        this.model.session = undefined;
        this.model.entries.length = 0;
        this.render();
      }
    });
  }

  private delta(d: ChatDelta): void {
    if (this.model.apply(d)) {
      this.scheduleRender();
    }
  }

  private scheduleRender(): void {
    if (this.renderQueued) {
      return;
    }
    this.renderQueued = true;
    setTimeout(() => {
      this.renderQueued = false;
      this.render();
    }, 30);
  }

  private render(): void {
    void this.panel.webview.postMessage({ type: "render", html: this.model.renderHtml(), busy: this.pending !== undefined });
  }

  private context(): ChatParams["context"] {
    const ed = vscode.window.activeTextEditor;
    if (!ed) {
      return undefined;
    }
    const sel = ed.selection;
    const ctx: ChatParams["context"] = { uri: ed.document.uri.toString() };
    if (!sel.isEmpty) {
      ctx.selection = {
        start: { line: sel.start.line, character: sel.start.character },
        end: { line: sel.end.line, character: sel.end.character },
      };
      ctx.text = ed.document.getText(sel);
    }
    return ctx;
  }

  async send(text: string): Promise<void> {
    const client = this.getClient();
    if (!client) {
      void vscode.window.showErrorMessage("Noctune: the language server is not running (Noctune: Restart).");
      return;
    }
    const requestId = this.model.newRequestId();
    this.model.addUser(text);
    this.model.begin(requestId);
    this.pending = requestId;
    this.render();
    const params: ChatParams = { message: text, requestId, session: this.model.session, profile: this.profile(), context: this.context() };
    try {
      const r = await client.sendRequest<ChatResult>(Methods.chat, params);
      this.model.finish(requestId, r);
    } catch (e) {
      this.model.fail(requestId, e instanceof Error ? e.message : String(e));
    } finally {
      this.pending = undefined;
      this.render();
    }
  }

  private async cancel(): Promise<void> {
    const client = this.getClient();
    if (client && this.pending) {
      const p: ChatCancelParams = { requestId: this.pending };
      await client.sendRequest(Methods.chatCancel, p);
    }
  }

  private html(): string {
    const nonce = Array.from({ length: 24 }, () => Math.floor(Math.random() * 36).toString(36)).join("");
    return `<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<style nonce="${nonce}">
body { font-family: var(--vscode-font-family); color: var(--vscode-foreground); padding: 0 8px; }
#log { padding-bottom: 7em; }
.msg { margin: 8px 0; padding: 6px 8px; border-radius: 4px; }
.user { background: var(--vscode-input-background); white-space: pre-wrap; }
.assistant.streaming::after { content: "▍"; opacity: .6; }
.tool, .notice { opacity: .8; font-size: .9em; }
.error { color: var(--vscode-errorForeground); }
pre { background: var(--vscode-textCodeBlock-background); padding: 6px; overflow-x: auto; }
form { position: fixed; bottom: 0; left: 0; right: 0; padding: 8px; background: var(--vscode-editor-background); display: flex; gap: 6px; }
textarea { flex: 1; min-height: 3em; color: var(--vscode-input-foreground); background: var(--vscode-input-background); border: 1px solid var(--vscode-input-border, transparent); }
</style></head>
<body>
<div id="log" aria-live="polite"></div>
<form id="f">
  <textarea id="q" placeholder="Ask about this repository (Ctrl+Enter to send)" aria-label="Message"></textarea>
  <button type="submit" id="send">Send</button>
  <button type="button" id="stop" disabled>Stop</button>
  <button type="button" id="new">New</button>
</form>
<script nonce="${nonce}">
const vscode = acquireVsCodeApi();
const log = document.getElementById('log'), q = document.getElementById('q');
const send = document.getElementById('send'), stop = document.getElementById('stop');
document.getElementById('f').addEventListener('submit', (e) => { e.preventDefault(); if (q.value.trim()) { vscode.postMessage({type: 'send', text: q.value}); q.value = ''; } });
q.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { document.getElementById('f').requestSubmit(); } });
stop.addEventListener('click', () => vscode.postMessage({type: 'cancel'}));
document.getElementById('new').addEventListener('click', () => vscode.postMessage({type: 'new'}));
window.addEventListener('message', (e) => {
  const m = e.data;
  if (m.type === 'render') { log.innerHTML = m.html; send.disabled = m.busy; stop.disabled = !m.busy; window.scrollTo(0, document.body.scrollHeight); }
});
</script></body></html>`;
  }
}
