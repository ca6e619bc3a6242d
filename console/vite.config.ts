import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { defineConfig, type Plugin } from "vite";
import preact from "@preact/preset-vite";

// What the build is made from. Its SHA-256 is written next to the build (source-hash.txt) so a
// test without Node can tell that the committed build was made from the committed sources
// (tests/unit/test_console_build.py computes the same digest); `make console-check` goes
// further and rebuilds from the lock file, comparing every file.
const INPUTS = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts", "src"];

const ROOT = import.meta.dirname;

function files(path: string): string[] {
  return statSync(path).isDirectory() ? readdirSync(path).flatMap((f) => files(join(path, f))) : [path];
}

function sourceHash(): Plugin {
  return {
    name: "source-hash",
    generateBundle() {
      const h = createHash("sha256");
      const all = INPUTS.flatMap((p) => files(join(ROOT, p))).map((f) => relative(ROOT, f).split("\\").join("/"));
      for (const f of all.sort()) {
        h.update(f + "\0");
        h.update(readFileSync(join(ROOT, f)));
        h.update("\0");
      }
      this.emitFile({ type: "asset", fileName: "source-hash.txt", source: h.digest("hex") + "\n" });
    },
  };
}

// The build is committed into the Python package (served by the app at /), so it must be
// reproducible: no timestamps, stable file names from content hashes.
export default defineConfig({
  plugins: [preact(), sourceHash()],
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
