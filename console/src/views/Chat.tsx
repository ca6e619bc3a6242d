import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, ApiError, type Agent, type ChatOut, type Conversation, type History, type Message, type Page, type User } from "../api";
import { t, fmtDate, fmtCost } from "../i18n";
import { go } from "../router";
import { ErrorBox } from "./common";
import { MessageView } from "./Message";

const HISTORY_PAGE = 50;

function newKey(): string {
  return crypto.randomUUID();
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
  const [error, setError] = useState<unknown>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const [title, setTitle] = useState("");

  const load = useCallback(
    async (more: boolean) => {
      setError(null);
      try {
        const page = await api.get<Page<Conversation>>("/api/conversations", {
          limit: 30,
          cursor: more ? cursor : undefined,
          agent_id: agentFilter || undefined,
          status: status || undefined,
        });
        setItems((prev) => (more ? [...prev, ...page.items] : page.items));
        setCursor(page.next_cursor);
      } catch (e) {
        setError(e);
      }
    },
    [cursor, agentFilter, status],
  );

  useEffect(() => {
    load(false);
  }, [agentFilter, status, refresh]);

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

  const q = search.trim().toLowerCase();
  const shown = q ? items.filter((c) => (c.title ?? "").toLowerCase().includes(q)) : items;

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
      </div>
      <ErrorBox error={error} onRetry={() => load(false)} />
      <ul class="conv-list">
        {shown.map((c) => (
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
    </aside>
  );
}

// ---------------------------------------------------------------- the chat panel
interface Failed {
  error: ApiError;
  text: string;
  key: string;
}

export function ChatView({ user, conversationId }: { user: User; conversationId: string | null }) {
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
  const [refresh, setRefresh] = useState(0);
  const scroller = useRef<HTMLDivElement>(null);
  const anchor = useRef<{ height: number; top: number } | null>(null);
  const stick = useRef(true);

  useEffect(() => {
    api.get<Agent[]>("/api/agents").then((list) => {
      setAgents(new Map(list.map((a) => [a.id, a])));
      setAgentId((cur) => (cur && list.some((a) => a.id === cur) ? cur : (list[0]?.id ?? "")));
    }, setError);
  }, []);

  // opening a conversation reads only its newest page
  useEffect(() => {
    setMessages([]);
    setBefore(null);
    setConversation(null);
    setFailed(null);
    setError(null);
    stick.current = true;
    if (!conversationId) return;
    let live = true;
    Promise.all([
      api.get<Conversation>(`/api/conversations/${conversationId}`),
      api.get<History>(`/api/conversations/${conversationId}/messages`, { limit: HISTORY_PAGE }),
    ]).then(
      ([c, h]) => {
        if (!live) return;
        setConversation(c);
        setAgentId(c.agent_id);
        setMessages(h.messages);
        setBefore(h.next_before);
      },
      (e) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [conversationId]);

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
  }, [messages, pending]);

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
    if (!text.trim() || pending) return;
    const target = conversationId ? { conversation_id: conversationId } : { agent_id: agentId };
    setFailed(null);
    setError(null);
    stick.current = true;
    const optimistic: Message = {
      id: `pending-${key}`,
      conversation_id: conversationId ?? "",
      seq: (messages.at(-1)?.seq ?? 0) + 1,
      content: text,
      message_type: "user",
      user_id: user.id,
      agent_id: null,
      metadata: {},
      timestamp: new Date().toISOString(),
    };
    setPending(optimistic);
    setDraft("");
    try {
      const out = await api.post<ChatOut>("/api/chat/agent", { message: text, ...target }, { "Idempotency-Key": key });
      setPending(null);
      if (!conversationId) {
        sessionStorage.setItem("ev.agent", agentId);
        go(`/chat/${out.conversation_id}`);
      } else {
        setMessages((prev) => [...prev, out.user_message, out.agent_message]);
      }
      setRefresh((n) => n + 1);
    } catch (e) {
      setPending(null);
      const err = e instanceof ApiError ? e : new ApiError(0, String(e));
      // a network error may retry with the same key (the server replays); a refused turn gets a new one
      setFailed({ error: err, text, key: err.status === 0 ? key : newKey() });
      if (conversationId && (err.status === 502 || err.status === 504)) {
        // the API kept the user's message and an error message recording the failure
        const h = await api.get<History>(`/api/conversations/${conversationId}/messages`, { limit: HISTORY_PAGE });
        setMessages((prev) => mergeNewest(prev, h.messages));
      } else {
        setDraft(text);
      }
    }
  }

  function onKeyDown(e: KeyboardEvent) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send(draft, newKey());
    }
  }

  const agentList = useMemo(() => [...agents.values()], [agents]);
  const agentName = conversation ? (agents.get(conversation.agent_id)?.name ?? "—") : null;

  return (
    <div class="chat-layout">
      <ConversationList agents={agents} activeId={conversationId} refresh={refresh} />
      <section class="chat" aria-labelledby="chat-title">
        <header class="chat-head">
          <h1 id="chat-title">{conversation ? conversation.title || t("untitled") : t("newChat")}</h1>
          {conversation ? (
            <span class="muted">
              {agentName} · {conversation.message_count} {t("messages").toLowerCase()} · {fmtCost(conversation.total_cost)}
            </span>
          ) : (
            <div class="row">
              <label for="agent-picker">{t("agent")}</label>
              <select id="agent-picker" value={agentId} onChange={(e) => setAgentId((e.target as HTMLSelectElement).value)}>
                {agentList.length === 0 && <option value="">{t("pickAgent")}</option>}
                {agentList.map((a) => <option value={a.id}>{a.name}</option>)}
              </select>
            </div>
          )}
        </header>
        <ErrorBox error={error} />
        <div class="messages" ref={scroller} onScroll={onScroll} role="log" aria-live="polite" aria-label={t("messages")} tabIndex={0}>
          {conversationId && (
            <p class="muted center" data-testid="history-edge">{before ? (loadingOlder ? t("loadingOlder") : "…") : t("beginning")}</p>
          )}
          {!conversationId && agentList.length === 0 && <p class="muted">{t("noAgents")} <a href="#/agents/new">{t("newAgent")}</a></p>}
          {messages.map((m) => <MessageView key={m.id} m={m} />)}
          {pending && <MessageView key={pending.id} m={pending} />}
          {pending && <p class="muted thinking" role="status">{t("thinking")}</p>}
        </div>
        {failed && (
          <div class="error" role="alert">
            <span>{failed.error.detail}</span>
            <button onClick={() => send(failed.text, failed.key)}>{t("retry")}</button>
          </div>
        )}
        <form class="composer" onSubmit={(e) => { e.preventDefault(); send(draft, newKey()); }}>
          <label class="sr-only" for="composer-input">{t("messagePlaceholder")}</label>
          <textarea
            id="composer-input"
            rows={2}
            placeholder={t("messagePlaceholder")}
            value={draft}
            onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)}
            onKeyDown={onKeyDown}
            disabled={!conversationId && !agentId}
          />
          <button type="submit" class="primary" disabled={!!pending || !draft.trim()}>{t("send")}</button>
        </form>
      </section>
    </div>
  );
}

function mergeNewest(prev: Message[], newest: Message[]): Message[] {
  const seen = new Set(prev.map((m) => m.id));
  return [...prev, ...newest.filter((m) => !seen.has(m.id))];
}
