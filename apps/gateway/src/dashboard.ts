import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { HonoAdapter } from "@bull-board/hono";
import { ADMIN_OPERATIONS_ROUTES } from "@ess/contract";
import { serveStatic } from "@hono/node-server/serve-static";
import type { Hono } from "hono";
import type { AppEnv } from "./context.js";
import type { QueueCatalog } from "./metrics.js";

/** Where the dashboard is mounted on the admin listener (its declaration covers the subtree). */
export const DASHBOARD_PATH = ADMIN_OPERATIONS_ROUTES.dashboard.path;

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
  catalog.each(({ queue, label, title, description }) => {
    board.addQueue(
      // queue names repeat across partitions (each has its own prefix): the label keeps them apart
      new BullMQAdapter(queue, { prefix: `${label}:`, displayName: title, description }),
    );
  });
  app.route(DASHBOARD_PATH, serverAdapter.registerPlugin() as unknown as Hono<AppEnv>);
}
