import { describe, expect, it } from "vitest";
import { CLUSTER_SLOTS, Keys, partitionTag } from "./keys.js";
import { keySlot } from "./slot.js";

describe("keySlot", () => {
  it("matches Redis's CLUSTER KEYSLOT, hash tags included", () => {
    expect(keySlot("foo")).toBe(12182);
    expect(keySlot("123456789")).toBe(12739);
    expect(keySlot("{user1000}.following")).toBe(keySlot("user1000"));
    // an empty tag is no tag: the whole key is hashed
    expect(keySlot("{}foo")).not.toBe(keySlot(""));
  });
});

describe("partition tags", () => {
  it("puts partition p's slot in the p-th of P equal slot ranges", () => {
    for (const P of [1, 3, 16, 64]) {
      const keys = new Keys("ess", P);
      for (let p = 0; p < P; p++) {
        const slot = keys.slot(p);
        expect(slot).toBeGreaterThanOrEqual(Math.floor((p * CLUSTER_SLOTS) / P));
        expect(slot).toBeLessThan(Math.floor(((p + 1) * CLUSTER_SLOTS) / P));
        expect(keySlot(keys.request(p, "42"))).toBe(slot);
      }
    }
  });

  it("spreads 16 partitions over the 3 masters of `redis-cli --cluster create` as 5, 5 and 6", () => {
    const keys = new Keys("ess", 16);
    const per = [0, 0, 0];
    for (let p = 0; p < 16; p++) {
      const s = keys.slot(p);
      per[s <= 5460 ? 0 : s <= 10922 ? 1 : 2]! += 1;
    }
    expect(per.sort()).toEqual([5, 5, 6]);
  });

  it("keeps a plain tag where it already fits", () => {
    expect(partitionTag(0, 1)).toBe("p0");
  });
});
