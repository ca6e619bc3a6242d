// Live turns over Server-Sent Events (README "Live turns"). EventSource cannot POST or send an
// Authorization header, so the stream is read with fetch and parsed here.
//  - POST /api/chat/agent with Accept: text/event-stream starts a turn;
//  - GET /api/chat/turns/{id}/events with Last-Event-ID resumes it (after a reload or a dropped
//    connection); unknown event kinds are ignored, as the contract asks.
// The live turn's id is kept in sessionStorage per conversation so a reload can resume it.
import { ApiError, request } from "./api";
import { session } from "./session";

export interface StreamEvent {
  id: number | null;
  event: string;
  data: Record<string, unknown>;
}

export type OnEvent = (e: StreamEvent) => void;

async function* parse(body: ReadableStream<Uint8Array>): AsyncGenerator<StreamEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let id: number | null = null;
  let event = "message";
  let data: string[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl).replace(/\r$/, "");
      buffer = buffer.slice(nl + 1);
      if (line === "") {
        if (data.length) {
          let parsed: Record<string, unknown> = {};
          try {
            parsed = JSON.parse(data.join("\n"));
          } catch {
            /* not JSON: keep it empty */
          }
          yield { id, event, data: parsed };
        }
        event = "message";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue; // keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = val;
      else if (field === "data") data.push(val);
      else if (field === "id") id = /^\d+$/.test(val) ? Number(val) : null;
    }
  }
}

async function open(method: string, path: string, body: unknown, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
  const h: Record<string, string> = { Accept: "text/event-stream", ...headers };
  const token = session.token();
  if (token) h.Authorization = `Bearer ${token}`;
  if (body !== undefined) h["Content-Type"] = "application/json";
  let r: Response;
  try {
    r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), signal, credentials: "omit" });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "network error: the server could not be reached");
  }
  if (!r.ok) {
    let detail = `${r.status} ${r.statusText}`;
    try {
      const j = await r.json();
      if (typeof j.detail === "string") detail = j.detail;
    } catch {
      /* keep the status line */
    }
    const ra = r.headers.get("Retry-After");
    throw new ApiError(r.status, detail, {}, ra ? Number(ra) : null);
  }
  return r;
}

const LIVE = "ev.live.";

export function liveTurn(conversationId: string): string | null {
  return sessionStorage.getItem(LIVE + conversationId);
}

function remember(conversationId: string, turnId: string | null): void {
  if (turnId) sessionStorage.setItem(LIVE + conversationId, turnId);
  else sessionStorage.removeItem(LIVE + conversationId);
}

const FINAL = new Set(["done", "error"]);

/** Reads one stream to its end; resumes from the last event id when the connection drops
 * before `done`/`error` (a few tries with backoff). Returns the final event. */
async function follow(first: Response, turnRef: { id: string | null; conv: string | null }, onEvent: OnEvent, signal: AbortSignal): Promise<StreamEvent> {
  let response: Response | null = first;
  let last: number | null = null;
  let tries = 0;
  for (;;) {
    try {
      for await (const e of parse(response!.body!)) {
        if (e.id !== null) last = e.id;
        tries = 0;
        if (e.event === "turn") {
          turnRef.id = String(e.data.turn_id);
          turnRef.conv = String(e.data.conversation_id);
          remember(turnRef.conv, turnRef.id);
        }
        onEvent(e);
        if (FINAL.has(e.event)) {
          if (turnRef.conv) remember(turnRef.conv, null);
          return e;
        }
      }
    } catch (err) {
      if ((err as Error).name === "AbortError") throw err;
    }
    // the connection ended before the turn did: resume after the last event we saw
    if (!turnRef.id || tries >= 5) throw new ApiError(0, "the connection dropped and the answer could not be resumed");
    await new Promise((r) => setTimeout(r, 300 * 2 ** tries++));
    response = await open("GET", `/api/chat/turns/${turnRef.id}/events`, undefined, last !== null ? { "Last-Event-ID": String(last) } : {}, signal).catch((e: ApiError) => {
      if (e.status === 0) return null;
      throw e;
    });
    if (!response) continue;
  }
}

export async function streamTurn(
  body: { message: string; agent_id?: string; conversation_id?: string },
  key: string,
  onEvent: OnEvent,
  signal: AbortSignal,
): Promise<StreamEvent> {
  return streamRequest("POST", "/api/chat/agent", body, { "Idempotency-Key": key }, body.conversation_id ?? null, onEvent, signal);
}

/** Any live-turn request: a new turn, a regeneration, an edit of the last message. */
export async function streamRequest(
  method: string,
  path: string,
  body: unknown,
  headers: Record<string, string>,
  conversationId: string | null,
  onEvent: OnEvent,
  signal: AbortSignal,
): Promise<StreamEvent> {
  const r = await open(method, path, body, headers, signal);
  const ref = { id: r.headers.get("X-Turn-Id"), conv: r.headers.get("X-Conversation-Id") ?? conversationId };
  if (ref.id && ref.conv) remember(ref.conv, ref.id);
  return follow(r, ref, onEvent, signal);
}

/** Resume a turn that was live when the page was left (reload): replays it from the start. */
export async function resumeTurn(conversationId: string, turnId: string, onEvent: OnEvent, signal: AbortSignal): Promise<StreamEvent | null> {
  let r: Response;
  try {
    r = await open("GET", `/api/chat/turns/${turnId}/events`, undefined, {}, signal);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      remember(conversationId, null); // expired or unknown: the history has the answer
      return null;
    }
    throw e;
  }
  return follow(r, { id: turnId, conv: conversationId }, onEvent, signal);
}

export function cancelTurn(turnId: string): Promise<unknown> {
  return request("POST", `/api/chat/turns/${turnId}/cancel`);
}
