import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./styles.css";
import { api, type User } from "./api";
import { session } from "./session";
import { lang, setLang, t, type Lang } from "./i18n";
import { route, go } from "./router";
import { useSignal } from "./state";
import { theme, setTheme } from "./theme";
import { Login } from "./views/Login";
import { ChatView } from "./views/Chat";
import { AgentsView } from "./views/Agents";
import { DashboardView } from "./views/Dashboard";
import { KnowledgeView } from "./views/Knowledge";
import { AdminView } from "./views/Admin";
import { ProfileView } from "./views/Profile";

function Header({ user, onLogout }: { user: User; onLogout: () => void }) {
  const r = useSignal(route);
  const th = useSignal(theme);
  const lg = useSignal(lang);
  const [open, setOpen] = useState(false);
  const links: [string, string][] = [
    ["chat", t("chat")],
    ["agents", t("agents")],
    ["knowledge", t("knowledge")],
    ["dashboard", t("dashboard")],
    ...(user.role === "admin" ? ([["admin", t("admin")]] as [string, string][]) : []),
    ["profile", t("profile")],
  ];
  return (
    <header class="top">
      <a class="skip" href="#main-content" onClick={(e) => { e.preventDefault(); document.getElementById("main-content")?.focus(); }}>
        {t("skipToContent")}
      </a>
      <span class="brand">{t("appName")}</span>
      <button class="menu-toggle ghost" aria-expanded={open} aria-controls="main-nav" onClick={() => setOpen(!open)}>
        {t("menu")}
      </button>
      <nav id="main-nav" class={open ? "open" : ""} aria-label={t("menu")}>
        {links.map(([path, label]) => (
          <a href={`#/${path}`} aria-current={(r[0] ?? "chat") === path ? "page" : undefined} onClick={() => setOpen(false)}>
            {label}
          </a>
        ))}
      </nav>
      <div class="tools">
        <label class="sr-only" for="lang-select">{t("language")}</label>
        <select id="lang-select" value={lg} onChange={(e) => setLang((e.target as HTMLSelectElement).value as Lang)}>
          <option value="en">English</option>
          <option value="pt">Português</option>
        </select>
        <button class="ghost" onClick={() => setTheme(th === "dark" ? "light" : "dark")}>
          {th === "dark" ? t("themeLight") : t("themeDark")}
        </button>
        <button class="ghost" data-testid="logout" onClick={onLogout}>{t("logout")}</button>
      </div>
    </header>
  );
}

function App() {
  useSignal(lang); // re-render every text on a language switch
  const r = useSignal(route);
  const [token, setToken] = useState(session.token());
  const [user, setUser] = useState<User | null>(null);

  useEffect(() => session.subscribe(() => setToken(session.token())), []);
  useEffect(() => {
    setUser(null);
    if (!token) return;
    api.get<User>("/api/users/me").then(setUser, () => session.clear());
  }, [token]);

  if (!token) return <Login />;
  if (!user) return <main id="main-content" class="loading" tabIndex={-1} aria-busy="true" />;
  const page = r[0] ?? "chat";
  let view;
  switch (page) {
    case "agents":
      view = <AgentsView user={user} sub={r.slice(1)} />;
      break;
    case "knowledge":
      view = <KnowledgeView user={user} baseId={r[1] ?? null} />;
      break;
    case "dashboard":
      view = <DashboardView user={user} />;
      break;
    case "admin":
      view = user.role === "admin" ? <AdminView user={user} /> : <p>{t("notFound")}</p>;
      break;
    case "profile":
      view = <ProfileView user={user} />;
      break;
    default:
      view = <ChatView user={user} conversationId={r[1] ?? null} focusSeq={r[2] && /^\d+$/.test(r[2]) ? Number(r[2]) : null} />;
  }
  return (
    <>
      <Header
        user={user}
        onLogout={() => {
          session.clear();
          go("/chat");
        }}
      />
      <main id="main-content" tabIndex={-1} class={`page page-${page}`}>
        {view}
      </main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
