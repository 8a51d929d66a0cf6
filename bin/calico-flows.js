#!/usr/bin/env node
// Entry point of the `calico-flows` CLI. Plain JavaScript so that an older Node can still say what is wrong;
// the CLI itself is TypeScript run by Node 24's type stripping.
const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  process.stderr.write(
    `calico-flows needs Node.js 24 or newer (this is ${process.version}). ` +
      "Run it through npm (`npx calico-flows`, `npm start`), which uses the Node 24 pinned in devDependencies.\n",
  );
  process.exit(1);
}
// Node keeps the type-stripped, compiled modules in its compile cache (NODE_COMPILE_CACHE, or a directory under
// the system's temporary one): start-up falls to about a third once it is warm
// (docs/architecture.md, "Inside the parser", has the figures).
const { enableCompileCache } = await import("node:module");
enableCompileCache?.();
await import("../cli/main.ts");
