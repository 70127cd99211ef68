import { existsSync, readdirSync, readFileSync } from "node:fs";
import { nodeFlags } from "@ess/testing";
import { Deployment } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { ConfigMap, Secret, Service } from "kubernetes-models/v1";
import type { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { GatewayMetrics } from "../../apps/gateway/src/metrics.js";
import { WorkerMetrics } from "../../apps/worker/src/observe.js";

// Every manifest under deploy/k8s parses, validates against the Kubernetes schemas (kubernetes-models),
// and uses only metric names the processes export.
const dir = new URL("./", import.meta.url);
const docs = readdirSync(dir)
  .filter((f) => f.endsWith(".yaml"))
  .flatMap((file) =>
    parseAllDocuments(readFileSync(new URL(file, dir), "utf8")).map((d) => {
      if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]?.message}`);
      return { file, doc: d.toJSON() as { apiVersion: string; kind: string; metadata: { name: string } } };
    }),
  );

/** KEDA's ScaledObject (keda.sh/v1alpha1), the documented fields this deployment uses; unknown ones refused. */
const scaledObject = z.strictObject({
  apiVersion: z.literal("keda.sh/v1alpha1"),
  kind: z.literal("ScaledObject"),
  metadata: z.object({ name: z.string().min(1), labels: z.record(z.string(), z.string()).optional() }),
  spec: z.strictObject({
    scaleTargetRef: z.strictObject({
      apiVersion: z.string().optional(),
      kind: z.string().optional(),
      name: z.string(),
    }),
    minReplicaCount: z.number().int().min(0).optional(),
    maxReplicaCount: z.number().int().min(1).optional(),
    pollingInterval: z.number().int().min(1).optional(),
    cooldownPeriod: z.number().int().min(0).optional(),
    triggers: z
      .array(
        z.strictObject({
          type: z.literal("prometheus"),
          metadata: z.strictObject({
            serverAddress: z.url(),
            query: z.string().min(1),
            threshold: z.string().regex(/^\d+(\.\d+)?$/),
            activationThreshold: z
              .string()
              .regex(/^\d+(\.\d+)?$/)
              .optional(),
          }),
        }),
      )
      .min(1),
  }),
});

const MODELS: Record<string, (o: unknown) => { validate(): void }> = {
  "v1/ConfigMap": (o) => new ConfigMap(o as ConfigMap),
  "v1/Secret": (o) => new Secret(o as Secret),
  "v1/Service": (o) => new Service(o as Service),
  "apps/v1/Deployment": (o) => new Deployment(o as Deployment),
  "autoscaling/v2/HorizontalPodAutoscaler": (o) => new HorizontalPodAutoscaler(o as HorizontalPodAutoscaler),
};

const of = (kind: string, name: string): unknown =>
  docs.find((d) => d.doc.kind === kind && d.doc.metadata.name === name)?.doc;

describe("deploy/k8s manifests", () => {
  it("every document validates against its schema", () => {
    expect(docs.length).toBeGreaterThanOrEqual(8);
    for (const { file, doc } of docs) {
      const key = `${doc.apiVersion}/${doc.kind}`;
      if (key === "keda.sh/v1alpha1/ScaledObject") {
        const r = scaledObject.safeParse(doc);
        expect(r.success, `${file}: ${r.success ? "" : r.error.message}`).toBe(true);
        continue;
      }
      const model = MODELS[key];
      expect(model, `${file}: no schema for ${key}`).toBeDefined();
      expect(() => model?.(doc).validate(), `${file} ${key} ${doc.metadata.name}`).not.toThrow();
    }
  });

  it("a schema violation is caught (the validation is real)", () => {
    const bad = structuredClone(of("Deployment", "ess-worker")) as { spec: { replicas: unknown } };
    bad.spec.replicas = "two";
    expect(() => new Deployment(bad as unknown as Deployment).validate()).toThrow();
  });

  it("gateway and worker: probes on /healthz and /readyz, credentials from the Secret, grace covering the drain", () => {
    const config = of("ConfigMap", "ess-config") as { data: Record<string, string> };
    const shutdown = Number(config.data.SHUTDOWN_TIMEOUT_SECONDS);
    for (const name of ["ess-gateway", "ess-worker"]) {
      const d = of("Deployment", name) as unknown as Deployment;
      const pod = d.spec?.template.spec;
      const c = pod?.containers[0];
      expect(c?.livenessProbe?.httpGet?.path).toBe("/healthz");
      expect(c?.readinessProbe?.httpGet?.path).toBe("/readyz");
      expect(c?.envFrom?.some((e) => e.secretRef?.name === "ess-credentials")).toBe(true);
      expect(pod?.terminationGracePeriodSeconds).toBeGreaterThan(shutdown);
      // the image holds the compiled build and production dependencies only: plain node, with the
      // production node flags (node-flags.json), on an entry that `npm run build` emits from an
      // existing source file, no TypeScript loader
      const [node, ...args] = c?.command ?? [];
      const entry = args.pop();
      expect(node).toBe("node");
      expect(args).toEqual(nodeFlags(name === "ess-gateway" ? "gateway" : "worker"));
      expect(entry).toMatch(/^apps\/(gateway|worker)\/dist\/main\.js$/);
      expect(existsSync(new URL(`../../${entry?.replace("/dist/", "/src/").replace(/\.js$/, ".ts")}`, dir))).toBe(true);
    }
    const secret = of("Secret", "ess-credentials") as { stringData: Record<string, string> };
    expect(Object.keys(secret.stringData)).toEqual(expect.arrayContaining(["REDIS_URL", "AUTH_USERS", "AUTH_TOKENS"]));
    const hpa = of("HorizontalPodAutoscaler", "ess-gateway") as unknown as HorizontalPodAutoscaler;
    expect(hpa.spec?.metrics?.[0]?.resource?.name).toBe("cpu");
    expect(hpa.spec?.scaleTargetRef.name).toBe("ess-gateway");
    const keda = scaledObject.parse(of("ScaledObject", "ess-worker"));
    expect(keda.spec.scaleTargetRef.name).toBe("ess-worker");
  });

  it("every metric name the manifests use is one the gateway or the worker exports", async () => {
    const exported = new Set<string>();
    for (const registry of [new GatewayMetrics().registry, new WorkerMetrics().registry]) {
      for (const m of await (registry as Registry).getMetricsAsJSON()) exported.add(m.name);
    }
    const used = new Set<string>();
    for (const { doc } of docs) for (const m of JSON.stringify(doc).matchAll(/\bess_[a-z_]+\b/g)) used.add(m[0]);
    expect(used.size).toBeGreaterThan(0);
    expect([...used].filter((n) => !exported.has(n))).toEqual([]);
  });
});
