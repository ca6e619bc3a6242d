import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, ApiError, usableAgents, type Agent, type ChatOut, type Conversation, type History, type Message, type Page, type User } from "../api";
import { cancelTurn, liveTurn, resumeTurn, streamRequest, streamTurn, type StreamEvent } from "../stream";
import { t, fmtDate, fmtCost } from "../i18n";
import { go } from "../router";
import { ErrorBox } from "./common";
import { MessageView, type Handoff } from "./Message";
import { SearchResults } from "./Search";

// the newest page is what a screen shows (opening costs the same at 10 or 10,000 messages);
// scrolling up then reads older pages of 50
const FIRST_PAGE = 20;
const HISTORY_PAGE = 50;
// a search hit's page: the message and this many newer ones below it
const FOCUS_AFTER = 5;

function newKey(): string {
  return crypto.randomUUID();
}

/** A date input's day as the instant its local midnight starts (``next``: the day after's), in
 *  the ISO form with a timezone the API's created_after/created_before need. */
export function dayStart(day: string, next = false): string | undefined {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return undefined;
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d + (next ? 1 : 0)).toISOString();
}

// ---------------------------------------------------------------- conversations list
function ConversationList({
  agents,
  activeId,
  refresh,
}: {
  agents: Map<string, Agent>;
  activeId: string | null;
  refresh: number;
}) {
  const [items, setItems] = useState<Conversation[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [agentFilter, setAgentFilter] = useState("");
  const [status, setStatus] = useState("active");
  const [search, setSearch] = useState("");
  const [sort, setSort] = useState("last_activity");
  const [createdFrom, setCreatedFrom] = useState("");
  const [createdTo, setCreatedTo] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const [title, setTitle] = useState("");
  // the latest request wins: a page for a filter changed since is dropped
  const latest = useRef(0);

  const load = useCallback(
    async (more: boolean) => {
      const ticket = ++latest.current;
      setError(null);
      try {
        const page = await api.get<Page<Conversation>>("/api/conversations", {
          limit: 30,
          cursor: more ? cursor : undefined,
          agent_id: agentFilter || undefined,
          status: status || undefined,
          sort,
          created_after: dayStart(createdFrom),
          created_before: dayStart(createdTo, true),
        });
        if (ticket !== latest.current) return;
        setItems((prev) => (more ? [...prev, ...page.items] : page.items));
        setCursor(page.next_cursor);
      } catch (e) {
        if (ticket === latest.current) setError(e);
      }
    },
    [cursor, agentFilter, status, sort, createdFrom, createdTo],
  );

  useEffect(() => {
    load(false);
  }, [agentFilter, status, sort, createdFrom, createdTo, refresh]);

  async function rename(c: Conversation) {
    try {
      const updated = await api.patch<Conversation>(`/api/conversations/${c.id}`, { title });
      setItems(items.map((x) => (x.id === c.id ? updated : x)));
      setEditing(null);
    } catch (e) {
      setError(e);
    }
  }
  async function toggleArchive(c: Conversation) {
    try {
      await api.patch(`/api/conversations/${c.id}`, { status: c.status === "archived" ? "active" : "archived" });
      load(false);
    } catch (e) {
      setError(e);
    }
  }
  async function remove(c: Conversation) {
    if (!confirm(t("confirmDelete"))) return;
    try {
      await api.del(`/api/conversations/${c.id}`);
      setItems(items.filter((x) => x.id !== c.id));
      if (activeId === c.id) go("/chat");
    } catch (e) {
      setError(e);
    }
  }

  const q = search.trim();

  return (
    <aside class="sidebar" aria-labelledby="conv-title">
      <div class="row spread">
        <h2 id="conv-title">{t("conversations")}</h2>
        <a class="button primary small" href="#/chat" data-testid="new-chat">{t("newChat")}</a>
      </div>
      <div class="filters">
        <label class="sr-only" for="conv-search">{t("searchTitles")}</label>
        <input id="conv-search" type="search" placeholder={t("searchTitles")} value={search} onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
        <label class="sr-only" for="conv-agent">{t("agent")}</label>
        <select id="conv-agent" value={agentFilter} onChange={(e) => setAgentFilter((e.target as HTMLSelectElement).value)}>
          <option value="">{t("allAgents")}</option>
          {[...agents.values()].map((a) => <option value={a.id}>{a.name}</option>)}
        </select>
        <label class="sr-only" for="conv-status">{t("status")}</label>
        <select id="conv-status" value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}>
          <option value="active">{t("active")}</option>
          <option value="archived">{t("archived")}</option>
          <option value="">{t("any")}</option>
        </select>
        <label class="sr-only" for="conv-sort">{t("sortBy")}</label>
        <select id="conv-sort" value={sort} onChange={(e) => setSort((e.target as HTMLSelectElement).value)}>
          <option value="last_activity">{t("lastActivity")}</option>
          <option value="cost">{t("mostExpensive")}</option>
        </select>
        <details class="more-filters">
          <summary>
            {t("createdBetween")}
            {(createdFrom || createdTo) && `: ${createdFrom || "…"} – ${createdTo || "…"}`}
          </summary>
          <label for="conv-created-from">{t("from")}</label>
          <input id="conv-created-from" type="date" value={createdFrom} max={createdTo || undefined} onChange={(e) => setCreatedFrom((e.target as HTMLInputElement).value)} />
          <label for="conv-created-to">{t("to")}</label>
          <input id="conv-created-to" type="date" value={createdTo} min={createdFrom || undefined} onChange={(e) => setCreatedTo((e.target as HTMLInputElement).value)} />
        </details>
      </div>
      {q ? <SearchResults q={q} agentId={agentFilter} agents={agents} /> : <>
      <ErrorBox error={error} onRetry={() => load(false)} />
      <ul class="conv-list">
        {items.map((c) => (
          <li key={c.id} class={c.id === activeId ? "active" : ""} data-conversation={c.id}>
            {editing === c.id ? (
              <form class="row" onSubmit={(e) => { e.preventDefault(); rename(c); }}>
                <label class="sr-only" for={`title-${c.id}`}>{t("rename")}</label>
                <input id={`title-${c.id}`} value={title} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} autoFocus />
                <button type="submit" class="small">{t("save")}</button>
                <button type="button" class="small ghost" onClick={() => setEditing(null)}>{t("cancel")}</button>
              </form>
            ) : (
              <a href={`#/chat/${c.id}`} aria-current={c.id === activeId ? "page" : undefined}>
                <span class="conv-title">{c.title || t("untitled")}</span>
                <span class="muted small">
                  {agents.get(c.agent_id)?.name ?? "—"} · {fmtDate(c.last_message_at ?? c.created_at)} · {fmtCost(c.total_cost)}
                </span>
              </a>
            )}
            <div class="conv-actions">
              <button class="ghost small" onClick={() => { setEditing(c.id); setTitle(c.title ?? ""); }}>{t("rename")}</button>
              <button class="ghost small" onClick={() => toggleArchive(c)}>{c.status === "archived" ? t("unarchive") : t("archive")}</button>
              <button class="ghost small danger" onClick={() => remove(c)}>{t("delete")}</button>
            </div>
          </li>
        ))}
      </ul>
      {items.length === 0 && !error && <p class="muted">{t("noConversations")}</p>}
      {cursor && <button class="ghost" onClick={() => load(true)}>{t("next")}</button>}
      </>}
    </aside>
  );
}

