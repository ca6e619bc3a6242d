import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, type User } from "../api";
import { session } from "../session";
import { t, fmtDate } from "../i18n";
import { go } from "../router";
import { ErrorBox, Field, fieldErrors } from "./common";

// Knowledge bases and their documents (README "Knowledge"): create, upload with progress,
// watch ingestion (queued → processing → ready/failed, chunks done of total), search, delete.

export interface KnowledgeBase {
  id: string;
  user_id: string;
  name: string;
  description: string | null;
  visibility: string;
  document_count: number;
  created_at: string;
}

interface Doc {
  id: string;
  title: string;
  filename: string;
  size_bytes: number;
  status: "queued" | "processing" | "ready" | "failed";
  error: string | null;
  chunks_total: number;
  chunks_done: number;
  created_at: string;
}

interface Passage {
  document_id: string;
  title: string;
  heading: string;
  score: number;
  passage: string;
}

/** Multipart upload through XMLHttpRequest: fetch cannot report upload progress. */
function upload(baseId: string, file: File, onProgress: (fraction: number) => void): Promise<Doc> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/knowledge-bases/${baseId}/documents`);
    const token = session.token();
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body: { detail?: unknown } = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as Doc);
      else reject(new ApiError(xhr.status, typeof body.detail === "string" ? body.detail : `${xhr.status} ${xhr.statusText}`));
    };
    xhr.onerror = () => reject(new ApiError(0, "network error: the server could not be reached"));
    const form = new FormData();
    form.append("file", file);
    xhr.send(form);
  });
}

export function KnowledgeView({ user, baseId }: { user: User; baseId: string | null }) {
  return baseId ? <Base user={user} id={baseId} /> : <Bases />;
}

function Bases() {
  const [items, setItems] = useState<KnowledgeBase[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [shared, setShared] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const load = async (more: boolean) => {
    try {
      const page = await api.get<{ items: KnowledgeBase[]; next_cursor: string | null }>("/api/knowledge-bases", { limit: 50, cursor: more ? cursor : undefined });
      setItems((prev) => (more ? [...prev, ...page.items] : page.items));
      setCursor(page.next_cursor);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load(false);
  }, []);
  async function create(e: Event) {
    e.preventDefault();
    setError(null);
    setFields({});
    try {
      const kb = await api.post<KnowledgeBase>("/api/knowledge-bases", { name, description: description || null, visibility: shared ? "shared" : "private" });
      go(`/knowledge/${kb.id}`);
    } catch (err) {
      setError(err);
      setFields(fieldErrors(err, ["name", "description", "visibility"]));
    }
  }
  return (
    <section aria-labelledby="kb-title" class="stack">
      <h1 id="kb-title">{t("knowledge")}</h1>
      <ErrorBox error={error} />
      <table class="list">
        <thead>
          <tr>
            <th scope="col">{t("name")}</th>
            <th scope="col">{t("documents")}</th>
            <th scope="col">{t("visibility")}</th>
            <th scope="col">{t("created")}</th>
          </tr>
        </thead>
        <tbody>
          {items.map((b) => (
            <tr key={b.id}>
              <td>
                <a href={`#/knowledge/${b.id}`}>{b.name}</a>
                {b.description && <div class="muted">{b.description}</div>}
              </td>
              <td>{b.document_count}</td>
              <td>{b.visibility === "shared" ? t("shared").split(" (")[0] : t("private")}</td>
              <td>{fmtDate(b.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {cursor && <button onClick={() => load(true)}>{t("next")}</button>}
      <form class="card wide" onSubmit={create} aria-labelledby="kb-new">
        <h2 id="kb-new">{t("newBase")}</h2>
        <Field id="kb-name" label={t("name")} error={fields.name}>
          <input id="kb-name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </Field>
        <Field id="kb-description" label={t("description")} error={fields.description}>
          <input id="kb-description" value={description} onInput={(e) => setDescription((e.target as HTMLInputElement).value)} />
        </Field>
        <label class="check">
          <input type="checkbox" checked={shared} onChange={(e) => setShared((e.target as HTMLInputElement).checked)} />
          {t("shared")}
        </label>
        <button type="submit" class="primary">{t("create")}</button>
      </form>
    </section>
  );
}

