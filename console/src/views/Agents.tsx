import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, ApiError, getHeaderPage, usableAgents, type Agent, type AgentMemory, type AgentScope, type User } from "../api";
import { t, fmtDate } from "../i18n";
import { go } from "../router";
import { ErrorBox, Field, fieldErrors } from "./common";
import type { KnowledgeBase } from "./Knowledge";

// one server page per "More" (the API pages with limit + cursor; nothing is paged in the browser)
const PAGE = 20;
interface Tool {
  name: string;
  description: string;
}

/** Built-in tools first, then each MCP server's ``server/tool`` names under their server. A name
 *  the agent has but no server offers now (a server removed) still shows, so it can be unticked. */
function toolGroups(available: Tool[], chosen: string[]): [string, Tool[]][] {
  const known = new Set(available.map((x) => x.name));
  const all = [...available, ...chosen.filter((n) => !known.has(n)).map((name) => ({ name, description: t("toolGone") }))];
  const groups = new Map<string, Tool[]>();
  for (const tool of all) {
    const server = tool.name.includes("/") ? tool.name.split("/")[0] : "";
    groups.set(server, [...(groups.get(server) ?? []), tool]);
  }
  return [...groups.entries()].sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b)));
}

/** The agents this one may name as colleagues: the caller's usable agents (their own and shared
 *  ones) but itself, others' marked shared; a colleague it names that the caller cannot see (no
 *  longer shared, deleted) still shows by id, so it can be unticked. */
function colleagueChoices(usable: Agent[], self: Agent | null, chosen: string[], owner: string): { id: string; label: string; shared: boolean; gone: boolean }[] {
  const seen = new Set<string>();
  const out: { id: string; label: string; shared: boolean; gone: boolean }[] = [];
  for (const a of usable) {
    if (a.id === self?.id || seen.has(a.id)) continue;
    seen.add(a.id);
    out.push({ id: a.id, label: a.name, shared: a.user_id !== owner, gone: false });
  }
  for (const id of chosen) if (!seen.has(id)) out.push({ id, label: id, shared: false, gone: true });
  return out;
}

/** The API's refusals of ``delegate_ids`` (a cycle, itself, one it may not use, too many) go
 *  beside the colleagues, whatever else their text mentions (an agent's name may be anything). */
function delegateError(e: unknown): string | undefined {
  if (!(e instanceof ApiError)) return undefined;
  if (e.fields.delegate_ids) return e.fields.delegate_ids;
  return Object.keys(e.fields).length === 0 && /\bdelegat|\bcycle\b/i.test(e.detail) ? e.detail : undefined;
}

export function AgentsView({ user, sub }: { user: User; sub: string[] }) {
  if (sub[0] === "new") return <AgentForm key="new" user={user} agent={null} />;
  if (sub[0]) return <AgentLoader user={user} id={sub[0]} />;
  return <AgentList user={user} />;
}

