import { useEffect, useMemo, useState } from "preact/hooks";
import { api, type Agent, type Conversation, type Page, type User } from "../api";
import { t, fmtCost, locale } from "../i18n";
import { ErrorBox } from "./common";
import { TimeChart } from "./Chart";

const DAY = 86400;
const MAX_PAGES = 50; // 5,000 conversations at most in one range

function isoDay(d: Date): string {
  return d.toISOString().slice(0, 10);
}

interface Totals {
  conversations: number;
  messages: number;
  tokens: number;
  cost: number;
  errors: number;
}

function emptyTotals(): Totals {
  return { conversations: 0, messages: 0, tokens: 0, cost: 0, errors: 0 };
}

export function DashboardView({ user: _user }: { user: User }) {
  const today = new Date();
  const [from, setFrom] = useState(isoDay(new Date(today.getTime() - 13 * DAY * 1000)));
  const [to, setTo] = useState(isoDay(today));
  const [rows, setRows] = useState<Conversation[] | null>(null);
  const [agents, setAgents] = useState<Map<string, string>>(new Map());
  const [error, setError] = useState<unknown>(null);

  async function load() {
    setError(null);
    setRows(null);
    try {
      const all: Conversation[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < MAX_PAGES; i++) {
        const page: Page<Conversation> = await api.get<Page<Conversation>>("/api/conversations", {
          limit: 100,
          cursor,
          created_after: `${from}T00:00:00Z`,
          created_before: `${isoDay(new Date(Date.parse(to) + DAY * 1000))}T00:00:00Z`,
        });
        all.push(...page.items);
        cursor = page.next_cursor;
        if (!cursor) break;
      }
      setRows(all);
    } catch (e) {
      setError(e);
    }
  }
  useEffect(() => {
    load();
  }, [from, to]);
  useEffect(() => {
    api.get<Agent[]>("/api/agents").then((l) => setAgents(new Map(l.map((a) => [a.id, a.name]))), () => undefined);
  }, []);

  const view = useMemo(() => {
    if (!rows) return null;
    const start = Date.parse(`${from}T00:00:00Z`) / 1000;
    const end = Date.parse(`${to}T00:00:00Z`) / 1000;
    const days: number[] = [];
    for (let d = start; d <= end; d += DAY) days.push(d);
    const idx = (iso: string) => Math.floor((Date.parse(iso) / 1000 - start) / DAY);
    const messages = days.map(() => 0);
    const tokens = days.map(() => 0);
    const cost = days.map(() => 0);
    const latencySum = days.map(() => 0);
    const latencyN = days.map(() => 0);
    const errors = days.map(() => 0);
    const total = emptyTotals();
    const perAgent = new Map<string, Totals>();
    for (const c of rows) {
      const i = idx(c.created_at);
      if (i < 0 || i >= days.length) continue;
      messages[i] += c.message_count;
      tokens[i] += c.total_tokens;
      cost[i] += c.total_cost;
      if (c.avg_response_time > 0) {
        latencySum[i] += c.avg_response_time;
        latencyN[i] += 1;
      }
      if (c.last_error) errors[i] += 1;
      const a = perAgent.get(c.agent_id) ?? emptyTotals();
      for (const tt of [total, a]) {
        tt.conversations += 1;
        tt.messages += c.message_count;
        tt.tokens += c.total_tokens;
        tt.cost += c.total_cost;
        tt.errors += c.last_error ? 1 : 0;
      }
      perAgent.set(c.agent_id, a);
    }
    const latency = days.map((_, i) => (latencyN[i] ? latencySum[i] / latencyN[i] : null));
    return { days, messages, tokens, cost, latency, errors, total, perAgent };
  }, [rows, from, to]);

  const n = (v: number) => v.toLocaleString(locale());
  return (
    <section aria-labelledby="dash-title">
      <div class="row spread">
        <h1 id="dash-title">{t("dashboard")}</h1>
        <form class="row" onSubmit={(e) => e.preventDefault()}>
          <label for="dash-from">{t("from")}</label>
          <input id="dash-from" type="date" value={from} max={to} onChange={(e) => setFrom((e.target as HTMLInputElement).value)} />
          <label for="dash-to">{t("to")}</label>
          <input id="dash-to" type="date" value={to} min={from} onChange={(e) => setTo((e.target as HTMLInputElement).value)} />
        </form>
      </div>
      <p class="muted">{t("dashboardSource")}</p>
      <ErrorBox error={error} onRetry={load} />
      {view && (
        <>
          <dl class="kpis" data-testid="totals">
            <div><dt>{t("conversations")}</dt><dd data-kpi="conversations">{n(view.total.conversations)}</dd></div>
            <div><dt>{t("messages")}</dt><dd data-kpi="messages">{n(view.total.messages)}</dd></div>
            <div><dt>{t("tokens")}</dt><dd data-kpi="tokens">{n(view.total.tokens)}</dd></div>
            <div><dt>{t("costUsd")}</dt><dd data-kpi="cost">{fmtCost(view.total.cost)}</dd></div>
            <div><dt>{t("errors")}</dt><dd data-kpi="errors">{n(view.total.errors)}</dd></div>
          </dl>
          {view.total.conversations === 0 && <p class="muted">{t("noData")}</p>}
          <div class="charts">
            <TimeChart testId="chart-messages" title={`${t("messages")} ${t("perDay")}`} unit="msgs" days={view.days} series={[{ label: t("messages"), values: view.messages }]} />
            <TimeChart testId="chart-tokens" title={`${t("tokens")} ${t("perDay")}`} unit="tokens" days={view.days} series={[{ label: t("tokens"), values: view.tokens }]} />
            <TimeChart testId="chart-cost" title={`${t("costUsd")} ${t("perDay")}`} unit="USD" digits={4} days={view.days} series={[{ label: t("cost"), values: view.cost }]} />
            <TimeChart testId="chart-latency" title={t("avgLatency")} unit="s" digits={2} days={view.days} series={[{ label: t("time"), values: view.latency }]} />
            <TimeChart testId="chart-errors" title={`${t("errors")} ${t("perDay")}`} unit="" days={view.days} series={[{ label: t("errors"), values: view.errors }]} />
          </div>
          <h2>{t("perAgent")}</h2>
          <table class="list" data-testid="per-agent">
            <thead>
              <tr>
                <th scope="col">{t("agent")}</th>
                <th scope="col">{t("conversations")}</th>
                <th scope="col">{t("messages")}</th>
                <th scope="col">{t("tokens")}</th>
                <th scope="col">{t("costUsd")}</th>
              </tr>
            </thead>
            <tbody>
              {[...view.perAgent.entries()].map(([id, a]) => (
                <tr>
                  <td>{agents.get(id) ?? id.slice(0, 8)}</td>
                  <td>{n(a.conversations)}</td>
                  <td>{n(a.messages)}</td>
                  <td>{n(a.tokens)}</td>
                  <td>{fmtCost(a.cost)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
