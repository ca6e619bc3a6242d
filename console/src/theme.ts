import { signal } from "./state";

export type Theme = "light" | "dark";

function initial(): Theme {
  const saved = localStorage.getItem("ev.theme");
  if (saved === "light" || saved === "dark") return saved;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export const theme = signal<Theme>(initial());
document.documentElement.dataset.theme = theme.get();

export function setTheme(v: Theme): void {
  localStorage.setItem("ev.theme", v);
  document.documentElement.dataset.theme = v;
  theme.set(v);
}
