import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// The build is committed into the Python package (served by the app at /), so it must be
// reproducible: no timestamps, stable file names from content hashes.
export default defineConfig({
  plugins: [preact()],
  base: "/",
  build: {
    outDir: process.env.CONSOLE_OUT_DIR ?? "../src/employeevirtual/console/static",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: "es2022",
  },
});
