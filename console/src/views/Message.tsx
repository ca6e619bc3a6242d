import { memo } from "preact/compat";
import { useState } from "preact/hooks";
import { api, type Message } from "../api";
import { renderMarkdown } from "../markdown";
import { t, fmtDate, fmtCost, lang } from "../i18n";
import { useSignal } from "../state";
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

/** One delegated run (``metadata.delegations``, issue 13). */
interface Delegation {
  id?: string;
  agent_name?: string;
  task?: string;
  answer?: string | null;
  status?: string;
  depth?: number;
  total_input_tokens?: number;
  total_output_tokens?: number;
  total_cost?: number | null;
  execution_time?: number;
}
/** One move of the conversation to another agent (``metadata.handoffs``, or a live ``handoff``
 * event). */
export interface Handoff {
  to_agent_id?: string;
  to_agent_name?: string;
  by?: string;
  note?: string | null;
}

function asArray<T>(v: unknown): T[] {
  return Array.isArray(v) ? (v as T[]) : [];
}

function Markdown({ text }: { text: string }) {
  // renderMarkdown escapes raw HTML and sanitizes with DOMPurify (see markdown.ts)
  return <div class="md" dangerouslySetInnerHTML={{ __html: renderMarkdown(text) }} />;
}

export const MessageView = memo(function MessageView({ m, streaming }: { m: Message; streaming?: boolean }) {
  useSignal(lang); // memoized: a language switch must still re-render its labels
  const md = m.metadata ?? {};
  const tools = asArray<ToolCall>(md.tool_calls);
  const sources = asArray<Source>(md.sources);
  const delegations = asArray<Delegation>(md.delegations);
  const handoffs = asArray<Handoff>(md.handoffs);
  const who = m.message_type === "user" ? "user" : m.message_type === "error" ? "error" : "agent";
  return (
    <article class={`msg msg-${who}${streaming ? " msg-live" : ""}`} data-seq={m.seq} aria-busy={streaming ? "true" : undefined}>
      {handoffs.map((h, i) => (
        <p class="handoff muted small" key={i} data-testid="handoff">
          <span aria-hidden="true">⇢ </span>
          {t("handedOver", { name: h.to_agent_name ?? h.to_agent_id ?? "?" })} {h.by === "user" ? t("handedBy_user") : h.by === "agent" ? t("handedBy_agent") : ""}
          {h.note ? <> · {t("handoffNote")}: {h.note}</> : null}
        </p>
      ))}
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
      {delegations.length > 0 && (
        <details class="fold" data-testid="delegations">
          <summary>{t("delegatedRuns")} ({delegations.length})</summary>
          <ul>
            {delegations.map((d) => (
              <li key={d.id} class="delegation" style={{ marginInlineStart: `${Math.max(0, (d.depth ?? 1) - 1)}rem` }}>
                <strong>{t("delegatedTo", { name: d.agent_name ?? "?" })}</strong>{" "}
                <span class={`badge ${d.status === "success" ? "ok" : d.status === "failed" ? "error" : "degraded"}`}>{d.status}</span>{" "}
                <span class="muted small">
                  {(d.total_input_tokens ?? 0) + (d.total_output_tokens ?? 0)} {t("tokens").toLowerCase()}
                  {d.total_cost !== undefined && d.total_cost !== null ? ` · ${fmtCost(Number(d.total_cost))}` : ""}
                  {d.execution_time !== undefined ? ` · ${Number(d.execution_time).toFixed(2)} s` : ""}
                </span>
                <div class="small"><span class="muted">{t("delegateTask")}:</span> <span class="pre-wrap">{d.task}</span></div>
                {d.answer && <div class="small"><span class="muted">{t("delegateAnswer")}:</span> <span class="pre-wrap">{d.answer}</span></div>}
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
