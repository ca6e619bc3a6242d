// The console's only door to the server: the public API documented in the README.
// The bearer token lives in sessionStorage (see session.ts); no cookies are used, so there is
// no ambient credential for another site to ride on (no CSRF surface).
import { session } from "./session";

export class ApiError extends Error {
  constructor(
    public status: number,
    public detail: string,
    public fields: Record<string, string> = {},
    public retryAfter: number | null = null,
  ) {
    super(detail);
  }
}

type Query = Record<string, string | number | undefined | null>;

function url(path: string, query?: Query): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

interface ValidationItem {
  loc?: (string | number)[];
  msg?: string;
}

async function toError(r: Response): Promise<ApiError> {
  let detail = `${r.status} ${r.statusText}`;
  const fields: Record<string, string> = {};
  try {
    const body = await r.json();
    if (typeof body.detail === "string") detail = body.detail;
    else if (Array.isArray(body.detail)) {
      const items = body.detail as ValidationItem[];
      detail = items.map((i) => `${(i.loc ?? []).slice(1).join(".")}: ${i.msg}`).join("; ");
      for (const i of items) {
        const name = String((i.loc ?? []).slice(1)[0] ?? "");
        if (name) fields[name] = fields[name] ? `${fields[name]}; ${i.msg}` : String(i.msg);
      }
    }
  } catch {
    /* not JSON: keep the status line */
  }
  const ra = r.headers.get("Retry-After");
  return new ApiError(r.status, detail, fields, ra ? Number(ra) : null);
}

type RequestOpts = { query?: Query; json?: unknown; form?: Record<string, string>; signal?: AbortSignal; headers?: Record<string, string> };

export async function request<T>(method: string, path: string, opts: RequestOpts = {}): Promise<T> {
  return (await requestWithHeaders<T>(method, path, opts)).body;
}

async function requestWithHeaders<T>(method: string, path: string, opts: RequestOpts = {}): Promise<{ body: T; headers: Headers }> {
  const headers: Record<string, string> = { Accept: "application/json", ...(opts.headers ?? {}) };
  const token = session.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  let body: BodyInit | undefined;
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.json);
  } else if (opts.form) {
    body = new URLSearchParams(opts.form);
  }
  let r: Response;
  try {
    r = await fetch(url(path, opts.query), { method, headers, body, signal: opts.signal, credentials: "omit" });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "network error: the server could not be reached");
  }
  if (r.status === 401 && token) session.expired();
  if (!r.ok) throw await toError(r);
  if (r.status === 204) return { body: undefined as T, headers: r.headers };
  return { body: (await r.json()) as T, headers: r.headers };
}

/** One page of a header-paged list (the body is the array; the next page's cursor comes in
 * ``X-Next-Cursor``, absent on the last page). */
export async function getHeaderPage<T>(path: string, query?: Query, signal?: AbortSignal): Promise<Page<T>> {
  const { body, headers } = await requestWithHeaders<T[]>("GET", path, { query, signal });
  return { items: body, next_cursor: headers.get("X-Next-Cursor") || null };
}

export type AgentScope = "mine" | "shared" | "all";
export const AGENT_PAGE = 100;
export const AGENT_MAX_PAGES = 5;

/** Every agent the caller may use (their own and others' shared ones) for pickers and name
 * look-ups: ``scope=all``, following ``X-Next-Cursor`` for at most ``AGENT_MAX_PAGES`` pages
 * of ``AGENT_PAGE``, so a huge catalogue cannot make the console fetch without end. */
export async function usableAgents(signal?: AbortSignal): Promise<Agent[]> {
  const out: Agent[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < AGENT_MAX_PAGES; i++) {
    const page: Page<Agent> = await getHeaderPage<Agent>("/api/agents", { scope: "all", limit: AGENT_PAGE, cursor }, signal);
    out.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return out;
}

export const api = {
  get: <T>(path: string, query?: Query, signal?: AbortSignal) => request<T>("GET", path, { query, signal }),
  post: <T>(path: string, json?: unknown, headers?: Record<string, string>) => request<T>("POST", path, { json, headers }),
  patch: <T>(path: string, json: unknown) => request<T>("PATCH", path, { json }),
  del: (path: string) => request<void>("DELETE", path),
};

// ---- shapes (the API's response bodies) ----
export interface User {
  id: string;
  email: string;
  name: string;
  role: string;
  is_active: boolean;
  created_at: string;
}
export interface Token {
  access_token: string;
  expires_at: string;
}
export interface Agent {
  id: string;
  user_id: string;
  name: string;
  description: string | null;
  instructions: string;
  model: string;
  model_settings: { temperature?: number; max_tokens?: number };
  tools: string[];
  knowledge_base_ids?: string[];
  delegate_ids?: string[];
  visibility: "private" | "shared";
  memory?: AgentMemory;
  created_at: string;
  updated_at: string | null;
}
/** An agent's own memory setting (``memory`` in the agent API; both true when left out). */
export interface AgentMemory {
  enabled: boolean;
  shared: boolean;
}
export interface Message {
  id: string;
  conversation_id: string;
  seq: number;
  content: string;
  message_type: string;
  user_id: string;
  agent_id: string | null;
  metadata: Record<string, unknown>;
  timestamp: string;
}
export interface Conversation {
  id: string;
  user_id: string;
  agent_id: string;
  title: string | null;
  status: string;
  created_at: string;
  updated_at: string | null;
  last_message_at: string | null;
  message_count: number;
  total_tokens: number;
  total_cost: number;
  avg_response_time: number;
  last_error: string | null;
}
export interface SearchHit {
  kind: "message" | "conversation";
  conversation_id: string;
  message_id: string | null;
  seq: number | null;
  message_type: string | null;
  agent_id: string | null;
  created_at: string;
  title: string | null;
  snippet: string;
  highlights: [number, number][];
  score: number;
}
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}
export interface History {
  conversation_id: string;
  messages: Message[];
  next_before: string | null;
  source: string;
}
export interface ChatOut {
  conversation_id: string;
  user_message: Message;
  agent_message: Message;
  usage: { input_tokens: number; output_tokens: number; total_tokens: number; cost: number | null };
}
export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  created_at: string;
  last_used_at?: string | null;
  key?: string;
}
