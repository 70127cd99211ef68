import { assertRoles, invalidInput, parseOrThrow, type RouteDeclaration } from "@ess/contract";
import { EssError } from "@ess/domain";
import type { Hook, OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { z } from "zod";
import { readJson, requireJsonMediaType, requireRequestId } from "../body.js";
import type { AppEnv, GatewayDeps } from "../context.js";
import { methodNotAllowed } from "./method.js";

type Out<S> = S extends z.ZodType ? z.output<S> : never;
type Req<R extends RouteDeclaration> = NonNullable<R["request"]>;
type BodyOf<B> = B extends { content: { "application/json": { schema: infer S } }; required: infer Required }
  ? Required extends true
    ? Out<S>
    : Out<S> | undefined
  : undefined;

/** What a bound handler receives: its declaration's params, query and body, validated. */
export interface RouteInput<R extends RouteDeclaration> {
  params: Req<R> extends { params: infer P } ? Out<P> : Record<string, never>;
  query: Req<R> extends { query: infer Q } ? Out<Q> : undefined;
  body: BodyOf<Req<R>["body"]>;
}

/** The handler of one declared route. */
export type RouteHandler<R extends RouteDeclaration> = (
  c: Context<AppEnv>,
  input: RouteInput<R>,
) => Response | Promise<Response>;

/** One handler per declaration of a table: a missing or extra one is a type error. */
export type RouteHandlers<T extends Record<string, RouteDeclaration>> = { [K in keyof T]: RouteHandler<T[K]> };

/**
 * The 400 of a failed parameter or body check: a request id answers INVALID_REQUEST_ID (ESS-40001)
 * with the detail naming the value, anything else UNKNOWN_PROPERTY or INVALID_BODY naming the fields.
 */
export function validationError(error: z.ZodError, input: unknown): EssError {
  const id = error.issues.find(
    (i) => i.code === "custom" && (i.params as { errorCode?: string } | undefined)?.errorCode === "INVALID_REQUEST_ID",
  );
  if (id) {
    const raw = (input as Record<string, unknown> | undefined)?.[String(id.path[0])];
    try {
      requireRequestId(typeof raw === "string" ? raw : undefined);
    } catch (err) {
      if (err instanceof EssError) return err;
      throw err;
    }
  }
  return invalidInput(error);
}

/** The validation hook of every declared route: failures become today's SimpleExceptionDetail 400s. */
export const validationHook: Hook<unknown, AppEnv, string, unknown> = (result) => {
  if (!result.success) throw validationError(result.error as z.ZodError, (result as { data?: unknown }).data);
};

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw validationError(result.error, value);
}

/** A route's path parameters, validated: its fast parser first, when it has one, then its schema. */
export function paramsOf(route: RouteDeclaration, values: Record<string, string>): unknown {
  const params = route.request?.params;
  if (!params) return {};
  return route.parseParams?.(values) ?? parse(params, values);
}

/** A route's parsed JSON body, validated: its fast parser when it has one, else its schema. */
export function bodyOf(route: RouteDeclaration, value: unknown): unknown {
  const schema = route.request?.body?.content["application/json"]?.schema;
  if (!schema) return undefined;
  return route.parseBody ? route.parseBody(value) : parseOrThrow(schema, value);
}

/** What @hono/zod-openapi's validator leaves on the request. */
interface Validated {
  valid(target: "param"): unknown;
}

/** Hono's path syntax for an OpenAPI path. */
export function honoPath(path: string): string {
  return path.replaceAll(/\{(\w+)\}/g, ":$1");
}

export interface BindOptions<K> {
  /** Largest body of this listener's routes (default: MAX_BODY_BYTES). */
  bodyLimit?: (deps: GatewayDeps) => number;
  /** Answer other methods of a declared path with 405 and Allow. */
  methodNotAllowed?: boolean;
  /**
   * Routes registered as plain Hono handlers, validated by the binder itself from the same
   * declaration (no validator middleware; its parseParams first, when it has one): the callback hot path.
   */
  plain?: readonly K[];
}

/**
 * Registers every route of a declaration table with its handler: params through
 * @hono/zod-openapi's validator (or the binder, for plain routes), then query and body, validated
 * with the declared schemas (bodies read with the size limit and media-type check of body.ts, and
 * a declaration's fast parser when it has one). The app's OpenAPI registry is not used: the document
 * is built from the same declarations by buildOpenApi.
 */
export function bindRoutes<T extends Record<string, RouteDeclaration>>(
  app: OpenAPIHono<AppEnv>,
  routes: T,
  handlers: RouteHandlers<T>,
  options: BindOptions<keyof T> = {},
): void {
  const limit = options.bodyLimit ?? ((deps: GatewayDeps) => deps.maxBodyBytes);
  const methods = new Map<string, string[]>();
  for (const key of Object.keys(routes) as (keyof T & string)[]) {
    const route = routes[key] as RouteDeclaration;
    assertRoles(route);
    if (route.external) throw new Error(`route ${route.operationId} is served by its own module, not bound here`);
    const handler = handlers[key] as RouteHandler<RouteDeclaration>;
    const { params, query, body } = route.request ?? {};
    const plain = options.plain?.includes(key) === true;
    const bodySchema = body?.content["application/json"]?.schema;
    const readBody = async (c: Context<AppEnv>): Promise<unknown> => {
      if (!body || !bodySchema) return undefined;
      // an optional body may be left out: no Content-Type, or Content-Length 0
      if (!body.required && (c.req.header("content-length") === "0" || c.req.header("content-type") === undefined)) {
        return undefined;
      }
      requireJsonMediaType(c.req.header("content-type"));
      return bodyOf(route, await readJson(c, limit(c.get("deps"))));
    };
    const run = async (c: Context<AppEnv>, validParams: unknown) =>
      handler(c, {
        params: validParams as Record<string, never>,
        query: query ? parse(query, c.req.query()) : undefined,
        body: await readBody(c),
      } as RouteInput<RouteDeclaration>);
    if (plain) {
      app.on(route.method.toUpperCase(), honoPath(route.path), (c) =>
        run(c, params ? paramsOf(route, c.req.param()) : {}),
      );
    } else {
      app.openapi(
        {
          method: route.method,
          path: route.path,
          hide: true,
          request: params ? { params } : {},
          responses: {},
        },
        // the input types come from the declaration (RouteInput), not from @hono/zod-openapi's inference
        ((c: Context<AppEnv>) => run(c, params ? (c.req as unknown as Validated).valid("param") : {})) as never,
        validationHook as never,
      );
    }
    const known = methods.get(route.path) ?? [];
    known.push(route.method.toUpperCase());
    methods.set(route.path, known);
  }
  if (options.methodNotAllowed) {
    for (const [path, allowed] of methods) app.all(honoPath(path), methodNotAllowed(allowed.join(", ")));
  }
}
