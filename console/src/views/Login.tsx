import { useEffect, useState } from "preact/hooks";
import { api, request, type Token } from "../api";
import { session } from "../session";
import { lang, setLang, t, type Lang } from "../i18n";
import { useSignal } from "../state";
import { ErrorBox, Field, fieldErrors } from "./common";

export function Login() {
  const lg = useSignal(lang);
  const [mode, setMode] = useState<"login" | "signup">("login");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [name, setName] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [notice, setNotice] = useState("");
  const [busy, setBusy] = useState(false);
  // sign-up is offered only where the server accepts it (GET /api/auth/signup); until the
  // answer comes, and if it cannot be read, it is offered and the API's own refusal shows
  const [signupOpen, setSignupOpen] = useState(true);
  useEffect(() => {
    api.get<{ allowed: boolean }>("/api/auth/signup").then(
      (r) => {
        setSignupOpen(r.allowed);
        if (!r.allowed) setMode("login");
      },
      () => undefined,
    );
  }, []);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setFields({});
    try {
      if (mode === "signup") {
        await api.post("/api/auth/register", { email, password, name });
        setNotice(t("signedUp"));
      }
      const tok = await request<Token>("POST", "/api/auth/login", { form: { username: email, password } });
      session.set(tok.access_token, tok.expires_at);
    } catch (err) {
      setError(err);
      setFields(fieldErrors(err, ["name", "email", "password"]));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main id="main-content" class="auth" tabIndex={-1}>
      <form class="card" onSubmit={submit} aria-labelledby="auth-title">
        <div class="row spread">
          <h1 id="auth-title">{mode === "login" ? t("login") : t("signup")}</h1>
          <label class="sr-only" for="auth-lang">{t("language")}</label>
          <select id="auth-lang" value={lg} onChange={(e) => setLang((e.target as HTMLSelectElement).value as Lang)}>
            <option value="en">English</option>
            <option value="pt">Português</option>
          </select>
        </div>
        {notice && <p class="notice" role="status">{notice}</p>}
        {mode === "signup" && (
          <Field id="name" label={t("name")} error={fields.name}>
            <input id="name" name="name" autoComplete="name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          </Field>
        )}
        <Field id="email" label={t("email")} error={fields.email}>
          <input id="email" name="email" type="email" autoComplete="username" required value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} />
        </Field>
        <Field id="password" label={t("password")} error={fields.password}>
          <input
            id="password"
            name="password"
            type="password"
            autoComplete={mode === "login" ? "current-password" : "new-password"}
            required
            value={password}
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
          />
        </Field>
        <ErrorBox error={error} />
        <button type="submit" class="primary" disabled={busy}>
          {mode === "login" ? t("login") : t("signup")}
        </button>
        {!signupOpen ? (
          <p class="muted" data-testid="signup-closed">{t("signupClosed")}</p>
        ) : (
        <p>
          {mode === "login" ? t("noAccount") : t("haveAccount")}{" "}
          <button type="button" class="link" onClick={() => { setMode(mode === "login" ? "signup" : "login"); setError(null); setFields({}); }}>
            {mode === "login" ? t("signup") : t("login")}
          </button>
        </p>
        )}
      </form>
    </main>
  );
}
