// What it costs to make an object by spreading another and adding fields, against the literal of the
// same fields, on this node's V8; and whether such objects share a hidden class (with
// --allow-natives-syntax). The callback path builds one object per callback, so this is the figure that
// decides how it is written (apps/gateway/src/accept.ts, admitted()).
// Usage: node --allow-natives-syntax --import tsx bench/spread-cost.ts [objects, default 1000000]
const N = Number(process.argv[2] ?? 1_000_000);

interface Cb {
  requestId: string;
  handle: string;
  status: string;
  message?: string | undefined;
}
const source = (i: number): Cb => ({
  requestId: `r${i & 1023}`,
  handle: "h",
  status: i % 5 ? "UPDATE" : "SUCCESS",
  message: i % 3 ? undefined : "m",
});
type Stamped = Cb & { acceptedAt: number; traceparent?: string | undefined };
const ways: Record<string, (cb: Cb, tp: string | undefined) => Stamped> = {
  "{ ...cb, acceptedAt, traceparent }": (cb, tp) => ({ ...cb, acceptedAt: Date.now(), traceparent: tp }),
  "{ ...cb } then two assignments": (cb, tp) => {
    const o: Partial<Stamped> & Cb = { ...cb };
    o.acceptedAt = Date.now();
    o.traceparent = tp;
    return o as Stamped;
  },
  "{ acceptedAt, traceparent, ...cb }": (cb, tp) => ({ acceptedAt: Date.now(), traceparent: tp, ...cb }),
  "the fields written out": (cb, tp) => ({
    requestId: cb.requestId,
    handle: cb.handle,
    status: cb.status,
    message: cb.message,
    acceptedAt: Date.now(),
    traceparent: tp,
  }),
};

const sameMap = (() => {
  try {
    return new Function("a", "b", "return %HaveSameMap(a, b)") as (a: unknown, b: unknown) => boolean;
  } catch {
    return undefined; // without --allow-natives-syntax
  }
})();

for (let pass = 1; pass <= 2; pass++) {
  for (const [name, make] of Object.entries(ways)) {
    let sink = 0;
    const t = performance.now();
    for (let i = 0; i < N; i++) {
      const o = make(source(i), undefined);
      sink += o.requestId.length + o.status.length + (o.acceptedAt & 1);
    }
    const ns = ((performance.now() - t) * 1e6) / N;
    const shared = sameMap
      ? ` · same hidden class: ${sameMap(make(source(1), undefined), make(source(2), undefined))}`
      : "";
    console.log(`pass ${pass} · ${name.padEnd(36)} ${ns.toFixed(1).padStart(7)} ns an object${shared} (${sink & 1})`);
  }
}
console.log(`node ${process.version}, V8 ${process.versions.v8}`);