// ---------------------------------------------------------------- the chat panel
interface Failed {
  error: ApiError;
  retry: (() => void) | null;
}

interface ToolCall {
  id?: string;
  name?: string;
  args?: unknown;
  result?: unknown;
}

/** The answer being written: the deltas so far and the tool calls, shown as they arrive. */
interface Live {
  turnId: string | null;
  text: string;
  tools: ToolCall[];
  handoffs?: Handoff[]; // the conversation moved to another agent during this turn
}

function asMessage(d: Record<string, unknown>, conversationId: string, userId: string): Message {
  return {
    id: String(d.id),
    conversation_id: conversationId,
    seq: Number(d.seq),
    content: String(d.content ?? ""),
    message_type: "user",
    user_id: userId,
    agent_id: null,
    metadata: {},
    timestamp: String(d.timestamp ?? new Date().toISOString()),
  };
}

export function ChatView({ user, conversationId, focusSeq = null }: { user: User; conversationId: string | null; focusSeq?: number | null }) {
  const [agents, setAgents] = useState<Map<string, Agent>>(new Map());
  const [agentId, setAgentId] = useState<string>(sessionStorage.getItem("ev.agent") ?? "");
  const [conversation, setConversation] = useState<Conversation | null>(null);
  const [messages, setMessages] = useState<Message[]>([]);
  const [before, setBefore] = useState<string | null>(null);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [failed, setFailed] = useState<Failed | null>(null);
  const [draft, setDraft] = useState("");
  const [pending, setPending] = useState<Message | null>(null);
  const [live, setLive] = useState<Live | null>(null);
  const [editing, setEditing] = useState<Message | null>(null);
  const [refresh, setRefresh] = useState(0);
  const scroller = useRef<HTMLDivElement>(null);
  const composer = useRef<HTMLTextAreaElement>(null);
  const anchor = useRef<{ height: number; top: number } | null>(null);
  const stick = useRef(true);
  const stream = useRef<AbortController | null>(null);
  const replaces = useRef(false);
  // the latest render's send (a retry made in an earlier render must not see stale state)
  const regenerateRef = useRef<() => Promise<void>>(async () => undefined);
  const sendRef = useRef<(text: string, key: string) => Promise<void>>(async () => undefined);

  useEffect(() => {
    usableAgents().then(async (list) => {
      const wanted = sessionStorage.getItem("ev.agent");
      if (wanted && !list.some((a) => a.id === wanted)) {
        // chosen on the Agents screen but beyond the picker's bound: fetch that one alone
        try {
          list = [await api.get<Agent>(`/api/agents/${wanted}`), ...list];
        } catch {
          /* deleted or no longer shared: the first usable agent is picked instead */
        }
      }
      setAgents(new Map(list.map((a) => [a.id, a])));
      setAgentId((cur) => (cur && list.some((a) => a.id === cur) ? cur : (list[0]?.id ?? "")));
    }, setError);
  }, []);

  /** Applies a live turn's events to the page; resolves with the final event. */
  function onEvent(conv: string | null, signal: AbortSignal) {
    return (e: StreamEvent) => {
      if (signal.aborted) return; // the page moved on: another reader owns this turn now
      const d = e.data;
      switch (e.event) {
        case "turn": {
          setLive((l) => ({ turnId: String(d.turn_id), text: l?.text ?? "", tools: l?.tools ?? [] }));
          const um = d.user_message as Record<string, unknown> | undefined;
          if (um) {
            const m = asMessage(um, String(d.conversation_id), user.id);
            setPending(null);
            setMessages((prev) => mergeNewest(prev, [m]));
          }
          if (!conv) {
            // a new conversation: open it (its page resumes this turn's events)
            sessionStorage.setItem("ev.agent", agentId);
            go(`/chat/${String(d.conversation_id)}`);
          }
          break;
        }
        case "delta":
          setLive((l) => ({ ...l, turnId: l?.turnId ?? null, tools: l?.tools ?? [], text: (l?.text ?? "") + String(d.delta ?? "") }));
          break;
        case "tool_call":
          setLive((l) => (l ? { ...l, tools: [...l.tools, { id: String(d.id), name: String(d.name), args: d.args }] } : l));
          break;
        case "handoff": {
          // the deltas after it are the new agent's; the conversation's current agent changes
          const move = d as Handoff;
          setLive((l) => (l ? { ...l, handoffs: [...(l.handoffs ?? []), move] } : l));
          if (move.to_agent_id) {
            const to = String(move.to_agent_id);
            setConversation((c) => (c ? { ...c, agent_id: to } : c));
            setAgentId(to);
          }
          break;
        }
        case "tool_result":
          setLive((l) => (l ? { ...l, tools: l.tools.map((c) => (c.id === String(d.id) ? { ...c, result: d.result } : c)) } : l));
          break;
        case "done": {
          const out = d as unknown as ChatOut;
          if (replaces.current && conv) {
            // a regeneration or an edit superseded earlier messages: show the current ones
            replaces.current = false;
            api.get<History>(`/api/conversations/${conv}/messages`, { limit: HISTORY_PAGE }).then((h) => {
              setMessages(h.messages);
              setBefore(h.next_before);
            }, setError);
          } else {
            setMessages((prev) => mergeNewest(prev, [out.user_message, out.agent_message]));
          }
          setLive(null);
          setPending(null);
          setRefresh((n) => n + 1);
          break;
        }
        case "error":
          setLive(null);
          break;
      }
    };
  }

  async function afterFailure(conv: string) {
    // the API kept the user's message and an error message recording the failure
    const h = await api.get<History>(`/api/conversations/${conv}/messages`, { limit: HISTORY_PAGE });
    setMessages((prev) => mergeNewest(prev, h.messages));
  }

  // opening a conversation reads only its newest page, then resumes a turn left live
  useEffect(() => {
    setMessages([]);
    setBefore(null);
    setConversation(null);
    setFailed(null);
    setError(null);
    setLive(null);
    setPending(null);
    setEditing(null);
    stream.current?.abort(); // a stream started on the previous page stops here (the turn goes on)
    stick.current = true;
    if (!conversationId) return;
    const ctl = new AbortController();
    // a search hit opens the page around its message (a few newer ones below it)
    const around = focusSeq !== null ? { before: String(focusSeq + FOCUS_AFTER + 1) } : {};
    stick.current = focusSeq === null;
    Promise.all([
      api.get<Conversation>(`/api/conversations/${conversationId}`, undefined, ctl.signal),
      api.get<History>(`/api/conversations/${conversationId}/messages`, { limit: FIRST_PAGE, ...around }, ctl.signal),
    ]).then(
      async ([c, h]) => {
        setConversation(c);
        setAgentId(c.agent_id);
        setMessages(h.messages);
        setBefore(h.next_before);
        if (focusSeq !== null) return; // reading the past: the live turn resumes on the newest page
        const turnId = liveTurn(conversationId);
        if (!turnId) return;
        setLive({ turnId, text: "", tools: [] });
        stream.current = ctl;
        try {
          const last = await resumeTurn(conversationId, turnId, onEvent(conversationId, ctl.signal), ctl.signal);
          if (last === null) setLive(null);
          else if (last.event === "error") {
            const asked = [...h.messages].reverse().find((m) => m.message_type === "user")?.content ?? "";
            setFailed({ error: new ApiError(Number(last.data.status ?? 502), String(last.data.detail ?? "")), retry: asked ? () => sendRef.current(asked, newKey()) : null });
            await afterFailure(conversationId);
          }
        } catch (e) {
          if ((e as Error).name !== "AbortError") {
            setLive(null);
            setError(e);
          }
        }
      },
      (e) => (e as Error).name !== "AbortError" && setError(e),
    );
    return () => ctl.abort();
  }, [conversationId, focusSeq]);

  // bring the searched message into view once its page is shown
  useLayoutEffect(() => {
    if (focusSeq === null) return;
    const el = scroller.current?.querySelector(`[data-seq="${focusSeq}"]`);
    if (el && !el.classList.contains("focused")) {
      el.classList.add("focused");
      el.scrollIntoView({ block: "center" });
    }
  }, [messages, focusSeq]);

  // keep the view at the bottom for new messages; keep the reader's place when older ones arrive
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    if (anchor.current) {
      el.scrollTop = el.scrollHeight - anchor.current.height + anchor.current.top;
      anchor.current = null;
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [messages, pending, live]);

  async function loadOlder() {
    if (!conversationId || !before || loadingOlder) return;
    setLoadingOlder(true);
    try {
      const h = await api.get<History>(`/api/conversations/${conversationId}/messages`, { limit: HISTORY_PAGE, before });
      const el = scroller.current!;
      anchor.current = { height: el.scrollHeight, top: el.scrollTop };
      setMessages((prev) => [...h.messages, ...prev]);
      setBefore(h.next_before);
    } catch (e) {
      setError(e);
    } finally {
      setLoadingOlder(false);
    }
  }

  function onScroll() {
    const el = scroller.current!;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 300) loadOlder();
  }

  async function send(text: string, key: string) {
    if (!text.trim() || pending || live) return;
    if (editing && conversationId) {
      const target = editing;
      setEditing(null);
      setDraft("");
      await runTurn(text, key, (ctl) =>
        streamRequest("PATCH", `/api/conversations/${conversationId}/messages/${target.id}`, { content: text }, {}, conversationId, onEvent(conversationId, ctl.signal), ctl.signal),
        true,
      );
      return;
    }
    // in an open conversation, another agent picked in the header takes it over (a handoff)
    const handover = conversation && agentId && agentId !== conversation.agent_id ? { agent_id: agentId } : {};
    const target = conversationId ? { conversation_id: conversationId, ...handover } : { agent_id: agentId };
    setPending({
      id: `pending-${key}`,
      conversation_id: conversationId ?? "",
      seq: (messages.at(-1)?.seq ?? 0) + 1,
      content: text,
      message_type: "user",
      user_id: user.id,
      agent_id: null,
      metadata: {},
      timestamp: new Date().toISOString(),
    });
    setDraft("");
    await runTurn(text, key, (ctl) => streamTurn({ message: text, ...target }, key, onEvent(conversationId, ctl.signal), ctl.signal), false);
  }

  async function regenerate() {
    if (!conversationId || pending || live) return;
    await runTurn("", newKey(), (ctl) =>
      streamRequest("POST", `/api/conversations/${conversationId}/regenerate`, undefined, {}, conversationId, onEvent(conversationId, ctl.signal), ctl.signal),
      true,
    );
  }

  /** Runs one live turn (new, regenerated or edited) and shows its failure, if any. */
  async function runTurn(text: string, key: string, start: (ctl: AbortController) => Promise<StreamEvent>, supersedes: boolean) {
    const again = (k: string) => (text ? () => sendRef.current(text, k) : () => regenerateRef.current());
    setFailed(null);
    setError(null);
    stick.current = true;
    replaces.current = supersedes;
    setLive({ turnId: null, text: "", tools: [] });
    const ctl = new AbortController();
    stream.current = ctl;
    try {
      const last = await start(ctl);
      if (last.event === "error") {
        setFailed({ error: new ApiError(Number(last.data.status ?? 502), String(last.data.detail ?? "")), retry: again(newKey()) });
        await afterFailure(String(last.data.conversation_id ?? conversationId));
      }
    } catch (e) {
      if ((e as Error).name === "AbortError") return; // the page moved on (a new conversation opened)
      setPending(null);
      setLive(null);
      const err = e instanceof ApiError ? e : new ApiError(0, String(e));
      // a network error may retry with the same key (the server re-attaches); a refused turn gets a new one
      setFailed({ error: err, retry: again(err.status === 0 ? key : newKey()) });
      if (text) setDraft(text);
    }
  }

  sendRef.current = send;
  regenerateRef.current = regenerate;

  async function stop() {
    if (!live?.turnId) return;
    try {
      await cancelTurn(live.turnId);
    } catch (e) {
      setError(e);
    }
  }

  function onKeyDown(e: KeyboardEvent) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send(draft, newKey());
    }
  }

  const lastUser = [...messages].reverse().find((m) => m.message_type === "user");
  const lastIsAnswer = messages.length > 0 && messages[messages.length - 1].message_type !== "user";
  const agentList = useMemo(() => [...agents.values()], [agents]);
  const agentName = conversation ? (agents.get(conversation.agent_id)?.name ?? "—") : null;
  const busy = !!pending || !!live;

  return (
    <div class="chat-layout">
      <ConversationList agents={agents} activeId={conversationId} refresh={refresh} />
      <section class="chat" aria-labelledby="chat-title">
        <header class="chat-head">
          <h1 id="chat-title">{conversation ? conversation.title || t("untitled") : t("newChat")}</h1>
          {conversation ? (
            <div class="row">
              <span class="muted">
                {agentName} · {conversation.message_count} {t("messages").toLowerCase()} · {fmtCost(conversation.total_cost)}
              </span>
              {agentList.length > 1 && (
                <>
                  <label class="sr-only" for="handoff-picker">{t("answeredBy")}</label>
                  <select id="handoff-picker" title={t("answeredBy")} value={agentId} disabled={busy} onChange={(e) => setAgentId((e.target as HTMLSelectElement).value)}>
                    {!agents.has(conversation.agent_id) && <option value={conversation.agent_id}>{agentName}</option>}
                    {agentList.map((a) => <option value={a.id}>{a.user_id === user.id ? a.name : `${a.name} · ${t("sharedTag")}`}</option>)}
                  </select>
                </>
              )}
            </div>
          ) : (
            <div class="row">
              <label for="agent-picker">{t("agent")}</label>
              <select id="agent-picker" value={agentId} onChange={(e) => setAgentId((e.target as HTMLSelectElement).value)}>
                {agentList.length === 0 && <option value="">{t("pickAgent")}</option>}
                {agentList.map((a) => <option value={a.id}>{a.user_id === user.id ? a.name : `${a.name} · ${t("sharedTag")}`}</option>)}
              </select>
            </div>
          )}
        </header>
        <ErrorBox error={error} />
        <div class="messages" ref={scroller} onScroll={onScroll} role="log" aria-label={t("messages")} tabIndex={0}>
          {conversationId && (
            <p class="muted center" data-testid="history-edge">{before ? (loadingOlder ? t("loadingOlder") : "…") : t("beginning")}</p>
          )}
          {!conversationId && agentList.length === 0 && <p class="muted">{t("noAgents")} <a href="#/agents/new">{t("newAgent")}</a></p>}
          {messages.map((m) => <MessageView key={m.id} m={m} />)}
          {pending && <MessageView key={pending.id} m={pending} />}
          {live && (
            <MessageView
              key="live"
              streaming
              m={{
                id: "live",
                conversation_id: conversationId ?? "",
                seq: 0,
                content: live.text,
                message_type: "agent",
                user_id: user.id,
                agent_id: null,
                metadata: { tool_calls: live.tools, handoffs: live.handoffs ?? [] },
                timestamp: new Date().toISOString(),
              }}
            />
          )}
          {live && !live.text && <p class="muted thinking" role="status">{t("thinking")}</p>}
          {!busy && lastUser && lastIsAnswer && (
            <div class="row turn-actions">
              <button class="ghost small" onClick={regenerate}>{t("regenerate")}</button>
              <button class="ghost small" onClick={() => { setEditing(lastUser); setDraft(lastUser.content); composer.current?.focus(); }}>{t("editLast")}</button>
            </div>
          )}
        </div>
        {failed && (
          <div class="error" role="alert">
            <span>{failed.error.detail}</span>
            {failed.retry && <button onClick={failed.retry}>{t("retry")}</button>}
          </div>
        )}
        {editing && (
          <div class="notice row spread" role="status">
            <span>{t("editingLast")}</span>
            <button class="ghost small" onClick={() => { setEditing(null); setDraft(""); }}>{t("cancel")}</button>
          </div>
        )}
        {focusSeq !== null && conversationId ? (
          <div class="notice row spread" role="status" data-testid="search-hit-notice">
            <span>{t("searchHit")}</span>
            <a class="button" href={`#/chat/${conversationId}`}>{t("goNewest")}</a>
          </div>
        ) : (
        <form class="composer" onSubmit={(e) => { e.preventDefault(); send(draft, newKey()); }}>
          <label class="sr-only" for="composer-input">{t("messagePlaceholder")}</label>
          <textarea
            id="composer-input"
            ref={composer}
            rows={2}
            placeholder={t("messagePlaceholder")}
            value={draft}
            onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)}
            onKeyDown={onKeyDown}
            disabled={!conversationId && !agentId}
          />
          {live ? (
            <button type="button" class="danger" onClick={stop} disabled={!live.turnId}>{t("stop")}</button>
          ) : (
            <button type="submit" class="primary" disabled={busy || !draft.trim()}>{t("send")}</button>
          )}
        </form>
        )}
      </section>
    </div>
  );
}

function mergeNewest(prev: Message[], newest: Message[]): Message[] {
  const byId = new Map(prev.map((m) => [m.id, m]));
  for (const m of newest) byId.set(m.id, m);
  return [...byId.values()].sort((a, b) => a.seq - b.seq);
}