function AgentList({ user }: { user: User }) {
  const [scope, setScope] = useState<AgentScope>("mine");
  const [agents, setAgents] = useState<Agent[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [filter, setFilter] = useState("");
  // the latest request wins: a page answering after the scope changed is dropped
  const latest = useRef(0);

  /** The first page of ``scope`` (``cursor`` null) or the next one, appended. */
  async function load(cursor: string | null) {
    const ticket = ++latest.current;
    setBusy(true);
    setError(null);
    try {
      const page = await getHeaderPage<Agent>("/api/agents", { scope, limit: PAGE, cursor });
      if (ticket !== latest.current) return;
      setAgents((cur) => (cursor && cur ? [...cur, ...page.items] : page.items));
      setNext(page.next_cursor);
    } catch (e) {
      if (ticket === latest.current) setError(e);
    } finally {
      if (ticket === latest.current) setBusy(false);
    }
  }
  useEffect(() => {
    setAgents(null);
    setNext(null);
    load(null);
  }, [scope]);

  const shown = useMemo(() => {
    const f = filter.trim().toLowerCase();
    return (agents ?? []).filter((a) => !f || `${a.name} ${a.description ?? ""} ${a.model}`.toLowerCase().includes(f));
  }, [agents, filter]);

  return (
    <section aria-labelledby="agents-title">
      <div class="row spread">
        <h1 id="agents-title">{t("agents")}</h1>
        <a class="button primary" href="#/agents/new">{t("newAgent")}</a>
      </div>
      <div class="row">
        <label for="agent-scope">{t("agentScope")}</label>
        <select id="agent-scope" value={scope} onChange={(e) => setScope((e.target as HTMLSelectElement).value as AgentScope)}>
          <option value="mine">{t("scopeMine")}</option>
          <option value="shared">{t("scopeShared")}</option>
          <option value="all">{t("scopeAll")}</option>
        </select>
        <label for="agent-filter">{t("filterLoaded")}</label>
        <input id="agent-filter" type="search" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
      </div>
      <ErrorBox error={error} onRetry={() => load(agents && next ? next : null)} />
      <table class="list" aria-busy={busy ? "true" : "false"}>
        <thead>
          <tr>
            <th scope="col">{t("name")}</th>
            <th scope="col">{t("model")}</th>
            <th scope="col">{t("tools")}</th>
            <th scope="col">{t("visibility")}</th>
            <th scope="col">{t("owner")}</th>
            <th scope="col"><span class="sr-only">{t("chat")}</span></th>
          </tr>
        </thead>
        <tbody>
          {shown.map((a) => (
            <tr key={a.id}>
              <td>
                <a href={`#/agents/${a.id}`}>{a.name}</a>
                {a.description && <div class="muted">{a.description}</div>}
              </td>
              <td><code>{a.model}</code></td>
              <td>{a.tools.join(", ") || "—"}</td>
              <td>{a.visibility === "shared" ? t("shared").split(" (")[0] : t("private")}</td>
              <td>{a.user_id === user.id ? t("you") : t("someoneElse")}</td>
              <td><a href={`#/chat?agent=${a.id}`} onClick={(e) => { e.preventDefault(); sessionStorage.setItem("ev.agent", a.id); go("/chat"); }}>{t("chat")}</a></td>
            </tr>
          ))}
        </tbody>
      </table>
      {agents && shown.length === 0 && !next && <p class="muted">{scope === "mine" ? t("noAgents") : t("noAgentsInScope")}</p>}
      <div class="row pager">
        <span class="muted" data-testid="agents-loaded">{t("loadedCount", { n: agents?.length ?? 0 })}</span>
        {next && <button data-testid="agents-more" disabled={busy} onClick={() => load(next)}>{t("more")}</button>}
      </div>
    </section>
  );
}

function AgentLoader({ user, id }: { user: User; id: string }) {
  const [agent, setAgent] = useState<Agent | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    setAgent(null);
    setError(null);
    api.get<Agent>(`/api/agents/${id}`).then(setAgent, setError);
  }, [id]);
  if (error) return <ErrorBox error={error} />;
  if (!agent || agent.id !== id) return <p aria-busy="true">…</p>;
  // keyed: going from one agent's form to another's starts a fresh form (no state carried over)
  return <AgentForm key={agent.id} user={user} agent={agent} />;
}

