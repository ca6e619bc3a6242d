import { useEffect, useState } from "preact/hooks";
import { api, type ApiKey, type User } from "../api";
import { t, fmtCost, fmtDate, roleName } from "../i18n";
import { CopyButton, ErrorBox, Field, fieldErrors } from "./common";
import { Memories } from "./Memories";

function ApiKeys() {
  const [keys, setKeys] = useState<ApiKey[]>([]);
  const [name, setName] = useState("");
  const [fresh, setFresh] = useState<ApiKey | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const load = () => api.get<ApiKey[]>("/api/api-keys").then(setKeys, setError);
  useEffect(() => {
    load();
  }, []);
  async function create(e: Event) {
    e.preventDefault();
    setError(null);
    setFields({});
    try {
      setFresh(await api.post<ApiKey>("/api/api-keys", { name }));
      setName("");
      load();
    } catch (err) {
      setError(err);
      setFields(fieldErrors(err, ["name"]));
    }
  }
  async function revoke(k: ApiKey) {
    if (!confirm(t("confirmDelete"))) return;
    try {
      await api.del(`/api/api-keys/${k.id}`);
      load();
    } catch (err) {
      setError(err);
    }
  }
  return (
    <section aria-labelledby="keys-title">
      <h2 id="keys-title">{t("apiKeys")}</h2>
      <form class="row" onSubmit={create}>
        <Field id="key-name" label={t("keyName")} error={fields.name}>
          <input id="key-name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </Field>
        <button type="submit" class="primary">{t("newKey")}</button>
      </form>
      {fresh?.key && (
        <div class="notice" role="status">
          <p>{t("keyShownOnce")}</p>
          <code data-testid="new-key">{fresh.key}</code> <CopyButton text={fresh.key} />
        </div>
      )}
      <ErrorBox error={error} />
      <table class="list">
        <thead>
          <tr>
            <th scope="col">{t("name")}</th>
            <th scope="col">{t("keyPrefix")}</th>
            <th scope="col">{t("created")}</th>
            <th scope="col">{t("lastUsed")}</th>
            <th scope="col"><span class="sr-only">{t("revoke")}</span></th>
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => (
            <tr key={k.id}>
              <td>{k.name}</td>
              <td><code>{k.prefix}</code></td>
              <td>{fmtDate(k.created_at)}</td>
              <td>{k.last_used_at ? fmtDate(k.last_used_at) : t("never")}</td>
              <td><button class="ghost small danger" onClick={() => revoke(k)}>{t("revoke")}</button></td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

interface BudgetStatus {
  max_cost: string | number | null;
  max_tokens: number | null;
  used_cost: string | number;
  used_tokens: number;
  resets_at: string;
}

export function ProfileView({ user }: { user: User & { budget?: BudgetStatus | null } }) {
  const b = user.budget;
  return (
    <div class="stack">
      <section class="card" aria-labelledby="profile-title">
        <h1 id="profile-title">{t("profile")}</h1>
        <dl class="pairs">
          <dt>{t("name")}</dt>
          <dd data-testid="profile-name">{user.name}</dd>
          <dt>{t("email")}</dt>
          <dd data-testid="profile-email">{user.email}</dd>
          <dt>{t("role")}</dt>
          <dd data-testid="profile-role">{roleName(user.role)}</dd>
          <dt>{t("created")}</dt>
          <dd>{fmtDate(user.created_at)}</dd>
          <dt>{t("budget")}</dt>
          <dd data-testid="profile-budget">
            {b
              ? `${t("used")}: ${fmtCost(Number(b.used_cost))}${b.max_cost != null ? ` / ${fmtCost(Number(b.max_cost))}` : ""} · ${b.used_tokens.toLocaleString()}${b.max_tokens != null ? ` / ${b.max_tokens.toLocaleString()}` : ""} tokens · ${t("resetsAt")} ${fmtDate(b.resets_at)}`
              : t("noBudget")}
          </dd>
        </dl>
      </section>
      <Memories />
      <ApiKeys />
    </div>
  );
}