function Base({ user, id }: { user: User; id: string }) {
  const [base, setBase] = useState<KnowledgeBase | null>(null);
  const [docs, setDocs] = useState<Doc[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [uploads, setUploads] = useState<{ name: string; fraction: number; error?: string }[]>([]);
  const [query, setQuery] = useState("");
  const [results, setResults] = useState<Passage[] | null>(null);
  const file = useRef<HTMLInputElement>(null);

  const loadDocs = () =>
    api.get<{ items: Doc[] }>(`/api/knowledge-bases/${id}/documents`, { limit: 100 }).then((p) => setDocs(p.items), setError);
  useEffect(() => {
    api.get<KnowledgeBase>(`/api/knowledge-bases/${id}`).then(setBase, setError);
    loadDocs();
  }, [id]);
  // follow ingestion while a document is queued or being processed
  const busy = docs.some((d) => d.status === "queued" || d.status === "processing");
  useEffect(() => {
    if (!busy) return;
    const timer = setInterval(loadDocs, 1000);
    return () => clearInterval(timer);
  }, [busy, id]);

  async function send(e: Event) {
    e.preventDefault();
    const files = [...(file.current?.files ?? [])];
    for (const f of files) {
      const index = uploads.length;
      setUploads((u) => [...u, { name: f.name, fraction: 0 }]);
      try {
        await upload(id, f, (fraction) => setUploads((u) => u.map((x, i) => (i === index ? { ...x, fraction } : x))));
        setUploads((u) => u.map((x, i) => (i === index ? { ...x, fraction: 1 } : x)));
      } catch (err) {
        setUploads((u) => u.map((x, i) => (i === index ? { ...x, error: (err as Error).message } : x)));
      }
    }
    if (file.current) file.current.value = "";
    loadDocs();
  }
  async function removeDoc(d: Doc) {
    if (!confirm(t("confirmDelete"))) return;
    try {
      await api.del(`/api/knowledge-bases/${id}/documents/${d.id}`);
      loadDocs();
    } catch (err) {
      setError(err);
    }
  }
  async function removeBase() {
    if (!confirm(t("confirmDelete"))) return;
    try {
      await api.del(`/api/knowledge-bases/${id}`);
      go("/knowledge");
    } catch (err) {
      setError(err);
    }
  }
  async function search(e: Event) {
    e.preventDefault();
    try {
      const out = await api.post<{ results: Passage[] }>(`/api/knowledge-bases/${id}/search`, { query, mode: "hybrid", limit: 5 });
      setResults(out.results);
    } catch (err) {
      setError(err);
    }
  }
  const mine = base && (base.user_id === user.id || user.role === "admin");
  return (
    <section aria-labelledby="base-title" class="stack">
      <div class="row spread">
        <h1 id="base-title">{base?.name ?? "…"}</h1>
        <div class="row">
          <a class="button" href="#/knowledge">{t("knowledge")}</a>
          {mine && <button class="danger" onClick={removeBase}>{t("delete")}</button>}
        </div>
      </div>
      {base?.description && <p class="muted">{base.description}</p>}
      <ErrorBox error={error} />
      {mine && (
        <form class="row" onSubmit={send}>
          <label for="kb-file">{t("uploadFiles")}</label>
          <input id="kb-file" type="file" ref={file} multiple accept=".txt,.md,.html,.htm,.pdf,.docx" />
          <button type="submit" class="primary">{t("upload")}</button>
        </form>
      )}
      {uploads.length > 0 && (
        <ul class="uploads" aria-label={t("upload")}>
          {uploads.map((u) => (
            <li>
              <span>{u.name}</span>{" "}
              <progress max={1} value={u.fraction} aria-label={u.name} />{" "}
              {u.error ? <span class="field-error" role="alert">{u.error}</span> : <span class="muted">{Math.round(u.fraction * 100)}%</span>}
            </li>
          ))}
        </ul>
      )}
      <table class="list" data-testid="documents">
        <thead>
          <tr>
            <th scope="col">{t("title")}</th>
            <th scope="col">{t("status")}</th>
            <th scope="col">{t("chunks")}</th>
            <th scope="col">{t("created")}</th>
            <th scope="col"><span class="sr-only">{t("delete")}</span></th>
          </tr>
        </thead>
        <tbody>
          {docs.map((d) => (
            <tr key={d.id} data-status={d.status}>
              <td>
                {d.title}
                <div class="muted small">{d.filename} · {(d.size_bytes / 1024).toFixed(1)} KiB</div>
              </td>
              <td>
                <span class={`badge ${d.status === "ready" ? "ok" : d.status === "failed" ? "error" : "degraded"}`}>{t(`doc_${d.status}`)}</span>
                {d.error && <div class="field-error">{d.error}</div>}
              </td>
              <td>
                {d.chunks_total ? (
                  <>
                    <progress max={d.chunks_total} value={d.chunks_done} aria-label={`${d.title}: ${t("chunks")}`} /> {d.chunks_done}/{d.chunks_total}
                  </>
                ) : (
                  "—"
                )}
              </td>
              <td>{fmtDate(d.created_at)}</td>
              <td>{mine && <button class="ghost small danger" onClick={() => removeDoc(d)}>{t("delete")}</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="row" onSubmit={search}>
        <label for="kb-search">{t("searchBase")}</label>
        <input id="kb-search" type="search" value={query} onInput={(e) => setQuery((e.target as HTMLInputElement).value)} />
        <button type="submit">{t("search")}</button>
      </form>
      {results && (
        <ol class="results" data-testid="search-results">
          {results.map((r) => (
            <li>
              <strong>{r.title}</strong> <span class="muted small">{r.heading} · {r.score.toFixed(3)}</span>
              <div>{r.passage}</div>
            </li>
          ))}
          {results.length === 0 && <li class="muted">{t("noData")}</li>}
        </ol>
      )}
    </section>
  );
}
