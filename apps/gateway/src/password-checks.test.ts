import { EssError } from "@ess/domain";
import { describe, expect, it } from "vitest";
import { Authenticator, ScryptGate } from "./auth/authenticator.js";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

/** A unit of work the test finishes by hand. */
function manual() {
  let finish: () => void = () => {};
  const done = new Promise<void>((r) => {
    finish = r;
  });
  return { done, finish };
}

describe("ScryptGate", () => {
  it("runs at most `concurrency` checks and refuses past its queue with a 429 and Retry-After", async () => {
    const gate = new ScryptGate(2, 4);
    const works = Array.from({ length: 8 }, () => manual());
    const runs = works.map((w, i) =>
      gate
        .run(`user:${i % 4}`, () => w.done)
        .then(
          () => "ok",
          (e: unknown) => e,
        ),
    );
    await Promise.resolve();
    expect(gate.load).toEqual({ running: 2, waiting: 4 });
    // two over the bound were refused at once
    const refused = (await Promise.all(runs.slice(6))) as EssError[];
    for (const e of refused) {
      expect(e).toBeInstanceOf(EssError);
      expect(e.code).toBe("RATE_LIMITED");
      expect(e.retryAfter).toBe(1);
    }
    for (const w of works) w.finish();
    expect(await Promise.all(runs.slice(0, 6))).toEqual(Array(6).fill("ok"));
    expect(gate.load).toEqual({ running: 0, waiting: 0 });
  });

  it("hands slots round-robin over users, so one flooded bucket delays another by one check, not by the flood", async () => {
    const gate = new ScryptGate(1, 40);
    const order: string[] = [];
    const held = manual();
    const first = gate.run("unknown", () => held.done);
    const flood = Array.from({ length: 10 }, (_, i) =>
      gate.run("unknown", async () => {
        order.push(`flood${i}`);
      }),
    );
    const valid = gate.run("user:fleet", async () => {
      order.push("fleet");
    });
    held.finish();
    await Promise.all([first, valid, ...flood]);
    expect(order.indexOf("fleet")).toBe(1);
  });

  it("keeps one bucket to a quarter of the queue", async () => {
    const gate = new ScryptGate(1, 8);
    const held = manual();
    const runs = Array.from({ length: 5 }, () =>
      gate
        .run("unknown", () => held.done)
        .then(
          () => 200,
          () => 429,
        ),
    );
    const other = gate
      .run("user:a", () => held.done)
      .then(
        () => 200,
        () => 429,
      );
    held.finish();
    // one running, two waiting (8 / 4), two refused; another user still gets a place
    expect(await Promise.all(runs)).toEqual([200, 200, 200, 429, 429]);
    expect(await other).toBe(200);
  });
});

describe("Authenticator under wrong passwords", () => {
  it("refuses a credential that just failed without another scrypt, and a burst of it costs one", async () => {
    const auth = await Authenticator.fromConfig({
      AUTH_USERS: "fleet:job:right-password",
      AUTH_TOKENS: "",
      ALLOW_ANONYMOUS: false,
      AUTH_SCRYPT_CONCURRENCY: 1,
      AUTH_SCRYPT_QUEUE: 1,
    });
    const wrong = basic("fleet", "wrong-password");
    // 50 at once with a queue of 1: without sharing one check, 48 of them would be refused with 429
    const burst = await Promise.all(Array.from({ length: 50 }, () => auth.authenticate(wrong)));
    expect(burst).toEqual(Array(50).fill(null));
    expect(auth.passwordChecks).toEqual({ running: 0, waiting: 0 });
    // remembered: answered without queueing, even when the gate is full
    expect(await auth.authenticate(wrong)).toBeNull();
    expect((await auth.authenticate(basic("fleet", "right-password")))?.name).toBe("fleet");
  });
});
