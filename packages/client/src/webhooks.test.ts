import { cloudEventJson, newWebhookSecret, signWebhook, WEBHOOK_HEADERS } from "@ess/contract";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { WebhookReceiver, WebhookVerificationError } from "./index.js";

const body = cloudEventJson("urn:ess:ess", 2, "1732841234567-0", {
  event: "REQUEST_SUCCEEDED",
  requestId: "42",
  state: "SUCCEEDED",
  previousState: "RUNNING",
  seq: "1",
  execution: "1",
  at: "1732841234567",
  eventSeq: "2",
});
const now = () => String(Math.floor(Date.now() / 1000));
function delivery(secrets: string[], ts = now(), id = "1732841234567-0/2") {
  return {
    [WEBHOOK_HEADERS.id]: id,
    [WEBHOOK_HEADERS.timestamp]: ts,
    [WEBHOOK_HEADERS.signature]: signWebhook(secrets, id, ts, body),
  };
}

describe("WebhookReceiver", () => {
  it("verifies a delivery and returns its CloudEvent", () => {
    const secret = newWebhookSecret();
    const event = new WebhookReceiver({ secrets: [secret] }).verify(delivery([secret]), body);
    expect(event).toMatchObject({ subject: "42", type: "ess.request.succeeded", data: { seq: 2, callbackSeq: 1 } });
  });

  it("accepts the old or the new secret during a rotation; a delivery the reference library signs verifies too", () => {
    const [oldS, newS] = [newWebhookSecret(), newWebhookSecret()];
    const both = delivery([newS, oldS]);
    expect(new WebhookReceiver({ secrets: [oldS] }).verify(both, body).subject).toBe("42");
    expect(new WebhookReceiver({ secrets: [newS] }).verify(new Headers(both), body).subject).toBe("42");
    const id = "msg_1";
    const ts = new Date();
    const signature = new Webhook(newS).sign(id, ts, body);
    const headers = {
      [WEBHOOK_HEADERS.id]: id,
      [WEBHOOK_HEADERS.timestamp]: String(Math.floor(ts.getTime() / 1000)),
      [WEBHOOK_HEADERS.signature]: signature,
    };
    expect(new WebhookReceiver({ secrets: [newS] }).verify(headers, body).subject).toBe("42");
  });

  it("rejects a wrong secret, a changed body, an old timestamp, a body that is no CloudEvent", () => {
    const secret = newWebhookSecret();
    const r = new WebhookReceiver({ secrets: [secret] });
    const reason = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(WebhookVerificationError);
        return (err as WebhookVerificationError).reason;
      }
      return "accepted";
    };
    expect(reason(() => r.verify(delivery([newWebhookSecret()]), body))).toBe("no-matching-signature");
    expect(reason(() => r.verify(delivery([secret]), body.replace("42", "43")))).toBe("no-matching-signature");
    expect(reason(() => r.verify(delivery([secret], String(Number(now()) - 600)), body))).toBe("stale-timestamp");
    const ts = now();
    const plain = { ...delivery([secret], ts), [WEBHOOK_HEADERS.signature]: signWebhook([secret], "x", ts, "{}") };
    expect(reason(() => r.verify({ ...plain, [WEBHOOK_HEADERS.id]: "x" }, "{}"))).toBe("not-a-cloudevent");
  });
});
