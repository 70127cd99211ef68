import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { HonoAdapter } from "@bull-board/hono";
import { serveStatic } from "@hono/node-server/serve-static";
import type { Hono } from "hono";
import type { AppEnv } from "./env.js";
import type { QueueCatalog } from "./metrics.js";

/** Where the dashboard is mounted on the admin listener. */
export const DASHBOARD_PATH = "/admin/queues";

/**
 * bull-board on the admin listener: every queue of the catalog (all partitions, and the dead-letter
 * queue once it is added to the catalog — one call, QueueCatalog.add).
 */
export function mountDashboard(app: Hono<AppEnv>, catalog: QueueCatalog): void {
  const serverAdapter = new HonoAdapter(serveStatic);
  serverAdapter.setBasePath(DASHBOARD_PATH);
  const board = createBullBoard({
    queues: [],
    serverAdapter,
    options: { uiConfig: { boardTitle: "ESS callback gateway" } },
  });
  catalog.each(({ queue, label, kind }) => {
    board.addQueue(
      new BullMQAdapter(queue, {
        // queue names repeat across partitions (each has its own prefix): the label keeps them apart
        prefix: `${label}:`,
        displayName: kind === "partition" ? `partition ${label.slice(1)}` : label,
        description: kind === "partition" ? `callbacks of partition ${label.slice(1)}` : "dead letters",
      }),
    );
  });
  app.route(DASHBOARD_PATH, serverAdapter.registerPlugin() as unknown as Hono<AppEnv>);
}