function AgentForm({ user, agent }: { user: User; agent: Agent | null }) {
  const [name, setName] = useState(agent?.name ?? "");
  const [description, setDescription] = useState(agent?.description ?? "");
  const [instructions, setInstructions] = useState(agent?.instructions ?? "");
  const [model, setModel] = useState(agent?.model ?? "");
  const [temperature, setTemperature] = useState(agent?.model_settings.temperature?.toString() ?? "");
  const [maxTokens, setMaxTokens] = useState(agent?.model_settings.max_tokens?.toString() ?? "");
  const [tools, setTools] = useState<string[]>(agent?.tools ?? []);
  const [visibility, setVisibility] = useState(agent?.visibility ?? "private");
  const [kbIds, setKbIds] = useState<string[]>(agent?.knowledge_base_ids ?? []);
  const [delegateIds, setDelegateIds] = useState<string[]>(agent?.delegate_ids ?? []);
  // the API's defaults when an agent has none stored: memory on, shared across its conversations
  const [memory, setMemory] = useState<AgentMemory>({ enabled: agent?.memory?.enabled ?? true, shared: agent?.memory?.shared ?? true });
  const [usable, setUsable] = useState<Agent[]>([]);
  const [bases, setBases] = useState<KnowledgeBase[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const mine = !agent || agent.user_id === user.id || user.role === "admin";
  const [available, setAvailable] = useState<Tool[]>([]);
  useEffect(() => {
    api.get<Tool[]>("/api/tools").then(setAvailable, setError);
    api.get<{ items: KnowledgeBase[] }>("/api/knowledge-bases", { limit: 100 }).then((p) => setBases(p.items), () => undefined);
    usableAgents().then(setUsable, setError);
  }, []);

  async function save(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setFields({});
    const ms: Record<string, number> = {};
    if (temperature.trim()) ms.temperature = Number(temperature);
    if (maxTokens.trim()) ms.max_tokens = Number(maxTokens);
    const body: Record<string, unknown> = { name, description: description || null, instructions, tools, visibility, model_settings: ms, knowledge_base_ids: kbIds, delegate_ids: delegateIds, memory };
    if (model.trim()) body.model = model.trim();
    try {
      if (agent) await api.patch(`/api/agents/${agent.id}`, body);
      else await api.post("/api/agents", body);
      go("/agents");
    } catch (err) {
      setError(err);
      const delegates = delegateError(err);
      setFields(
        delegates
          ? { delegate_ids: delegates }
          : fieldErrors(err, ["name", "description", "instructions", "model_settings", "model", "tools", "knowledge_base_ids", "visibility", "memory"], {
              model: /\bprovider\b/,
              knowledge_base_ids: /knowledge/,
            }),
      );
    } finally {
      setBusy(false);
    }
  }

  async function remove() {
    if (!agent || !confirm(t("confirmDelete"))) return;
    try {
      await api.del(`/api/agents/${agent.id}`);
      go("/agents");
    } catch (err) {
      setError(err);
    }
  }

  const ms = fields.model_settings;
  const colleagues = colleagueChoices(usable, agent, delegateIds, agent?.user_id ?? user.id);
  return (
    <form class="card wide" onSubmit={save} aria-labelledby="agent-form-title">
      <h1 id="agent-form-title">{agent ? t("editAgent") : t("newAgent")}</h1>
      <fieldset disabled={!mine} class="plain">
        <Field id="agent-name" label={t("name")} error={fields.name}>
          <input id="agent-name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </Field>
        <Field id="agent-description" label={t("description")} error={fields.description}>
          <input id="agent-description" value={description} onInput={(e) => setDescription((e.target as HTMLInputElement).value)} />
        </Field>
        <Field id="agent-instructions" label={t("instructions")} error={fields.instructions}>
          <textarea id="agent-instructions" rows={6} value={instructions} onInput={(e) => setInstructions((e.target as HTMLTextAreaElement).value)} />
        </Field>
        <Field id="agent-model" label={t("model")} error={fields.model}>
          <input id="agent-model" placeholder="offline" value={model} onInput={(e) => setModel((e.target as HTMLInputElement).value)} />
        </Field>
        <div class="row">
          <Field id="agent-temperature" label={t("temperature")} error={ms && /temperature/.test(ms) ? ms : undefined}>
            <input id="agent-temperature" inputMode="decimal" value={temperature} onInput={(e) => setTemperature((e.target as HTMLInputElement).value)} />
          </Field>
          <Field id="agent-max-tokens" label={t("maxTokens")} error={ms && !/temperature/.test(ms) ? ms : undefined}>
            <input id="agent-max-tokens" inputMode="numeric" value={maxTokens} onInput={(e) => setMaxTokens((e.target as HTMLInputElement).value)} />
          </Field>
        </div>
        <fieldset class={fields.tools ? "invalid" : ""}>
          <legend>{t("tools")}</legend>
          {toolGroups(available, tools).map(([server, group]) => (
            <div class="tool-group" key={server || "builtin"} data-tool-group={server || "builtin"}>
              <span class="muted small">{server ? `${t("mcpServer")} ${server}` : t("builtinTools")}</span>
              {group.map(({ name: tool, description: what }) => (
                <label class="check" key={tool}>
                  <input
                    type="checkbox"
                    checked={tools.includes(tool)}
                    onChange={(e) => setTools((e.target as HTMLInputElement).checked ? [...tools, tool] : tools.filter((x) => x !== tool))}
                  />
                  <code>{tool}</code> <span class="muted small">{what}</span>
                </label>
              ))}
            </div>
          ))}
          {fields.tools && <span class="field-error" role="alert">{fields.tools}</span>}
        </fieldset>
        <fieldset class={fields.knowledge_base_ids ? "invalid" : ""}>
          <legend>{t("knowledgeBases")}</legend>
          {bases.length === 0 && <span class="muted">—</span>}
          {bases.map((b) => (
            <label class="check" key={b.id}>
              <input
                type="checkbox"
                checked={kbIds.includes(b.id)}
                onChange={(e) => setKbIds((e.target as HTMLInputElement).checked ? [...kbIds, b.id] : kbIds.filter((x) => x !== b.id))}
              />
              {b.name}
            </label>
          ))}
          {fields.knowledge_base_ids && <span class="field-error" role="alert">{fields.knowledge_base_ids}</span>}
        </fieldset>
        <fieldset class={fields.delegate_ids ? "invalid" : ""} data-testid="agent-delegates" aria-describedby="agent-delegates-help">
          <legend>{t("delegates")}</legend>
          <span class="muted small" id="agent-delegates-help">{t("delegatesHelp")}</span>
          {colleagues.length === 0 && <span class="muted">{t("noDelegates")}</span>}
          {colleagues.map((c) => (
            <label class="check" key={c.id}>
              <input
                type="checkbox"
                value={c.id}
                checked={delegateIds.includes(c.id)}
                onChange={(e) => setDelegateIds((e.target as HTMLInputElement).checked ? [...delegateIds, c.id] : delegateIds.filter((x) => x !== c.id))}
              />
              {c.label} {c.shared && <span class="muted small">· {t("sharedTag")}</span>}
              {c.gone && <span class="muted small">{t("delegateGone")}</span>}
            </label>
          ))}
          {fields.delegate_ids && <span class="field-error" id="agent-delegates-error" role="alert">{fields.delegate_ids}</span>}
        </fieldset>
        <fieldset
          class={fields.memory ? "invalid" : ""}
          data-testid="agent-memory"
          aria-describedby={fields.memory ? "agent-memory-help agent-memory-error" : "agent-memory-help"}
        >
          <legend>{t("agentMemory")}</legend>
          <span class="muted small" id="agent-memory-help">{t("agentMemoryHelp")}</span>
          <label class="check">
            <input
              type="checkbox"
              id="agent-memory-enabled"
              checked={memory.enabled}
              aria-invalid={fields.memory ? "true" : undefined}
              onChange={(e) => setMemory({ ...memory, enabled: (e.target as HTMLInputElement).checked })}
            />
            {t("agentMemoryEnabled")}
          </label>
          <label class="check">
            <input
              type="checkbox"
              id="agent-memory-shared"
              checked={memory.shared}
              disabled={!memory.enabled}
              aria-invalid={fields.memory ? "true" : undefined}
              onChange={(e) => setMemory({ ...memory, shared: (e.target as HTMLInputElement).checked })}
            />
            {t("agentMemoryShared")}
          </label>
          {fields.memory && <span class="field-error" id="agent-memory-error" role="alert">{fields.memory}</span>}
        </fieldset>
        <fieldset>
          <legend>{t("visibility")}</legend>
          <label class="check">
            <input type="radio" name="visibility" checked={visibility === "private"} onChange={() => setVisibility("private")} />
            {t("private")}
          </label>
          <label class="check">
            <input type="radio" name="visibility" checked={visibility === "shared"} onChange={() => setVisibility("shared")} />
            {t("shared")}
          </label>
        </fieldset>
      </fieldset>
      {agent && <p class="muted">{t("created")}: {fmtDate(agent.created_at)}</p>}
      <ErrorBox error={error} />
      <div class="row">
        {mine && <button type="submit" class="primary" disabled={busy}>{agent ? t("save") : t("create")}</button>}
        <a class="button" href="#/agents">{t("cancel")}</a>
        {agent && mine && <button type="button" class="danger" onClick={remove}>{t("delete")}</button>}
      </div>
    </form>
  );
}
