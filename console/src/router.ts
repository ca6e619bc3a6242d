// Hash routes (#/chat/<id>, #/agents …): the server serves one index.html at / and nothing else.
import { signal } from "./state";

function current(): string[] {
  return location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
}

export const route = signal<string[]>(current());
addEventListener("hashchange", () => route.set(current()));

export function go(path: string): void {
  if (location.hash !== `#${path}`) location.hash = path;
  else route.set(current());
}
