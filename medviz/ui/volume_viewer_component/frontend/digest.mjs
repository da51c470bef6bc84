// Writes ../build/BUILD_SOURCES.sha256: a digest of the sources the build was made from (the same digest as
// tests/ui/test_volume_viewer.py::source_digest), so a test catches a committed build that is out of date.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";

const h = createHash("sha256");
for (const name of ["package.json", "package-lock.json", "licenses.mjs", "src/index.ts", "src/index.html"]) {
  h.update(Buffer.concat([Buffer.from(name), Buffer.from([0]), readFileSync(name), Buffer.from([0])]));
}
writeFileSync("../build/BUILD_SOURCES.sha256", `${h.digest("hex")}  sources of viewer.js\n`);
