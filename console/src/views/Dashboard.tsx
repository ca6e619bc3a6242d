import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, usableAgents, type User } from "../api";
import { t, fmtCost, locale } from "../i18n";
import { ErrorBox } from "./common";
import { TimeChart } from "./Chart";

// Usage over time from GET /api/analytics/usage (daily rollups + today's raw runs). Users see
// their own usage; the API gives an admin everyone's.
const DAY = 86400;

export interface UsageRow {
  day: string | null;
  agent_id: string | null;
  user_id: string | null;
  model: string | null;
  turns: number;
  failed: number;
  input_tokens: number;
  output_tokens: number;
  cost: number;
  response_time_mean: number | null;
  response_time_p50: number | null;
  response_time_p95: number | null;
  tool_calls: number;
  feedback_up: number;
  feedback_down: number;
}
interface Usage {
  rows: UsageRow[];
}

function isoDay(d: Date): string {
  return d.toISOString().slice(0, 10);
}

export function DashboardView({ user }: { user: User }) {
  const today = new Date();
  const [from, setFrom] = useState(isoDay(new Date(today.getTime() - 13 * DAY * 1000)));
  const [to, setTo] = useState(isoDay(today));
  const [data, setData] = useState<{ total: UsageRow | null; days: UsageRow[]; agents: UsageRow[]; models: UsageRow[] } | null>(null);
  const [agents, setAgents] = useState<Map<string, string>>(new Map());
  // the charts of one agent or one model (the API's agent_id and model filters); "" is all
  const [agentId, setAgentId] = useState("");
  const [model, setModel] = useState("");
  // every agent and model the breakdowns have named, so a filter's choices stay when it narrows them
  const [seen, setSeen] = useState<{ agents: Set<string>; models: Set<string> }>({ agents: new Set(), models: new Set() });
  const [error, setError] = useState<unknown>(null);
  // the latest request wins: an answer for an earlier range or filter is dropped
  const latest = useRef(0);

  async function load() {
    const ticket = ++latest.current;
    setError(null);
    try {
      const q = (group_by: string) => api.get<Usage>("/api/analytics/usage", { from, to, group_by, agent_id: agentId, model });
      const [total, days, byAgent, byModel] = await Promise.all([q(""), q("day"), q("agent"), q("model")]);
      if (ticket !== latest.current) return;
      setData({ total: total.rows[0] ?? null, days: days.rows, agents: byAgent.rows, models: byModel.rows });
      setSeen((s) => ({
        agents: new Set([...s.agents, ...byAgent.rows.flatMap((r) => (r.agent_id ? [r.agent_id] : []))]),
        models: new Set([...s.models, ...byModel.rows.flatMap((r) => (r.model ? [r.model] : []))]),
      }));
    } catch (e) {
      if (ticket === latest.current) setError(e);
    }
  }
  useEffect(() => {
    if (from && to && from <= to) load();
  }, [from, to, agentId, model]);
  const agentName = (id: string) => agents.get(id) ?? id.slice(0, 8);
  useEffect(() => {
    usableAgents().then((l) => setAgents(new Map(l.map((a) => [a.id, a.name]))), () => undefined);
  }, []);

  const series = useMemo(() => {
    if (!data) return null;
    const start = Date.parse(`${from}T00:00:00Z`) / 1000;
    const end = Date.parse(`${to}T00:00:00Z`) / 1000;
    const days: number[] = [];
    for (let d = start; d <= end; d += DAY) days.push(d);
    const byDay = new Map(data.days.map((r) => [r.day, r]));
    const col = (f: (r: UsageRow) => number | null, empty: number | null = 0) =>
      days.map((d) => {
        const r = byDay.get(isoDay(new Date(d * 1000)));
        return r ? f(r) : empty;
      });
    return {
      days,
      turns: col((r) => r.turns),
      failed: col((r) => r.failed),
      input: col((r) => r.input_tokens),
      output: col((r) => r.output_tokens),
      cost: col((r) => r.cost),
      p50: col((r) => r.response_time_p50, null),
      p95: col((r) => r.response_time_p95, null),
      up: col((r) => r.feedback_up),
      down: col((r) => r.feedback_down),
    };
  }, [data, from, to]);

  const n = (v: number) => v.toLocaleString(locale());
  const s = (v: number | null) => (v == null ? "—" : `${v.toLocaleString(locale(), { maximumFractionDigits: 2 })} s`);
  const total = data?.total;
  return (
    <section aria-labelledby="dash-title">
      <div class="row spread">
        <h1 id="dash-title">{t("dashboard")}</h1>
        <form class="row" onSubmit={(e) => e.preventDefault()}>
          <label for="dash-from">{t("from")}</label>
          <input id="dash-from" type="date" value={from} max={to} onChange={(e) => setFrom((e.target as HTMLInputElement).value)} />
          <label for="dash-to">{t("to")}</label>
          <input id="dash-to" type="date" value={to} min={from} onChange={(e) => setTo((e.target as HTMLInputElement).value)} />
          <label for="dash-agent">{t("agent")}</label>
          <select id="dash-agent" value={agentId} onChange={(e) => setAgentId((e.target as HTMLSelectElement).value)}>
            <option value="">{t("allAgents")}</option>
            {[...new Set([...seen.agents, ...(agentId ? [agentId] : [])])]
              .sort((a, b) => agentName(a).localeCompare(agentName(b)))
              .map((id) => <option value={id}>{agentName(id)}</option>)}
          </select>
          <label for="dash-model">{t("model")}</label>
          <select id="dash-model" value={model} onChange={(e) => setModel((e.target as HTMLSelectElement).value)}>
            <option value="">{t("allModels")}</option>
            {[...seen.models].sort().map((m) => <option value={m}>{m}</option>)}
          </select>
        </form>
      </div>
      <p class="muted">{user.role === "admin" ? t("dashboardAll") : t("dashboardOwn")}</p>
      <ErrorBox error={error} onRetry={load} />
      {data && series && (
        <>
          <dl class="kpis" data-testid="totals">
            <div><dt>{t("turns")}</dt><dd data-kpi="turns">{n(total?.turns ?? 0)}</dd></div>
            <div><dt>{t("failedTurns")}</dt><dd data-kpi="failed">{n(total?.failed ?? 0)}</dd></div>
            <div><dt>{t("tokens")}</dt><dd data-kpi="tokens">{n((total?.input_tokens ?? 0) + (total?.output_tokens ?? 0))}</dd></div>
            <div><dt>{t("costUsd")}</dt><dd data-kpi="cost">{fmtCost(total?.cost ?? 0)}</dd></div>
            <div><dt>{t("p95")}</dt><dd data-kpi="p95">{s(total?.response_time_p95 ?? null)}</dd></div>
            <div><dt>{t("feedback")}</dt><dd data-kpi="feedback">▲ {n(total?.feedback_up ?? 0)} · ▼ {n(total?.feedback_down ?? 0)}</dd></div>
          </dl>
          {!total?.turns && <p class="muted">{t("noData")}</p>}
          <div class="charts">
            <TimeChart testId="chart-turns" title={`${t("turns")} ${t("perDay")}`} unit={t("turnsUnit")} days={series.days} series={[{ label: t("turns"), values: series.turns }, { label: t("failedTurns"), values: series.failed }]} />
            <TimeChart testId="chart-tokens" title={`${t("tokens")} ${t("perDay")}`} unit="tokens" days={series.days} series={[{ label: t("inputTokens"), values: series.input }, { label: t("outputTokens"), values: series.output }]} />
            <TimeChart testId="chart-cost" title={`${t("costUsd")} ${t("perDay")}`} unit="USD" digits={4} days={series.days} series={[{ label: t("cost"), values: series.cost }]} />
            <TimeChart testId="chart-latency" title={t("latency")} unit="s" digits={2} days={series.days} series={[{ label: "p50", values: series.p50 }, { label: "p95", values: series.p95 }]} />
            <TimeChart testId="chart-feedback" title={`${t("feedback")} ${t("perDay")}`} unit={t("ratingsUnit")} days={series.days} series={[{ label: "▲", values: series.up }, { label: "▼", values: series.down }]} />
          </div>
          <Breakdown testId="per-agent" title={t("perAgent")} rows={data.agents} name={(r) => (r.agent_id ? agentName(r.agent_id) : "—")} />
          <Breakdown testId="per-model" title={t("perModel")} rows={data.models} name={(r) => r.model ?? "—"} />
        </>
      )}
    </section>
  );
}

function Breakdown({ title, rows, name, testId }: { title: string; rows: UsageRow[]; name: (r: UsageRow) => string; testId: string }) {
  const n = (v: number) => v.toLocaleString(locale());
  return (
    <>
      <h2>{title}</h2>
      <table class="list" data-testid={testId}>
        <thead>
          <tr>
            <th scope="col">{title === t("perModel") ? t("model") : t("agent")}</th>
            <th scope="col">{t("turns")}</th>
            <th scope="col">{t("failedTurns")}</th>
            <th scope="col">{t("tokens")}</th>
            <th scope="col">{t("costUsd")}</th>
            <th scope="col">{t("p95")}</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr>
              <td>{name(r)}</td>
              <td>{n(r.turns)}</td>
              <td>{n(r.failed)}</td>
              <td>{n(r.input_tokens + r.output_tokens)}</td>
              <td>{fmtCost(r.cost)}</td>
              <td>{r.response_time_p95 == null ? "—" : `${r.response_time_p95.toFixed(2)} s`}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
