import { useEffect, useState } from "preact/hooks";
import { api, request, usableAgents, type Agent, type Page } from "../api";
import { t, fmtDate } from "../i18n";
import { ErrorBox } from "./common";

export interface Memory {
  id: string;
  agent_id: string;
  conversation_id: string | null;
  content: string;
  source_conversation_id: string | null;
  scope: "agent" | "conversation";
  created_at: string;
  updated_at: string;
}

/** What agents remember about the person (/api/memories): read, correct, forget. */
export function Memories() {
  const [items, setItems] = useState<Memory[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [agents, setAgents] = useState<Map<string, Agent>>(new Map());
  const [agentId, setAgentId] = useState("");
  const [editing, setEditing] = useState<string | null>(null);
  const [text, setText] = useState("");
  const [error, setError] = useState<unknown>(null);

  async function load(more: boolean) {
    setError(null);
    try {
      const page = await api.get<Page<Memory>>("/api/memories", { limit: 50, agent_id: agentId || undefined, cursor: more ? cursor : undefined });
      setItems((prev) => (more ? [...prev, ...page.items] : page.items));
      setCursor(page.next_cursor);
    } catch (e) {
      setError(e);
    }
  }
  useEffect(() => {
    usableAgents().then((list) => setAgents(new Map(list.map((a) => [a.id, a]))), () => undefined);
  }, []);
  useEffect(() => {
    load(false);
  }, [agentId]);

  async function save(m: Memory) {
    try {
      const updated = await api.patch<Memory>(`/api/memories/${m.id}`, { content: text });
      setItems(items.map((x) => (x.id === m.id ? updated : x)));
      setEditing(null);
    } catch (e) {
      setError(e);
    }
  }
  async function forget(m: Memory) {
    if (!confirm(t("confirmDelete"))) return;
    try {
      await api.del(`/api/memories/${m.id}`);
      setItems(items.filter((x) => x.id !== m.id));
    } catch (e) {
      setError(e);
    }
  }
  async function forgetAll() {
    if (!confirm(t("confirmDelete"))) return;
    try {
      await request<unknown>("DELETE", "/api/memories", { query: agentId ? { agent_id: agentId } : undefined });
      load(false);
    } catch (e) {
      setError(e);
    }
  }

  return (
    <section aria-labelledby="memories-title">
      <div class="row spread">
        <h2 id="memories-title">{t("memories")}</h2>
        <div class="row">
          <label class="sr-only" for="memories-agent">{t("agent")}</label>
          <select id="memories-agent" value={agentId} onChange={(e) => setAgentId((e.target as HTMLSelectElement).value)}>
            <option value="">{t("allAgents")}</option>
            {[...agents.values()].map((a) => <option value={a.id}>{a.name}</option>)}
          </select>
          {items.length > 0 && <button class="ghost small danger" onClick={forgetAll}>{t("forgetAll")}</button>}
        </div>
      </div>
      <p class="muted small">{t("memoriesAbout")}</p>
      <ErrorBox error={error} onRetry={() => load(false)} />
      <ul class="conv-list" data-testid="memories">
        {items.map((m) => (
          <li key={m.id} data-memory={m.id}>
            {editing === m.id ? (
              <form class="row" onSubmit={(e) => { e.preventDefault(); save(m); }}>
                <label class="sr-only" for={`memory-${m.id}`}>{t("edit")}</label>
                <input id={`memory-${m.id}`} value={text} onInput={(e) => setText((e.target as HTMLInputElement).value)} autoFocus />
                <button type="submit" class="small">{t("save")}</button>
                <button type="button" class="small ghost" onClick={() => setEditing(null)}>{t("cancel")}</button>
              </form>
            ) : (
              <div>
                <span class="memory-text">{m.content}</span>
                <span class="muted small">
                  {" "}· {agents.get(m.agent_id)?.name ?? "—"} · {t(m.scope === "conversation" ? "memoryConversation" : "memoryAgent")} · {fmtDate(m.updated_at)}
                </span>
              </div>
            )}
            <div class="conv-actions">
              <button class="ghost small" onClick={() => { setEditing(m.id); setText(m.content); }}>{t("edit")}</button>
              <button class="ghost small danger" onClick={() => forget(m)}>{t("delete")}</button>
            </div>
          </li>
        ))}
      </ul>
      {items.length === 0 && !error && <p class="muted">{t("noMemories")}</p>}
      {cursor && <button class="ghost" onClick={() => load(true)}>{t("next")}</button>}
    </section>
  );
}

