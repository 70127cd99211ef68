import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import http, { Agent as HttpAgent, type IncomingMessage } from "node:http";
import https, { Agent as HttpsAgent } from "node:https";
import type { LookupFunction } from "node:net";
import { type AddressRefusal, refusalMessage, type WebhookAddressPolicy } from "@ess/contract";

/** Resolves a hostname to all its addresses (family 0: both). A test injects a stub here. */
export type Resolver = (hostname: string, family: number) => Promise<LookupAddress[]>;

/** The system resolver (getaddrinfo, as an ordinary connection would use). */
export const systemResolver: Resolver = (hostname, family) =>
  new Promise((resolve, reject) =>
    dnsLookup(hostname, { all: true, family }, (err, addresses) => (err ? reject(err) : resolve(addresses))),
  );

/** A delivery the address policy refused: permanent, it is not retried. */
export class WebhookAddressRefused extends Error {
  override name = "WebhookAddressRefused";
  readonly code = "ESS_WEBHOOK_ADDRESS_REFUSED";
  constructor(
    readonly refusal: AddressRefusal,
    host: string,
  ) {
    super(refusalMessage(`webhook target ${host}`, refusal));
  }
}

/**
 * The `lookup` of the delivery agents: resolves the name and refuses it when any of its addresses is
 * refused by the policy. The connection then uses exactly the addresses checked here, so a name that
 * resolves elsewhere on a second query (DNS rebinding) gains nothing.
 */
export function guardedLookup(policy: WebhookAddressPolicy, resolve: Resolver): LookupFunction {
  return (hostname, options, callback) => {
    const family = typeof options.family === "number" ? options.family : 0;
    resolve(hostname, family).then(
      (addresses) => {
        if (!policy.allowsHost(hostname)) {
          for (const a of addresses) {
            const refusal = policy.checkAddress(a.address);
            if (refusal) return callback(new WebhookAddressRefused(refusal, hostname), "", 0);
          }
        }
        const first = addresses[0];
        if (!first) {
          const err = Object.assign(new Error(`${hostname} has no address`), { code: "ENOTFOUND" });
          return callback(err, "", 0);
        }
        // net asks for every address when it races IPv4 and IPv6 (autoSelectFamily)
        if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
        callback(null, first.address, first.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, "", 0),
    );
  };
}

export interface WebhookTransportOptions {
  policy: WebhookAddressPolicy;
  /** how names are resolved (default: the system resolver) */
  resolve?: Resolver | undefined;
  /** longest one POST may take, answer included */
  timeoutMs: number;
}

/** POSTs webhook deliveries through keep-alive agents whose every connection passed the address policy. */
export class WebhookTransport {
  private readonly http: HttpAgent;
  private readonly https: HttpsAgent;

  constructor(private readonly opts: WebhookTransportOptions) {
    const lookup = guardedLookup(opts.policy, opts.resolve ?? systemResolver);
    this.http = new HttpAgent({ keepAlive: true, lookup });
    this.https = new HttpsAgent({ keepAlive: true, lookup });
  }

  /**
   * POSTs body to url; resolves with the status code (redirects are not followed). Rejects with
   * WebhookAddressRefused when the target is refused: an IP literal or a known inward name before any
   * connection, a name on the address it resolves to.
   */
  async post(url: string, headers: Record<string, string>, body: string): Promise<number> {
    const target = new URL(url);
    const refusal = this.opts.policy.checkUrl(target);
    if (refusal) throw new WebhookAddressRefused(refusal, target.hostname);
    const secure = target.protocol === "https:";
    // looked up on the module object at call time, not bound at import: OpenTelemetry's http
    // instrumentation (when on) patches it there, and the request then carries traceparent
    const send = secure ? https.request : http.request;
    return new Promise<number>((resolve, reject) => {
      const req = send(
        target,
        {
          method: "POST",
          agent: secure ? this.https : this.http,
          headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
          signal: AbortSignal.timeout(this.opts.timeoutMs),
        },
        (res: IncomingMessage) => {
          // the answer's body is not used; read it so the connection can be reused
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  /** Closes the pooled connections. */
  close(): void {
    this.http.destroy();
    this.https.destroy();
  }
}
