import { z } from "zod";
import { simpleExceptionDetailSchema } from "./errors.js";
import {
  checkInResponseSchema,
  deliveriesResponseSchema,
  deliveryAttemptSchema,
  healthSchema,
  readinessSchema,
  redeliverResponseSchema,
  registrationResponseSchema,
  requestDetailsSchema,
  rotateSecretResponseSchema,
  stateChangeResponseSchema,
  subscribeResponseSchema,
  subscriptionListSchema,
  subscriptionSchema,
  unsubscribeResponseSchema,
} from "./responses.js";
import { GATEWAY_ROUTES, type MediaContent, type RouteDeclaration } from "./routes.js";
import {
  checkInBodySchema,
  redeliverBodySchema,
  rotateSecretBodySchema,
  subscribeBodySchema,
  unsubscribeBodySchema,
} from "./scheduler.js";
import { callbackBodySchema, registrationBodySchema } from "./schemas.js";

/** The schemas the document names (components); any other zod schema is written inline. */
const named: [z.ZodType, string][] = [
  [callbackBodySchema, "CallbackBody"],
  [registrationBodySchema, "RegistrationBody"],
  [registrationResponseSchema, "RegistrationResponse"],
  [requestDetailsSchema, "RequestDetails"],
  [checkInBodySchema, "CheckInBody"],
  [checkInResponseSchema, "CheckInResponse"],
  [subscribeBodySchema, "SubscribeBody"],
  [unsubscribeBodySchema, "UnsubscribeBody"],
  [subscribeResponseSchema, "SubscribeResponse"],
  [unsubscribeResponseSchema, "UnsubscribeResponse"],
  [stateChangeResponseSchema, "StateChangeResponse"],
  [subscriptionSchema, "Subscription"],
  [subscriptionListSchema, "SubscriptionList"],
  [deliveryAttemptSchema, "DeliveryAttempt"],
  [deliveriesResponseSchema, "DeliveriesResponse"],
  [rotateSecretBodySchema, "RotateSecretBody"],
  [rotateSecretResponseSchema, "RotateSecretResponse"],
  [redeliverBodySchema, "RedeliverBody"],
  [redeliverResponseSchema, "RedeliverResponse"],
  [simpleExceptionDetailSchema, "SimpleExceptionDetail"],
  [healthSchema, "Health"],
  [readinessSchema, "Readiness"],
];

function jsonSchema(schema: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  const out = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Record<string, unknown>;
  delete out.$schema;
  return out;
}

/** The routes the document describes: the callback listener's, except the hidden ones. */
export function documentedRoutes(routes: readonly RouteDeclaration[] = GATEWAY_ROUTES): RouteDeclaration[] {
  return routes.filter((r) => !r.hide);
}

/** OpenAPI Parameter Objects of one location from a zod object (description lifted from the schema). */
function parameters(where: "path" | "query" | "header", shape: z.ZodObject | undefined) {
  if (!shape) return [];
  return Object.entries(shape.shape).map(([name, s]) => {
    const schema = jsonSchema(s as z.ZodType, "input");
    const description = schema.description;
    delete schema.description;
    return {
      name,
      in: where,
      required: where === "path" || !(s as z.ZodType).safeParse(undefined).success,
      ...(description === undefined ? {} : { description }),
      schema,
    };
  });
}

/**
 * Builds the OpenAPI 3.1 description of the callback listener from the route declarations
 * (GATEWAY_ROUTES) and the zod schemas.
 */
export function buildOpenApi(
  info: { version: string; serverUrl?: string } = { version: "0.1.0" },
  routes: readonly RouteDeclaration[] = GATEWAY_ROUTES,
) {
  const names = new Map(named);
  const schemas: Record<string, unknown> = {};
  for (const [s, name] of named) {
    // request bodies are described as accepted (input), answers as sent (output)
    const io = name.endsWith("Body") ? "input" : "output";
    schemas[name] = jsonSchema(s, io);
  }
  const content = (media: Record<string, MediaContent>, io: "input" | "output") =>
    Object.fromEntries(
      Object.entries(media).map(([type, { schema }]) => {
        if (!(schema instanceof z.ZodType)) return [type, { schema }];
        const name = names.get(schema);
        return [type, { schema: name ? { $ref: `#/components/schemas/${name}` } : jsonSchema(schema, io) }];
      }),
    );
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of documentedRoutes(routes)) {
    const responses: Record<string, unknown> = {};
    for (const [code, r] of Object.entries(route.responses)) {
      responses[code] = {
        description: r.description,
        ...(r.content ? { content: content(r.content, "output") } : {}),
        ...(r.headers ? { headers: r.headers } : {}),
      };
    }
    const roles = route.roles === "public" ? [] : route.roles.filter((r) => r !== "admin");
    const operation: Record<string, unknown> = {
      operationId: route.operationId,
      summary: route.summary,
      tags: route.tags ?? [],
      "x-roles": route.roles === "public" ? [] : [...roles, "admin"],
      security: route.roles === "public" ? [] : [{ basicAuth: [] }, { bearerAuth: [] }],
      parameters: [
        ...parameters("path", route.request?.params),
        ...parameters("query", route.request?.query),
        ...parameters("header", route.request?.headers),
        {
          name: "X-Request-Id",
          in: "header",
          required: false,
          description: "Correlation id (returned; generated when absent)",
          schema: { type: "string", maxLength: 128 },
        },
      ],
      responses,
    };
    const body = route.request?.body;
    if (body) operation.requestBody = { required: body.required, content: content(body.content, "input") };
    paths[route.path] ??= {};
    (paths[route.path] as Record<string, unknown>)[route.method] = operation;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "ESS callback gateway",
      version: info.version,
      description:
        "Answers Oracle Enterprise Scheduler's asynchronous-job callback and check-in, and the scheduler's registration, " +
        "reads, cancel and forceCancel, webhook subscriptions and event stream. " +
        "Roles: job (executionStatus, checkInCancelling), scheduler (registration, read, cancel, forceCancel, subscribe, events), admin (everything).",
    },
    ...(info.serverUrl ? { servers: [{ url: info.serverUrl }] } : {}),
    tags: [
      { name: "job", description: "Called by the running job (role job)" },
      { name: "scheduler", description: "Called by the scheduler (role scheduler)" },
      { name: "operations", description: "Probes (no credentials)" },
    ],
    paths,
    components: {
      schemas,
      securitySchemes: {
        basicAuth: { type: "http", scheme: "basic" },
        bearerAuth: { type: "http", scheme: "bearer" },
      },
    },
  };
}
