import { useEffect, useState } from "preact/hooks";
import { api, type Agent, type SearchHit, type Page } from "../api";
import { t, fmtDate } from "../i18n";
import { ErrorBox } from "./common";

const DEBOUNCE_MS = 300;
const SEARCH_PAGE = 20;

/** The snippet with its matched words in <mark>: the API gives plain text and offsets, so
 *  nothing here is ever parsed as HTML. */
function Snippet({ text, highlights }: { text: string; highlights: [number, number][] }) {
  const parts = [];
  let at = 0;
  for (const [start, end] of [...highlights].sort((a, b) => a[0] - b[0])) {
    if (start < at || end > text.length) continue;
    if (start > at) parts.push(text.slice(at, start));
    parts.push(<mark>{text.slice(start, end)}</mark>);
    at = end;
  }
  parts.push(text.slice(at));
  return <span class="snippet">{parts}</span>;
}

/** Full-text search over the person's messages and titles (GET /api/search), ranked by the
 *  engine; a hit opens its conversation at the message. */
export function SearchResults({ q, agentId, agents }: { q: string; agentId: string; agents: Map<string, Agent> }) {
  const [items, setItems] = useState<SearchHit[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const [error, setError] = useState<unknown>(null);

  async function load(more: boolean, signal?: AbortSignal) {
    setError(null);
    try {
      const page = await api.get<Page<SearchHit>>("/api/search", { q, agent_id: agentId || undefined, limit: SEARCH_PAGE, cursor: more ? cursor : undefined }, signal);
      setItems((prev) => (more ? [...prev, ...page.items] : page.items));
      setCursor(page.next_cursor);
      setDone(true);
    } catch (e) {
      if ((e as Error).name !== "AbortError") setError(e);
    }
  }

  useEffect(() => {
    setDone(false);
    const ctl = new AbortController();
    const timer = setTimeout(() => load(false, ctl.signal), DEBOUNCE_MS);
    return () => {
      clearTimeout(timer);
      ctl.abort();
    };
  }, [q, agentId]);

  return (
    <div class="search-results" aria-live="polite" aria-busy={done ? undefined : "true"}>
      <ErrorBox error={error} onRetry={() => load(false)} />
      <ul class="conv-list">
        {items.map((h) => (
          <li key={`${h.kind}-${h.message_id ?? h.conversation_id}`} data-hit={h.kind}>
            <a href={h.seq != null ? `#/chat/${h.conversation_id}/${h.seq}` : `#/chat/${h.conversation_id}`}>
              <span class="conv-title">{h.title || t("untitled")}</span>
              <Snippet text={h.snippet} highlights={h.highlights} />
              <span class="muted small">
                {h.kind === "conversation" ? t("titleMatch") : (agents.get(h.agent_id ?? "")?.name ?? t(h.message_type === "user" ? "byYou" : "byAgent"))} · {fmtDate(h.created_at)}
              </span>
            </a>
          </li>
        ))}
      </ul>
      {done && items.length === 0 && !error && <p class="muted">{t("noSearchResults")}</p>}
      {cursor && <button class="ghost" onClick={() => load(true)}>{t("next")}</button>}
    </div>
  );
}
