// Summarises a .cpuprofile (from `npm run bench -- --cpu-prof`): self time by function and by package.
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
const self = new Map<number, number>();
prof.samples.forEach((id, i) => {
  self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
});
const total = [...self.values()].reduce((a, b) => a + b, 0);
const where = (url: string) => {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith("node:")) return "node:internal";
  if (url.includes("/packages/") || url.includes("/apps/")) return url.replace(/^.*\/(packages|apps)\//, "$1/");
  return url || "(native/gc)";
};
const fn = new Map<string, number>();
const pkg = new Map<string, number>();
for (const [id, t] of self) {
  const n = byId.get(id)!;
  const key = `${n.callFrame.functionName || "(anonymous)"} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  fn.set(key, (fn.get(key) ?? 0) + t);
  const p = where(n.callFrame.url).split(":")[0]!;
  pkg.set(p, (pkg.get(p) ?? 0) + t);
}
const show = (m: Map<string, number>, n: number) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, t]) => `${((100 * t) / total).toFixed(1).padStart(5)}%  ${k}`)
    .join("\n");
console.log(
  `total ${(total / 1e6).toFixed(2)} s sampled\n\nby package/file:\n${show(pkg, 15)}\n\nby function (self):\n${show(fn, top)}`,
);
