// How the console keeps the session: the bearer JWT from POST /api/auth/login is held in
// sessionStorage (this tab only; gone when the tab closes) and sent in the Authorization header.
// No cookie carries it, so the browser never attaches it on its own to a request another site
// starts: there is no CSRF surface. The strict CSP (script-src 'self', no inline scripts, no
// third-party origins) and sanitized markdown are what keep a script from reading it.
// The token is dropped at its expires_at, on logout and on any 401.
const KEY = "ev.session";

interface Stored {
  token: string;
  expires_at: string;
}

type Listener = () => void;
const listeners = new Set<Listener>();

function read(): Stored | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Stored;
    if (Date.parse(s.expires_at) <= Date.now()) {
      sessionStorage.removeItem(KEY);
      return null;
    }
    return s;
  } catch {
    return null;
  }
}

export const session = {
  token(): string | null {
    return read()?.token ?? null;
  },
  set(token: string, expires_at: string): void {
    sessionStorage.setItem(KEY, JSON.stringify({ token, expires_at }));
    listeners.forEach((l) => l());
  },
  clear(): void {
    sessionStorage.removeItem(KEY);
    listeners.forEach((l) => l());
  },
  expired(): void {
    this.clear();
  },
  subscribe(l: Listener): () => void {
    listeners.add(l);
    return () => listeners.delete(l);
  },
};
