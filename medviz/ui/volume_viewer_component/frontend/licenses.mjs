// Writes ../build/THIRD_PARTY_LICENSES.txt: the name, version, license and license text of every npm package
// whose code is in the bundle (read from esbuild's metafile), so the shipped viewer.js carries its notices.
import { readFileSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

const meta = JSON.parse(readFileSync("meta.json", "utf8"));
const packages = new Set();
for (const input of Object.keys(meta.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/g);
  if (m) packages.add(m[m.length - 1].replace("node_modules/", ""));
}
const parts = ["Third-party software bundled in viewer.js (built from package-lock.json by `npm run build`).\n"];
for (const name of [...packages].sort()) {
  const dir = join("node_modules", name);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f));
  const text = file && existsSync(join(dir, file)) ? readFileSync(join(dir, file), "utf8").trim() : "(no license file in the package)";
  parts.push(`${"=".repeat(78)}\n${name} ${pkg.version} — ${pkg.license ?? "see text"}\n${"=".repeat(78)}\n${text}\n`);
}
writeFileSync("../build/THIRD_PARTY_LICENSES.txt", parts.join("\n"));
console.log(`licenses of ${packages.size} packages written`);
