import { EssError } from "@ess/domain";
import { describe, expect, it } from "vitest";
import { Authenticator, ScryptGate, SourceLimiter } from "./auth/authenticator.js";

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

const refusal = (f: () => unknown): EssError | undefined => {
  try {
    f();
  } catch (e) {
    return e as EssError;
  }
  return undefined;
};

describe("SourceLimiter", () => {
  it("holds one source to its checks in progress, other sources unaffected", () => {
    const limiter = new SourceLimiter(1, 0, 60000);
    const end = limiter.begin("10.0.0.1", 0);
    const e = refusal(() => limiter.begin("10.0.0.1", 0));
    expect(e?.code).toBe("RATE_LIMITED");
    expect(e?.retryAfter).toBe(1);
    expect(refusal(() => limiter.begin("10.0.0.2", 0))).toBeUndefined();
    end(false);
    expect(refusal(() => limiter.begin("10.0.0.1", 0))).toBeUndefined();
  });

  it("refuses a source after its failures until the window ends", () => {
    const limiter = new SourceLimiter(0, 3, 60000);
    for (let i = 0; i < 3; i++) limiter.begin("10.0.0.1", 1000)(true);
    // a success does not count
    limiter.begin("10.0.0.2", 1000)(false);
    const e = refusal(() => limiter.begin("10.0.0.1", 31000));
    expect(e?.code).toBe("RATE_LIMITED");
    expect(e?.retryAfter).toBe(30);
    expect(refusal(() => limiter.begin("10.0.0.2", 31000))).toBeUndefined();
    expect(refusal(() => limiter.begin("10.0.0.1", 61000))).toBeUndefined();
  });

  it("counts failures per window even while a check is always in progress", () => {
    const limiter = new SourceLimiter(0, 2, 1000);
    const held = limiter.begin("10.0.0.1", 0);
    limiter.begin("10.0.0.1", 10)(true);
    limiter.begin("10.0.0.1", 20)(true);
    expect(refusal(() => limiter.begin("10.0.0.1", 30))?.code).toBe("RATE_LIMITED");
    // the window ended: the old failures no longer count, though `held` never ended
    expect(refusal(() => limiter.begin("10.0.0.1", 1500))).toBeUndefined();
    held(false);
  });
});

describe("Authenticator per source", () => {
  it("refuses a flooding source before scrypt and still serves another source's first login", async () => {
    const auth = await Authenticator.fromConfig({
      AUTH_USERS: "fleet:job:right-password",
      AUTH_TOKENS: "",
      ALLOW_ANONYMOUS: false,
      AUTH_SOURCE_CHECKS: 1,
      AUTH_SOURCE_FAILURES: 2,
    });
    const flood = Array.from({ length: 10 }, (_, i) =>
      Promise.resolve(auth.authenticate(basic("fleet", `wrong-${i}`), "10.0.0.9")).then(
        (p) => p,
        (e: EssError) => e.code,
      ),
    );
    // only one of the ten reached scrypt; the others were refused at once
    expect(auth.passwordChecks.running).toBe(1);
    expect((await auth.authenticate(basic("fleet", "right-password"), "10.0.0.1"))?.name).toBe("fleet");
    const results = await Promise.all(flood);
    expect(results.filter((r) => r === "RATE_LIMITED")).toHaveLength(9);
    await auth.authenticate(basic("fleet", "wrong-a"), "10.0.0.9");
    // two failures: any new check from the source is refused for the window
    await expect(auth.authenticate(basic("fleet", "other-right"), "10.0.0.9")).rejects.toMatchObject({
      code: "RATE_LIMITED",
    });
    // a remembered credential is never refused
    expect((await auth.authenticate(basic("fleet", "right-password"), "10.0.0.9"))?.name).toBe("fleet");
  });

  it("asks for the peer's address only when a new password check starts", async () => {
    const auth = await Authenticator.fromConfig({
      AUTH_USERS: "fleet:job:right-password",
      AUTH_TOKENS: "fleet-token:job:tok-1",
      ALLOW_ANONYMOUS: false,
      AUTH_SOURCE_CHECKS: 1,
    });
    const asked: string[] = [];
    const peer = (address: string) => () => {
      asked.push(address);
      return address;
    };
    expect((await auth.authenticate("Bearer tok-1", peer("bearer")))?.name).toBe("fleet-token");
    expect(await auth.authenticate(undefined, peer("none"))).toBeNull();
    expect((await auth.authenticate(basic("fleet", "right-password"), peer("first")))?.name).toBe("fleet");
    // verified once: answered from the cache, at once, without the address
    const cached = auth.authenticate(basic("fleet", "right-password"), peer("cached"));
    expect(cached).not.toBeInstanceOf(Promise);
    expect(asked).toEqual(["first"]);
  });
});
