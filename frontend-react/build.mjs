// Bundles the unit tests (test/*.test.tsx) into build/test/ for Node's test runner. The
// package itself is built by tsc (npm run build:dist, which npm pack runs:
// tsconfig.build.json -> dist/). React, the DOM and the testing library stay external
// (one copy of React, from node_modules); the bindings, the client and the demo's types
// come from their sources (tsconfig.json's `paths`, and the "source" export condition).
import { readdirSync } from "node:fs";
import { build } from "esbuild";

const tests = readdirSync("test").filter((name) => name.endsWith(".test.tsx"));
await build({
  entryPoints: tests.map((name) => `test/${name}`),
  outdir: "build/test",
  outExtension: { ".js": ".mjs" },
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  jsx: "automatic",
  logLevel: "warning",
  conditions: ["source"],
  external: ["react", "react/*", "react-dom", "react-dom/*", "@testing-library/*", "happy-dom", "@happy-dom/*"],
});
