import { useEffect, useState } from "preact/hooks";
import { api, ApiError, usableAgents, type Agent, type Page, type User } from "../api";
import { t, fmtCost, fmtDate, roleName } from "../i18n";
import { ErrorBox, Field, fieldErrors } from "./common";
import { McpServers } from "./McpServers";

function Users({ me }: { me: User }) {
  const [users, setUsers] = useState<User[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = async (more: boolean) => {
    setError(null);
    try {
      const page = await api.get<Page<User>>("/api/admin/users", { limit: 50, cursor: more ? cursor : undefined });
      setUsers((prev) => (more ? [...prev, ...page.items] : page.items));
      setCursor(page.next_cursor);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load(false);
  }, []);
  async function patch(u: User, body: Partial<User>) {
    try {
      const updated = await api.patch<User>(`/api/admin/users/${u.id}`, body);
      setUsers(users.map((x) => (x.id === u.id ? updated : x)));
    } catch (e) {
      setError(e);
    }
  }
  return (
    <section aria-labelledby="users-title">
      <h2 id="users-title">{t("users")}</h2>
      <ErrorBox error={error} onRetry={() => load(false)} />
      <table class="list">
        <thead>
          <tr>
            <th scope="col">{t("email")}</th>
            <th scope="col">{t("name")}</th>
            <th scope="col">{t("role")}</th>
            <th scope="col">{t("active")}</th>
            <th scope="col">{t("created")}</th>
          </tr>
        </thead>
        <tbody>
          {users.map((u) => (
            <tr key={u.id}>
              <td>{u.email}</td>
              <td>{u.name}</td>
              <td>
                <label class="sr-only" for={`role-${u.id}`}>{t("role")}</label>
                <select id={`role-${u.id}`} value={u.role} disabled={u.id === me.id} onChange={(e) => patch(u, { role: (e.target as HTMLSelectElement).value })}>
                  <option value="user">{roleName("user")}</option>
                  <option value="admin">{roleName("admin")}</option>
                </select>
              </td>
              <td>
                {u.is_active ? t("yes") : t("no")}{" "}
                {u.id !== me.id && (
                  <button class="ghost small" onClick={() => patch(u, { is_active: !u.is_active })}>
                    {u.is_active ? t("deactivate") : t("reactivate")}
                  </button>
                )}
              </td>
              <td>{fmtDate(u.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {cursor && <button onClick={() => load(true)}>{t("next")}</button>}
    </section>
  );
}

interface Check {
  status?: string;
  latency_ms?: number;
  [k: string]: unknown;
}

function Health() {
  const [body, setBody] = useState<{ status: string; checks: Record<string, Check> } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = async () => {
    setError(null);
    try {
      // /health/ready answers 503 with the same body when SQL is down: read it either way
      const r = await fetch("/health/ready", { headers: { Accept: "application/json" } });
      setBody(await r.json());
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load();
  }, []);
  return (
    <section aria-labelledby="health-title">
      <div class="row spread">
        <h2 id="health-title">{t("health")}</h2>
        <button class="ghost" onClick={load}>{t("refresh")}</button>
      </div>
      <ErrorBox error={error} />
      {body && (
        <>
          <p>
            <strong data-testid="health-status" class={`badge ${body.status}`}>{body.status}</strong>
          </p>
          <table class="list">
            <tbody>
              {Object.entries(body.checks ?? {}).map(([name, c]) => (
                <tr>
                  <th scope="row">{name}</th>
                  <td><span class={`badge ${c.status}`}>{c.status}</span></td>
                  <td>
                    {flatten(Object.fromEntries(Object.entries(c).filter(([k]) => k !== "status")))
                      .map(([k, v]) => `${k}: ${v}`)
                      .join(" · ")}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}

/** A check's details as ``name: value`` pairs, nested ones named by their path
 *  (``drift.missing_messages: 0``), not as raw JSON. */
export function flatten(value: Record<string, unknown>, prefix = ""): [string, string][] {
  return Object.entries(value).flatMap(([k, v]): [string, string][] =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? flatten(v as Record<string, unknown>, `${prefix}${k}.`)
      : [[`${prefix}${k}`, Array.isArray(v) ? v.join(", ") : String(v)]],
  );
}

interface AuditEntry {
  id: string;
  actor_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  details: Record<string, unknown> | null;
  client_ip: string | null;
  created_at: string;
}

/** GET /api/admin/audit (newest first). Hidden while the server has no such route (404). */
function Audit() {
  const [items, setItems] = useState<AuditEntry[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [action, setAction] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [missing, setMissing] = useState(false);
  const load = async (more: boolean) => {
    setError(null);
    try {
      const page = await api.get<Page<AuditEntry>>("/api/admin/audit", { limit: 50, cursor: more ? cursor : undefined, action: action || undefined });
      setItems((prev) => (more ? [...(prev ?? []), ...page.items] : page.items));
      setCursor(page.next_cursor);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) setMissing(true);
      else setError(e);
    }
  };
  useEffect(() => {
    load(false);
  }, [action]);
  if (missing) return null;
  return (
    <section aria-labelledby="audit-title">
      <div class="row spread">
        <h2 id="audit-title">{t("audit")}</h2>
        <div class="row">
          <label for="audit-action">{t("action")}</label>
          <input id="audit-action" value={action} placeholder="user.update" onChange={(e) => setAction((e.target as HTMLInputElement).value.trim())} />
        </div>
      </div>
      <ErrorBox error={error} onRetry={() => load(false)} />
      <table class="list" data-testid="audit">
        <thead>
          <tr>
            <th scope="col">{t("when")}</th>
            <th scope="col">{t("action")}</th>
            <th scope="col">{t("actor")}</th>
            <th scope="col">{t("target")}</th>
            <th scope="col">{t("details")}</th>
          </tr>
        </thead>
        <tbody>
          {(items ?? []).map((a) => (
            <tr key={a.id}>
              <td>{fmtDate(a.created_at)}</td>
              <td><code>{a.action}</code></td>
              <td>{a.actor_id?.slice(0, 8) ?? "—"}</td>
              <td>{a.target_type ? `${a.target_type} ${a.target_id?.slice(0, 8) ?? ""}` : "—"}</td>
              <td class="small">{a.details ? JSON.stringify(a.details) : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {cursor && <button onClick={() => load(true)}>{t("next")}</button>}
    </section>
  );
}

interface Budget {
  id: string;
  scope: "user" | "agent";
  scope_id: string;
  max_cost: string | number | null;
  max_tokens: number | null;
  period: string;
  used_cost: string | number;
  used_tokens: number;
  resets_at: string;
}

/** Monthly budgets per user or agent (GET/POST/PATCH/DELETE /api/admin/budgets). */
function Budgets() {
  const [items, setItems] = useState<Budget[]>([]);
  const [users, setUsers] = useState<User[]>([]);
  const [agents, setAgents] = useState<Agent[]>([]);
  const [scope, setScope] = useState<"user" | "agent">("user");
  const [target, setTarget] = useState("");
  const [maxCost, setMaxCost] = useState("");
  const [maxTokens, setMaxTokens] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [cursor, setCursor] = useState<string | null>(null);
  const load = (more = false) =>
    api.get<Page<Budget>>("/api/admin/budgets", { limit: 100, cursor: more ? cursor : undefined }).then((p) => {
      setItems((prev) => (more ? [...prev, ...p.items] : p.items));
      setCursor(p.next_cursor);
    }, setError);
  useEffect(() => {
    load();
    api.get<Page<User>>("/api/admin/users", { limit: 100 }).then((p) => setUsers(p.items), setError);
    usableAgents().then(setAgents, setError);
  }, []);
  const options = scope === "user" ? users.map((u) => [u.id, u.email]) : agents.map((a) => [a.id, a.name]);
  const label = (b: Budget) =>
    b.scope === "user" ? (users.find((u) => u.id === b.scope_id)?.email ?? b.scope_id) : (agents.find((a) => a.id === b.scope_id)?.name ?? b.scope_id);
  async function create(e: Event) {
    e.preventDefault();
    setError(null);
    setFields({});
    const body: Record<string, unknown> = { scope, scope_id: target || options[0]?.[0] };
    if (maxCost.trim()) body.max_cost = maxCost.trim();
    if (maxTokens.trim()) body.max_tokens = Number(maxTokens);
    try {
      await api.post("/api/admin/budgets", body);
      setMaxCost("");
      setMaxTokens("");
      load();
    } catch (err) {
      setError(err);
      setFields(fieldErrors(err, ["max_cost", "max_tokens", "scope_id", "scope"]));
    }
  }
  async function remove(b: Budget) {
    if (!confirm(t("confirmDelete"))) return;
    try {
      await api.del(`/api/admin/budgets/${b.id}`);
      load();
    } catch (err) {
      setError(err);
    }
  }
  const money = (v: string | number | null) => (v == null ? "—" : fmtCost(Number(v)));
  return (
    <section aria-labelledby="budgets-title">
      <h2 id="budgets-title">{t("budgets")}</h2>
      <table class="list" data-testid="budgets">
        <thead>
          <tr>
            <th scope="col">{t("scope")}</th>
            <th scope="col">{t("maxCost")}</th>
            <th scope="col">{t("maxTokensBudget")}</th>
            <th scope="col">{t("used")}</th>
            <th scope="col">{t("resetsAt")}</th>
            <th scope="col"><span class="sr-only">{t("delete")}</span></th>
          </tr>
        </thead>
        <tbody>
          {items.map((b) => (
            <tr key={b.id}>
              <td>{b.scope}: {label(b)}</td>
              <td>{money(b.max_cost)}</td>
              <td>{b.max_tokens?.toLocaleString() ?? "—"}</td>
              <td>{money(b.used_cost)} · {b.used_tokens.toLocaleString()} tokens</td>
              <td>{fmtDate(b.resets_at)}</td>
              <td><button class="ghost small danger" onClick={() => remove(b)}>{t("delete")}</button></td>
            </tr>
          ))}
        </tbody>
      </table>
      {cursor && <button onClick={() => load(true)}>{t("next")}</button>}
      <form class="row" onSubmit={create} aria-label={t("newBudget")}>
        <Field id="budget-scope" label={t("scope")} error={fields.scope}>
          <select id="budget-scope" value={scope} onChange={(e) => { setScope((e.target as HTMLSelectElement).value as "user" | "agent"); setTarget(""); }}>
            <option value="user">{t("budgetForUser")}</option>
            <option value="agent">{t("budgetForAgent")}</option>
          </select>
        </Field>
        <Field id="budget-target" label={scope === "user" ? t("email") : t("agent")} error={fields.scope_id}>
          {/* nothing picked yet: the first choice shows as picked, as it is the one sent */}
          <select id="budget-target" value={target || options[0]?.[0] || ""} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}>
            {options.map(([id, name]) => <option value={id}>{name}</option>)}
          </select>
        </Field>
        <Field id="budget-cost" label={t("maxCost")} error={fields.max_cost}>
          <input id="budget-cost" inputMode="decimal" value={maxCost} onInput={(e) => setMaxCost((e.target as HTMLInputElement).value)} />
        </Field>
        <Field id="budget-tokens" label={t("maxTokensBudget")} error={fields.max_tokens}>
          <input id="budget-tokens" inputMode="numeric" value={maxTokens} onInput={(e) => setMaxTokens((e.target as HTMLInputElement).value)} />
        </Field>
        <button type="submit" class="primary">{t("newBudget")}</button>
      </form>
      <ErrorBox error={error} />
    </section>
  );
}

export function AdminView({ user }: { user: User }) {
  return (
    <div class="stack">
      <h1>{t("admin")}</h1>
      <Health />
      <Users me={user} />
      <Budgets />
      <McpServers />
      <Audit />
    </div>
  );
}
