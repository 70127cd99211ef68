import { ADMIN_OPERATIONS_ROUTES } from "@ess/contract";
import { type Context, Hono } from "hono";
import type { AppEnv } from "./context.js";
import type { QueueCatalog } from "./metrics.js";

/** Where the dashboard is mounted on the admin listener (its declaration covers the subtree). */
export const DASHBOARD_PATH = ADMIN_OPERATIONS_ROUTES.dashboard.path;

/**
 * bull-board on the admin listener: every queue of the catalog (all partitions, and the dead-letter
 * queue once it is added to the catalog — one call, QueueCatalog.add).
 *
 * bull-board and what it pulls in (its UI server, lodash, valibot, ejs), and bullmq's Queue objects
 * of the catalog, are loaded on the first request to the dashboard, not at start: a gateway that
 * nobody opens the dashboard of never holds them in memory. The admin app's middleware (request id, access log, admin role) runs before.
 */
export function mountDashboard(app: Hono<AppEnv>, catalog: QueueCatalog): void {
  let board: Promise<Hono> | undefined;
  const serve = async (c: Context<AppEnv>) => {
    board ??= buildBoard(catalog).catch((err: unknown) => {
      board = undefined; // the next request tries again
      throw err;
    });
    const res = await (await board).fetch(c.req.raw, c.env);
    // through the context, so that the headers the middleware set (X-Request-Id) are on the answer
    return c.newResponse(res.body, res);
  };
  app.all(DASHBOARD_PATH, serve);
  app.all(`${DASHBOARD_PATH}/*`, serve);
}

async function buildBoard(catalog: QueueCatalog): Promise<Hono> {
  const [{ createBullBoard }, { BullMQAdapter }, { HonoAdapter }, { serveStatic }] = await Promise.all([
    import("@bull-board/api"),
    import("@bull-board/api/bullMQAdapter"),
    import("@bull-board/hono"),
    import("@hono/node-server/serve-static"),
  ]);
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
      new BullMQAdapter(catalog.queues.of(queue), { prefix: `${label}:`, displayName: title, description }),
    );
  });
  const host = new Hono();
  host.route(DASHBOARD_PATH, serverAdapter.registerPlugin() as unknown as Hono);
  return host;
}
