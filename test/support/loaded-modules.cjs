// Preloaded with `node --require` by the module-loading suite: when the process exits, it writes the
// files it loaded from node_modules (the CommonJS cache, which also holds the CommonJS packages an ES
// module imported) as one line, `LOADED_MODULES <json array>`, to stderr.
const Module = require("node:module");

process.on("exit", () => {
  const files = Object.keys(Module._cache).filter((f) => f.includes("/node_modules/"));
  process.stderr.write(`LOADED_MODULES ${JSON.stringify(files)}\n`);
});
