import { memo } from "preact/compat";
import { useState } from "preact/hooks";
import { api, type Message } from "../api";
import { renderMarkdown } from "../markdown";
import { t, fmtDate, fmtCost } from "../i18n";
import { CopyButton } from "./common";

interface ToolCall {
  tool_name?: string;
  name?: string;
  args?: unknown;
  result?: unknown;
}
interface Source {
  title?: string;
  heading?: string;
  passage?: string;
  score?: number;
}

function asArray<T>(v: unknown): T[] {
  return Array.isArray(v) ? (v as T[]) : [];
}

function Markdown({ text }: { text: string }) {
  // renderMarkdown escapes raw HTML and sanitizes with DOMPurify (see markdown.ts)
  return <div class="md" dangerouslySetInnerHTML={{ __html: renderMarkdown(text) }} />;
}

export const MessageView = memo(function MessageView({ m, streaming }: { m: Message; streaming?: boolean }) {
  const md = m.metadata ?? {};
  const tools = asArray<ToolCall>(md.tool_calls);
  const sources = asArray<Source>(md.sources);
  const who = m.message_type === "user" ? "user" : m.message_type === "error" ? "error" : "agent";
  return (
    <article class={`msg msg-${who}${streaming ? " msg-live" : ""}`} data-seq={m.seq} aria-busy={streaming ? "true" : undefined}>
      <div class="msg-body">
        <Markdown text={m.content || (streaming ? "…" : "")} />
      </div>
      {tools.length > 0 && (
        <details class="fold">
          <summary>{t("toolCalls")} ({tools.length})</summary>
          <ul>
            {tools.map((c) => (
              <li>
                <code>{c.tool_name ?? c.name}</code>
                <pre>{JSON.stringify(c.args ?? {}, null, 1)}</pre>
                {c.result !== undefined && <pre>{typeof c.result === "string" ? c.result : JSON.stringify(c.result, null, 1)}</pre>}
              </li>
            ))}
          </ul>
        </details>
      )}
      {sources.length > 0 && (
        <details class="fold">
          <summary>{t("sources")} ({sources.length})</summary>
          <ul>
            {sources.map((s) => (
              <li>
                <strong>{s.title}</strong> {s.heading && <span class="muted small">{s.heading}</span>}
                {s.passage && <div class="muted">{s.passage}</div>}
              </li>
            ))}
          </ul>
        </details>
      )}
      <footer class="msg-meta">
        <time dateTime={m.timestamp}>{fmtDate(m.timestamp)}</time>
        {md.cancelled === true && <span class="badge">{t("cancelled")}</span>}
        {who !== "user" && md.model_used !== undefined && (
          <details class="fold inline">
            <summary>{t("details")}</summary>
            <dl>
              <dt>{t("model")}</dt>
              <dd>{String(md.model_used)}</dd>
              {md.tokens_used !== undefined && (
                <>
                  <dt>{t("tokens")}</dt>
                  <dd>{String(md.tokens_used)}</dd>
                </>
              )}
              {md.cost !== undefined && md.cost !== null && (
                <>
                  <dt>{t("cost")}</dt>
                  <dd>{fmtCost(Number(md.cost))}</dd>
                </>
              )}
              {md.execution_time !== undefined && (
                <>
                  <dt>{t("time")}</dt>
                  <dd>{Number(md.execution_time).toFixed(2)} s</dd>
                </>
              )}
            </dl>
          </details>
        )}
        {who === "agent" && !streaming && <Feedback m={m} />}
        <CopyButton text={m.content} />
      </footer>
    </article>
  );
});

/** Rate an answer (POST /api/conversations/{id}/messages/{mid}/feedback); a later rating
 * replaces the earlier one. */
function Feedback({ m }: { m: Message }) {
  const initial = (m.metadata?.feedback as { rating?: string } | undefined)?.rating ?? null;
  const [rating, setRating] = useState<string | null>(initial);
  const [error, setError] = useState("");
  async function rate(value: "up" | "down") {
    setError("");
    try {
      await api.post(`/api/conversations/${m.conversation_id}/messages/${m.id}/feedback`, { rating: value });
      setRating(value);
    } catch (e) {
      setError((e as Error).message);
    }
  }
  return (
    <span class="feedback" role="group" aria-label={t("feedback")}>
      <button class="ghost small" aria-pressed={rating === "up"} title={t("goodAnswer")} onClick={() => rate("up")}>
        <span aria-hidden="true">▲</span>
        <span class="sr-only">{t("goodAnswer")}</span>
      </button>
      <button class="ghost small" aria-pressed={rating === "down"} title={t("badAnswer")} onClick={() => rate("down")}>
        <span aria-hidden="true">▼</span>
        <span class="sr-only">{t("badAnswer")}</span>
      </button>
      {error && <span class="field-error" role="alert">{error}</span>}
    </span>
  );
}
