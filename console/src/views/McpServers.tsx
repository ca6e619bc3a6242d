import { useEffect, useState } from "preact/hooks";
import { api, ApiError } from "../api";
import { t, fmtDate } from "../i18n";
import { ErrorBox, Field, fieldErrors } from "./common";

export interface McpTool {
  name: string;
  description: string;
}
export interface McpServer {
  id: string;
  name: string;
  description: string | null;
  transport: "http" | "stdio";
  url: string | null;
  command: string[] | null;
  secret_names: string[];
  status: "unknown" | "available" | "unavailable";
  status_message: string | null;
  refreshed_at: string | null;
  tools: McpTool[];
}

/** "Name: value" per line into an object (headers or environment); values are sent once and
 *  never shown again (the API returns only their names). */
function secrets(text: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf(":");
    if (at > 0) out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return Object.keys(out).length ? out : undefined;
}

/** The admin's MCP servers (/api/admin/mcp-servers): the list with status and tools, register,
 *  refresh the tool list, delete. */
export function McpServers() {
  const [servers, setServers] = useState<McpServer[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [name, setName] = useState("");
  const [transport, setTransport] = useState<"http" | "stdio">("http");
  const [target, setTarget] = useState("");
  const [secretText, setSecretText] = useState("");
  const [busy, setBusy] = useState(false);

  const load = async () => {
    setError(null);
    try {
      setServers((await api.get<{ items: McpServer[] }>("/api/admin/mcp-servers")).items);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load();
  }, []);

  async function register(e: Event) {
    e.preventDefault();
    setBusy(true);
    setFields({});
    setError(null);
    const body: Record<string, unknown> = { name, transport };
    if (transport === "http") {
      body.url = target;
      body.headers = secrets(secretText);
    } else {
      body.command = target.split(" ").filter(Boolean);
      body.env = secrets(secretText);
    }
    try {
      const made = await api.post<McpServer>("/api/admin/mcp-servers", body);
      setServers([...servers.filter((s) => s.id !== made.id), made]);
      setName("");
      setTarget("");
      setSecretText("");
    } catch (err) {
      const found = fieldErrors(err, ["name", "url", "command", "transport"], { secrets: /header|\benv/ });
      const secret = found.secrets ?? found.headers ?? found.env;
      const known: Record<string, string> = secret ? { ...found, secrets: secret } : found;
      setFields(known);
      if (!(err instanceof ApiError) || Object.keys(known).length === 0) setError(err);
    } finally {
      setBusy(false);
    }
  }

  async function refresh(s: McpServer) {
    try {
      const updated = await api.post<McpServer>(`/api/admin/mcp-servers/${s.id}/refresh`);
      setServers(servers.map((x) => (x.id === s.id ? updated : x)));
    } catch (e) {
      setError(e);
    }
  }
  async function remove(s: McpServer) {
    if (!confirm(t("confirmDelete"))) return;
    try {
      await api.del(`/api/admin/mcp-servers/${s.id}`);
      setServers(servers.filter((x) => x.id !== s.id));
    } catch (e) {
      setError(e);
    }
  }

  return (
    <section aria-labelledby="mcp-title">
      <h2 id="mcp-title">{t("mcpServers")}</h2>
      <ErrorBox error={error} onRetry={load} />
      <table class="list" data-testid="mcp-servers">
        <thead>
          <tr>
            <th scope="col">{t("name")}</th>
            <th scope="col">{t("mcpEndpoint")}</th>
            <th scope="col">{t("status")}</th>
            <th scope="col">{t("tools")}</th>
            <th scope="col"><span class="sr-only">{t("actions")}</span></th>
          </tr>
        </thead>
        <tbody>
          {servers.map((s) => (
            <tr key={s.id} data-server={s.name}>
              <td>
                <strong>{s.name}</strong>
                {s.secret_names.length > 0 && <div class="muted small">{s.secret_names.join(", ")}</div>}
              </td>
              <td><code>{s.transport === "http" ? s.url : (s.command ?? []).join(" ")}</code></td>
              <td>
                <span class={`status status-${s.status}`}>{t(s.status === "available" ? "mcpAvailable" : s.status === "unavailable" ? "mcpUnavailable" : "mcpUnknown")}</span>
                {s.status_message && <div class="muted small">{s.status_message}</div>}
                {s.refreshed_at && <div class="muted small">{fmtDate(s.refreshed_at)}</div>}
              </td>
              <td>
                {s.tools.length === 0 ? "—" : (
                  <ul class="plain">
                    {s.tools.map((tool) => <li key={tool.name}><code>{tool.name}</code> <span class="muted small">{tool.description}</span></li>)}
                  </ul>
                )}
              </td>
              <td>
                <button class="ghost small" onClick={() => refresh(s)}>{t("mcpRefresh")}</button>
                <button class="ghost small danger" onClick={() => remove(s)}>{t("delete")}</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {servers.length === 0 && !error && <p class="muted">{t("mcpNone")}</p>}
      <form class="row wrap" onSubmit={register} aria-label={t("mcpRegister")}>
        <Field id="mcp-name" label={t("name")} error={fields.name}>
          <input id="mcp-name" value={name} required onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </Field>
        <Field id="mcp-transport" label={t("mcpTransport")} error={fields.transport}>
          <select id="mcp-transport" value={transport} onChange={(e) => setTransport((e.target as HTMLSelectElement).value as "http" | "stdio")}>
            <option value="http">Streamable HTTP</option>
            <option value="stdio">stdio</option>
          </select>
        </Field>
        <Field id="mcp-target" label={transport === "http" ? "URL" : t("mcpCommand")} error={transport === "http" ? fields.url : fields.command}>
          <input id="mcp-target" value={target} required onInput={(e) => setTarget((e.target as HTMLInputElement).value)} />
        </Field>
        <Field id="mcp-secrets" label={transport === "http" ? t("mcpHeaders") : t("mcpEnv")} error={fields.secrets}>
          <textarea id="mcp-secrets" rows={2} placeholder="Authorization: Bearer …" value={secretText} onInput={(e) => setSecretText((e.target as HTMLTextAreaElement).value)} />
        </Field>
        <button type="submit" class="primary" disabled={busy}>{t("mcpRegister")}</button>
      </form>
    </section>
  );
}
