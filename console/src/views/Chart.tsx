import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { locale, t } from "../i18n";
import { useSignal } from "../state";
import { theme } from "../theme";

/** A tooltip that follows the cursor and names the day, the series and its value with unit. */
function tooltip(unit: string, digits: number): uPlot.Plugin {
  let box: HTMLDivElement;
  return {
    hooks: {
      init: (u) => {
        box = document.createElement("div");
        box.className = "chart-tip";
        box.setAttribute("role", "tooltip");
        box.hidden = true;
        u.over.appendChild(box);
      },
      setCursor: (u) => {
        const i = u.cursor.idx;
        if (i == null || u.cursor.left == null || u.cursor.left < 0) {
          box.hidden = true;
          return;
        }
        const day = new Date((u.data[0][i] as number) * 1000).toLocaleDateString(locale());
        const lines = u.series.slice(1).map((s, k) => {
          const v = u.data[k + 1][i];
          return `${s.label}: ${v == null ? "—" : (v as number).toLocaleString(locale(), { maximumFractionDigits: digits })} ${unit}`;
        });
        box.textContent = [day, ...lines].join("\n");
        box.hidden = false;
        box.style.left = `${Math.min(u.cursor.left + 12, u.over.clientWidth - 160)}px`;
        box.style.top = `${Math.max((u.cursor.top ?? 0) - 10, 0)}px`;
      },
    },
  };
}

const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2"];

export function TimeChart({
  title,
  unit,
  days,
  series,
  digits = 0,
  testId,
}: {
  title: string;
  unit: string;
  days: number[]; // unix seconds, one per bucket
  series: { label: string; values: (number | null)[] }[];
  digits?: number;
  testId?: string;
}) {
  const el = useRef<HTMLDivElement>(null);
  const th = useSignal(theme);
  useEffect(() => {
    const host = el.current!;
    const dark = document.documentElement.dataset.theme === "dark";
    const axisColor = dark ? "#cbd5e1" : "#334155";
    const grid = { stroke: dark ? "#334155" : "#e2e8f0", width: 1 };
    const opts: uPlot.Options = {
      width: Math.max(280, host.clientWidth),
      height: 220,
      legend: { show: true },
      cursor: { points: { size: 8 } },
      scales: { x: { time: true } },
      axes: [
        // a day's label ("13 de nov.") is ~70 px wide: at least 90 px between ticks, so they
        // never run into each other at phone width
        { stroke: axisColor, grid, space: 90, values: (_u, ticks) => ticks.map((v) => new Date(v * 1000).toLocaleDateString(locale(), { month: "short", day: "numeric" })) },
        { stroke: axisColor, grid, label: unit, size: 60, values: (_u, ticks) => ticks.map((v) => v.toLocaleString(locale(), { maximumFractionDigits: digits + 1 })) },
      ],
      series: [
        { label: t("chartDay"), value: (_u: uPlot, v: number | null) => (v == null ? "—" : new Date(v * 1000).toLocaleDateString(locale())) },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          fill: series.length === 1 ? `${COLORS[i % COLORS.length]}22` : undefined,
          points: { show: days.length < 60 },
          value: (_u: uPlot, v: number | null) => (v == null ? "—" : `${v.toLocaleString(locale(), { maximumFractionDigits: digits })} ${unit}`),
        })),
      ],
      plugins: [tooltip(unit, digits)],
    };
    const plot = new uPlot(opts, [days, ...series.map((s) => s.values)] as uPlot.AlignedData, host);
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, host.clientWidth), height: 220 }));
    resize.observe(host);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [days, series, unit, th]);
  return (
    <figure class="chart" data-testid={testId}>
      <figcaption>{title}</figcaption>
      <div ref={el} />
    </figure>
  );
}
