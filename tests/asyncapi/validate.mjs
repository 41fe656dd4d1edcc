// Parse an AsyncAPI document with the AsyncAPI project's own parser (@asyncapi/parser,
// root package-lock.json) and print its diagnostics, one JSON object a line.
// Exit status 1 when any diagnostic is an error (severity 0), else 0.
//
//   node tests/asyncapi/validate.mjs schemas/asyncapi.json
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Parser } from "@asyncapi/parser";

const file = resolve(process.argv[2]);
const { document, diagnostics } = await new Parser().parse(await readFile(file, "utf8"), {
  source: pathToFileURL(file).href,
});
for (const d of diagnostics) {
  console.log(JSON.stringify({ severity: d.severity, code: d.code, path: d.path, message: d.message }));
}
const errors = diagnostics.filter((d) => d.severity === 0);
if (errors.length > 0 || document === undefined) {
  console.error(`${file}: ${errors.length} error(s)`);
  process.exit(1);
}
