import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { ApiError } from "../api";
import { t } from "../i18n";

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.detail;
  return String((e as Error)?.message ?? e);
}

export function ErrorBox({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      <span>{errorText(error)}</span>
      {onRetry && (
        <button class="ghost" onClick={onRetry}>
          {t("retry")}
        </button>
      )}
    </div>
  );
}

/** A labelled form field with the API's own message for it beside the input. */
export function Field({ id, label, error, children }: { id: string; label: string; error?: string; children: ComponentChildren }) {
  return (
    <div class={`field${error ? " invalid" : ""}`}>
      <label for={id}>{label}</label>
      {children}
      {error && (
        <span class="field-error" id={`${id}-error`} role="alert">
          {error}
        </span>
      )}
    </div>
  );
}

export function CopyButton({ text }: { text: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      class="ghost small"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
        } catch {
          const area = document.createElement("textarea");
          area.value = text;
          document.body.appendChild(area);
          area.select();
          document.execCommand("copy");
          area.remove();
        }
        setDone(true);
        setTimeout(() => setDone(false), 1500);
      }}
    >
      {done ? t("copied") : t("copy")}
    </button>
  );
}

/** Field errors for an API error: pydantic's per-field list, or the first field the API's
 * message names (e.g. "unknown tools ['x']; valid tools are …" goes beside Tools). */
export function fieldErrors(e: unknown, names: string[], aliases: Record<string, RegExp> = {}): Record<string, string> {
  if (!(e instanceof ApiError)) return {};
  if (Object.keys(e.fields).length) return e.fields;
  const text = e.detail.toLowerCase();
  const hit =
    names.find((n) => new RegExp(`\\b${n.replace("_", "[ _]")}`).test(text)) ??
    Object.keys(aliases).find((n) => aliases[n].test(text));
  return hit ? { [hit]: e.detail } : {};
}
