import { EssError } from "@ess/domain";
import type { Context } from "hono";

/** A handler for the other methods of a known path: 405 with Allow. */
export function methodNotAllowed(allow: string) {
  return (c: Context): never => {
    c.header("Allow", allow);
    throw new EssError("METHOD_NOT_ALLOWED", `${c.req.method} is not supported here; use ${allow}`);
  };
}
