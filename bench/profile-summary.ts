// Summarises a .cpuprofile (from `npm run bench -- --cpu-prof`): self time by function and by package,
// as shares of the busy time (idle samples left out), and by package again with the time of native
// code and node's library (socket and file writes, hashing, ...) charged to the package that called
// it, which shows what a write is for (pino's log line, ioredis's command, the HTTP response).
// Usage: tsx bench/profile-summary.ts bench-results/profiles/<file>.cpuprofile [top]
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
const file = process.argv[2];
if (!file) throw new Error("usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]");
const top = Number(process.argv[3] ?? 30);
const prof = JSON.parse(readFileSync(file, "utf8")) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const self = new Map<number, number>();
prof.samples.forEach((id, i) => {
  self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
});
const where = (url: string) => {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith("node:")) return "node:internal";
  if (url.includes("/packages/") || url.includes("/apps/")) return url.replace(/^.*\/(packages|apps)\//, "$1/");
  return url || "(native/gc)";
};
const isIdle = (id: number) => byId.get(id)?.callFrame.functionName === "(idle)";
let idle = 0;
for (const [id, t] of self) if (isIdle(id)) idle += t;
const all = [...self.values()].reduce((a, b) => a + b, 0);
const busy = all - idle;
/**
 * The nearest frame at or above a node that is neither native nor node's own library: the package
 * whose call led there (node's HTTP machinery when nothing outside node is on the stack).
 */
function jsOwner(id: number): string {
  let nodeLib = false;
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const url = byId.get(cur)?.callFrame.url;
    if (url?.startsWith("node:")) nodeLib = true;
    else if (url) return where(url).split(":")[0]!;
  }
  if (nodeLib) return "node:internal (no caller outside node)";
  const name = byId.get(id)?.callFrame.functionName ?? "";
  return name.startsWith("(") ? name : "(native, no JS caller)";
}
const fn = new Map<string, number>();
const pkg = new Map<string, number>();
const owner = new Map<string, number>();
const add = (m: Map<string, number>, k: string, t: number) => m.set(k, (m.get(k) ?? 0) + t);
for (const [id, t] of self) {
  if (isIdle(id)) continue;
  const n = byId.get(id)!;
  add(fn, `${n.callFrame.functionName || "(anonymous)"} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`, t);
  add(pkg, where(n.callFrame.url).split(":")[0]!, t);
  add(owner, jsOwner(id), t);
}
const show = (m: Map<string, number>, n: number) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, t]) => `${((100 * t) / busy).toFixed(1).padStart(5)}%  ${k}`)
    .join("\n");
console.log(
  `total ${(all / 1e6).toFixed(2)} s sampled, busy ${(busy / 1e6).toFixed(2)} s (${((100 * busy) / all).toFixed(0)} %); shares of the busy time\n\n` +
    `by package/file (self):\n${show(pkg, 15)}\n\n` +
    `by package/file, time of native code and of node's library charged to the package that called it:\n${show(owner, 25)}\n\n` +
    `by function (self):\n${show(fn, top)}`,
);
