// The chat transcript as the view shows it, built from noctune/chat results and
// noctune/chatDelta notifications. No `vscode` import.

import type { ChatDelta, ChatResult } from "./protocol";
import { escapeHtml, renderMarkdown } from "./markdown";

export type EntryKind = "user" | "assistant" | "tool" | "notice" | "error";

export interface Entry {
  kind: EntryKind;
  text: string;
  requestId?: string;
  done?: boolean;
}

function short(v: unknown, max = 160): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

export class ChatModel {
  session: string | undefined;
  readonly entries: Entry[] = [];
  private nextId = 1;

  /** A new request id for the next message. */
  newRequestId(): string {
    return `vscode-${Date.now().toString(36)}-${this.nextId++}`;
  }

  addUser(text: string): void {
    this.entries.push({ kind: "user", text });
  }

  begin(requestId: string): void {
    this.entries.push({ kind: "assistant", text: "", requestId });
  }

  private assistant(requestId: string): Entry | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i];
      if (e.kind === "assistant" && e.requestId === requestId) {
        return e;
      }
    }
    return undefined;
  }

  /** Applies one delta; false if it is not for a request of this transcript. */
  apply(d: ChatDelta): boolean {
    const a = this.assistant(d.requestId);
    if (!a) {
      return false;
    }
    this.session = d.session;
    switch (d.kind) {
      case "delta":
        a.text += d.text ?? "";
        break;
      case "reasoning":
        break;
      case "tool_call":
        this.insertBefore(a, { kind: "tool", text: `${d.name ?? "tool"} ${short(d.arguments)}`, requestId: d.requestId });
        break;
      case "tool_result":
        this.insertBefore(a, {
          kind: "tool",
          text: `${d.name ?? "tool"} ${d.ok ? "ok" : "failed"}: ${short(d.result)}`,
          requestId: d.requestId,
        });
        break;
      case "permission_request":
        this.insertBefore(a, { kind: "notice", text: `Permission asked: ${d.summary ?? d.name ?? ""}`, requestId: d.requestId });
        break;
      case "notice":
        this.insertBefore(a, { kind: "notice", text: d.message ?? "", requestId: d.requestId });
        break;
      case "done":
        a.done = true;
        break;
      case "error":
        a.done = true;
        this.entries.push({ kind: "error", text: d.message ?? "error", requestId: d.requestId });
        break;
    }
    return true;
  }

  private insertBefore(anchor: Entry, e: Entry): void {
    const i = this.entries.indexOf(anchor);
    this.entries.splice(i < 0 ? this.entries.length : i, 0, e);
  }

  /** The final answer is authoritative (a missed delta cannot leave the text short). */
  finish(requestId: string, r: ChatResult): void {
    this.session = r.session;
    const a = this.assistant(requestId);
    if (a) {
      if (r.text && r.text.length >= a.text.length) {
        a.text = r.text;
      }
      a.done = true;
    }
    if (r.error && !this.entries.some((e) => e.kind === "error" && e.requestId === requestId)) {
      this.entries.push({ kind: "error", text: r.error, requestId });
    }
  }

  fail(requestId: string, message: string): void {
    const a = this.assistant(requestId);
    if (a) {
      a.done = true;
    }
    this.entries.push({ kind: "error", text: message, requestId });
  }

  renderHtml(): string {
    return this.entries
      .map((e) => {
        switch (e.kind) {
          case "user":
            return `<div class="msg user">${escapeHtml(e.text)}</div>`;
          case "assistant":
            return `<div class="msg assistant${e.done ? "" : " streaming"}">${renderMarkdown(e.text)}</div>`;
          case "tool":
            return `<div class="msg tool"><code>${escapeHtml(e.text)}</code></div>`;
          case "notice":
            return `<div class="msg notice">${escapeHtml(e.text)}</div>`;
          case "error":
            return `<div class="msg error">${escapeHtml(e.text)}</div>`;
        }
      })
      .join("\n");
  }
}
