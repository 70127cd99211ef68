import { describe, expect, it } from "vitest";
import { classifyAddress, parseIp, refusalMessage, WebhookAddressPolicy } from "./webhook-policy.js";

const policy = new WebhookAddressPolicy();

describe("the webhook address policy by default", () => {
  // every form a caller was seen to use, as WHATWG URL parsing leaves it
  it.each([
    ["http://127.0.0.1/x", "loopback", "127.0.0.1"],
    ["http://localhost:8080/x", "loopback", "localhost"],
    ["http://LOCALHOST./x", "loopback", "localhost"],
    ["http://api.localhost/x", "loopback", "api.localhost"],
    ["http://[::1]/x", "loopback", "::1"],
    ["http://0.0.0.0/x", "unspecified", "0.0.0.0"],
    ["http://[::]/x", "unspecified", "::"],
    ["http://169.254.169.254/latest/meta-data", "metadata", "169.254.169.254"],
    ["http://metadata.google.internal/computeMetadata/v1/", "metadata", "metadata.google.internal"],
    ["http://[fd00:ec2::254]/x", "metadata", "fd00:ec2::254"],
    ["http://10.1.2.3/x", "private", "10.1.2.3"],
    ["http://172.16.0.1/x", "private", "172.16.0.1"],
    ["http://172.31.255.255/x", "private", "172.31.255.255"],
    ["http://192.168.1.1/x", "private", "192.168.1.1"],
    ["http://100.64.0.1/x", "private", "100.64.0.1"],
    ["http://[fc00::1]/x", "private", "fc00::1"],
    ["http://[fd12:3456::1]/x", "private", "fd12:3456::1"],
    ["http://169.254.1.1/x", "link-local", "169.254.1.1"],
    ["http://[fe80::1]/x", "link-local", "fe80::1"],
    ["http://224.0.0.1/x", "multicast", "224.0.0.1"],
    ["http://[ff02::1]/x", "multicast", "ff02::1"],
    ["http://255.255.255.255/x", "broadcast", "255.255.255.255"],
    ["http://2130706433/x", "loopback", "127.0.0.1"],
    ["http://0x7f000001/x", "loopback", "127.0.0.1"],
    ["http://127.1/x", "loopback", "127.0.0.1"],
    ["http://017700000001/x", "loopback", "127.0.0.1"],
    ["http://[::ffff:127.0.0.1]/x", "loopback", "::ffff:7f00:1"],
    ["http://[::ffff:169.254.169.254]/x", "metadata", "::ffff:a9fe:a9fe"],
    ["http://[::ffff:10.0.0.1]/x", "private", "::ffff:a00:1"],
    ["http://[64:ff9b::7f00:1]/x", "loopback", "64:ff9b::7f00:1"],
    ["http://[2002:7f00:1::]/x", "loopback", "2002:7f00:1::"],
  ])("refuses %s (%s)", (url, rule, target) => {
    expect(policy.checkUrl(url)).toMatchObject({ rule, target });
  });

  it.each([
    "https://hooks.example.com/x",
    "http://93.184.216.34/x",
    "http://172.32.0.1/x",
    "http://100.128.0.1/x",
    "http://[2606:4700::1111]/x",
    "http://[::ffff:93.184.216.34]/x",
  ])("lets %s through", (url) => {
    expect(policy.checkUrl(url)).toBeNull();
  });

  it("a name is judged by the address it resolves to, on connect", () => {
    expect(policy.checkUrl("http://rebind.example.net/x")).toBeNull();
    expect(policy.checkAddress("127.0.0.1")).toMatchObject({ rule: "loopback" });
    expect(policy.checkAddress("::ffff:192.168.0.7")).toMatchObject({ rule: "private" });
  });

  it("names the rule and the address", () => {
    const r = policy.checkUrl("http://127.0.0.1:9/x");
    expect(r && refusalMessage("callbackUrl", r)).toBe(
      "callbackUrl resolves to a loopback address (127.0.0.1), refused by the webhook address policy",
    );
    const m = policy.checkUrl("http://metadata.google.internal/");
    expect(m && refusalMessage("callbackUrl", m)).toBe(
      "callbackUrl names a cloud metadata host (metadata.google.internal), refused by the webhook address policy",
    );
  });
});

describe("the allowlist", () => {
  const open = new WebhookAddressPolicy(" localhost, *.svc.cluster.local ,127.0.0.0/8,10.1.0.0/16, ::1 ");

  it("opens the hosts and networks it names, and only those", () => {
    expect(open.checkUrl("http://localhost:3000/x")).toBeNull();
    expect(open.checkUrl("http://hooks.team.svc.cluster.local/x")).toBeNull();
    expect(open.checkUrl("http://127.0.0.1/x")).toBeNull();
    expect(open.checkUrl("http://127.1/x")).toBeNull();
    expect(open.checkUrl("http://[::ffff:127.0.0.1]/x")).toBeNull();
    expect(open.checkUrl("http://[::1]/x")).toBeNull();
    expect(open.checkUrl("http://10.1.200.3/x")).toBeNull();
    expect(open.checkUrl("http://10.2.0.1/x")).toMatchObject({ rule: "private" });
    expect(open.checkUrl("http://169.254.169.254/x")).toMatchObject({ rule: "metadata" });
    expect(open.checkUrl("http://api.localhost/x")).toMatchObject({ rule: "loopback" });
    expect(open.allowsHost("svc.cluster.local")).toBe(false);
  });

  it.each(["10.0.0.0/33", "300.1.1.1", "::1/129", "http://x", "a b", "1.2.3.4/x", "*"])("refuses %j", (item) => {
    expect(() => new WebhookAddressPolicy(item)).toThrow(/is not a hostname, IP address or CIDR network/);
  });
});

describe("parseIp", () => {
  it("reads IPv4, IPv6 with :: and embedded IPv4", () => {
    expect(parseIp("10.0.0.1")).toEqual([10, 0, 0, 1]);
    expect(parseIp("::1")).toEqual([...Array(15).fill(0), 1]);
    expect(parseIp("::ffff:1.2.3.4")?.slice(10)).toEqual([0xff, 0xff, 1, 2, 3, 4]);
    expect(parseIp("1:2:3:4:5:6:7:8")).toEqual([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]);
    expect(parseIp("fe80::1%eth0")?.[0]).toBe(0xfe);
    expect(parseIp("example.com")).toBeNull();
    expect(classifyAddress("8.8.8.8")).toBeNull();
  });
});
