// The ceiling: a bare Hono app on @hono/node-server answering the callback POST with 200 and doing no
// work. The bench drives it with the same requests as the gateway; gateway rate / this rate is the ratio.
import { serve } from "@hono/node-server";
import { Hono } from "hono";

const app = new Hono();
app.post("/ess/rest/scheduler/v1/requests/:requestId/executionStatus", (c) => c.body(null, 200));

serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 0), hostname: "127.0.0.1" }, (info) => {
  console.log(JSON.stringify({ port: info.port, msg: "bare listening" }));
});
process.on("SIGTERM", () => process.exit(0));
